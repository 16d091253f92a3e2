#!/usr/bin/python3
"""The scaling sweeps' collector (jobs/scaling/run.sh calls it; standard library only).

Reads every element jobs/scaling/element.sh wrote under OUT (OUT/*/NAME.* and
OUT/NAME.*): NAME.config.json (the configuration, status), NAME.measured.jsonl
(calm compose's log), NAME.plan.jsonl (calm plan's prediction) and NAME.err
(the pipeline report: per-rank busy, wait, idle). Writes
  OUT/results.jsonl  one row per element: the configuration, measured and
                     predicted step time and tokens/s, error, bubble and idle
  OUT/results.md     the same as tables, one per sweep, with the error summary
  OUT/plots/*.dat, *.gp and, when gnuplot is installed, the PNGs:
                     SWEEP.png (tokens/s per configuration, predicted and measured,
                     for every sweep but bubble), bubble.png (predicted bubble,
                     measured stage idle and the 1F1B ideal (S-1)/(M+S-1) against M),
                     pred_vs_meas.png (predicted against measured step time, y = x
                     and the +/-15% band)
Measured step time: the mean over the logged steps after the first (warm-up)
of batch x seq / tokens_per_s; measured tokens/s is batch x seq over it.
Measured idle: the mean "idle" of the anchor stages in the pipeline report,
which counts every step, the first included (the report has no other).

Usage: collect.py OUT
       collect.py --element OUTDIR/NAME   one element's measured and predicted step (element.sh prints it)
"""
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys

SWEEP_ORDER = ["strong", "weak", "bubble"]
BAND = 0.15
# a row of the pipeline report: rank, role ("stage 0" / "augment 0"), replica, busy s, wait s, idle, ...
REPORT_ROW = re.compile(r"^\s*(\d+)\s+(stage|augment)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s")


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_jsonl(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        return []


def report_idle(path):
    """Mean idle fraction of the anchor stages and of the augment ranks in the
    pipeline report at the end of NAME.err; (None, None) without one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, None
    start = max((i for i, l in enumerate(lines) if l.startswith("pipeline over")), default=None)
    if start is None:
        return None, None
    idle = {"stage": [], "augment": []}
    for l in lines[start:]:
        m = REPORT_ROW.match(l)
        if m:
            idle[m.group(2)].append(float(m.group(7)))
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    return mean(idle["stage"]), mean(idle["augment"])


def layout_name(c):
    if c["S"] == 0:
        kind = "single" if c["R"] == 1 else f"dp R={c['R']}"
    else:
        kind = f"S={c['S']} A={c['A']} R={c['R']} M={c['M']}"
    return f"{kind} x{c['threads']}"


def row_of(base, c):
    """One element's results: its configuration with the measured and predicted figures."""
    r = {k: c.get(k) for k in ("sweep", "index", "name", "S", "A", "R", "M", "threads", "batch", "seq", "ranks",
                               "cores", "yield_when_idle", "host", "slurm_job", "status", "why")}
    r["layout"] = layout_name(c)
    tokens = c["batch"] * c["seq"]
    steps = read_jsonl(base + ".measured.jsonl")
    timed = steps[1:] or steps  # the first step is warm-up; a 1-step run has only it
    r["measured_steps"] = len(timed)
    r["measured_warmup_included"] = len(steps) < 2
    r["measured_step_s"] = r["measured_tokens_per_s"] = None
    if timed and all(s.get("tokens_per_s", 0) > 0 for s in timed):
        r["measured_step_s"] = sum(tokens / s["tokens_per_s"] for s in timed) / len(timed)
        r["measured_tokens_per_s"] = tokens / r["measured_step_s"]
    plan = read_jsonl(base + ".plan.jsonl")
    p = plan[0] if plan else {}
    r["predicted_ok"] = bool(p.get("ok"))
    r["predicted_why"] = p.get("why", "")
    for k in ("step_s", "tokens_per_s", "bubble", "compute_s", "comm_s", "opt_s", "mem_gb"):
        r["predicted_" + k] = p.get(k) if r["predicted_ok"] else None
    r["error_pct"] = None
    if r["predicted_step_s"] and r["measured_step_s"]:
        r["error_pct"] = 100.0 * (r["predicted_step_s"] - r["measured_step_s"]) / r["measured_step_s"]
    r["measured_stage_idle"], r["measured_augment_idle"] = report_idle(base + ".err")
    r["ideal_bubble"] = (c["S"] - 1) / (c["M"] + c["S"] - 1) if c["S"] > 0 else None
    return r


def collect(out):
    rows = []
    for path in sorted(glob.glob(f"{out}/*.config.json") + glob.glob(f"{out}/*/*.config.json")):
        try:
            with open(path, encoding="utf-8") as f:
                c = json.load(f)
        except (OSError, ValueError) as e:
            print(f"collect.py: {path}: unreadable ({e}); left out", file=sys.stderr)
            continue
        rows.append(row_of(path[: -len(".config.json")], c))
    order = lambda r: (SWEEP_ORDER.index(r["sweep"]) if r["sweep"] in SWEEP_ORDER else len(SWEEP_ORDER), r["sweep"],
                       r["index"])
    return sorted(rows, key=order)


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def summary(rows):
    errs = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    if not errs:
        return "no element has both a prediction and a measurement"
    errs.sort()
    within = sum(e <= 100 * BAND for e in errs)
    med = errs[len(errs) // 2] if len(errs) % 2 else (errs[len(errs) // 2 - 1] + errs[len(errs) // 2]) / 2
    return (f"{len(errs)} compared: mean |error| {sum(errs) / len(errs):.1f}%, median {med:.1f}%, "
            f"worst {errs[-1]:.1f}%; {within} of {len(errs)} within +/-{100 * BAND:.0f}%")


def markdown(rows, out):
    md = ["# Scaling sweeps: calm plan's predictions against measured runs", "",
          f"From `jobs/scaling/collect.py {out}`. Measured: the mean step after the first (warm-up) of "
          "`calm compose`; predicted: `calm plan --layout` with the per-layer costs of `costs.json`. "
          "error = (predicted - measured) / measured. Bubble: the planner's idle fraction of the anchor stages; "
          "idle: the pipeline report's mean idle fraction of the anchor stages (every step, the warm-up included); "
          "ideal: 1F1B's (S-1)/(M+S-1).", "",
          f"All elements: {summary(rows)}.", ""]
    for sweep in dict.fromkeys(r["sweep"] for r in rows):
        rs = [r for r in rows if r["sweep"] == sweep]
        hosts = sorted({r["host"] for r in rs if r.get("host")})
        md += [f"## {sweep}", "", f"{summary(rs)}. Host(s): {', '.join(hosts) or '-'}; "
               f"{rs[0]['cores']} cores.", "",
               "| name | layout | ranks | batch | predicted step s | measured step s | error % | predicted tok/s "
               "| measured tok/s | bubble | idle | ideal |",
               "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in rs:
            note = ""
            if r["status"] != "ok":
                note = f" (failed: {(r['why'] or '?').splitlines()[0]})"
            elif not r["predicted_ok"]:
                note = f" (plan refused: {r['predicted_why']})"
            elif r["measured_warmup_included"]:
                note = " (1 step: warm-up included)"
            md.append(f"| {r['name']}{note} | {r['layout']} | {r['ranks']} | {r['batch']}x{r['seq']} "
                      f"| {fmt(r['predicted_step_s'], '.4g')} | {fmt(r['measured_step_s'], '.4g')} "
                      f"| {fmt(r['error_pct'], '+.1f')} | {fmt(r['predicted_tokens_per_s'], '.0f')} "
                      f"| {fmt(r['measured_tokens_per_s'], '.0f')} | {fmt(r['predicted_bubble'] if r['S'] else None, '.3f')} "
                      f"| {fmt(r['measured_stage_idle'], '.3f')} | {fmt(r['ideal_bubble'], '.3f')} |")
        md.append("")
    pipes = [r for r in rows if r["S"] > 0 and r["status"] == "ok"]
    if pipes and all(r["measured_stage_idle"] is None for r in pipes):
        md += ["No pipeline report (`pipeline over ...`) was found in the pipelines' .err files: "
               "the measured idle column is empty.", ""]
    return "\n".join(md)


def dat(x):
    return "?" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def plots(rows, out):
    """The .dat files and one gnuplot script; returns the PNGs it draws."""
    pdir = f"{out}/plots"
    os.makedirs(pdir, exist_ok=True)
    gp = ['set terminal pngcairo noenhanced size 1000,600 font ",11"', 'set datafile missing "?"', "set grid"]
    pngs = []
    ok = [r for r in rows if r["status"] == "ok"]
    for sweep in dict.fromkeys(r["sweep"] for r in ok):
        rs = [r for r in ok if r["sweep"] == sweep]
        if sweep == "bubble":
            continue
        with open(f"{pdir}/{sweep}.dat", "w", encoding="utf-8") as f:
            f.write("# label predicted_tokens_per_s measured_tokens_per_s ranks threads batch\n")
            for r in rs:
                f.write(f"\"{r['name']} ({r['ranks']}x{r['threads']})\" {dat(r['predicted_tokens_per_s'])} "
                        f"{dat(r['measured_tokens_per_s'])} {r['ranks']} {r['threads']} {r['batch']}\n")
        batches = sorted({r["batch"] for r in rs})
        what = (f"one global batch of {batches[0]} x {rs[0]['seq']}" if len(batches) == 1
                else f"global batch {batches[0]}..{batches[-1]} x {rs[0]['seq']}")
        pngs.append(f"{pdir}/{sweep}.png")
        gp += [f'set output "{pdir}/{sweep}.png"',
               f'set title "{sweep}: tokens/s per layout, {what} (label: name (ranks x threads))"',
               'set xlabel ""', 'set ylabel "tokens/s"', "unset logscale", f"set xrange [-0.5:{len(rs) - 0.5}]", "set yrange [0:*]",
               "set xtics rotate by -30", "set key bottom right opaque box",
               f'plot "{pdir}/{sweep}.dat" using 0:2:xtic(1) with linespoints pt 7 title "predicted (calm plan)", '
               '"" using 0:3 with linespoints pt 5 title "measured"']
    bub = [r for r in ok if r["sweep"] == "bubble" and r["S"] > 0]
    if bub:
        bub.sort(key=lambda r: r["M"])
        with open(f"{pdir}/bubble.dat", "w", encoding="utf-8") as f:
            f.write("# M predicted_bubble measured_stage_idle ideal_1F1B S A\n")
            for r in bub:
                f.write(f"{r['M']} {dat(r['predicted_bubble'])} {dat(r['measured_stage_idle'])} "
                        f"{dat(r['ideal_bubble'])} {r['S']} {r['A']}\n")
        shapes = sorted({(r["S"], r["A"]) for r in bub})
        lay = ", ".join(f"S={s} A={a}" for s, a in shapes)
        ideal = f'"{pdir}/bubble.dat" using 1:4 with linespoints pt 1'
        if len({s for s, _ in shapes}) == 1:  # one depth: the ideal as a curve
            S = shapes[0][0]
            ideal = f"{S - 1}.0/(x+{S - 1})" + " with lines"
        plot = [ideal + ' dt 2 lc rgb "gray40" title "1F1B ideal (S-1)/(M+S-1)"',
                f'"{pdir}/bubble.dat" using 1:2 with linespoints pt 7 title "predicted bubble (calm plan)"']
        if any(r["measured_stage_idle"] is not None for r in bub):
            plot.append('"" using 1:3 with linespoints pt 5 title "measured idle, anchor stages (pipeline report)"')
        else:
            print("collect.py: bubble.png: no pipeline report in the .err files, so no measured idle", file=sys.stderr)
        pngs.append(f"{pdir}/bubble.png")
        gp += [f'set output "{pdir}/bubble.png"',
               f'set title "Pipeline bubble against micro-batches M ({lay}, batch {bub[0]["batch"]} x {bub[0]["seq"]})"',
               'set xlabel "micro-batches M"', 'set ylabel "idle fraction of a step"', "set logscale x 2",
               f"set xrange [{bub[0]['M'] / 1.25:.6g}:{bub[-1]['M'] * 1.25:.6g}]", "set yrange [0:1]", "set xtics norotate", "set key top right",
               "plot " + ", ".join(plot)]
    both = [r for r in ok if r["predicted_step_s"] and r["measured_step_s"]]
    if both:
        sweeps = list(dict.fromkeys(r["sweep"] for r in both))
        for s in sweeps:
            with open(f"{pdir}/pred_vs_meas_{s}.dat", "w", encoding="utf-8") as f:
                f.write("# measured_step_s predicted_step_s name\n")
                for r in both:
                    if r["sweep"] == s:
                        f.write(f"{dat(r['measured_step_s'])} {dat(r['predicted_step_s'])} \"{r['name']}\"\n")
        vals = [v for r in both for v in (r["measured_step_s"], r["predicted_step_s"])]
        lo, hi = min(vals) / 1.5, max(vals) * 1.5
        plot = [f"'+' using 1:({1 - BAND}*$1):({1 + BAND}*$1) with filledcurves fc rgb \"#e0e0e0\" "
                f"title \"+/-{100 * BAND:.0f}%\"", 'x with lines dt 2 lc rgb "gray40" title "predicted = measured"']
        colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
        plot += [f'"{pdir}/pred_vs_meas_{s}.dat" using 1:2 with points pt {5 + 2 * (i % 4)} ps 1.3 '
                 f'lc rgb "{colours[i % len(colours)]}" title "{s}"' for i, s in enumerate(sweeps)]
        pngs.append(f"{pdir}/pred_vs_meas.png")
        gp += [f'set output "{pdir}/pred_vs_meas.png"', "set size ratio -1",
               'set title "Step time: calm plan against the measured runs"', 'set xlabel "measured step s"',
               'set ylabel "predicted step s"', "set logscale xy", f"set xrange [{lo:.6g}:{hi:.6g}]",
               f"set yrange [{lo:.6g}:{hi:.6g}]", "set xtics norotate", "set key top left opaque box", "set samples 200",
               "plot " + ", ".join(plot)]
    write_atomic(f"{pdir}/plots.gp", "\n".join(gp) + "\n")
    if not pngs:
        return []
    if not shutil.which("gnuplot"):
        print(f"collect.py: gnuplot not found: PNGs skipped; {pdir}/plots.gp and its .dat files are written "
              "(apt-get install gnuplot-nox, then gnuplot plots.gp)", file=sys.stderr)
        return []
    subprocess.run(["gnuplot", f"{pdir}/plots.gp"], check=True)
    return pngs


def main(out):
    out = os.path.abspath(out)
    rows = collect(out)
    if not rows:
        sys.exit(f"collect.py: no element results (NAME.config.json) in {out} or its sweep directories")
    write_atomic(f"{out}/results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    md = markdown(rows, out)
    write_atomic(f"{out}/results.md", md + "\n")
    pngs = plots(rows, out)
    print(md)
    print(f"collect.py: {len(rows)} elements: {out}/results.md, {out}/results.jsonl"
          + (f"; plots: {', '.join(os.path.basename(p) for p in pngs)} in {out}/plots" if pngs else ""))


def one_line(base):
    """element.sh's summary of the element it ran (BASE: OUTDIR/NAME)."""
    with open(base + ".config.json", encoding="utf-8") as f:
        r = row_of(base, json.load(f))
    err = f" ({r['error_pct']:+.0f}%)" if r["error_pct"] is not None else ""
    print(f"element.sh: {r['name']}: step {fmt(r['measured_step_s'], '.4g')} s measured, "
          f"{fmt(r['predicted_step_s'], '.4g')} s predicted{err}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--element":
        one_line(sys.argv[2])
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        main(sys.argv[1])
    else:
        sys.exit("usage: collect.py OUT  |  collect.py --element OUTDIR/NAME")
