#!/usr/bin/env bash
# test_init_proj.sh CALM: `calm compose --init-proj lstsq` on the tiny models
# of compose_inputs (tests/lib.sh), connections 1:1 and 3:2:
#   1. the initial projections (--steps 0) equal NumPy's lstsq on the rows
#      calm fitted on (CALM_TEST_INIT_PROJ_DUMP) to 1e-4 relative;
#   2. 2 ranks data parallel and a 3-rank pipeline (every rank fits) give the
#      single process's projections within 1e-5;
#   3. the first step's loss equals the random init's (o_proj is zero, so
#      both are the anchor's loss);
#   4. a run resumed from its step-2 checkpoint does not refit and ends bit
#      for bit as the uninterrupted run; resuming it under --init-proj random
#      is refused, as are too few tokens and a fit without a store.
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
make_tmp
compose_inputs "$tmp"
common=(compose --anchor "$tmp/mB" --augment "$tmp/mA" --data "$tmp/store" --seq-len 32 --batch 4 --seed 7
        --connections 1:1,3:2 --log-every 1)
fit=(--init-proj lstsq --init-tokens 512)
mkdir -p "$tmp/dump"
CALM_TEST_INIT_PROJ_DUMP=$tmp/dump logged "$tmp/one.log" "$calm" "${common[@]}" "${fit[@]}" --steps 0 --out "$tmp/one"
logged "$tmp/two.log" mpirun -np 2 "$calm" "${common[@]}" "${fit[@]}" --steps 0 --out "$tmp/two"
logged "$tmp/pipe.log" mpirun -np 3 "$calm" "${common[@]}" "${fit[@]}" --steps 0 --out "$tmp/pipe" \
  --anchor-stages 2 --augment-ranks 1 --micro-batches 2
grep -q "init-proj lstsq: connection 3:2 fitted, relative residual" "$tmp/one.log" || fail "the fit is not logged"

/usr/bin/python3 - "$tmp" <<'PY' || fail "projections"
import json, struct, sys
import numpy as np
d = sys.argv[1]
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            .reshape(v["shape"]) for k, v in head.items() if k != "__metadata__"}
def projs(run):
    t = tensors(f"{d}/{run}/calm.safetensors")
    names = sorted(k for k in t if k.endswith(".proj.weight") and "_" not in k.split(".")[-2])
    assert len(names) == 2, sorted(t)
    return [np.hstack([t[w], t[w[:-len("weight")] + "bias"][:, None]]).astype(np.float64) for w in names]
def rel(a, b): return np.linalg.norm(a - b) / np.linalg.norm(b)
ok = True
def check(cond, msg):
    global ok
    print(("ok: " if cond else "FAIL: ") + msg)
    ok &= bool(cond)
one, two, pipe = projs("one"), projs("two"), projs("pipe")
for i, got in enumerate(one):
    x = np.fromfile(f"{d}/dump/c{i}.r0.x", np.float32).reshape(-1, 32).astype(np.float64)
    y = np.fromfile(f"{d}/dump/c{i}.r0.y", np.float32).reshape(-1, 48).astype(np.float64)
    sol = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0].T  # [48, 33]
    check(len(x) >= 500, f"connection {i}: fitted on {len(x)} tokens")
    e = rel(got, sol)
    check(e <= 1e-4, f"connection {i}: calm vs NumPy lstsq relative difference {e:.1e}")
    e2, e3 = rel(two[i], got), rel(pipe[i], got)
    check(e2 <= 1e-5 and e3 <= 1e-5, f"connection {i}: 2 ranks {e2:.1e}, pipeline {e3:.1e} from 1 process")
sys.exit(0 if ok else 1)
PY

# 3. first loss: lstsq init vs random init
logged "$tmp/r1.log" "$calm" "${common[@]}" --steps 1 --out "$tmp/r1" --log "$tmp/r1.jsonl"
logged "$tmp/l1.log" "$calm" "${common[@]}" "${fit[@]}" --steps 1 --out "$tmp/l1" --log "$tmp/l1.jsonl"
/usr/bin/python3 - "$tmp/r1.jsonl" "$tmp/l1.jsonl" <<'PY' || fail "first loss differs from the random init's"
import json, sys
a, b = (json.loads(open(f).readline())["loss"] for f in sys.argv[1:])
print(f"first loss: random {a!r}, lstsq {b!r}")
sys.exit(0 if a == b else 1)
PY

# 4. resume: no refit, bit for bit
logged "$tmp/full.log" "$calm" "${common[@]}" "${fit[@]}" --steps 4 --checkpoint-every 2 --keep 5 --out "$tmp/full" \
  --log "$tmp/full.jsonl"
cp "$tmp/full.jsonl" "$tmp/res.jsonl" # the resumed run cuts it back to step 2 and goes on
logged "$tmp/res.log" "$calm" "${common[@]}" "${fit[@]}" --steps 4 --out "$tmp/res" --log "$tmp/res.jsonl" \
  --resume "$tmp/full/checkpoints/step-00000002"
! grep -q "init-proj lstsq: fitting" "$tmp/res.log" || fail "the resumed run fitted again"
same_run full res && echo "ok: resumed at step 2 = uninterrupted, bit for bit"

refused() { # WHAT STATUS EXPECTED ARGS...
  local what=$1 status=$2 want=$3 rc=0; shift 3
  "$calm" "$@" >"$tmp/err.log" 2>&1 || rc=$?
  if [[ $rc -ne $status ]] || ! grep -q -- "$want" "$tmp/err.log"; then
    fail "$what: exit $rc, expected $status and '$want' in:"; cat "$tmp/err.log"
  else echo "ok: $what refused: $(grep -m1 -- "$want" "$tmp/err.log")"; fi
}
refused "resume under another init" 1 "init_proj: checkpoint" "${common[@]}" --steps 4 --out "$tmp/e" \
  --resume "$tmp/full/checkpoints/step-00000002"
refused "32 tokens for width 32" 1 "below the augmenting model's width + 1 (33)" "${common[@]}" --init-proj lstsq \
  --init-tokens 32 --steps 0 --out "$tmp/e"
refused "lstsq on text files" 2 "give --data STORE" compose --anchor "$tmp/mB" --augment "$tmp/mA" --init-proj lstsq \
  --seq-len 32 --out "$tmp/e" "$tests/data/memorise.txt"
finish "init_proj: ok"
