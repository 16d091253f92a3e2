#!/usr/bin/env bash
# The scaling sweep through a real Slurm: a one-node cluster on this machine
# (tests/slurm/cluster.sh) runs jobs/scaling/run.sh on a 2-element sweep of
# tiny models (d64/d32, 2 blocks, 2 steps): one process, and a 3-rank pipeline
# (S=2 A=1 M=2, launched by srun inside the array element). The costs are
# measured at one micro-batch (--max-calib-tokens) to keep it short.
# results.jsonl must hold both rows, each with a predicted and a measured step
# time > 0 (the pipeline's with the measured idle of its stages), and
# results.md must exist. Timings are not checked: ctest shares the cores.
# Needs root (it starts munged, slurmctld and slurmd): skipped otherwise.
# Usage: test_scaling_sweep.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
set +e # failures are counted (fail)
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: starting a Slurm cluster needs root"; exit 77; fi
make_tmp
cluster=$tmp/cluster
cleanup() { # called by lib.sh at exit, before $tmp is removed
  scancel --name=calm-scaling-tiny 2>/dev/null
  "$tests/slurm/cluster.sh" stop "$cluster" >/dev/null 2>&1
}
"$tests/slurm/cluster.sh" start "$cluster" || exit 1
export SLURM_CONF=$cluster/slurm.conf

printf 'name\tS\tA\tR\tM\tthreads\tbatch\tseq\n' >"$tmp/tiny.tsv"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' single 0 0 1 1 1 4 32 s2a1-m2 2 1 1 2 1 4 32 >>"$tmp/tiny.tsv"
cd "$root" || exit 1
timeout 300 jobs/scaling/run.sh --sweep "$tmp/tiny.tsv" --out "$tmp/out" --preset tiny --steps 2 \
  --max-calib-tokens 32 >"$tmp/run.log" 2>&1 || fail "jobs/scaling/run.sh exited $?"
grep "^\[scaling" "$tmp/run.log"
[[ -s $tmp/out/results.md ]] || fail "no results.md"
if command -v gnuplot >/dev/null; then
  [[ -s $tmp/out/plots/pred_vs_meas.png ]] || fail "gnuplot is here but no plots/pred_vs_meas.png"
fi
/usr/bin/python3 - "$tmp/out/results.jsonl" <<'PY' || fail "results.jsonl"
import json, sys
rows = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
bad = []
for name in ("single", "s2a1-m2"):
    r = rows.get(name)
    if r is None:
        bad.append(f"{name}: no row")
        continue
    print(f"{name}: {r['status']}, predicted {r['predicted_step_s']} s, measured {r['measured_step_s']} s, "
          f"stage idle {r['measured_stage_idle']}")
    if r["status"] != "ok" or not (r["predicted_step_s"] or 0) > 0 or not (r["measured_step_s"] or 0) > 0:
        bad.append(f"{name}: not a predicted and measured step time > 0")
if "s2a1-m2" in rows and rows["s2a1-m2"]["measured_stage_idle"] is None:
    bad.append("s2a1-m2: no measured idle from the pipeline report")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
grep -q '"launch": \["srun"' "$tmp/out/tiny/s2a1-m2.config.json" || fail "the pipeline was not launched by srun"
if [[ $failures -ne 0 ]]; then
  echo "--- run.sh"; tail -n 30 "$tmp/run.log"
  for f in "$tmp"/out/tiny/slurm-*.out; do echo "--- $f"; tail -n 10 "$f"; done
fi
finish "a 2-element sweep ran as a Slurm job array and was collected: predicted and measured step times"
