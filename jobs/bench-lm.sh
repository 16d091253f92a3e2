#!/usr/bin/env bash
# Benchmark the LM trainer against PyTorch on this machine; prints a table.
#   jobs/bench-lm.sh [calm bench options]   (defaults: the benchmark config
#   d512, 8 layers, 8 heads, ff1408, vocab 320, batch 8 x 256)
# Environment: CALM_BENCH_STEPS (timed steps, default 5), CALM_THREADS.
# Run it on an otherwise idle machine: BLIS threads spin at barriers, so any
# other load distorts the figures badly.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs/install-deps.sh --test >/dev/null
jobs/build.sh >/dev/null
steps=${CALM_BENCH_STEPS:-5}
threads=${CALM_THREADS:-$(nproc)}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

build/calm bench --compose --steps "$steps" --threads "$threads" "$@" | tee "$tmp"
# PyTorch twice: with calm's BLIS kernels and thread count (like for like), and
# as Debian's torch runs out of the box (BLIS's own kernel choice, one thread).
PYTHONPATH=tests /usr/bin/python3 jobs/bench_torch.py --steps "$steps" --threads "$threads" --modes full,frozen,compose | tee -a "$tmp"
PYTHONPATH=tests /usr/bin/python3 jobs/bench_torch.py --steps "$steps" --threads "$threads" --blis-arch installed \
  --modes full,frozen,compose |
  sed 's/^torch mode=/torch_installed mode=/' | tee -a "$tmp"

/usr/bin/python3 - "$tmp" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(calm|torch|torch_installed) mode=(\w+) (.*)", line.strip())
    if m:
        rows[(m.group(1), m.group(2))] = dict(kv.split("=") for kv in m.group(3).split())
print()
print("| mode | calm tokens/s | calm model GFLOP/s | of sgemm peak | PyTorch (same BLIS set-up) tokens/s "
      "| ratio | PyTorch as installed tokens/s | ratio |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("full", "frozen", "compose"):
    c, t, d = rows.get(("calm", mode)), rows.get(("torch", mode)), rows.get(("torch_installed", mode))
    if not c or not t or not d:
        continue
    ct, tt, dt = (float(x["tokens_per_s"]) for x in (c, t, d))
    print(f"| {mode} | {ct:.0f} | {float(c['model_gflops']):.1f} | {100 * float(c['of_sgemm_peak']):.0f}% | "
          f"{tt:.0f} | {ct / tt:.2f}x | {dt:.0f} | {ct / dt:.2f}x |")
c = rows.get(("calm", "compose"))
if c:
    print(f"\ncomposition step / full fine-tuning step of the anchor (calm): {float(c['compose_over_finetune']):.2f}")
PY
