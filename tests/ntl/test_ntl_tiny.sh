#!/usr/bin/env bash
# The NTL experiment end to end at preset tiny (jobs/ntl.sh), twice: as one
# process, then with the compositions on 3 MPI ranks (the anchor in 2
# pipeline stages, 1 augment rank). Checks:
#   - results.json has bits per byte for every model and language, chrF for
#     every model and translated language, and the three groups;
#   - results.md has the tables, the PNG plots exist;
#   - both runs train the same mA and mB (same seeds, one thread), so the
#     pipelined compositions equal the single-process ones (max |a - b| <=
#     1e-5 max |b| per tensor, as tests/mpi/test_pipeline.sh).
# Usage: test_ntl_tiny.sh CALM_BINARY OUT_DIR
source "$(dirname "$0")/../lib.sh"
test_args 2 "$@"
out=$2
rm -rf "$out" "$out-mpi"
mkdir -p "$(dirname "$out")"
logged "$out.log" "$root/jobs/ntl.sh" --preset tiny --out "$out"
logged "$out-mpi.log" "$root/jobs/ntl.sh" --preset tiny --out "$out-mpi" --pipeline 2:1:2
grep -q "pipeline: 2 micro-batches" "$out-mpi.log" || die "the MPI run did not use the pipeline"
for run in "$out" "$out-mpi"; do
  /usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
r = json.load(open(f"{run}/results.json"))
langs = json.load(open(f"{run}/data/languages.json"))
codes = {l["code"] for l in langs}
translated = {l["code"] for l in langs if l["translate_examples"] > 0}
models = ["mA", "mB", "calm", "calm_random_mA", "mB_ntl"]
for m in models:
    assert set(r["bpb"][m]) == codes, (m, "bpb languages", len(r["bpb"][m]), len(codes))
    assert all(0 < x < 20 for x in r["bpb"][m].values()), (m, "bpb range")
    assert set(r["chrf"][m]) == translated, (m, "chrF languages")
    assert all(0 <= x <= 100 for x in r["chrf"][m].values()), (m, "chrF range")
g = r["groups"]
assert set(g["H"]) | set(g["L"]) == codes and not set(g["H"]) & set(g["L"]), "groups"
assert set(g["dc_unseen"]) <= set(g["L"]) and g["dc_unseen"], "dc_unseen"
assert sorted(g["H"]) == ["cmn_hans", "eng", "fra", "rus", "spa", "tur"], g["H"]
print(f"{run}: results.json complete ({len(codes)} languages, {len(translated)} translated)")
PY
  grep -q "^## Ten languages side by side" "$run/results.md"
  grep -q "CALM has lower bits per byte than mB on" "$run/results.md"
  for p in bpb_calm_vs_mB chrf; do
    [[ $(head -c 8 "$run/plots/$p.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
      die "$run/plots/$p.png is not a PNG"
  done
done
for m in mA mB; do
  cmp -s "$out/$m/model.safetensors" "$out-mpi/$m/model.safetensors" ||
    die "$m differs between the two runs (the comparison below needs equal models)"
done
for c in calm calm_random_mA; do
  /usr/bin/python3 "$tests/tools/st_diff.py" "$out/$c/calm.safetensors" "$out-mpi/$c/calm.safetensors" \
    --rtol 0 --atol-frac 1e-5
done
echo "the pipelined compositions equal the single-process ones"
