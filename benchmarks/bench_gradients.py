"""Gradient estimators and gradient-based module design against a dense cascade grid (#21).

The problem: a Shashlik module (lead + polystyrene, 40.4 mm cells, held at 25 X0: the number of
layers follows the thicknesses) with two parameters, the absorber and the active thickness:
the best resolution for a module that costs no more than the LHCb module (6 kCHF at the
assumed prices), the cost ceiling a quadratic penalty as in ``calopt module optimize``:

    J = 100 sigma/E (2 GeV photons, calibrated 3 x 3-cell sum with photo-statistics)
        + 100 max(0, cost / 6 kCHF - 1)^2

and the module's depth at most the ECAL's 835 mm. Phases:

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
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.module import ModuleSpec, load_module
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import check, estimate, get_objective
from calopt.optimize.gradients.descent import PENALTY_WEIGHT, DescentSettings, Problem, descend
from calopt.optimize.gradients.samples import cascade_sample

MAX_COST_KCHF = 6.0  # the LHCb module's cost at the assumed prices (calopt module show lhcb-shashlik)
ENERGY_GEV = 2.0
DEPTH_X0 = 25.0
BOX = {"absorber_thickness_mm": (1.0, 4.0), "active_thickness_mm": (1.5, 7.5)}
GRID_SEED = 20261205


def design(absorber: float, active: float) -> ModuleSpec:
    """The problem's module at (absorber, active) thickness [mm] (CaloptInputError if too deep)."""
    return load_module("lhcb-shashlik").replace(absorber_thickness_mm=float(absorber),
                                                active_thickness_mm=float(active), depth_x0=DEPTH_X0)  # fmt: skip


def problem() -> Problem:
    return Problem(terms=(("energy_resolution", 100.0),), box=BOX, energy_gev=ENERGY_GEV, max_cost_kchf=MAX_COST_KCHF)


def objective_of(resolution: float, cost: float) -> float:
    return 100.0 * resolution + PENALTY_WEIGHT * max(0.0, cost / MAX_COST_KCHF - 1.0) ** 2


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
                       "seconds": time.perf_counter() - t0}  # fmt: skip
                print(f"  a = {key[0]:.3f} mm, s = {key[1]:.3f} mm: sigma/E = {100 * res:.3f} %, cost {cost:.2f} kCHF, "
                      f"J = {objective_of(res, cost):.3f} ({row['seconds']:.0f} s)", flush=True)  # fmt: skip
            with path.open("a") as f:  # one line per design: a kill loses at most the design running
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            done[key] = row
    return list(done.values())


def fit_surface(rows: list[dict[str, Any]], resolution_only: bool = False) -> dict[str, Any]:
    """The truth the methods are scored on: a weighted cubic surface of 100 sigma/E(a, s) over
    the feasible grid points, plus the exact cost penalty at (a, s) (``resolution_only``: the
    sigma/E surface alone); its minimum over the feasible box on a 121 x 121 grid."""
    ok = [r for r in rows if r["feasible"]]
    a = np.array([r["absorber_thickness_mm"] for r in ok])
    s = np.array([r["active_thickness_mm"] for r in ok])
    y = np.array([100.0 * r["resolution"] for r in ok])
    w = 1.0 / np.maximum(np.array([100.0 * r["resolution_err"] for r in ok]), 1e-6)

    def basis(aa: np.ndarray, ss: np.ndarray) -> np.ndarray:
        return np.stack([np.ones_like(aa), aa, ss, aa * aa, aa * ss, ss * ss, aa**3, ss**3, aa * aa * ss, aa * ss * ss],
                        axis=-1)  # fmt: skip

    coef, *_ = np.linalg.lstsq(basis(a, s) * w[:, None], y * w, rcond=None)
    resid = (y - basis(a, s) @ coef) * w
    chi2_ndf = float(resid @ resid / max(len(y) - len(coef), 1))

    def surface(aa: Any, ss: Any) -> Any:
        res = basis(np.asarray(aa, dtype=float), np.asarray(ss, dtype=float)) @ coef
        if resolution_only:
            return res
        pen = np.vectorize(lambda x, z: _penalty(float(x), float(z)))(aa, ss)
        return res + pen

    fa, fs = np.meshgrid(np.linspace(*BOX["absorber_thickness_mm"], 121), np.linspace(*BOX["active_thickness_mm"], 121))
    feasible = np.vectorize(_feasible)(fa, fs)
    fj = np.where(feasible, surface(fa, fs), np.inf)
    k = np.unravel_index(np.argmin(fj), fj.shape)
    return {"coef": coef.tolist(), "chi2_ndf": chi2_ndf, "optimum": {"absorber_thickness_mm": float(fa[k]),
            "active_thickness_mm": float(fs[k]), "J": float(fj[k])}, "surface": surface}  # fmt: skip


_PENALTY: dict[tuple[float, float], float] = {}


def _penalty(a: float, s: float) -> float:
    """The cost penalty of J at (a, s), exact (inf where the module is deeper than the ECAL)."""
    key = (round(a, 4), round(s, 4))
    if key not in _PENALTY:
        try:
            _PENALTY[key] = objective_of(0.0, float(design(*key).properties()["cost_kchf_per_module"]))
        except CaloptInputError:
            _PENALTY[key] = math.inf
    return _PENALTY[key]


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


BIAS_POINTS = [(1.5, 2.5), (2.0, 4.0), (2.5, 3.0), (3.0, 5.0), (3.5, 2.0)]
ESTIMATORS = ["fd", "spsa", "pathwise", "reweight", "lgso"]


def run_bias(out: Path, rows: list[dict[str, Any]], budget: int, estimators: list[str]) -> None:
    """Each estimator's gradient of sigma/E against fd on an independent sample (z-scores), and
    the dense grid's surface gradient beside them, at BIAS_POINTS."""
    obj = get_objective("energy_resolution", ENERGY_GEV)
    surf = fit_surface(rows, resolution_only=True)["surface"]
    path = out / "bias.jsonl"
    done = {(r["estimator"], tuple(r["point"])) for r in map(json.loads, path.read_text().splitlines())} \
        if path.exists() else set()  # fmt: skip
    for point in BIAS_POINTS:
        d = design(*point)
        h = 1e-3
        grid_grad = [float((surf(np.array(point[0] + h), np.array(point[1])) - surf(np.array(point[0] - h),
                     np.array(point[1]))) / (2 * h) / 100.0),
                     float((surf(np.array(point[0]), np.array(point[1] + h)) - surf(np.array(point[0]),
                     np.array(point[1] - h))) / (2 * h) / 100.0)]  # fmt: skip
        for name in estimators:
            if (name, point) in done:
                continue
            t0 = time.perf_counter()
            r = estimate(obj, d, name, budget, seed=11)
            c = check(r, obj, d, budget, 11)
            row = {"estimator": name, "point": list(point), "gradient": r.gradient, "gradient_err": r.gradient_err,
                   "fd": c["reference_gradient"], "fd_err": c["reference_gradient_err"], "z": c["z"],
                   "agree": c["agree"], "grid_gradient": dict(zip(BOX, grid_grad)), "showers": r.showers,
                   "seconds": time.perf_counter() - t0}  # fmt: skip
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"  {name:9s} at {point}: " + ", ".join(
                f"{p[:3]} {r.gradient[p]:+.4f}+-{r.gradient_err[p]:.4f} (fd {c['reference_gradient'][p]:+.4f}, "
                f"grid {g:+.4f}, z {c['z'][p]:+.1f})" for p, g in zip(BOX, grid_grad)) + f"  {row['seconds']:.0f} s",
                flush=True)  # fmt: skip


def _true_value(surface: Any, point: dict[str, float]) -> float:
    return float(surface(np.array(point["absorber_thickness_mm"]), np.array(point["active_thickness_mm"])))


START = {"absorber_thickness_mm": 3.5, "active_thickness_mm": 6.5}


def run_race(out: Path, rows: list[dict[str, Any]], seeds: int, max_showers: int, methods: list[str],
             step_budget: int, check_budget: int, n_eval: int) -> None:  # fmt: skip
    """Cascade showers each method needs until its current answer is within 1 % (and 2 %) of the
    grid optimum (on the fitted surface), median over seeds; stored in out/race.jsonl, resumed."""
    from calopt.optimize import Real, Space, get_optimizer

    fit = fit_surface(rows)
    surf, best = fit["surface"], fit["optimum"]["J"]
    path = out / "race.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    done = {(r["method"], r["seed"]) for r in map(json.loads, lines)}
    obj = get_objective("energy_resolution", ENERGY_GEV)
    for method in methods:
        for seed in range(seeds):
            if (method, seed) in done:
                continue
            t0 = time.perf_counter()
            reached: dict[str, int | None] = {"1%": None, "2%": None}
            trace: list[tuple[int, dict[str, float], float]] = []

            def record(used: int, answer: dict[str, float], trace: list[Any] = trace,
                       reached: dict[str, int | None] = reached) -> bool:  # fmt: skip
                value = _true_value(surf, answer)
                trace.append((used, answer, value))
                for tag, tol in (("1%", 1.01), ("2%", 1.02)):
                    if reached[tag] is None and value <= best * tol:
                        reached[tag] = used
                return reached["1%"] is not None

            if method in ("bo", "cmaes"):
                space = Space([Real(k, *v) for k, v in BOX.items()], constraint=lambda p: _feasible(*p.values()))
                opt = get_optimizer(method, space, seed=seed)
                used = 0
                while used + n_eval <= max_showers:
                    (point,) = opt.ask(1)
                    d = design(*point.values())
                    sample = cascade_sample(d, obj.beam, n_eval, 1000 + seed)  # type: ignore[arg-type]
                    res = obj.of_sample(sample)
                    boot = np.std([obj.of_sample(sample, np.random.default_rng(b).integers(0, n_eval, n_eval))
                                   for b in range(50)], ddof=1)  # fmt: skip
                    cost = float(d.properties()["cost_kchf_per_module"])
                    opt.tell([point], [objective_of(res, cost)], [(100.0 * float(boot),)])
                    used += n_eval
                    if record(used, opt.recommend(1)[0]):
                        break
            else:
                st = DescentSettings(estimator=method, budget=max_showers, step_budget=step_budget,
                                     check_budget=check_budget, radius=0.15, seed=seed)  # fmt: skip
                for s in descend(problem(), design(*START.values()), st):
                    answer = s.proposal if s.accepted and s.proposal is not None else s.parameters
                    if record(s.showers, answer):
                        break
            row = {"method": method, "seed": seed, "showers_to_1pct": reached["1%"],
                   "showers_to_2pct": reached["2%"], "final": trace[-1] if trace else None, "trace": trace,
                   "seconds": time.perf_counter() - t0}  # fmt: skip
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            final = f"{trace[-1][2]:.3f}" if trace else "-"
            print(f"  {method:9s} seed {seed}: 1 %: {reached['1%'] or f'> {max_showers}'}, 2 %: "
                  f"{reached['2%'] or f'> {max_showers}'} showers; last J {final} ({row['seconds']:.0f} s)",
                  flush=True)  # fmt: skip
    table: dict[str, list[list[float]]] = {}
    for r in map(json.loads, path.read_text().splitlines()):
        table.setdefault(r["method"], []).append([r["showers_to_1pct"] or np.inf, r["showers_to_2pct"] or np.inf])
    print(f"\ncascade showers to come within 1 % (2 %) of the grid optimum J = {best:.3f} "
          f"(at a = {fit['optimum']['absorber_thickness_mm']:.2f}, s = {fit['optimum']['active_thickness_mm']:.2f} mm),"
          f" budget {max_showers}")  # fmt: skip
    for m, v in table.items():
        arr = np.array(v)
        print(f"  {m:9s} median {np.median(arr[:, 0]):>8} ({np.median(arr[:, 1]):>8}) over {len(v)} seeds: "
              f"{arr[:, 0].tolist()} ({arr[:, 1].tolist()})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=["grid", "bias", "race"])
    ap.add_argument("--out", type=Path, default=Path("bench-gradients"))
    ap.add_argument("--grid-showers", type=int, default=3000)
    ap.add_argument("--grid-size", type=int, default=9)
    ap.add_argument("--bias-budget", type=int, default=2000)
    ap.add_argument("--estimators", nargs="+", default=ESTIMATORS)
    ap.add_argument("--methods", nargs="+", default=["pathwise", "reweight", "lgso", "spsa", "bo", "cmaes"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--max-showers", type=int, default=30000)
    ap.add_argument("--step-budget", type=int, default=1000, help="showers per gradient estimate (race)")
    ap.add_argument("--check-budget", type=int, default=500, help="showers per point of a step's check (race)")
    ap.add_argument("--eval-showers", type=int, default=1000, help="showers per bo/cmaes evaluation (race)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run_grid(args.out, args.grid_showers, args.grid_size)
    fit = fit_surface(rows)
    print(f"grid: {sum(r['feasible'] for r in rows)} feasible designs of {len(rows)}, {args.grid_showers} showers each "
          f"({time.perf_counter() - t0:.0f} s); cubic sigma/E surface chi2/ndf = {fit['chi2_ndf']:.2f}")  # fmt: skip
    print(f"grid optimum: {fit['optimum']}")
    if args.phase == "bias":
        run_bias(args.out, rows, args.bias_budget, args.estimators)
    elif args.phase == "race":
        run_race(args.out, rows, args.seeds, args.max_showers, args.methods, args.step_budget, args.check_budget,
                 args.eval_showers)


if __name__ == "__main__":
    main()
