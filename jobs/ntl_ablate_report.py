"""Tables of jobs/ntl-ablate.sh: held-out bits per byte of each composition
at steps 100..800, by language group (L: low-resource, H: high-resource, as
in languages.json), and the first checkpoint at which each reaches the
random-init run's final L figure.
Usage: ntl_ablate_report.py NTL_DIR OUT_DIR PRESET_CONNECTIONS CKA_CONNECTIONS
Writes OUT_DIR/ablation.json and OUT_DIR/ablation.md (temp file, rename)."""
import json
import os
import sys

RUNS = ("random", "lstsq", "cka")
STEPS = (100, 200, 400, 800)


def group_means(bpb, groups):
    out = {}
    for g in ("L", "H"):
        vals = [v["bits_per_byte"] for code, v in bpb["langs"].items() if groups.get(code) == g]
        out[g] = sum(vals) / len(vals) if vals else float("nan")
    out["all"] = bpb["bits_per_byte"]
    return out


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(path + ".tmp", path)


def main(ntl, out, conns, cka):
    groups = {l["code"]: l["group"] for l in json.load(open(os.path.join(ntl, "data", "languages.json")))}
    res = {r: {s: group_means(json.load(open(os.path.join(out, f"{r}-step{s}", "eval.json"))), groups)
               for s in STEPS} for r in RUNS}
    mB = group_means(json.load(open(os.path.join(ntl, "eval", "mB.bpb.json"))), groups)
    target = res["random"][STEPS[-1]]["L"]
    reach = {r: next((s for s in STEPS if res[r][s]["L"] <= target), None) for r in RUNS}
    names = {"random": f"random projection, connections {conns} (the preset's)",
             "lstsq": f"least-squares projection (--init-proj lstsq), connections {conns}",
             "cka": f"random projection, CKA-suggested connections {cka}"}
    lines = ["| composition | " + " | ".join(f"L @ {s}" for s in STEPS) + " | H @ 800 | first step at L <= "
             f"{target:.3f} |", "| --- |" + " --- |" * (len(STEPS) + 2)]
    for r in RUNS:
        row = [f"{res[r][s]['L']:.3f}" for s in STEPS]
        lines.append(f"| {names[r]} | " + " | ".join(row) + f" | {res[r][STEPS[-1]]['H']:.3f} | "
                     f"{reach[r] if reach[r] else '> 800'} |")
    lines.append(f"| mB alone (no composition) | " + " | ".join(f"{mB['L']:.3f}" for _ in STEPS) + f" | {mB['H']:.3f} | |")
    write(os.path.join(out, "ablation.md"),
          "Held-out bits per byte (group means over languages; lower is better)\n\n" + "\n".join(lines) + "\n")
    write(os.path.join(out, "ablation.json"),
          json.dumps({"connections": conns, "cka_connections": cka, "mB": mB, "target_L": target,
                      "first_step_reaching_target": reach,
                      "runs": {r: {str(s): res[r][s] for s in STEPS} for r in RUNS}}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
