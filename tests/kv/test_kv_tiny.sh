#!/usr/bin/env bash
# The key-value arithmetic pipeline end to end at preset tiny: data, both base
# models, three compositions, evaluation; results.json must hold every model
# and task with accuracies in [0, 1], and results.md the table.
# Usage: test_kv_tiny.sh CALM_BINARY OUT_DIR
source "$(dirname "$0")/../lib.sh"
test_args 2 "$@"
out=$2
rm -rf "$out"
logged "$out.log" "$root/jobs/kv/kv-arithmetic.sh" --preset tiny --out "$out"
/usr/bin/python3 - "$out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
models = ["mA", "mB", "calm", "calm_dc_kv_subs", "calm_random_mA"]
tasks = ["kv_subs", "num_math", "kv_math"]
for m in models:
    for t in tasks:
        a = r[m][t]
        # JSON has one number type: an accuracy of exactly 0 or 1 prints as an integer
        assert type(a) in (int, float) and 0.0 <= a <= 1.0, (m, t, a)
print("results.json complete:", json.dumps(r))
PY
grep -q "| CALM, dc = KV-MATH |" "$out/results.md"
# The composition directories name both models and their hashes.
grep -q '"sha256"' "$out/calm/calm_config.json"
