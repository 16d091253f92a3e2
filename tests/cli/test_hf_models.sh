#!/usr/bin/env bash
# Hugging Face models end to end: two random-weight 16-bit Llama models
# (calm init: mB BF16 in shards with rope_scaling llama3, mA F16 with tied
# embeddings) that bring the real Llama-2 tokenizer. A store built with that
# tokenizer trains a composition, single process and as a 2-rank pipeline
# (same losses); eval, generate and tokenize use the tokenizer; a store made
# by another tokenizer and two models with different tokenizers are refused;
# a model trained from an HF directory keeps its tokenizer.
# Usage: test_hf_models.sh CALM
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
make_tmp
eval "$("$root/jobs/fetch-tokenizers.sh")" # models=DIR
tok=$models/llama2

config() { # FILE DIM LAYERS TIE SCALING
  cat >"$1" <<EOF
{"model_type": "llama", "hidden_size": $2, "intermediate_size": $((2 * $2)), "num_hidden_layers": $3,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
 "rope_theta": 10000.0, "rope_scaling": $5, "tie_word_embeddings": $4, "vocab_size": 32000,
 "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
EOF
}
config "$tmp/b.json" 64 4 false \
  '{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}'
config "$tmp/a.json" 32 2 true null
logged "$tmp/init.log" "$calm" init --config "$tmp/b.json" --out "$tmp/mB" --dtype bf16 --shard-size 3M --seed 3
logged "$tmp/init.log" "$calm" init --config "$tmp/a.json" --out "$tmp/mA" --dtype f16 --seed 4
[[ -f $tmp/mB/model.safetensors.index.json ]] || die "mB is not sharded"
cp -r "$tmp/mA" "$tmp/mX" # the same model without a tokenizer.json: calm's byte tokenizer
cp -r "$tmp/mA" "$tmp/mY" && cp "$tok"/tokenizer_config.json "$tmp/mY/" # tokenizer files calm cannot read
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$tmp/mB/"
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$tmp/mA/"

# tokenize: BOS 1 first, and the text back
ids=$(printf 'Hello world' | "$calm" tokenize --model "$tmp/mB")
[[ $ids == "1 "* ]] || fail "tokenize: '$ids' does not start with BOS 1"
back=$(echo "$ids" | "$calm" tokenize --model "$tmp/mB" --decode)
[[ $back == "Hello world" ]] || fail "tokenize --decode: '$back'"

text=$root/jobs/data/quickstart.txt
logged "$tmp/shard.log" "$calm" shard build --quiet --tokenizer "$tmp/mB" --out "$tmp/store" --seq-len 32 "$text"
logged "$tmp/shard.log" "$calm" shard build --quiet --out "$tmp/bytes" --seq-len 32 "$text"
info=$("$calm" shard info "$tmp/store")
sha=$(sha256sum "$tok/tokenizer.json" | cut -d' ' -f1)
grep -q "sha256:$sha bos=1 eos=2, vocab 32000 (uint16 ids)" <<<"$info" || fail "shard info does not name the tokenizer: $info"

# refusals: exit 1 and a message that names what differs
expect_refusal() { # WHAT PATTERN CMD...
  local what=$1 pattern=$2 rc=0; shift 2
  "$@" >"$tmp/refusal.log" 2>&1 || rc=$?
  [[ $rc -eq 1 ]] || { fail "$what: exit $rc, expected 1"; return; }
  grep -q "$pattern" "$tmp/refusal.log" || fail "$what: no '$pattern' in: $(cat "$tmp/refusal.log")"
}
common=(--batch 2 --seq-len 32 --steps 4 --warmup 1 --log-every 1 --lr 1e-2 --connections 0:1,1:3)
expect_refusal "compose on a byte-tokenized store" "tokenized with calm-bytes-v1" \
  "$calm" compose --anchor "$tmp/mB" --augment "$tmp/mA" --out "$tmp/c0" --data "$tmp/bytes" "${common[@]}"
expect_refusal "compose of models with different tokenizers" "different tokenizers" \
  "$calm" compose --anchor "$tmp/mB" --augment "$tmp/mX" --out "$tmp/c0" --data "$tmp/store" "${common[@]}"
expect_refusal "a model with tokenizer_config.json but no tokenizer.json" "no tokenizer.json" \
  "$calm" generate --model "$tmp/mY" --prompt "Hello"
expect_refusal "train on a store of another tokenizer" "tokenized with sha256:$sha" \
  "$calm" train --model "$tmp/mX" --out "$tmp/t0" --data "$tmp/store" --batch 2 --seq-len 32 --steps 1

# the composition, single process and as a pipeline (anchor stage + augment rank)
logged "$tmp/c1.log" "$calm" compose --anchor "$tmp/mB" --augment "$tmp/mA" --out "$tmp/c1" --data "$tmp/store" \
  --log "$tmp/c1.jsonl" "${common[@]}"
logged "$tmp/c2.log" mpirun -np 2 "$calm" compose --anchor "$tmp/mB" --augment "$tmp/mA" --out "$tmp/c2" \
  --data "$tmp/store" --log "$tmp/c2.jsonl" --anchor-stages 1 --augment-ranks 1 --micro-batches 2 "${common[@]}"
losses_close "pipeline = single process (16-bit models)" "$tmp/c1.jsonl" "$tmp/c2.jsonl" 4 || fail "pipeline losses"
/usr/bin/python3 - "$tmp/c1.jsonl" <<'PY' || fail "compose: losses are not finite or do not start near ln(32000)"
import json, math, sys
l = [json.loads(x)["loss"] for x in open(sys.argv[1])]
sys.exit(0 if all(math.isfinite(v) for v in l) and abs(l[0] - math.log(32000)) < 1.0 else 1)
PY

# eval and generate through the composition's tokenizer
printf 'Hello world, again.\n' >"$tmp/doc.txt"
"$calm" eval --calm "$tmp/c1" "$tmp/doc.txt" >"$tmp/eval.json" 2>"$tmp/eval.log" || fail "eval: $(tail -3 "$tmp/eval.log")"
grep -q '"loss"' "$tmp/eval.json" || fail "eval printed no loss: $(cat "$tmp/eval.json")"
"$calm" generate --calm "$tmp/c1" --prompt "Hello" --max-tokens 6 >"$tmp/gen.txt" 2>"$tmp/gen.log" ||
  fail "generate: $(tail -3 "$tmp/gen.log")"

# a model trained from an HF directory keeps its tokenizer
logged "$tmp/t1.log" "$calm" train --model "$tmp/mA" --out "$tmp/t1" --data "$tmp/store" --batch 2 --seq-len 32 --steps 2
cmp -s "$tok/tokenizer.json" "$tmp/t1/tokenizer.json" || fail "train --model lost the tokenizer"
finish "hf models: tokenizer, stores, refusals, composition (single = pipeline), eval, generate"
