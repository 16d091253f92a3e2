#!/usr/bin/env bash
# calm data kv: the table and the sets keep the experiment's promises.
#   - keys are distinct, 2-6 lowercase letters; values distinct, in range
#     (--repeat-values: repeated, and --compose-keys N composition keys that
#     carry every value)
#   - composition sets use only composition keys; KV evaluation sets only the others
#   - targets are right: KV-SUBS the values, KV-MATH / NUM-MATH the result,
#     KV-LOOKUP the value of the last operand before the cut (a number stands
#     for itself; --lookup-reversed writes a share of them last digit first);
#     an uncut KV-LOOKUP prompt holds at least one key
#   - no evaluation prompt occurs in a training file
#   - the optional sets do not change the others (same seed, same files)
# Usage: test_kv_data.sh CALM_BINARY OUT_DIR
source "$(dirname "$0")/../lib.sh"
test_args 2 "$@"
out=$2
rm -rf "$out"
args=(--seed 7 --keys 30 --values 0:59 --operands 3:4 --ops "+-*" --augment-examples 500 --anchor-examples 500
      --compose-examples 200 --eval-examples 50)
"$calm" data kv --out "$out/plain" "${args[@]}" 2>/dev/null
"$calm" data kv --out "$out/full" "${args[@]}" --lookup-examples 300 --lookup-numbers 0.3 --lookup-reversed 0.5 \
  --compose-num-math 100 2>/dev/null
for f in "$out"/plain/*; do cmp -s "$f" "$out/full/$(basename "$f")" || die "optional sets changed $f"; done
/usr/bin/python3 - "$out/full" <<'PY'
import json, os, re, sys
d = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(f"{d}/table.tsv")][1:]
val = {k: int(v) for k, v, _ in rows}
comp = {k for k, _, c in rows if c == "1"}
assert len(val) == 30 and len(set(val.values())) == 30, "keys or values not distinct"
assert all(re.fullmatch(r"[a-z]{2,6}", k) for k in val) and all(0 <= v <= 59 for v in val.values())
assert len(comp) == 6, len(comp)
def load(name):
    return [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
def split(expr):
    return re.split(r"([-+*])", expr)
def check_math(ex, numbers):
    terms = split(ex["prompt"][:-1])
    nums = terms if numbers else [t if t in "+-*" else str(val[t]) for t in terms]
    assert str(eval("".join(nums))) == ex["target"], ex
    return terms[::2]
sets = {n: load(n) for n in ("augment_kv_subs", "augment_kv_lookup", "anchor_num_math", "compose_kv_math",
                             "compose_kv_subs", "compose_num_math", "eval_kv_subs", "eval_kv_math", "eval_num_math")}
numbers = reversed_ = 0
for n, exs in sets.items():
    for ex in exs:
        if "kv_subs" in n:
            assert ex["prompt"].startswith("s:") and ex["prompt"].endswith("="), ex
            terms = split(ex["prompt"][2:-1])
            assert "".join(t if t in "+-*" else str(val[t]) for t in terms) == ex["target"], ex
            keys = terms[::2]
        elif "lookup" in n:
            terms = split(ex["prompt"][:-1])
            v = str(val.get(terms[-1], terms[-1]))
            assert ex["prompt"][-1] in "+-*=" and ex["target"] in (v, v[::-1]), ex
            reversed_ += ex["target"] != v
            keys = [t for t in terms[::2] if not t.isdigit()]
            assert all(t in val for t in keys), ex
            assert keys or ex["prompt"][-1] != "=", ex
            numbers += len(terms[::2]) - len(keys)
        elif "num_math" in n:
            check_math(ex, True)
            keys = []
        else:
            keys = check_math(ex, False)
        assert 3 <= len(split(ex["prompt"].removeprefix("s:")[:-1])[::2]) <= 4 or "lookup" in n, ex
        if n.startswith("compose"):
            assert all(k in comp for k in keys), (n, ex)
        if n.startswith("eval"):
            assert not any(k in comp for k in keys), (n, ex)
assert numbers > 0, "--lookup-numbers made no numbers"
assert 0.2 * len(sets["augment_kv_lookup"]) < reversed_ < 0.6 * len(sets["augment_kv_lookup"]), reversed_
train = {ex["prompt"] for n, exs in sets.items() if not n.startswith("eval") for ex in exs}
for n in ("eval_kv_subs", "eval_kv_math", "eval_num_math"):
    assert not any(ex["prompt"] in train for ex in sets[n]), n
    assert len({ex["prompt"] for ex in sets[n]}) == len(sets[n]), n
print("kv data ok:", {n: len(e) for n, e in sets.items()})
PY

# --repeat-values: more keys than values; --compose-keys N keys for the
# composition, chosen to carry every value first; targets still right, the
# split still held. Without --repeat-values the same table is refused.
"$calm" data kv --out "$out/rep" --seed 3 --keys 120 --values 0:9 --repeat-values --compose-keys 12 --operands 2:3 \
  --ops "+-" --augment-examples 300 --anchor-examples 100 --compose-examples 100 --eval-examples 50 2>/dev/null ||
  die "--repeat-values refused"
if "$calm" data kv --out "$out/norep" --keys 120 --values 0:9 2>"$out/norep.err"; then
  die "120 distinct values of 0:9 accepted"
fi
grep -q "repeat-values" "$out/norep.err" || die "the refusal does not name --repeat-values: $(cat "$out/norep.err")"
if "$calm" data kv --out "$out/allc" --keys 10 --values 0:9 --compose-keys 10 2>"$out/allc.err"; then
  die "--compose-keys 10 of 10 keys accepted"
fi
/usr/bin/python3 - "$out/rep" <<'PY'
import json, re, sys
d = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(f"{d}/table.tsv")][1:]
val = {k: int(v) for k, v, _ in rows}
comp = {k for k, _, c in rows if c == "1"}
assert len(val) == 120 and all(0 <= v <= 9 for v in val.values()), "120 keys with values in 0..9"
assert len(comp) == 12, len(comp)
assert {val[k] for k in comp} == set(range(10)), ("composition keys do not cover every value", sorted(val[k] for k in comp))
for name, pool in (("compose_kv_math", comp), ("eval_kv_math", set(val) - comp)):
    for l in open(f"{d}/{name}.jsonl"):
        ex = json.loads(l)
        terms = re.split(r"([-+])", ex["prompt"][:-1])
        assert all(t in pool for t in terms[::2]), (name, ex)
        assert str(eval("".join(t if t in "+-" else str(val[t]) for t in terms))) == ex["target"], ex
print("repeat-values ok: 120 keys over 10 values, 12 composition keys carry all 10")
PY

# --one-token-keys: single characters, none a digit, operator, '=', 's', ':'
# or a character JSON escapes; more than the 76 there are is refused.
"$calm" data kv --out "$out/one" --seed 5 --keys 76 --values 0:49 --repeat-values --compose-keys 50 --one-token-keys \
  --operands 3:3 --ops "+-" --augment-examples 300 --anchor-examples 100 --compose-examples 100 --eval-examples 50 \
  2>/dev/null || die "--one-token-keys refused"
if "$calm" data kv --out "$out/one77" --keys 77 --values 0:99 --one-token-keys 2>"$out/one77.err"; then
  die "77 one-character keys accepted"
fi
/usr/bin/python3 - "$out/one" <<'PY'
import json, re, sys
d = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(f"{d}/table.tsv")][1:]
val = {k: int(v) for k, v, _ in rows}
comp = {k for k, _, c in rows if c == "1"}
assert len(val) == 76 and all(len(k) == 1 for k in val), "76 one-character keys"
assert not any(k.isdigit() or k in "+-*=:s\"\\" for k in val), sorted(val)
assert {val[k] for k in comp} == set(range(50)), "the 50 composition keys carry the 50 values"
for l in open(f"{d}/eval_kv_math.jsonl"):
    ex = json.loads(l)
    terms = re.split(r"([-+])", ex["prompt"][:-1])
    assert len(terms) == 5 and all(t in val and t not in comp for t in terms[::2]), ex
    assert str(eval("".join(t if t in "+-" else str(val[t]) for t in terms))) == ex["target"], ex
print("one-token keys ok: 76 keys, 50 composition keys over all 50 values")
PY
