# tests/lib.sh: what the test scripts share. Each sources it first:
#   source "$(dirname "$0")/../lib.sh"
# and gets:
#   strict mode       set -euo pipefail; a script that counts its failures with
#                     `fail` turns -e off again, saying so
#   $tests, $root     this folder and the repository, absolute
#   test_args N "$@"  N arguments or the usage (the script's header) and exit 2;
#                     then $calm is $1 made absolute, and the environment every
#                     test runs in is exported (test_env)
#   die MSG           print FAIL: MSG and exit 1
#   fail MSG, finish [MSG]
#                     count a failure and go on; at the end exit 1 if any
#                     failed, else print MSG and exit 0
#   make_tmp          $tmp, a new directory, removed at exit
#   logged LOG CMD..  run CMD with its output in LOG; if it fails, show the end
#                     of LOG (or a sanitizer's report in it) and die
#   compose_inputs DIR, same_run REF RUN, losses_close NAME REF RUN STEPS
#                     the tiny composition the MPI and resume tests train, and
#                     their comparisons of two runs (bit for bit, or losses
#                     within 1e-5)
# At exit, background jobs the script left running are killed (an orphaned
# mpirun would outlive the test), then the script's `cleanup` function runs if
# it defines one, then $tmp is removed.
set -euo pipefail
tests=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$tests/.." && pwd)

usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2; }
die() { echo "FAIL: $*" >&2; exit 1; }

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
finish() {
  [[ $failures -eq 0 ]] || exit 1
  [[ $# -eq 0 ]] || echo "$*"
  exit 0
}

# test_env: one thread a process (ctest runs tests side by side, and BLIS
# threads spin at barriers, so oversubscribed cores slow a test tenfold);
# mpirun may run as root (CI containers do) and start more ranks than there
# are cores. Exported, so mpirun's ranks and the jobs/ scripts see it too, as
# they see the sanitizers' options, which ctest sets (tests/CMakeLists.txt).
test_env() {
  export CALM_BIN=$calm CALM_THREADS=1
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
}

test_args() {
  local n=$1; shift
  [[ $# -ge $n ]] || usage
  calm=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
  [[ -x $calm ]] || die "$1 is not an executable"
  test_env
}

_lib_tmp=
make_tmp() {
  _lib_tmp=$(mktemp -d -t "calm-$(basename "$0" .sh).XXXXXX")
  tmp=$_lib_tmp
}

_lib_exit() {
  local rc=$? pids
  set +e
  pids=$(jobs -p)
  if [[ -n $pids ]]; then kill -9 $pids 2>/dev/null; wait $pids 2>/dev/null; fi
  declare -F cleanup >/dev/null && cleanup
  [[ -z $_lib_tmp ]] || rm -rf "$_lib_tmp"
  exit $rc
}
trap _lib_exit EXIT

logged() {
  local log=$1; shift
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  [[ $rc -ne 0 ]] || return 0
  # A sanitizer's report (a rank's, under mpirun) comes before the launcher's
  # last words: show it rather than the end.
  grep -m1 -A40 -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$log" || tail -30 "$log"
  die "exit status $rc: $*"
}

# compose_inputs DIR: two random frozen models of different widths (so the
# composition's projection matters), DIR/mA (dim 32) and DIR/mB (dim 48), and
# DIR/store, 32-token samples of jobs/data/quickstart.txt.
compose_inputs() {
  local d=$1
  mkdir -p "$d"
  logged "$d/inputs.log" "$calm" train --out "$d/mA" --dim 32 --layers 4 --heads 4 --steps 0 --seed 5 --seq-len 32 \
    "$tests/data/memorise.txt"
  logged "$d/inputs.log" "$calm" train --out "$d/mB" --dim 48 --layers 4 --heads 4 --steps 0 --seed 6 --seq-len 32 \
    "$tests/data/memorise.txt"
  logged "$d/inputs.log" "$calm" shard build --quiet --out "$d/store" --seq-len 32 "$root/jobs/data/quickstart.txt"
}

# same_run REF RUN: the composition run $tmp/RUN ended as $tmp/REF did, bit for
# bit: the same calm.safetensors, and in RUN.jsonl every logged step with the
# same step, loss, lr and grad_norm. A difference is a counted failure.
same_run() {
  cmp -s "$tmp/$1/calm.safetensors" "$tmp/$2/calm.safetensors" || { fail "$2: parameters differ from $1"; return 1; }
  /usr/bin/python3 - "$tmp/$1.jsonl" "$tmp/$2.jsonl" <<'PY' || { fail "$2: logged losses differ from $1"; return 1; }
import json, sys
key = lambda l: {k: l[k] for k in ("step", "loss", "lr", "grad_norm")}
a = [key(json.loads(l)) for l in open(sys.argv[1])]
b = [key(json.loads(l)) for l in open(sys.argv[2])]
sys.exit(0 if a == b else 1)
PY
}

# losses_close NAME REF.jsonl RUN.jsonl STEPS: both logs hold STEPS steps, and
# their losses differ by at most 1e-5 relative (distributed runs sum in
# another order than one process does).
losses_close() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
name, steps = sys.argv[1], int(sys.argv[4])
a = [json.loads(l)["loss"] for l in open(sys.argv[2])]
b = [json.loads(l)["loss"] for l in open(sys.argv[3])]
assert len(a) == len(b) == steps, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{name}: losses worst relative difference {worst:.1e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
}
