"""Before/after table of the pile-up-aware regressors (studies/output/{before,after}-*.json)."""

import glob
import json
import sys
from pathlib import Path


def fmt(v, f):
    return f % v if isinstance(v, (int, float)) else "fail"


print(f"{'run':<8}{'design':<15}{'mu':>3}{'n':>6}{'pi0 eff':>8}{'core':>6}{'dec reco':>9}{'trueE':>7}{'trueX':>7}"
      f"{'eff30':>7}{'B eff':>7}{'Z fit':>13}{'Z truth':>8}{'S':>5}{'B':>6}  pi0 window")
rows = []
for p in sorted(glob.glob(str(Path(sys.argv[1] if len(sys.argv) > 1 else "studies/output") / "*-mu*-n*.json"))):
    r = json.load(open(p))
    which = Path(p).name.split("-")[0]
    f = r["fits"]
    shape = f["pi0"].get("signal_shape") or {}
    core = (shape.get("parameters") or {}).get("sigma")
    d = r["pi0_width_decomposition_mev"]
    t = f["b"].get("truth") or {}
    z = fmt(r["significance"], "%.2f")
    if r["significance"] is not None:
        z += " +- " + fmt(r["significance_err"], "%.2f")
    if r["significance"] is None and f["b"].get("significance") is not None:
        z = f"({f['b']['significance']:.1f}+-{f['b'].get('significance_err') or 0:.1f})"
    w = f.get("pi0_window_for_b_mev")
    rows.append((r["pileup"], r["design"], r["events"], which))
    print(f"{which:<8}{r['design']:<15}{r['pileup']:>3g}{r['events']:>6}{fmt(r['pi0_mass_width_mev'], '%8.1f')}"
          f"{fmt(core, '%6.1f')}{fmt(d['reco'], '%9.1f')}{fmt(d['true_energy_reco_position'], '%7.1f')}"
          f"{fmt(d['reco_energy_true_position'], '%7.1f')}{fmt(r['pi0_efficiency'], '%7.3f')}"
          f"{fmt(r['b_mass_width_mev'], '%7.0f')}{z:>13}{fmt(t.get('significance'), '%8.2f')}"
          f"{t.get('s_window', ''):>5}{t.get('b_window', ''):>6}  [{w[0]:.0f}, {w[1]:.0f}]")
