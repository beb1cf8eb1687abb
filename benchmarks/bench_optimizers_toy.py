"""Toy benchmark of the optimisers of calopt.optimize.

For every toy problem (calopt.optimize.toy_problems) and optimiser, over several seeds, ask in
batches of ``--batch`` points up to a budget and report

* single objective: the number of evaluations until the noise-free value of a proposed point is
  within the tolerance of the optimum (median over seeds; "-" = not reached in the budget, counted
  as the budget in the median), how many seeds reached it, and the ratio of the median to random
  search's;
* two objectives: the hypervolume of the noise-free values of all proposed points, as a fraction
  of the true front's, after the budget (median over seeds), and the ratio to random search's.

Run:  PYTHONPATH=src python benchmarks/bench_optimizers_toy.py [--seeds 5] [--batch 4]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from calopt.optimize import get_optimizer, hypervolume_2d
from calopt.optimize.toy_problems import ToyProblem, branin, mixed_finite, noisy_quadratic, zdt1

# problem, tolerance on the noise-free value, budget, optimisers
CASES = [
    (mixed_finite(), 1e-9, 666, ["random", "exhaustive", "bo", "cmaes", "lgso"]),
    (noisy_quadratic(), 0.01, 150, ["random", "bo", "cmaes", "lgso"]),
    (branin(), 0.05, 200, ["random", "bo", "cmaes", "lgso"]),
    (zdt1(), None, 60, ["random", "mobo"]),
]


def run(problem: ToyProblem, name: str, seed: int, budget: int, batch: int, tol: float | None) -> float:
    """Evaluations to reach the tolerance (inf if never), or the final hypervolume fraction."""
    opt = get_optimizer(name, problem.space, seed=seed, n_objectives=problem.n_objectives)
    rng = np.random.default_rng(1000 + seed)
    n, truths = 0, []
    while n < budget:
        pts = opt.ask(min(batch, budget - n))
        if not pts:
            break
        opt.tell(pts, [problem.evaluate(p, rng) for p in pts])
        for p in pts:
            n += 1
            truths.append(problem.truth(p))
            if tol is not None and truths[-1] <= problem.best + tol:
                return n
    if tol is None:
        return hypervolume_2d(np.array(truths), problem.ref) / problem.best
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    for problem, tol, budget, names in CASES:
        size = f", {problem.space.size} points" if problem.space.is_finite else ""
        what = f"evaluations to within {tol:g} of the optimum" if tol is not None else "hypervolume / true"
        print(f"\n{problem.name} (budget {budget}, batch {args.batch}{size}): {what}, median over {args.seeds} seeds")
        ref = None
        for name in names:
            t0 = time.perf_counter()
            res = np.array([run(problem, name, s, budget, args.batch, tol) for s in range(args.seeds)])
            dt = (time.perf_counter() - t0) / args.seeds
            if tol is not None:
                med = float(np.median(np.minimum(res, budget)))
                reached = int(np.isfinite(res).sum())
                ref = med if name == "random" else ref
                ratio = f"{med / ref:5.2f}" if ref else "  -  "
                runs = " ".join("-" if not np.isfinite(r) else str(int(r)) for r in res)
                print(
                    f"  {name:10s} median {med:6.1f}  reached {reached}/{args.seeds}  ratio to random {ratio}"
                    f"  [{runs}]  {dt:5.1f} s/run"
                )
            else:
                med = float(np.median(res))
                ref = med if name == "random" else ref
                ratio = f"{med / ref:5.3f}" if ref else "  -  "
                runs = " ".join(f"{r:.3f}" for r in res)
                print(f"  {name:10s} median {med:6.3f}  ratio to random {ratio}  [{runs}]  {dt:5.1f} s/run")


if __name__ == "__main__":
    main()
