#!/usr/bin/env bash
# test_analyze.sh CALM: `calm analyze` on the tiny models of compose_inputs
# (tests/lib.sh): 1 and 2 ranks write the same cka.json (CKA within 1e-6,
# the same tokens and suggestions), and each equals NumPy's CKA on the
# streams it dumped (--dump, jobs/analyze_numpy.py) to 1e-5 relative; a model against itself has CKA 1 on the
# diagonal and the diagonal as its suggestion; the suggestion is the best
# monotone matching (checked by brute force); too few tokens and too many
# connections are refused.
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
make_tmp
compose_inputs "$tmp"
an=(analyze --anchor "$tmp/mB" --augment "$tmp/mA" --data "$tmp/store" --tokens 1000 --connections 2)
logged "$tmp/a1.log" "$calm" "${an[@]}" --out "$tmp/one" --dump "$tmp/d1"
logged "$tmp/a2.log" mpirun -np 2 "$calm" "${an[@]}" --out "$tmp/two" --dump "$tmp/d2"
for n in 1 2; do
  [[ $n == 1 ]] && out=one || out=two
  ls "$tmp/d$n"/mB.4.r$((n - 1)).npy >/dev/null || fail "$n rank(s): no dump of the last mB layer of rank $((n - 1))"
  /usr/bin/python3 "$root/jobs/analyze_numpy.py" "$tmp/d$n" "$tmp/$out/cka.json" || fail "$n rank(s): calm != NumPy"
done
grep -q "^mA   4 " "$tmp/a1.log" || fail "the CKA matrix is not printed"
logged "$tmp/self.log" "$calm" analyze --anchor "$tmp/mB" --augment "$tmp/mB" --data "$tmp/store" --tokens 1000 \
  --out "$tmp/self"

/usr/bin/python3 - "$tmp" <<'PY' || fail "cka.json"
import itertools, json, sys
d = sys.argv[1]
one, two, me = (json.load(open(f"{d}/{n}/cka.json")) for n in ("one", "two", "self"))
ok = True
def check(cond, msg):
    global ok
    print(("ok: " if cond else "FAIL: ") + msg)
    ok &= bool(cond)
c1, c2 = one["cka"], two["cka"]
check(len(c1) == 4 and all(len(r) == 4 for r in c1), "4 x 4 matrix (mA layers x mB layers)")
worst = max(abs(x - y) for r, s in zip(c1, c2) for x, y in zip(r, s))
check(worst <= 1e-6, f"1 and 2 ranks: CKA differs by at most {worst:.1e}")
check(one["tokens"] == two["tokens"] and one["suggested"] == two["suggested"], "1 and 2 ranks: same tokens, suggestions")
check(two["ranks"] == 2 and two["grid"] == "2x1", "2 ranks on a 2x1 grid")
check(all(0 <= x <= 1 + 1e-12 for r in c1 for x in r), "CKA within [0, 1]")
diag = max(abs(me["cka"][i][i] - 1) for i in range(4))
check(diag <= 1e-9, f"a model against itself: diagonal within {diag:.1e} of 1")
check(me["suggested"] == [[i, i] for i in range(1, 5)] and me["connections"] == "0:0,1:1,2:2,3:3",
      "a model against itself: the diagonal suggested, as calm connections 0:0,...")
best = max(sum(c1[a][b] for a, b in zip(A, B)) for A in itertools.combinations(range(4), 2)
           for B in itertools.combinations(range(4), 2))
got = sum(c1[a - 1][b - 1] for a, b in one["suggested"])
mono = all(p[0] < q[0] and p[1] < q[1] for p, q in zip(one["suggested"], one["suggested"][1:]))
check(mono and abs(got - best) <= 1e-12, f"suggestion {one['suggested']} is the best monotone matching ({best:.6f})")
sys.exit(0 if ok else 1)
PY
for f in cka.png cka.gp cka.dat; do
  if command -v gnuplot >/dev/null || [[ $f != cka.png ]]; then [[ -s $tmp/one/$f ]] || fail "no $f"; fi
done

refused() { # WHAT EXPECTED ARGS...
  local what=$1 want=$2 rc=0; shift 2
  "$calm" "$@" >"$tmp/err.log" 2>&1 || rc=$?
  if [[ $rc -ne 1 ]] || ! grep -q -- "$want" "$tmp/err.log"; then
    fail "$what: exit $rc, expected 1 and '$want' in:"; cat "$tmp/err.log"
  else echo "ok: $what refused: $(grep -m1 -- "$want" "$tmp/err.log")"; fi
}
refused "40 tokens, width 48" "below the models' width 48" analyze --anchor "$tmp/mB" --augment "$tmp/mA" \
  --data "$tmp/store" --tokens 40 --out "$tmp/e"
refused "5 connections of 4 layers" "at most 4 pairs" analyze --anchor "$tmp/mB" --augment "$tmp/mA" \
  --data "$tmp/store" --connections 5 --out "$tmp/e"
finish "analyze: 1 rank = 2 ranks, CKA 1 on a model's own diagonal, the best monotone matching"
