#!/usr/bin/env bash
# Issue 24's ablation on a finished NTL run (jobs/ntl.sh, default the small
# preset's runs/ntl-small): the same composition as the preset's (its mB, mA,
# DC store, steps and learning rate) three ways,
#   random   the preset's connections, random projection (the preset's run)
#   lstsq    the preset's connections, projection fitted by QR least squares
#            (calm compose --init-proj lstsq)
#   cka      the connections calm analyze suggests (as many as the preset's),
#            random projection
# with a checkpoint every 100 steps, and held-out bits per byte (the preset's
# heldout.jsonl, calm eval --docs) of the composition at steps 100, 200, 400
# and 800: the steps each needs to reach a held-out figure, and where each
# ends. Writes OUT/ablation.md and OUT/ablation.json.
# Usage: jobs/ntl-ablate.sh [--ntl DIR] [--out DIR] [--threads N] [--steps N --lr X --seq-len T --batch B]
#   the composition's steps, learning rate, sequence and batch: the small preset's by default (800, 2e-3, 256, 16)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ntl=$root/runs/ntl-small out=$root/runs/ntl-ablate threads=0 steps=800 lr=2e-3 seq=256 batch=16
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ntl) ntl=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --seq-len) seq=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "ntl-ablate.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
job=ntl-ablate.sh
source "$root/jobs/lib.sh"
job_local_calm
[[ -f $ntl/meta.json && -d $ntl/calm ]] || { echo "ntl-ablate.sh: $ntl is not a finished jobs/ntl.sh run" >&2; exit 1; }
mkdir -p "$out"
# the preset's connections, read back from its composition
conns=$(/usr/bin/python3 -c 'import json,sys; print(",".join(f"{a}:{b}" for a, b in json.load(open(sys.argv[1]))["connections"]))' \
  "$ntl/calm/calm_config.json")
n_conn=$(tr ',' '\n' <<<"$conns" | wc -l)
common=(--anchor "$ntl/mB" --augment "$ntl/mA" --data "$ntl/data/stores/dc" --steps "$steps" --lr "$lr"
        --warmup $((steps / 20 + 1)) --seed 21 --alpha 1.0 --seq-len "$seq" --batch "$batch" --threads "$threads"
        --log-every 50 --checkpoint-every 100 --keep 8)

echo "== calm analyze: CKA of every (mA, mB) layer pair, $n_conn suggested connections"
"$calm" analyze --anchor "$ntl/mB" --augment "$ntl/mA" --data "$ntl/data/stores/dc" --tokens 16384 \
  --connections "$n_conn" --threads "$threads" --out "$out/analyze" 2>"$out/analyze.log"
cka=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connections"])' "$out/analyze/cka.json")
echo "preset connections $conns; CKA-suggested $cka"

run() { # NAME CONNECTIONS [EXTRA...]
  local name=$1 c=$2; shift 2
  [[ -f $out/$name/calm.safetensors ]] && return 0
  echo "== $name: connections $c $* ($steps steps)"
  "$calm" compose "${common[@]}" --connections "$c" --out "$out/$name" --log "$out/$name.jsonl" "$@" \
    2>"$out/$name.log" || { tail -5 "$out/$name.log" >&2; exit 1; }
}
run random "$conns"
run lstsq "$conns" --init-proj lstsq --init-tokens 16384
run cka "$cka"

# a checkpoint's parameters as a composition directory calm eval reads
for name in random lstsq cka; do
  for s in 100 200 400 800; do
    d=$out/$name-step$s
    [[ -f $d/eval.json ]] && continue
    mkdir -p "$d"
    cp "$out/$name/calm_config.json" "$d/"
    /usr/bin/python3 "$root/jobs/ckpt_params.py" "$out/$name/checkpoints/step-$(printf %08d "$s")" "$d/calm.safetensors"
    "$calm" eval --calm "$d" --docs "$ntl/data/heldout.jsonl" --seq-len "$seq" --batch 16 --threads "$threads" \
      --out "$d/eval.json" 2>"$d/eval.log"
    echo "$name step $s: held-out $(/usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["bits_per_byte"], 4))' "$d/eval.json") bits/byte"
  done
done
/usr/bin/python3 "$root/jobs/ntl_ablate_report.py" "$ntl" "$out" "$conns" "$cka"
