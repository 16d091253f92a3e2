#!/usr/bin/env python3
"""The NTL experiment's report (jobs/ntl.sh calls it; standard library only).

Reads RUN/data/languages.json, RUN/eval/<model>.{bpb,chrf}.json,
RUN/eval/<model>.translations.jsonl and RUN/meta.json; writes
  RUN/results.json  {"bpb": {model: {lang: x}}, "chrf": {model: {lang: x}},
                     "groups": {"H": [...], "L": [...], "dc_unseen": [...]}, ...}
  RUN/results.md    a Table 2 analogue, group averages, win counts, the
                    issue's targets with the measured figures, translations
  RUN/plots/bpb_calm_vs_mB.png, RUN/plots/chrf.png (gnuplot, when installed)

Usage: ntl_report.py RUN
"""
import json
import os
import shutil
import subprocess
import sys

MODELS = ["mA", "mB", "calm", "calm_random_mA", "mB_ntl"]
LABEL = {"mA": "mA", "mB": "mB", "calm": "CALM", "calm_random_mA": "CALM, random mA", "mB_ntl": "mB^NTL"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def frac(n, d):
    return f"{n} of {d} ({100.0 * n / d:.1f}%)" if d else "-"


def main(run):
    langs = load(f"{run}/data/languages.json")
    meta = load(f"{run}/meta.json")
    rule = load(f"{run}/data/manifest.json")["heldout"]
    info = {l["code"]: l for l in langs}
    groups = {
        "H": [l["code"] for l in langs if l["group"] == "H"],
        "L": [l["code"] for l in langs if l["group"] == "L"],
        "dc_unseen": [l["code"] for l in langs if l["dc_unseen"]],
    }
    bpb, chrf, tbpb = {}, {}, {}
    for m in MODELS:
        b = load(f"{run}/eval/{m}.bpb.json")
        bpb[m] = {k: v["bits_per_byte"] for k, v in b["langs"].items()}
        c = load(f"{run}/eval/{m}.chrf.json")
        chrf[m] = {k: v["chrf"] for k, v in c.get("langs", {}).items()}
        t = f"{run}/eval/{m}.target_bpb.json"
        if os.path.exists(t):
            tbpb[m] = {k: v["target_bits_per_byte"] for k, v in load(t).get("langs", {}).items()}
    L, H, U = groups["L"], groups["H"], set(groups["dc_unseen"])
    seen = [c for c in L if c not in U]
    # languages with translation examples (--translate 0 or --max-pair-bytes may leave none)
    quran_L = [c for c in L if info[c]["quran"] and all(c in chrf[m] for m in MODELS)]
    quran_H = [c for c in H if info[c]["quran"] and all(c in chrf[m] for m in MODELS)]

    def wins(a, b, codes):  # lower bits per byte is better
        return sum(1 for c in codes if bpb[a][c] < bpb[b][c])

    forget = {m: mean(bpb[m][c] for c in H) / mean(bpb["mB"][c] for c in H) - 1.0 for m in ("calm", "mB_ntl")}
    chrf_wins_mB = sum(1 for c in quran_L if chrf["calm"][c] > chrf["mB"][c])
    chrf_wins_rand = sum(1 for c in quran_L if chrf["calm"][c] > chrf["calm_random_mA"][c])
    chrf_wins_both = sum(1 for c in quran_L if chrf["calm"][c] > max(chrf["mB"][c], chrf["calm_random_mA"][c]))
    p = meta["params"]
    targets = [
        ("CALM < mB bits/byte on L languages", ">= 95%", wins("calm", "mB", L), len(L), 0.95),
        ("CALM < CALM-random-mA on L languages", ">= 90%", wins("calm", "calm_random_mA", L), len(L), 0.90),
        ("CALM < mB on DC-unseen languages", ">= 90%", wins("calm", "mB", sorted(U)), len(U), 0.90),
        ("CALM chrF > mB and > CALM-random-mA (quran L)", ">= 4 of 5", chrf_wins_both, len(quran_L), 0.8),
    ]
    summary = {
        "calm_beats_mB_L": [wins("calm", "mB", L), len(L)],
        "calm_beats_mB_dc_seen_L": [wins("calm", "mB", seen), len(seen)],
        "calm_beats_calm_random_mA_L": [wins("calm", "calm_random_mA", L), len(L)],
        "calm_beats_mB_dc_unseen": [wins("calm", "mB", sorted(U)), len(U)],
        "calm_beats_mB_ntl_L": [wins("calm", "mB_ntl", L), len(L)],
        "forgetting_H": forget,
        "chrf_calm_beats_mB_quran_L": [chrf_wins_mB, len(quran_L)],
        "chrf_calm_beats_random_quran_L": [chrf_wins_rand, len(quran_L)],
        "params": p,
    }
    results = {"bpb": bpb, "chrf": chrf, "groups": groups, "summary": summary, "meta": meta}
    if tbpb:
        results["target_bpb"] = tbpb
    write_atomic(f"{run}/results.json", json.dumps(results, indent=1, ensure_ascii=False) + "\n")

    # ---------------------------------------------------------------- markdown
    md = [f"# NTL composition, preset `{meta['preset']}`", ""]
    md += [f"Produced by `{meta['command']}` in {meta['elapsed_s'] // 60} min {meta['elapsed_s'] % 60} s "
           f"({meta['threads']}). Held-out text only ({rule}), in every language. Bits per byte: lower is better; "
           "chrF (XX->En, greedy): higher is better.", ""]
    md += ["Models: mB (anchor, " + p["mB_desc"] + ", trained on H only), mA (augmenting, " + p["mA_desc"] +
           ", NTL text of every language), CALM = mA (+) mB trained on DC, CALM with a randomly initialised mA "
           "(same DC and steps), mB^NTL = mB fine-tuned on the NTL text (mA's token budget). The composition "
           f"trains {p['composition']:,} parameters = {100.0 * p['composition'] / p['mB']:.1f}% of mB's "
           f"{p['mB']:,}.", ""]
    ten = [c for c in quran_L + quran_H]
    md += ["## Ten languages side by side (the paper's Table 2, at this scale)", ""]
    md += ["| language | group | script | " + " | ".join(f"{LABEL[m]} bpb" for m in MODELS) + " | " +
           " | ".join(f"{LABEL[m]} chrF" for m in ("mB", "calm", "calm_random_mA", "mB_ntl")) + " |"]
    md += ["| " + " | ".join(["---"] * (3 + len(MODELS) + 4)) + " |"]
    for c in ten:
        best = min(bpb[m][c] for m in ("mB", "calm", "calm_random_mA", "mB_ntl"))
        cells = [(f"**{bpb[m][c]:.3f}**" if bpb[m][c] == best and m != "mA" else f"{bpb[m][c]:.3f}") for m in MODELS]
        cc = [f"{chrf[m].get(c, float('nan')):.1f}" for m in ("mB", "calm", "calm_random_mA", "mB_ntl")]
        md += [f"| {info[c]['name']} ({c}) | {info[c]['group']} | {info[c]['script']} | " + " | ".join(cells) +
               " | " + " | ".join(cc) + " |"]
    md += ["", "## Group averages (bits per byte)", ""]
    md += ["| group | languages | " + " | ".join(LABEL[m] for m in MODELS) + " |",
           "| " + " | ".join(["---"] * (2 + len(MODELS))) + " |"]
    for name, codes in (("H", H), ("L", L), ("L in DC", seen), ("L, DC-unseen", sorted(U))):
        md += [f"| {name} | {len(codes)} | " + " | ".join(f"{mean(bpb[m][c] for c in codes):.3f}" for m in MODELS) + " |"]
    md += ["", "| chrF, XX->En | languages | " + " | ".join(LABEL[m] for m in MODELS) + " |",
           "| " + " | ".join(["---"] * (2 + len(MODELS))) + " |"]
    for name, codes in (("H (quran)", quran_H), ("L (quran)", quran_L)):
        md += [f"| {name} | {len(codes)} | " + " | ".join(f"{mean(chrf[m][c] for c in codes):.1f}" for m in MODELS) + " |"]
    md += ["", "## Where CALM wins", ""]
    md += [f"- CALM has lower bits per byte than mB on **{frac(*summary['calm_beats_mB_L'])}** L languages "
           "(the paper: 175 of 192),",
           f"  on {frac(*summary['calm_beats_mB_dc_seen_L'])} of those in DC and "
           f"**{frac(*summary['calm_beats_mB_dc_unseen'])}** DC-unseen ones;",
           f"- than CALM with a random mA on **{frac(*summary['calm_beats_calm_random_mA_L'])}** L languages;",
           f"- than mB^NTL on {frac(*summary['calm_beats_mB_ntl_L'])} L languages;",
           f"- forgetting on H (mean bits per byte against mB's): CALM {100 * forget['calm']:+.2f}%, "
           f"mB^NTL {100 * forget['mB_ntl']:+.2f}%;",
           f"- chrF on the quran L languages: CALM above mB on {chrf_wins_mB} of {len(quran_L)}, above CALM with a "
           f"random mA on {chrf_wins_rand} of {len(quran_L)}."]
    md += ["", "## The issue's targets (preset small)", "", "| target | goal | measured | met |", "| --- | --- | --- | --- |"]
    for name, goal, n, d, need in targets:
        md += [f"| {name} | {goal} | {frac(n, d)} | {'yes' if d and n >= need * d else 'no'} |"]
    f_ok = forget["calm"] <= 0.01
    md += [f"| CALM's H bits per byte within 1% of mB's | <= +1% | {100 * forget['calm']:+.2f}% | {'yes' if f_ok else 'no'} |",
           f"| composition parameters / mB's | <= 15% | {100.0 * p['composition'] / p['mB']:.1f}% | "
           f"{'yes' if p['composition'] <= 0.15 * p['mB'] else 'no'} |"]
    md += ["", "## Translations (first held-out verse of each quran L language)", ""]
    outs = {}
    for m in ("mB", "calm", "calm_random_mA"):
        path = f"{run}/eval/{m}.translations.jsonl"
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                o = json.loads(line)
                outs.setdefault((o["lang"], o["prompt"]), {})[m] = o
    shown = set()
    for (lang, prompt), o in outs.items():
        if lang in shown or lang not in quran_L:
            continue
        shown.add(lang)
        src = prompt.split("\n=> ")[0]
        md += [f"- **{info[lang]['name']}**: {src[:160]}",
               f"  - reference: {o['mB']['target']}",
               f"  - mB: {o['mB']['output'][:200]}",
               f"  - CALM: {o['calm']['output'][:200]}",
               f"  - CALM, random mA: {o['calm_random_mA']['output'][:200]}"]
    md += ["", "Plots: `plots/bpb_calm_vs_mB.png` (every language, CALM against mB) and `plots/chrf.png`.", ""]
    write_atomic(f"{run}/results.md", "\n".join(md))

    # ------------------------------------------------------------------- plots
    os.makedirs(f"{run}/plots", exist_ok=True)
    with open(f"{run}/plots/bpb.dat", "w", encoding="utf-8") as f:
        f.write("# code group(0 H, 1 L in DC, 2 DC-unseen) mB calm calm_random_mA\n")
        for c in H + L:
            g = 0 if c in H else (2 if c in U else 1)
            f.write(f"{c} {g} {bpb['mB'][c]:.4f} {bpb['calm'][c]:.4f} {bpb['calm_random_mA'][c]:.4f}\n")
    with open(f"{run}/plots/chrf.dat", "w", encoding="utf-8") as f:
        f.write("# code " + " ".join(MODELS) + "\n")
        for c in quran_L + quran_H:
            f.write(c + " " + " ".join(f"{chrf[m][c]:.2f}" for m in MODELS) + "\n")
    hi = max(max(bpb["mB"][c], bpb["calm"][c]) for c in H + L) * 1.05
    gp = f"""set terminal pngcairo noenhanced size 900,800 font ",11"
set output "{run}/plots/bpb_calm_vs_mB.png"
set title "Held-out bits per byte, every language: CALM against the anchor mB"
set xlabel "mB (anchor, never saw L text)"
set ylabel "CALM (mA composed into mB)"
set size ratio -1
set xrange [0:{hi:.2f}]
set yrange [0:{hi:.2f}]
set key top left
set grid
plot x title "equal (below: CALM better)" lc rgb "gray" dt 2, \\
  "{run}/plots/bpb.dat" using ($2==1?$3:1/0):4 title "L, in DC" pt 7 ps 0.6 lc rgb "#1f77b4", \\
  "" using ($2==2?$3:1/0):4 title "L, DC-unseen" pt 9 ps 0.8 lc rgb "#d62728", \\
  "" using ($2==0?$3:1/0):4 title "H" pt 5 ps 1.0 lc rgb "#2ca02c"
set output "{run}/plots/chrf.png"
set terminal pngcairo noenhanced size 1100,540 font ",11"
set title "XX->En chrF on held-out verses (greedy)"
set size noratio
set xlabel ""
set ylabel "chrF"
set xrange [*:*]
set yrange [0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set key outside top center horizontal
plot "{run}/plots/chrf.dat" using 3:xtic(1) title "mB", "" using 4 title "CALM", "" using 5 title "CALM, random mA", \\
  "" using 6 title "mB^NTL", "" using 2 title "mA"
"""
    with open(f"{run}/plots/plots.gp", "w", encoding="utf-8") as f:
        f.write(gp)
    if shutil.which("gnuplot"):
        subprocess.run(["gnuplot", f"{run}/plots/plots.gp"], check=True)
    else:
        print("ntl_report.py: gnuplot not found: plots/plots.gp written, PNGs not drawn", file=sys.stderr)
    return results


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: ntl_report.py RUN_DIR")
    main(sys.argv[1])
