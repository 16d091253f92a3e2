#!/usr/bin/env bash
# A layer may include its own headers and those of the layers below it, and
# nothing above (CMakeLists.txt, docs/architecture.md). The build gives each
# layer an include path of links to exactly the folders it may see
# (build/layers/<target>/); this checks that an upward #include fails to
# preprocess there and that every allowed folder is found.
# Usage: check_layers.sh C_COMPILER LAYERS_DIR SOURCE_DIR
set -uo pipefail
cc=$1 layers=$2 src=$3
fail=0
check() { # check TARGET FOLDER want(found|missing)
  local target=$1 folder=$2 want=$3 header got err
  header=$(cd "$src" && ls "$folder"/*.h | head -1)
  got=found
  err=$(printf '#include "%s"\n' "$header" | "$cc" -E -I "$layers/$target" -x c - 2>&1 >/dev/null)
  [[ $err == *"$header: No such file"* ]] && got=missing
  if [[ $got != "$want" ]]; then
    echo "FAIL: $target includes $header: $got, expected $want"
    fail=1
  else
    echo "ok: $target -> $folder: $got"
  fi
}
#        target      allowed              forbidden
for row in "calm_src:src:shards mpi cli" "calm_shards:src shards:mpi cli" "calm_mpi:src mpi:shards cli" \
           "calm_cli:src shards mpi cli:"; do
  IFS=: read -r target allowed forbidden <<<"$row"
  for f in $allowed; do check "$target" "$f" found; done
  for f in $forbidden; do check "$target" "$f" missing; done
done
exit $fail
