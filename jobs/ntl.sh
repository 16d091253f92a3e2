#!/usr/bin/env bash
# The NTL experiment of CALM (Bansal et al. 2024, section 4.2, Table 2) at
# this machine's scale, end to end:
#   1. jobs/fetch-data.sh, calm data ntl: UDHR (~520 languages) and Quran
#      (11 languages) text; H = English + es fr ru zh tr, L = every other
#      language; held-out UDHR articles 26-30 and every 10th verse
#   2. mB (anchor): H text and H->En translation pairs only
#   3. mA (augmenting, smaller): the text of every language (NTL)
#   4. CALM = mA (+) mB on DC (~5% of the NTL text, L->En pairs for the quran
#      L languages, some L languages left out: DC-unseen); the same with a
#      randomly initialised mA; mB^NTL = mB fine-tuned on the NTL text
#   5. bits per byte per language, XX->En chrF, forgetting on H
# Output in runs/ntl-<preset>/: results.json, results.md, plots/*.png.
#
# Usage: jobs/ntl.sh [--preset tiny|quick|small|paper] [--out DIR] [--threads N]
#                    [--pipeline S:A:M] [--resume N]
#   --pipeline S:A:M  train the compositions on S+A local MPI ranks: the anchor in
#                     S pipeline stages, A augment ranks, M micro-batches a step
#   --resume N        checkpoint every training every N steps and continue each
#                     from its newest checkpoint (jobs/ntl.sbatch); USR1 stops the
#                     running training with a checkpoint and exits 75
#   tiny   about two minutes: checks the pipeline (CI runs it); figures mean little
#   quick  under ten minutes (jobs/quickstart.sh)
#   small  the reference run for a 2-core machine, under an hour (docs/ntl.md)
#   paper  larger models and budgets (hours)
# Environment: CALM_BIN (default build/calm), CALM_THREADS, CALM_DATA_CACHE.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
job=ntl.sh cmdline="jobs/ntl.sh $*"
. "$root/jobs/lib.sh"
job_args "$@"
job_launch
out=${out:-$root/runs/ntl-$preset}
calm=${CALM_BIN:-$root/build/calm}

# Per preset: data options; mB and mA shapes; steps of mB, mA, the
# compositions; batch; learning rates; connections; evaluation sizes.
case "$preset" in
  tiny)
    data=(--langs 24 --verses 1200 --translate 8 --bpb-verses 20)
    B=(--dim 64 --layers 4 --heads 4); A=(--dim 48 --layers 3 --heads 4)
    steps_b=60 steps_a=60 steps_c=40 batch=8 seq=128 lr=3e-3 clr=2e-3 conn=2:3 ;;
  quick)
    data=(--translate 20 --bpb-verses 40)
    B=(--dim 128 --layers 4 --heads 4); A=(--dim 96 --layers 4 --heads 4)
    steps_b=600 steps_a=500 steps_c=200 batch=16 seq=256 lr=3e-3 clr=2e-3 conn=3:3 ;;
  small)
    data=(--translate 50 --bpb-verses 100)
    B=(--dim 192 --layers 6 --heads 4); A=(--dim 192 --layers 4 --heads 4)
    steps_b=3000 steps_a=2000 steps_c=800 batch=16 seq=256 lr=2e-3 clr=2e-3 conn=1:2,3:5 ;;
  paper)
    data=(--translate 100 --bpb-verses 300)
    B=(--dim 512 --layers 12 --heads 8); A=(--dim 256 --layers 8 --heads 4)
    steps_b=40000 steps_a=20000 steps_c=4000 batch=32 seq=256 lr=1e-3 clr=1e-3 conn=3:3,7:7,7:11 ;;
  *) echo "ntl.sh: unknown preset '$preset' (tiny, quick, small, paper)" >&2; exit 2 ;;
esac
# Per-language mixing p(L) ~ n_L^alpha (docs/ntl.md): mB over its H languages
# and pair sets; mA and mB^NTL at 0.7, which gives the few large languages
# (the Quran's) more weight than 0.3 would and made mA better on H, on L and
# as a composition partner; the compositions sample DC in proportion (1.0),
# so that its H text and translation pairs count as much as their size.
alpha_b=0.3 alpha_a=0.7 alpha_c=1.0

[[ -x "$calm" ]] || { "$root/jobs/install-deps.sh"; "$root/jobs/build.sh"; }
mkdir -p "$out/eval"
log() { echo "== $(date +%H:%M:%S) $*"; }
quiet() { # quiet LOG CMD...: run CMD with its messages in LOG, shown if it fails
  local f=$1; shift
  "$@" 2>"$f" || { local rc=$?; echo "ntl.sh: failed ($rc): $*" >&2; tail -20 "$f" >&2; exit "$rc"; }
}
start=$(date +%s)
stage_start=$start
declare -A took
stage() { local now; now=$(date +%s); took[$1]=$((now - stage_start)); stage_start=$now; }

log "data ($preset)"
if [[ -n $resume && -f $out/data/manifest.json ]]; then
  echo "ntl.sh: --resume: keeping $out/data" # the trainings' checkpoints were made on it
else
  paths=$("$root/jobs/fetch-data.sh") || { echo "ntl.sh: fetching the data failed" >&2; exit 1; }
  eval "$paths" # udhr=DIR quran=DIR
  rm -rf "$out/data"
  "$calm" data ntl --out "$out/data" --udhr "$udhr" --quran "$quran" --seq-len "$seq" "${data[@]}"
fi
stage data

common=(--seq-len "$seq" --batch "$batch" --threads "$threads" --log-every 50 "${ckpt[@]}")
job_next
log "mB: the anchor, H text and H->En pairs ($steps_b steps)"
"$calm" train --out "$out/mB" --data "$out/data/stores/anchor" "${B[@]}" --steps "$steps_b" --lr "$lr" --alpha "$alpha_b" \
  --warmup $((steps_b / 20 + 1)) --weight-decay 0.01 --seed 12 --log "$out/mB.jsonl" "${common[@]}"
stage mB
job_next
log "mA: the augmenting model, the text of every language ($steps_a steps)"
"$calm" train --out "$out/mA" --data "$out/data/stores/ntl" "${A[@]}" --steps "$steps_a" --lr "$lr" --alpha "$alpha_a" \
  --warmup $((steps_a / 20 + 1)) --weight-decay 0.01 --seed 11 --log "$out/mA.jsonl" "${common[@]}"
stage mA
quiet "$out/mA_random.log" "$calm" train --out "$out/mA_random" --data "$out/data/stores/ntl" "${A[@]}" --steps 0 \
  --seed 13 "${common[@]}"

compose() { # compose NAME AUGMENT
  job_next
  log "$1: composition on DC ($steps_c steps)${pipeline:+ on local MPI ranks, S:A:M = $pipeline}"
  "${launch[@]}" "$calm" compose "${pipe[@]}" --anchor "$out/mB" --augment "$2" --out "$out/$1" \
    --data "$out/data/stores/dc" --steps "$steps_c" --lr "$clr" --warmup $((steps_c / 20 + 1)) --seed 21 --alpha "$alpha_c" \
    --connections "$conn" --log "$out/$1.jsonl" "${common[@]}"
}
compose calm "$out/mA"
stage calm
compose calm_random_mA "$out/mA_random"
stage calm_random_mA

job_next
# mB^NTL: mB fine-tuned on the NTL text with the tokens mA was trained on
steps_ntl=$(( steps_a ))
log "mB_ntl: mB fine-tuned on the NTL text ($steps_ntl steps, mA's token budget)"
"$calm" train --out "$out/mB_ntl" --model "$out/mB" --data "$out/data/stores/ntl" --steps "$steps_ntl" --lr "$clr" --alpha "$alpha_a" \
  --warmup $((steps_ntl / 20 + 1)) --weight-decay 0.01 --seed 14 --log "$out/mB_ntl.jsonl" "${common[@]}"
stage mB_ntl

job_next
log "evaluation: bits per byte on held-out text, XX->En chrF on held-out verses"
for m in mA mB calm calm_random_mA mB_ntl; do
  which=(--model "$out/$m")
  [[ -f "$out/$m/calm_config.json" ]] && which=(--calm "$out/$m")
  quiet "$out/eval/$m.log" "$calm" eval "${which[@]}" --docs "$out/data/heldout.jsonl" --seq-len "$seq" --batch 16 \
    --threads "$threads" --out "$out/eval/$m.bpb.json"
  quiet "$out/eval/$m.log" "$calm" eval "${which[@]}" --task "$out/data/translate.jsonl" --metric chrf --batch 32 \
    --threads "$threads" --outputs "$out/eval/$m.translations.jsonl" --out "$out/eval/$m.chrf.json"
  quiet "$out/eval/$m.log" "$calm" eval "${which[@]}" --task "$out/data/translate.jsonl" --metric bpb --batch 32 \
    --threads "$threads" --out "$out/eval/$m.target_bpb.json"
done
stage eval
elapsed=$(( $(date +%s) - start ))

stages=()
for s in data mB mA calm calm_random_mA mB_ntl eval; do stages+=("$s=${took[$s]:-0}"); done
# meta.json for the report: the run's settings, stage times, parameter counts
/usr/bin/python3 - "$out" "$preset" "$cmdline" "$elapsed" "$threads" "${stages[@]}" <<'PY'
import json, os, struct, sys
out, preset, cmdline, elapsed, threads, *stages = sys.argv[1:]
def count(path):  # parameters in a safetensors file, from its header's shapes
    with open(path, "rb") as f:
        h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    n = 0
    for k, v in h.items():
        if k != "__metadata__":
            p = 1
            for d in v["shape"]:
                p *= d
            n += p
    return n
def desc(model):
    c = json.load(open(f"{out}/{model}/config.json"))
    return f"dim {c['hidden_size']}, {c['num_hidden_layers']} layers"
meta = {"preset": preset, "command": cmdline, "elapsed_s": int(elapsed),
        "threads": "threads per process: " + ("all cores" if threads == "0" else threads),
        "stage_s": {k: int(v) for k, v in (s.split("=") for s in stages)},
        "params": {"mB": count(f"{out}/mB/model.safetensors"), "mA": count(f"{out}/mA/model.safetensors"),
                   "composition": count(f"{out}/calm/calm.safetensors"), "mB_desc": desc("mB"), "mA_desc": desc("mA")}}
with open(f"{out}/meta.json.tmp", "w") as f:
    json.dump(meta, f, indent=1)
os.replace(f"{out}/meta.json.tmp", f"{out}/meta.json")
PY
/usr/bin/python3 "$root/jobs/ntl_report.py" "$out"
cat "$out/results.md"
log "done in $((elapsed / 60)) min $((elapsed % 60)) s: $out/results.md, $out/results.json, $out/plots/"
