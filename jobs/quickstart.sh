#!/usr/bin/env bash
# calm quickstart: on a fresh Debian 12 machine, install what is missing, build,
# and run the main job end to end on this machine with built-in data:
# a small CALM composition on the key-value arithmetic task (CALM section 4.1).
#   - mA (augmenting) memorises a key -> value table (KV-SUBS),
#   - mB (anchor) learns arithmetic on numbers (NUM-MATH),
#   - CALM composes them on 20% of the keys, on 3 local MPI ranks (the anchor in
#     2 pipeline stages, 1 augment rank), and is scored on held-out keys (KV-MATH),
#   - then a composed model answers a prompt with cached generation.
# Takes a few minutes on 2 cores. Environment:
#   CALM_QUICKSTART_OUT   output directory (default runs/quickstart)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs/install-deps.sh
jobs/build.sh
out=${CALM_QUICKSTART_OUT:-runs/quickstart}

jobs/kv-arithmetic.sh --preset quick --out "$out" --pipeline 2:1:4

echo "== a composed model answers (greedy, KV caches for both models) =="
prompt=$(head -n 1 "$out/data/eval_kv_math.jsonl" | sed 's/.*"prompt": "\([^"]*\)".*/\1/')
target=$(head -n 1 "$out/data/eval_kv_math.jsonl" | sed 's/.*"target": "\([^"]*\)".*/\1/')
printf '%s' "$prompt"
build/calm generate --calm "$out/calm" --prompt "$prompt" --max-tokens 8 2>/dev/null | head -n 1
echo "(expected $target; table in $out/data/table.tsv)"
echo "== done: models, compositions and results in $out =="
