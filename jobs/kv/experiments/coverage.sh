#!/usr/bin/env bash
# Issue 26: KV arithmetic with value coverage and one-token keys, the two
# choices the first fifty experiments never varied (docs/kv-arithmetic.md).
#   letters   500 keys of 2-6 letters, values 0-49 drawn with repetition (calm
#             data kv --repeat-values: every value in the table, the
#             composition keys chosen to carry every value first); the
#             composition gets N = 10, 50, 100, 400 of the keys
#   onetoken  76 one-character keys (--one-token-keys), values 0-49 likewise;
#             N = 10, 30, 50 (50: every value), 26 keys held out
# One mB (NUM-MATH, as the small preset) serves both; one mA per design
# learns KV-SUBS and KV-LOOKUP over all its keys (its KV sets do not depend on
# N). Each N: a composition on KV-MATH of its N keys plus as many NUM-MATH
# (small preset settings), scored on held-out KV-MATH and NUM-MATH and on 200
# of its own training expressions, with the
# controls on the same sets: mA alone, mB alone, the composition with a
# random mA.
# Output: OUT/results.jsonl and OUT/results.md.
# Usage: jobs/kv/experiments/coverage.sh [--design letters|onetoken|all] [--out DIR] [--threads N]
#                                        [--steps-a-letters N] [--steps-a-onetoken N] [--steps-b N] [--steps-c N]
#                                        [--lr-c LR]
# --lr-c: the compositions' learning rate, 3e-4. The small preset's 3e-3
# wrecks these compositions (mA over 500 keys): loss 1.55 and mB's NUM-MATH
# 0.02 after 100 steps, where 3e-4 reaches 0.82 and keeps 0.64 at 300 steps.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
design=all out=$root/runs/kv-coverage threads=2 steps_al=8000 steps_ao=3000 steps_b=6000 steps_c=1500 clr=3e-4
while [[ $# -gt 0 ]]; do
  case "$1" in
    --design) design=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps-a-letters) steps_al=$2; shift 2 ;;
    --steps-a-onetoken) steps_ao=$2; shift 2 ;;
    --steps-b) steps_b=$2; shift 2 ;;
    --steps-c) steps_c=$2; shift 2 ;;
    --lr-c) clr=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "coverage.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
case "$design" in letters|onetoken|all) ;; *) echo "coverage.sh: --design letters, onetoken or all" >&2; exit 2 ;; esac
calm=${CALM_BIN:-$root/build/calm}
[[ -x $calm ]] || { echo "coverage.sh: build calm first (jobs/build.sh)" >&2; exit 1; }
mkdir -p "$out"
log() { echo "== $(date +%H:%M:%S) $*"; }
common_data=(--values 0:49 --repeat-values --operands 3:3 --ops "+-" --lookup-numbers 0.3 --lookup-reversed 0.5
             --anchor-examples 100000 --compose-examples 3000 --compose-num-math 3000 --eval-examples 300 --seed 1)
A=(--dim 128 --layers 4 --heads 4) B=(--dim 128 --layers 4 --heads 4)
seq=40 # the longest example: "s:", 3 operands of 6 letters, 2 operators, "=", "49+49-49", BOS and EOS: 33
train=(--seq-len "$seq" --batch 64 --threads "$threads" --log-every 500 --weight-decay 0.01)

store() { # store NAME DIR FILE...: the files in one task store DIR/stores/NAME
  local name=$1 dir=$2 files=() f; shift 2
  for f in "$@"; do files+=("$dir/$f.jsonl"); done
  [[ -f $dir/stores/$name/data.mdb ]] ||
    "$calm" shard build --quiet --out "$dir/stores/$name" --seq-len "$seq" --lang kv "${files[@]}"
}
score() { # score MODEL_ARGS... -- TASKFILE: accuracy on the task
  local args=() ; while [[ $1 != -- ]]; do args+=("$1"); shift; done
  "$calm" eval "${args[@]}" --task "$2" --threads "$threads" 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])'
}
result() { # result DESIGN N MODEL TASK ACC
  printf '{"design": "%s", "n_compose_keys": %s, "model": "%s", "task": "%s", "accuracy": %s}\n' "$@" >>"$out/results.jsonl"
  echo "   $3 on $4 (N=$2): $5"
}

# mB once: NUM-MATH over 0-49, as the small preset (its data do not depend on the keys).
mkdir -p "$out/num"
[[ -f $out/num/anchor_num_math.jsonl ]] ||
  "$calm" data kv --out "$out/num" --keys 50 "${common_data[@]}" --augment-examples 10 2>/dev/null
store anchor_num_math "$out/num" anchor_num_math
if [[ ! -f $out/mB/config.json ]]; then
  log "mB: NUM-MATH ($steps_b steps)"
  "$calm" train --out "$out/mB" --data "$out/num/stores/anchor_num_math" "${B[@]}" --steps "$steps_b" --lr 1e-3 \
    --warmup $((steps_b / 20 + 1)) --seed 12 --log "$out/mB.jsonl" "${train[@]}"
fi

run_design() { # run_design NAME KEYS STEPS_A N... (keys flags come from the name)
  local name=$1 keys=$2 steps_a=$3; shift 3
  local ns=("$@") extra=() d n
  [[ $name == onetoken ]] && extra=(--one-token-keys)
  for n in "${ns[@]}"; do
    d=$out/$name/data-$n
    [[ -f $d/table.tsv ]] || "$calm" data kv --out "$d" --keys "$keys" --compose-keys "$n" "${extra[@]}" \
      "${common_data[@]}" --augment-examples 40000 --lookup-examples 60000 2>/dev/null
    store compose "$d" compose_kv_math compose_num_math
  done
  d=$out/$name/data-${ns[0]} # mA's sets cover every key whatever N: the first N's serve
  store augment "$d" augment_kv_subs augment_kv_lookup
  if [[ ! -f $out/$name/mA/config.json ]]; then
    log "$name: mA on KV-SUBS + KV-LOOKUP over $keys keys ($steps_a steps)"
    "$calm" train --out "$out/$name/mA" --data "$d/stores/augment" "${A[@]}" --steps "$steps_a" --lr 1e-3 \
      --warmup $((steps_a / 20 + 1)) --seed 11 --log "$out/$name/mA.jsonl" "${train[@]}"
  fi
  [[ -f $out/$name/mA_random/config.json ]] || "$calm" train --out "$out/$name/mA_random" --data "$d/stores/augment" \
    "${A[@]}" --steps 0 --seed 13 "${train[@]}" 2>/dev/null
  local last=${ns[${#ns[@]} - 1]}
  for n in "${ns[@]}"; do
    d=$out/$name/data-$n
    local runs=(calm calm_random_mA) r
    for r in "${runs[@]}"; do
      local aug=$out/$name/mA dir=$out/$name/$r-$n
      [[ $r == calm_random_mA ]] && aug=$out/$name/mA_random
      if [[ ! -f $dir/calm.safetensors ]]; then
        log "$name N=$n: $r ($steps_c steps)"
        "$calm" compose --anchor "$out/mB" --augment "$aug" --out "$dir" --data "$d/stores/compose" --steps "$steps_c" \
          --lr "$clr" --warmup $((steps_c / 20 + 1)) --seed 21 --connections 3:0,3:1,3:2 --log "$dir.jsonl" "${train[@]}"
      fi
      result "$name" "$n" "$r" kv_math "$(score --calm "$dir" -- "$d/eval_kv_math.jsonl")"
      result "$name" "$n" "$r" num_math "$(score --calm "$dir" -- "$d/eval_num_math.jsonl")"
      result "$name" "$n" "$r" kv_math_own "$(score --calm "$dir" --limit 200 -- "$d/compose_kv_math.jsonl")"
    done
  done
  for n in "${ns[@]}"; do # the controls on every N's held-out sets
    d=$out/$name/data-$n
    result "$name" "$n" mA kv_subs "$(score --model "$out/$name/mA" -- "$d/eval_kv_subs.jsonl")"
    result "$name" "$n" mA kv_math "$(score --model "$out/$name/mA" -- "$d/eval_kv_math.jsonl")"
    result "$name" "$n" mB kv_math "$(score --model "$out/mB" -- "$d/eval_kv_math.jsonl")"
    result "$name" "$n" mB num_math "$(score --model "$out/mB" -- "$d/eval_num_math.jsonl")"
  done
}

: >"$out/results.jsonl"
[[ $design == letters || $design == all ]] && run_design letters 500 "$steps_al" 10 50 100 400
[[ $design == onetoken || $design == all ]] && run_design onetoken 76 "$steps_ao" 10 30 50

/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/results.jsonl")]
lines = ["| design | composition keys N | model | held-out KV-MATH | own KV-MATH (200 training expressions) | NUM-MATH "
         "| mA KV-SUBS (held-out keys) |", "| --- | --- | --- | --- | --- | --- | --- |"]
get = lambda d, n, m, t: next((r["accuracy"] for r in rows if (r["design"], r["n_compose_keys"], r["model"], r["task"]) == (d, n, m, t)), None)
fmt = lambda x: "-" if x is None else f"{x:.3f}"
for d in dict.fromkeys(r["design"] for r in rows):
    for n in dict.fromkeys(r["n_compose_keys"] for r in rows if r["design"] == d):
        for m in dict.fromkeys(r["model"] for r in rows if r["design"] == d and r["n_compose_keys"] == n):
            lines.append(f"| {d} | {n} | {m} | {fmt(get(d, n, m, 'kv_math'))} | {fmt(get(d, n, m, 'kv_math_own'))} | "
                         f"{fmt(get(d, n, m, 'num_math'))} | {fmt(get(d, n, m, 'kv_subs'))} |")
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
