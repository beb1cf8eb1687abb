"""The pi0 mass window of the B candidates (issue 4): which rule gives the best expected
S/sqrt(S+B)?

``capture DESIGN MU EVENTS``: runs ``calopt evaluate`` (seed 1, pile-up-aware regressors),
writes studies/output/after-<design>-mu<MU>-n<EVENTS>.json (as ``--json`` prints it) and the
pi0 candidates of the run (cands-...npz). ``compare``: for every captured run and window rule,
the B candidates are rebuilt and fitted (:func:`calopt.metrics.mass.mass_metrics`), with the
muons of every crossing smeared the same way whatever the rule (seeded by the crossing), and
the truth-count and fitted S/sqrt(S+B) printed and written to pi0-window-study.json."""

from __future__ import annotations

import glob
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

import calopt.metrics.mass as mass_module
import calopt.pipeline as evaluate_module
from calopt.cli._common import _default
from calopt.detector.design import load_design
from calopt.pipeline import EvaluateSettings, evaluate

OUT = Path(__file__).parent / "output"
RULES = ["sigma_eff:2.5", "sigma_eff:2", "sigma_eff:1.5", "core:2", "core:2.5", "core:3", "shortest:0.8",
         "shortest:0.9", "shortest:0.95"]  # fmt: skip


def capture(design: str, mu: float, events: int) -> None:
    name = Path(design).stem if design.endswith(".toml") else design
    tag = f"{name}-mu{mu:g}-n{events}"
    orig = evaluate_module.mass_metrics

    def keep(c: mass_module.Candidates, rng: np.random.Generator) -> dict:
        np.savez(OUT / f"cands-{tag}.npz", **{k: np.asarray(v) for k, v in asdict(c).items()})
        return orig(c, rng)

    evaluate_module.mass_metrics = keep  # type: ignore[assignment]
    result = evaluate(load_design(design), EvaluateSettings(pileup=mu, n_events=events, seed=1)).to_json()
    (OUT / f"after-{tag}.json").write_text(json.dumps(result, default=_default) + "\n")


def _f(v: float | None, fmt: str) -> str:
    return fmt % v if v is not None else "fail"


def compare() -> None:
    orig = mass_module.smear_muon

    def smear(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(np.asarray(p, dtype=float).tobytes()).digest()[:8], "little")
        return orig(p, np.random.default_rng(seed))

    mass_module.smear_muon = smear  # type: ignore[assignment]
    rows = []
    for path in sorted(glob.glob(str(OUT / "cands-*.npz"))):
        d = dict(np.load(path))
        d["n_events"] = int(d["n_events"])
        c = mass_module.Candidates(**d)
        tag = Path(path).stem[len("cands-"):]
        results = {rule: mass_module.mass_metrics(c, np.random.default_rng(0), pi0_window=rule) for rule in RULES}
        # one B window for every rule of a run (the B shape of a narrow pi0 window can fail for
        # lack of entries): +-2 sigma_eff of the B shape with the former +-2.5 sigma_eff rule (else the widest valid
        # one; else +-300 MeV) around the B0 mass, counted in the 25 MeV bins of the histograms
        widths = [r["b_mass_width_mev"] for r in results.values() if r["b_mass_width_mev"] is not None]
        ref = results[RULES[0]]["b_mass_width_mev"] or (max(widths) if widths else 150.0)
        for rule, r in results.items():
            h, hs = r["histograms"]["b"], r["histograms"]["b_signal"]
            centres = 0.5 * (np.array(h["edges"][1:]) + np.array(h["edges"][:-1]))
            inside = np.abs(centres - 5279.66) < 2.0 * ref
            n_all, n_sig = np.array(h["counts"])[inside].sum(), np.array(hs["counts"])[inside].sum()
            s_, b_ = int(n_sig), int(n_all - n_sig)
            x = {"run": tag, "rule": rule, "window": r["fits"]["pi0_window_for_b_mev"], "b_window_half_mev": 2 * ref,
                 "s": s_, "b": b_, "truth_significance": s_ / np.sqrt(s_ + b_) if s_ + b_ else None,
                 "fit_significance": r["significance"], "fit_significance_err": r["significance_err"],
                 "b_sigma_eff": r["b_mass_width_mev"]}  # fmt: skip
            rows.append(x)
            lo, hi = x["window"]
            print(f"{tag:<28}{rule:<15}[{lo:6.1f},{hi:6.1f}]  truth {_f(x['truth_significance'], '%5.2f')}"
                  f" (S {x['s']}, B {x['b']} in +-{2 * ref:.0f})  fit {_f(x['fit_significance'], '%5.2f')}"
                  f" +- {_f(x['fit_significance_err'], '%4.2f')}  B sigma_eff {_f(x['b_sigma_eff'], '%4.0f')}")
    (OUT / "pi0-window-study.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "capture":
        capture(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        compare()
