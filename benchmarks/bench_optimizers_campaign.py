"""Optimisers on a real design space evaluated exhaustively: how many evaluations each needs to
reach the best design (or a design within 1 % of it).

1. every design of a small enumerated LHCb-like space (inner-region borders, inner cell size,
   middle-region width) is evaluated once with ``calopt optimize`` and the ``exhaustive``
   optimiser (a resumable campaign in ``--out``; about 15 minutes on 2 cores the first time);
2. each optimiser is then run many times (seeds) against that table of results, one evaluation
   at a time, until it proposes the best design; the table prints the median and mean number
   of evaluations, as a fraction of the space, and the ratio to random search.

    python benchmarks/bench_optimizers_campaign.py [--out DIR] [--workers 2] [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
from pathlib import Path

import numpy as np

from calopt.optimize import get_optimizer
from calopt.optimize.campaign import Campaign, run_campaign
from calopt.optimize.store import CampaignStore

SPACE = """
[[space.regions]]
name = "inner"
shape = "rectangle"
half_x = { min = 3, max = 8 }
half_y = { min = 3, max = 6 }
technology = "lhcb-shashlik"
cell_size = [40.4, 60.6]

[[space.regions]]
name = "middle"
shape = "rectangle"
half_x = [12, 16, 20]
half_y = 10
technology = "lhcb-shashlik"
cell_size = 60.6

[[space.regions]]
name = "outer"
shape = "rest"
technology = "lhcb-shashlik"
cell_size = 121.2
"""


def campaign(events: int, size: int) -> Campaign:
    text = f"""
name = "exhaustive-benchmark"
description = "every design of a 144-design LHCb-like space, for the optimiser benchmark"
[evaluate]
pileup = 0
events = {events}
n_resolution = 600
quick = true
seed = 1
[objective]
metrics = ["pi0_mass_width_mev"]
[[optimizers]]
name = "exhaustive"
evaluations = {size}
batch = 4
[space]
{SPACE}"""
    return Campaign.from_dict(tomllib.loads(text))


def evaluations_to_reach(name: str, space, table: dict[str, float], target: float, seed: int, options: dict) -> int:
    """Evaluations until the optimiser proposes a design with objective <= target."""
    opt = get_optimizer(name, space, seed=seed, **options)
    n = 0
    while True:
        points = opt.ask(1)
        if not points:
            return n
        n += 1
        value = table.get(space.key(points[0]))
        if value is not None and value <= target:
            return n
        opt.tell(points, [value])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/output/exhaustive-benchmark"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--within", type=float, default=0.0, help="relative tolerance on the best value (0.01: 1 %%)")
    args = ap.parse_args()

    size = campaign(args.events, 1).family.space.size
    c = campaign(args.events, size)
    space = c.family.space
    t0 = time.perf_counter()
    db = run_campaign(c, args.out, workers=args.workers, resume=(args.out / "campaign.sqlite").exists(),
                      progress=lambda m: print(m, flush=True))  # fmt: skip
    with CampaignStore(db) as st:
        trials = st.trials()
    table = {t.design_key: t.objectives[0] for t in trials if t.objectives is not None}
    values = np.array(sorted(table.values()))
    best = float(values[0])
    target = best * (1 + args.within)
    n_good = int((values <= target).sum())
    print(f"\n{len(trials)} designs evaluated ({len(trials) - len(table)} failed) in {time.perf_counter() - t0:.0f} s;"
          f" pi0 width: best {best:.3f} MeV, median {np.median(values):.3f}, worst {values[-1]:.3f};"
          f" {n_good} design(s) within the target {target:.3f} MeV")  # fmt: skip

    runs = {
        "random": {},
        "bo": {"n_initial": 6},
        "cmaes": {},
        "lgso": {},
    }
    results = {}
    for name, options in runs.items():
        t1 = time.perf_counter()
        counts = [evaluations_to_reach(name, space, table, target, seed, options) for seed in range(args.seeds)]
        results[name] = (counts, time.perf_counter() - t1)
    ref = statistics.mean(results["random"][0])
    print(f"\nevaluations to reach the best design ({args.seeds} seeds, space of {size}; "
          f"random search needs (N+1)/(k+1) = {(size + 1) / (n_good + 1):.1f} on average)")  # fmt: skip
    print(f"{'optimizer':<10}{'median':>8}{'mean':>8}{'max':>6}{'% of space':>12}{'vs random':>11}{'seconds':>9}")
    for name, (counts, secs) in results.items():
        mean = statistics.mean(counts)
        print(f"{name:<10}{statistics.median(counts):>8.1f}{mean:>8.1f}{max(counts):>6}"
              f"{100 * statistics.median(counts) / size:>11.1f}%{ref / mean:>10.2f}x{secs:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
