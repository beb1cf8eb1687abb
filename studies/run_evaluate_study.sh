#!/usr/bin/env bash
# Physics metrics of lhcb-run3 and the Upgrade-II-like layout (with and without timing) at
# mu = 0, 5, 20, 50. Writes studies/output/evaluate-<design>-mu<MU>[-n<EVENTS>].json and a
# summary table. About an hour on one core the first time (shower libraries, regressors and
# events are cached). EVENTS (default 1000) and MUS (default "0 5 20 50") choose the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=studies/output
mkdir -p "$out"
events=${EVENTS:-1000}
suffix=$([ "$events" = 1000 ] && echo "" || echo "-n$events")
for mu in ${MUS:-0 5 20 50}; do
  for design in lhcb-run3 src/calopt/detector/designs/upgrade2-like.toml examples/upgrade2-notiming.toml; do
    name=$(basename "$design" .toml)
    calopt evaluate "$design" --pileup "$mu" --events "$events" --seed 1 --json > "$out/evaluate-$name-mu$mu$suffix.json"
  done
done
python - <<'PY'
import glob, json
fmt = lambda v, f: (f % v) if isinstance(v, (int, float)) else "fail"
print(f"{'design':<18}{'mu':>4}{'events':>7}{'pi0 w':>7}{'core':>6}{'eff30':>7}{'B w':>7}{'core':>6}"
      f"{'S/sqrt(S+B)':>14}{'truth':>7}{'t-rej':>7}{'chan':>6}{'cost':>7}")
rows = [json.load(open(p)) for p in glob.glob("studies/output/evaluate-*.json")]
for r in sorted(rows, key=lambda r: (r["pileup"], r["events"], r["design"])):
    f = r["fits"]
    core = lambda k: (f[k].get("signal_shape") or {}).get("parameters", {}).get("sigma")
    z = fmt(r["significance"], "%.2f") + ("" if r["significance"] is None else " +- " + fmt(r["significance_err"], "%.2f"))
    zt = (f["b"].get("truth") or {}).get("significance")
    print(f"{r['design']:<18}{r['pileup']:>4g}{r['events']:>7}{fmt(r['pi0_mass_width_mev'], '%7.1f')}"
          f"{fmt(core('pi0'), '%6.1f')}{fmt(r['pi0_efficiency'], '%7.3f')}{fmt(r['b_mass_width_mev'], '%7.0f')}"
          f"{fmt(core('b'), '%6.0f')}{z:>14}{fmt(zt, '%7.2f')}{r['photons_rejected_by_timing']:>7}{r['channels']:>6}"
          f"{r['cost']:>7.0f}")
PY
