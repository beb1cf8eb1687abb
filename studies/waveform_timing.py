"""Waveform timing study (issue #22): the shipped table of readout's ``timing_model = "waveform"``.

For every technology with a pulse model: cells of photons at 1-50 GeV, digitised at 0.4-10 GS/s,
timed by the tuned CFD, XGBoost and the torch MLP (:func:`calopt.readout.waveform_timing.run_timing_study`);
sigma_t(E) = a/sqrt(E) (+) b fitted per rate and estimator. Per rate the chosen estimator is the one
with the smallest mean resolution over the energies. Writes the table
``src/calopt/readout/data/waveform_timing.json`` (format ``calopt-waveform-timing`` v1, with the
settings, seed and calopt version) and every study's full JSON into the output folder, and prints a
Markdown table next to the published figures.

Usage: python studies/waveform_timing.py [out-folder] [n-per-energy] [showers] [--second-signal]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from calopt import __version__
from calopt.files import atomic_path
from calopt.readout.waveform_timing import TABLE_FORMAT, TABLE_VERSION, TimingStudy, run_timing_study
from calopt.readout.waveforms import PULSE_MODELS, WaveformSettings

TABLE = Path(__file__).resolve().parents[1] / "src" / "calopt" / "readout" / "data" / "waveform_timing.json"
RATES = (0.4, 1.0, 2.5, 5.0, 10.0)
ENERGIES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
SEED = 22


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = Path(args[0] if args else "waveform-timing")
    n = int(args[1]) if len(args) > 1 else 1500
    showers = int(args[2]) if len(args) > 2 else 60
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for tech in PULSE_MODELS:
        st = TimingStudy(tech, RATES, ENERGIES, n, showers, SEED, second_signal="--second-signal" in sys.argv)
        doc = run_timing_study(st, progress=lambda s, t=tech: print(f"{t}: {s}", file=sys.stderr, flush=True))
        with atomic_path(out / f"{tech}.json") as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=1))
        for rate in RATES:
            fits = [f for f in doc["fits"] if f["sampling_rate_gsps"] == rate and f["valid"]]
            mean = {f["estimator"]: np.mean([r["sigma_ps"] for r in doc["results"]
                                             if r["sampling_rate_gsps"] == rate and r["estimator"] == f["estimator"]])
                    for f in fits}  # fmt: skip
            chosen = min(mean, key=lambda k: mean[k])
            for f in fits:
                keys = ("technology", "sampling_rate_gsps", "estimator", "a_ps", "a_ps_err", "b_ps", "b_ps_err")
                entries.append({k: f[k] for k in keys} | {"chosen": f["estimator"] == chosen})
    table = {
        "format": TABLE_FORMAT,
        "format_version": TABLE_VERSION,
        "calopt_version": __version__,
        "made_by": "studies/waveform_timing.py",
        "seed": SEED,
        "settings": {
            "rates_gsps": RATES,
            "energies_gev": ENERGIES,
            "n_per_energy": n,
            "showers_per_energy": showers,
            "waveforms": WaveformSettings().__dict__,
        },
        "entries": entries,
    }
    with atomic_path(TABLE) as tmp:
        Path(tmp).write_text(json.dumps(table, indent=1) + "\n")
    print("| technology | GS/s | estimator | a [ps sqrt(GeV)] | b [ps] | chosen |")
    print("|---|---|---|---|---|---|")
    for e in entries:
        a_err = f" +- {e['a_ps_err']:.0f}" if e["a_ps_err"] is not None else ""
        b_err = f" +- {e['b_ps_err']:.1f}" if e["b_ps_err"] is not None else ""
        print(f"| {e['technology']} | {e['sampling_rate_gsps']:g} | {e['estimator']} | {e['a_ps']:.0f}{a_err} | "
              f"{e['b_ps']:.1f}{b_err} | {'yes' if e['chosen'] else ''} |")  # fmt: skip
    print("published: KOPIO shashlyk 72/sqrt(E) (+) 14/E ps; RADiCAL 256/sqrt(E) (+) 17.5 ps; SpaCal < 20 ps (~15 ps)")


if __name__ == "__main__":
    main()
