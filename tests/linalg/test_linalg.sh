#!/usr/bin/env bash
# test_linalg.sh LA_RUN: mpi/linalg.h (ScaLAPACK over the ranks) against NumPy
# in float64 (tests/linalg/la_ref.py): linear CKA and the least-squares fit
# with a bias within 1e-5 relative on 1, 2 and 4 ranks and on 2-D grids,
# including a feature scaled by 1e4 where the float normal equations lose
# digits and QR does not; and the refusals: fewer rows than unknowns,
# mismatched row counts, a grid that does not cover the ranks.
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
la_run=$calm
make_tmp
ref() { /usr/bin/python3 "$tests/linalg/la_ref.py" "$@"; }

# 1001 rows: no rank count here divides them, so the layout pads
ref make "$tmp" plain 1001 24 16 0
ref make "$tmp" ill 1001 24 16 1
# name ranks [nprow npcol]
run() {
  local name=$1 np=$2 out="$tmp/$1.$2${3:+.$3x$4}.json" label="$1, $2 rank(s)${3:+, $3x$4 grid}"
  if [[ $np -eq 1 ]]; then
    logged "$tmp/run.log" "$la_run" "$tmp/$name.x.f32" 1001 24 "$tmp/$name.y.f32" 1001 16 "$out" ${3:+$3 $4}
  else
    logged "$tmp/run.log" mpirun -np "$np" "$la_run" "$tmp/$name.x.f32" 1001 24 "$tmp/$name.y.f32" 1001 16 "$out" \
      ${3:+$3 $4}
  fi
  ref check "$tmp" "$name" 24 16 "$out" "$label" || fail "$label: not within 1e-5 of NumPy"
}
for name in plain ill; do
  run $name 1 # no launcher: a 1x1 grid on a singleton MPI world
  run $name 2
  run $name 4
done
run ill 2 1 2
run ill 4 2 2

# refused(WHAT EXPECTED CMD...): exits 1 with EXPECTED in its message
refused() {
  local what=$1 want=$2 rc=0; shift 2
  "$@" >"$tmp/err.log" 2>&1 || rc=$?
  if [[ $rc -ne 1 ]]; then fail "$what: exit status $rc, expected 1"; cat "$tmp/err.log"; return; fi
  grep -q -- "$want" "$tmp/err.log" || { fail "$what: no '$want' in:"; cat "$tmp/err.log"; return; }
  echo "ok: $what: $(grep -m1 -- "$want" "$tmp/err.log")"
}
refused "20 rows, 24 features" "needs at least 25 rows" \
  mpirun -np 2 "$la_run" "$tmp/plain.x.f32" 20 24 "$tmp/plain.y.f32" 20 16 "$tmp/e.json"
refused "1001 rows of X, 1000 of Y" "X and Y hold different rows" \
  mpirun -np 2 "$la_run" "$tmp/plain.x.f32" 1001 24 "$tmp/plain.y.f32" 1000 16 "$tmp/e.json"
refused "a 3x1 grid on 2 ranks" "does not cover the 2 ranks" \
  mpirun -np 2 "$la_run" "$tmp/plain.x.f32" 1001 24 "$tmp/plain.y.f32" 1001 16 "$tmp/e.json" 3 1
finish "linalg: CKA and least squares match NumPy on 1, 2 and 4 ranks"
