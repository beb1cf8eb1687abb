"""Gradient estimators and gradient-based module design against a dense cascade grid (#21).

The problem: a Shashlik module (lead + polystyrene, 40.4 mm cells, held at 25 X0: the number of
layers follows the thicknesses) with two parameters, the absorber and the active thickness.
The objective trades resolution against cost:

    J = 100 sigma/E (2 GeV photons, calibrated 3 x 3-cell sum with photo-statistics)
        + LAMBDA x cost [kCHF per module, assumed prices]

with LAMBDA = 0.5 %/kCHF, and the module's depth at most the ECAL's 835 mm. Phases:

1. ``grid``: J on a dense grid of the box (absorber 1-4 mm, active 1.5-7.5 mm, 9 x 9), each
   design with ``--grid-showers`` cascade showers of one seed; stored one line per design in
   ``--out/grid.jsonl`` and resumed (a design already there is not simulated again). A
   quadratic surface fitted to the grid is the truth the methods are scored on; its minimum is
   the grid optimum.
2. ``bias``: each estimator (fd, spsa, pathwise, reweight, lgso) against ``fd`` at 5 design
   points, with errors (z-scores), ``--bias-budget`` showers each.
3. ``race``: each method (the gradient methods with trust-region steps checked on the cascade,
   bo, cmaes) from the same start until its design is within 1 % of the grid optimum's J on the
   fitted surface; the cascade showers it needed, median over ``--seeds`` seeds.

    python benchmarks/bench_gradients.py grid [--out DIR] [--grid-showers 3000]
    python benchmarks/bench_gradients.py bias [--out DIR]
    python benchmarks/bench_gradients.py race [--out DIR] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.module import ModuleSpec, load_module
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import get_objective
from calopt.optimize.gradients.samples import cascade_sample

LAMBDA = 0.5  # % of resolution per kCHF of module cost
ENERGY_GEV = 2.0
DEPTH_X0 = 25.0
BOX = {"absorber_thickness_mm": (1.0, 4.0), "active_thickness_mm": (1.5, 7.5)}
GRID_SEED = 20261205


def design(absorber: float, active: float) -> ModuleSpec:
    """The problem's module at (absorber, active) thickness [mm] (CaloptInputError if too deep)."""
    return load_module("lhcb-shashlik").replace(absorber_thickness_mm=float(absorber),
                                                active_thickness_mm=float(active), depth_x0=DEPTH_X0)  # fmt: skip


def objective_of(resolution: float, cost: float) -> float:
    return 100.0 * resolution + LAMBDA * cost


def run_grid(out: Path, n: int, size: int) -> list[dict[str, Any]]:
    """The dense grid, resumed from ``out/grid.jsonl``."""
    path = out / "grid.jsonl"
    done: dict[tuple[float, float], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if row["showers"] == n:
                    done[(row["absorber_thickness_mm"], row["active_thickness_mm"])] = row
    obj = get_objective("energy_resolution", ENERGY_GEV)
    rng = np.random.default_rng(0)
    for a in np.linspace(*BOX["absorber_thickness_mm"], size):
        for s in np.linspace(*BOX["active_thickness_mm"], size):
            key = (round(float(a), 6), round(float(s), 6))
            if key in done:
                continue
            t0 = time.perf_counter()
            try:
                d = design(*key)
            except CaloptInputError as exc:  # beyond the ECAL's depth: outside the feasible region
                row = {"absorber_thickness_mm": key[0], "active_thickness_mm": key[1], "showers": n,
                       "feasible": False, "why": str(exc)}  # fmt: skip
            else:
                sample = cascade_sample(d, obj.beam, n, GRID_SEED)  # type: ignore[arg-type]
                res = obj.of_sample(sample)
                boot = [obj.of_sample(sample, rng.integers(0, n, n)) for _ in range(100)]
                cost = float(d.properties()["cost_kchf_per_module"])
                row = {"absorber_thickness_mm": key[0], "active_thickness_mm": key[1], "showers": n, "feasible": True,
                       "n_layers": d.n_layers, "depth_mm": d.depth, "resolution": res,
                       "resolution_err": float(np.std(boot, ddof=1)), "cost_kchf": cost,
                       "J": objective_of(res, cost), "J_err": 100.0 * float(np.std(boot, ddof=1)),
                       "seconds": time.perf_counter() - t0}  # fmt: skip
                print(f"  a = {key[0]:.3f} mm, s = {key[1]:.3f} mm: sigma/E = {100 * res:.3f} %, cost {cost:.2f} kCHF, "
                      f"J = {row['J']:.3f} ({row['seconds']:.0f} s)", flush=True)  # fmt: skip
            with path.open("a") as f:  # one line per design: a kill loses at most the design running
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            done[key] = row
    return list(done.values())


def fit_surface(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Weighted quadratic surface J(a, s) over the feasible grid points, and its minimum inside
    the feasible box (found on a fine grid)."""
    ok = [r for r in rows if r["feasible"]]
    a = np.array([r["absorber_thickness_mm"] for r in ok])
    s = np.array([r["active_thickness_mm"] for r in ok])
    j = np.array([r["J"] for r in ok])
    w = 1.0 / np.maximum(np.array([r["J_err"] for r in ok]), 1e-6)
    X = np.stack([np.ones_like(a), a, s, a * a, a * s, s * s, a**3, s**3, a * a * s, a * s * s], axis=1)
    coef, *_ = np.linalg.lstsq(X * w[:, None], j * w, rcond=None)
    resid = (j - X @ coef) * w
    chi2_ndf = float(resid @ resid / max(len(j) - len(coef), 1))

    def surface(aa: np.ndarray, ss: np.ndarray) -> np.ndarray:
        return np.stack([np.ones_like(aa), aa, ss, aa * aa, aa * ss, ss * ss, aa**3, ss**3, aa * aa * ss, aa * ss * ss],
                        axis=-1) @ coef  # fmt: skip

    fa, fs = np.meshgrid(np.linspace(*BOX["absorber_thickness_mm"], 301), np.linspace(*BOX["active_thickness_mm"], 301))
    feasible = np.vectorize(_feasible)(fa, fs)
    fj = np.where(feasible, surface(fa, fs), np.inf)
    k = np.unravel_index(np.argmin(fj), fj.shape)
    return {"coef": coef.tolist(), "chi2_ndf": chi2_ndf, "optimum": {"absorber_thickness_mm": float(fa[k]),
            "active_thickness_mm": float(fs[k]), "J": float(fj[k])}, "surface": surface}  # fmt: skip


_FEASIBLE: dict[tuple[float, float], bool] = {}


def _feasible(a: float, s: float) -> bool:
    key = (round(float(a), 4), round(float(s), 4))
    if key not in _FEASIBLE:
        try:
            design(*key)
            _FEASIBLE[key] = True
        except CaloptInputError:
            _FEASIBLE[key] = False
    return _FEASIBLE[key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=["grid", "bias", "race"])
    ap.add_argument("--out", type=Path, default=Path("bench-gradients"))
    ap.add_argument("--grid-showers", type=int, default=3000)
    ap.add_argument("--grid-size", type=int, default=9)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run_grid(args.out, args.grid_showers, args.grid_size)
    fit = fit_surface(rows)
    print(f"grid: {sum(r['feasible'] for r in rows)} feasible designs of {len(rows)}, {args.grid_showers} showers each "
          f"({time.perf_counter() - t0:.0f} s); quadratic+cubic surface chi2/ndf = {fit['chi2_ndf']:.2f}")  # fmt: skip
    print(f"grid optimum: {fit['optimum']}")


if __name__ == "__main__":
    main()
