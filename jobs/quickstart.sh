#!/usr/bin/env bash
# calm quickstart: on a fresh Debian 12 machine, install what is missing, build,
# and run the main job end to end on this machine with built-in data.
#
# Today's main job trains a small byte-level LM on jobs/data/quickstart.txt and
# prints samples from it. Environment knobs:
#   CALM_QUICKSTART_OUT   output directory (default runs/quickstart)
#   CALM_QUICKSTART_STEPS training steps (default 400)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs/install-deps.sh
jobs/build.sh
out=${CALM_QUICKSTART_OUT:-runs/quickstart}
steps=${CALM_QUICKSTART_STEPS:-400}
data=jobs/data/quickstart.txt

echo "== training a byte-level LM on $data ($steps steps) =="
build/calm train --out "$out/model" --dim 128 --layers 4 --heads 4 --seq-len 128 --batch 16 \
  --steps "$steps" --lr 3e-3 --warmup 40 --log "$out/metrics.jsonl" --log-every 50 "$data"

echo "== evaluation =="
build/calm eval --model "$out/model" --seq-len 128 "$data"

echo "== greedy samples =="
for prompt in "The anchor" "Every byte" "A distributed run"; do
  printf '%s' "$prompt"
  build/calm generate --model "$out/model" --prompt "$prompt" --max-tokens 80 2>/dev/null | head -n 1
done
echo "== done: model in $out/model, metrics in $out/metrics.jsonl =="
