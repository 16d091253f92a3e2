#!/usr/bin/env bash
# CLI behaviour: help, strict flags, clear errors, and that training on a
# small text lowers the loss well below its start and memorises a line that
# `calm generate` then reproduces.  Usage: test_cli.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
set +e # failures are counted (fail), and many commands here are meant to fail
make_tmp
passes=0
ok() { passes=$((passes+1)); }
expect_rc() { # expect_rc RC DESCRIPTION CMD...
  local want=$1 what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [[ $rc -eq $want ]]; then ok; else fail "$what: exit $rc, wanted $want"; cat "$tmp/err"; fi
}
expect_err() { # expect_err TEXT DESCRIPTION  (after expect_rc)
  if grep -q -- "$1" "$tmp/err"; then ok; else fail "$2: stderr lacks '$1'"; cat "$tmp/err"; fi
}

expect_rc 0 "calm --help" "$calm" --help
expect_rc 2 "calm with no command" "$calm"
expect_rc 2 "unknown command" "$calm" frobnicate
for sub in train eval generate forward bench shard; do
  expect_rc 0 "calm $sub --help" "$calm" "$sub" --help
  grep -q "usage: calm $sub" "$tmp/out" && ok || fail "calm $sub --help prints no usage"
done
expect_rc 2 "unknown flag" "$calm" train --out "$tmp/x" --bogus 1 "$tests/data/memorise.txt"
expect_err "unknown option '--bogus'" "unknown flag"
expect_rc 2 "bad integer" "$calm" train --out "$tmp/x" --steps 12x "$tests/data/memorise.txt"
expect_err "'12x' is not an integer" "bad integer"
expect_rc 2 "out of range" "$calm" train --out "$tmp/x" --lr -1 "$tests/data/memorise.txt"
expect_rc 2 "missing value" "$calm" train --out
expect_rc 2 "missing --out" "$calm" train "$tests/data/memorise.txt"
expect_rc 2 "option as a value" "$calm" compose --anchor a --augment b --out c --resume --data d
expect_err "--resume needs a value, got the option '--data'" "option as a value"
expect_rc 1 "missing input file" "$calm" train --out "$tmp/x" "$tmp/nope.txt"
expect_err "nope.txt: cannot open" "missing input file"
expect_rc 1 "missing model dir" "$calm" eval --model "$tmp/nomodel" "$tests/data/memorise.txt"
expect_err "nomodel" "missing model dir"

# Train until the text is memorised.
expect_rc 0 "train" "$calm" train --out "$tmp/m" --dim 64 --layers 2 --heads 4 --seq-len 64 --batch 16 \
  --steps 300 --lr 5e-3 --warmup 20 --weight-decay 0 --log "$tmp/m.jsonl" --log-every 10 --threads 1 \
  --checkpoint-every 100 --keep 2 "$tests/data/memorise.txt"
ls "$tmp/m/checkpoints" | tr '\n' ' ' | grep -qx "step-00000200 step-00000300 " && ok ||
  fail "checkpoints: want step-00000200 and step-00000300 kept (--keep 2), got $(ls "$tmp/m/checkpoints" | tr '\n' ' ')"
first=$(head -n 1 "$tmp/m.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
last=$(tail -n 1 "$tmp/m.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
echo "loss: first logged $first, last $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.25 * a && b < 0.5) }' && ok ||
  fail "loss did not fall well below its start ($first -> $last)"
[[ -f "$tmp/m/config.json" && -f "$tmp/m/model.safetensors" && -f "$tmp/m/trainer_state.safetensors" ]] && ok ||
  fail "model directory incomplete"
ls "$tmp/m" | grep -q '\.tmp\.' && fail "temp file left in model dir" || ok

# A memorised line comes back under greedy decoding.
got=$("$calm" generate --model "$tmp/m" --prompt "the seventh key of the" --max-tokens 20 --threads 1 2>/dev/null | head -n 1)
echo "generate: '$got'"
[[ "$got" == " table maps to 4711"* ]] && ok || fail "generate did not reproduce the memorised line: '$got'"

# eval reports a low loss on the memorised text.
"$calm" eval --model "$tmp/m" --seq-len 64 --threads 1 "$tests/data/memorise.txt" >"$tmp/eval" 2>/dev/null
loss=$(sed 's/.*"loss": *\([0-9.e+-]*\).*/\1/' "$tmp/eval")
awk -v l="$loss" 'BEGIN { exit !(l < 0.5) }' && ok || fail "eval loss $loss not low"

# eval --docs: bits per byte per language; the memorised line costs far less
# than a line the model never saw.
printf '%s\n' '{"lang": "en", "text": "the seventh key of the table maps to 4711"}' \
  '{"lang": "xx", "text": "qzv wkkj pblq mmxr tfo"}' '{"lang": "en", "text": "alpha bravo charlie delta"}' >"$tmp/docs.jsonl"
expect_rc 0 "eval --docs" "$calm" eval --model "$tmp/m" --docs "$tmp/docs.jsonl" --threads 1 --out "$tmp/docs.json"
/usr/bin/python3 - "$tmp/docs.json" <<'PY' && ok || fail "eval --docs result"
import json, sys
r = json.load(open(sys.argv[1]))
en, xx = r["langs"]["en"], r["langs"]["xx"]
assert r["docs"] == 3 and en["docs"] == 2 and xx["docs"] == 1, r
assert en["bytes"] == 41 + 25 and xx["bytes"] == 22, r
# each document ends with an EOS the model never saw after these lines
assert en["bits_per_byte"] < 1.5 < 4 < xx["bits_per_byte"], r
PY
# eval --task: chrF and target bits per byte of greedy answers, per language.
printf '%s\n' '{"lang": "en", "prompt": "the seventh key of the", "target": " table maps to 4711"}' >"$tmp/task.jsonl"
expect_rc 0 "eval --metric chrf" "$calm" eval --model "$tmp/m" --task "$tmp/task.jsonl" --metric chrf --max-new 19 \
  --outputs "$tmp/answers.jsonl" --threads 1
grep -q '"chrf":100' "$tmp/out" && ok || fail "chrF of the memorised answer is not 100: $(cat "$tmp/out")"
grep -q '"output":" table maps to 4711"' "$tmp/answers.jsonl" && ok || fail "--outputs: $(cat "$tmp/answers.jsonl")"
printf '%s\n' '{"lang": "xx", "prompt": "the seventh key of the", "target": " chair xqz to 0000"}' >>"$tmp/task.jsonl"
expect_rc 0 "eval --metric bpb" "$calm" eval --model "$tmp/m" --task "$tmp/task.jsonl" --metric bpb --threads 1
/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["langs"]
assert r["en"]["target_bits_per_byte"] < 2 < 4 < r["xx"]["target_bits_per_byte"], r' "$tmp/out" && ok ||
  fail "target bits per byte: memorised answer not far below a wrong one: $(cat "$tmp/out")"
expect_rc 2 "eval --metric unknown" "$calm" eval --model "$tmp/m" --task "$tmp/task.jsonl" --metric bleu
expect_err "use exact, chrf or bpb" "eval --metric unknown"
expect_rc 2 "eval --docs and --task" "$calm" eval --model "$tmp/m" --task "$tmp/task.jsonl" --docs "$tmp/docs.jsonl"
printf '%s\n' '{"lang": "en", "text": "fine"}' '{"lang": "en", "txt": "no text"}' >"$tmp/bad.jsonl"
expect_rc 1 "eval --docs bad record" "$calm" eval --model "$tmp/m" --docs "$tmp/bad.jsonl"
expect_err "bad.jsonl:2: expected a JSON object" "eval --docs bad record"

# forward writes logits [T, V] for BOS + bytes.
printf 'hello' >"$tmp/in.txt"
expect_rc 0 "forward" "$calm" forward --model "$tmp/m" --input "$tmp/in.txt" --out "$tmp/logits.safetensors" --threads 1
size=$(stat -c %s "$tmp/logits.safetensors")
hdr=$(od -An -t u8 -N 8 "$tmp/logits.safetensors" | tr -d ' ')
[[ $size -eq $((8 + hdr + 6 * 320 * 4)) ]] && ok || fail "forward output has $size bytes, want 8+$hdr+6*320*4"
grep -q '"logits".*"shape":\[6,320\]' <(head -c $((8 + hdr)) "$tmp/logits.safetensors" | tail -c "$hdr" | tr -d ' ') && ok ||
  fail "forward header lacks logits [6,320]"

# Resume continues from the newest checkpoint (more steps: a changed setting, reported).
expect_rc 0 "resume" "$calm" train --out "$tmp/m" --resume auto --steps 310 --seq-len 64 --batch 16 --threads 1 \
  --dim 64 --layers 2 --heads 4 --lr 5e-3 --warmup 20 --weight-decay 0 --log "$tmp/m.jsonl" --log-every 10 \
  "$tests/data/memorise.txt"
tail -n 1 "$tmp/m.jsonl" | grep -q '"step": 310' && ok || fail "resume did not reach step 310"
grep -q "resuming at step 300" "$tmp/err" && ok || fail "resume did not start at step 300"
grep -q "changed settings (steps: checkpoint 300, this run 310)" "$tmp/err" && ok || fail "changed --steps not reported"
# ... and refuses a checkpoint of another model.
expect_rc 1 "resume other model" "$calm" train --out "$tmp/m" --resume auto --steps 310 --seq-len 64 --batch 16 \
  --threads 1 --dim 32 --layers 2 --heads 4 "$tests/data/memorise.txt"
expect_err "another configuration (model: checkpoint" "resume other model"

# A truncated weights file is a clear error, not a crash.
cp -r "$tmp/m" "$tmp/bad"
truncate -s 1000 "$tmp/bad/model.safetensors"
expect_rc 1 "truncated weights" "$calm" eval --model "$tmp/bad" "$tests/data/memorise.txt"
expect_err "model.safetensors" "truncated weights"

# calm train --data: train from an LMDB store built by calm shard build.
mkdir -p "$tmp/corpus"
cp "$tests/data/memorise.txt" "$tmp/corpus/en.txt"
expect_rc 0 "shard build" "$calm" shard build --out "$tmp/store" --seq-len 32 "$tmp/corpus"
expect_rc 0 "train --data" "$calm" train --out "$tmp/ms" --data "$tmp/store" --dim 64 --layers 2 --heads 4 \
  --seq-len 32 --batch 8 --steps 120 --lr 5e-3 --warmup 10 --threads 1 --log "$tmp/ms.jsonl" --log-every 10
first=$(head -n 1 "$tmp/ms.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
last=$(tail -n 1 "$tmp/ms.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
echo "train --data loss: $first -> $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' && ok || fail "train --data: loss $first -> $last"
expect_rc 2 "both --data and files" "$calm" train --out "$tmp/x" --data "$tmp/store" "$tests/data/memorise.txt"
expect_rc 1 "--seq-len longer than the store's" "$calm" train --out "$tmp/x" --data "$tmp/store" --seq-len 64 --steps 1
expect_err "exceeds the store's sample length 32" "--seq-len longer than the store's"
expect_rc 1 "--data not a store" "$calm" train --out "$tmp/x" --data "$tmp/corpus" --seq-len 32 --steps 1

# calm plan: its refusals name what is wrong (the model itself: ctest plan)
expect_rc 2 "plan without models" "$calm" plan --nodes 2
expect_rc 1 "plan: bad --layout" "$calm" plan --anchor "$tmp/ms" --augment "$tmp/ms" --layout 3,x --threads 1
expect_err "give S,A,R,M" "plan: bad --layout"
echo '{"models": "other", "costs": []}' >"$tmp/costs.json"
expect_rc 1 "plan: a costs file without costs" "$calm" plan --anchor "$tmp/ms" --augment "$tmp/ms" \
  --costs "$tmp/costs.json" --threads 1
expect_err "not a calm plan costs file" "plan: a costs file without costs"
expect_rc 1 "plan: a layout that does not divide the batch" "$calm" plan --anchor "$tmp/ms" --augment "$tmp/ms" \
  --global-batch 6 --seq 32 --layout dp,4,1 --threads 1
expect_err "not divisible" "plan: a layout that does not divide the batch"

echo "$passes passed, $failures failed"
finish
