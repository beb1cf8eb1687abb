#!/usr/bin/env bash
# Physics metrics of lhcb-run3 and the Upgrade-II-like layout (with and without timing) at
# mu = 0, 5, 20, 50. Writes validation/output/evaluate-<design>-mu<MU>.json and a summary table.
# About an hour on one core the first time (shower libraries, regressors and events are cached).
set -euo pipefail
cd "$(dirname "$0")/.."
out=validation/output
mkdir -p "$out"
events=${EVENTS:-1000}
for mu in 0 5 20 50; do
  for design in lhcb-run3 src/calopt/detector/designs/upgrade2-like.toml examples/upgrade2-notiming.toml; do
    name=$(basename "$design" .toml)
    calopt evaluate "$design" --pileup "$mu" --events "$events" --seed 1 --json > "$out/evaluate-$name-mu$mu.json"
  done
done
python - <<'PY'
import glob, json
rows = []
for path in sorted(glob.glob("validation/output/evaluate-*.json")):
    r = json.load(open(path))
    rows.append((r["design"], r["pileup"], r["pi0_mass_width_mev"], r["pi0_efficiency"], r["b_mass_width_mev"],
                 r["significance"], r["energy_resolution_stochastic"], r["position_resolution_mm"], r["channels"],
                 r["cost"], r["photons_rejected_by_timing"]))
print(f"{'design':<18}{'mu':>4}{'pi0 w':>8}{'pi0 eff':>8}{'B w':>8}{'signif':>8}{'a':>7}{'pos mm':>8}{'chan':>7}{'cost':>9}{'t-rej':>7}")
fmt = lambda v, f: (f % v) if isinstance(v, (int, float)) else "fail"
for r in sorted(rows, key=lambda r: (r[1], r[0])):
    print(f"{r[0]:<18}{r[1]:>4g}{fmt(r[2], '%8.2f')}{fmt(r[3], '%8.3f')}{fmt(r[4], '%8.1f')}{fmt(r[5], '%8.2f')}"
          f"{fmt(r[6], '%7.3f')}{fmt(r[7], '%8.2f')}{r[8]:>7}{r[9]:>9.0f}{r[10]:>7}")
PY
