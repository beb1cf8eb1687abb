#!/usr/bin/env bash
# Response and resolution of a fast simulation against the cascade at fixed energies (issue 6):
# N cascade showers at each energy (theta < 0.3 rad, entry points as in training), and the model
# simulated for the same particles by `calopt surrogate evaluate`. A fixed energy puts every
# shower into one bin, so that the 5 % resolution target can be tested with a few thousand
# showers per energy (the log-uniform reference of run_surrogate_study.sh has ~1000 per bin).
#
#   [N=3000] [ENERGIES="2 10 50"] [PARTICLE=gamma] studies/run_surrogate_resolution.sh [MODEL]
#
# MODEL: a backend or checkpoint (default: the shipped surrogate). Writes
# studies/output/resolution/ and prints a table. The cascade samples are kept and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-surrogate}
n=${N:-3000}
particle=${PARTICLE:-gamma}
out=studies/output/resolution
mkdir -p "$out"
for e in ${ENERGIES:-2 10 50}; do
  ref="$out/cascade-$particle-$e.h5"
  [ -f "$ref" ] || calopt simulate --technology lhcb-shashlik --particle "$particle" --energy "$e" \
    --theta-max 0.3 --n "$n" --seed $((20 + e)) --out "$ref" --workers "${WORKERS:-2}" --json > /dev/null
  calopt surrogate evaluate "$model" --reference "$ref" --seed 1 --json > "$out/$(basename "$model" .pt)-$particle-$e.json"
done
python - "$out" "$(basename "$model" .pt)" "$particle" ${ENERGIES:-2 10 50} <<'PY'
import json, sys
out, name, particle, energies = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"{name} vs cascade, {particle}")
print(f"{'E [GeV]':>8}{'n':>7}{'response ratio':>16}{'res model':>11}{'res cascade':>13}{'res ratio':>16}")
for e in energies:
    d = json.load(open(f"{out}/{name}-{particle}-{e}.json"))
    b = max(d["energy_bins"], key=lambda b: b["n_reference"])
    print(f"{e:>8}{b['n_reference']:>7}{b['response_ratio']:>16.4f}{b['resolution_model']:>11.4f}"
          f"{b['resolution_reference']:>13.4f}{b['resolution_ratio']:>10.3f} ± {b['resolution_ratio_err']:.3f}")
PY
