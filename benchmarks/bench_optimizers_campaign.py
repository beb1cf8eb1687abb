"""Optimisers on a real design space evaluated exhaustively, with its Monte-Carlo noise.

1. every design of a small enumerated LHCb-like space (inner-region borders, inner cell size,
   middle-region width: 144 designs) is evaluated with ``calopt optimize`` and the
   ``exhaustive`` optimiser, once per evaluation seed (``--tables``, default 3 independent
   seeds; resumable campaigns in ``--out/seed-S``; about 15 minutes per seed on 2 cores);
   the truth of a design is its mean over the seeds;
2. "to reach": each optimiser runs against the table of means, one evaluation at a time, until
   it proposes the best design (median and mean evaluations, and the ratio to random search);
3. "under noise": each optimiser runs with a budget of ``--budget`` evaluations in batches of
   ``--batch``; run s sees the table of evaluation seed s mod ``--tables`` (one seed for every
   design, as in a campaign: common random numbers; a design evaluated again sees the next
   seed's table), so the optimisers meet the real noise. Its answer is then confirmed: the
   ``--top-k`` designs it recommends are measured again with ``--factor`` times the crossings
   -- simulated as the truth plus Gaussian noise of the between-design spread of one seed
   (the spread between seeds once each seed's common shift is removed) / sqrt(factor) -- and
   the best confirmed one is its answer (without confirmation:
   the best value it observed, a campaign's answer without ``[confirm]``, searching with
   the evaluations a confirmation costs, so that every run has the same budget). Over
   ``--seeds`` seeds the table prints the probability that the answer is the truly best
   design, that it is within 1 % of it, and the evaluations used (search + confirmation
   cost in evaluations).

    python benchmarks/bench_optimizers_campaign.py [--out DIR] [--workers 2] [--tables 3] [--seeds 10]
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


def campaign(events: int, size: int, seed: int = 1) -> Campaign:
    text = f"""
name = "exhaustive-benchmark-seed-{seed}"
description = "every design of a 144-design LHCb-like space, for the optimiser benchmark"
[evaluate]
pileup = 0
events = {events}
n_resolution = 600
quick = true
seed = {seed}
[objective]
metrics = ["pi0_mass_width_mev"]
[[optimizers]]
name = "exhaustive"
evaluations = {size}
batch = 4
[space]
{SPACE}"""
    return Campaign.from_dict(tomllib.loads(text))


def tables(out: Path, events: int, n_tables: int, workers: int) -> list[dict[str, tuple[float, float | None]]]:
    """Per evaluation seed 1..n_tables, design key -> (objective, its error) of every design (the
    exhaustive campaign of that seed, run or resumed in ``out/seed-S``)."""
    size = campaign(events, 1).family.space.size
    out_tables = []
    for seed in range(1, n_tables + 1):
        c = campaign(events, size, seed)
        folder = out / f"seed-{seed}"
        db = run_campaign(c, folder, workers=workers, resume=(folder / "campaign.sqlite").exists(),
                          progress=lambda m: print(m, flush=True))  # fmt: skip
        with CampaignStore(db, read_only=True) as st:
            trials = st.trials()
        table = {}
        for t in trials:
            if t.objectives is None:
                continue
            err = t.objective_errors[0] if t.objective_errors else (t.metrics or {}).get("pi0_mass_width_mev_err")
            table[t.design_key] = (float(t.objectives[0]), None if err is None else float(err))
        out_tables.append(table)
    return out_tables


def noisy_run(name: str, options: dict, space, draws: list[dict], truth: dict[str, float], noise: float,
              budget: int, batch: int, seed: int, top_k: int, factor: float,
              confirm: bool) -> tuple[str | None, int]:  # fmt: skip
    """One noisy campaign of ``name``: (the design key it answers, evaluations used). At equal
    budget: a run without confirmation searches with the evaluations a confirmation would cost."""
    rng = np.random.default_rng([seed, 0xBE4C])
    opt = get_optimizer(name, space, seed=seed, **options)
    confirm_cost = int(np.ceil(top_k * factor))
    budget = budget if confirm else budget + confirm_cost
    seen: dict[str, list[tuple[float, float | None]]] = {}
    used = 0
    while used < budget:
        points = opt.ask(min(batch, budget - used))
        if not points:
            break
        values, errors = [], []
        for p in points:
            key = space.key(p)
            # as in a campaign: one seed for every design (common random numbers), the next seed
            # for a design evaluated again
            table = draws[(seed + opt.told_count(p)) % len(draws)]
            v, e = table.get(key, (None, None))
            values.append(v)
            errors.append(None if v is None or e is None else (e,))
            if v is not None:
                seen.setdefault(key, []).append((v, e))
        opt.tell(points, values, errors)
        used += len(points)
    if not seen:
        return None, used
    if not confirm:
        return min(seen, key=lambda k: min(v for v, _ in seen[k])), used
    keys = [space.key(p) for p in opt.recommend(top_k)]
    measured = {k: truth[k] + noise / np.sqrt(factor) * rng.standard_normal() for k in keys if k in truth}
    return min(measured, key=measured.__getitem__), used + confirm_cost


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
    ap.add_argument("--tables", type=int, default=3, help="independent evaluation seeds of every design")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--within", type=float, default=0.0, help="relative tolerance on the best value (0.01: 1 %%)")
    ap.add_argument("--budget", type=int, default=30, help="search evaluations per noisy run")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--factor", type=float, default=4.0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    draws = tables(args.out, args.events, args.tables, args.workers)
    space = campaign(args.events, 1).family.space
    size = space.size
    keys = set.intersection(*(set(t) for t in draws))
    truth = {k: float(np.mean([t[k][0] for t in draws])) for k in keys}
    sigma = [t[k][1] for t in draws for k in keys if t[k][1] is not None]
    V = np.array([[t[k][0] for t in draws] for k in sorted(keys)])  # (designs, seeds)
    spread = V.std(axis=1, ddof=1)
    shift = V.mean(axis=0) - V.mean()  # each seed's common shift (its events are every design's)
    residual = float(np.sqrt(np.mean((V - V.mean(axis=1, keepdims=True) - shift[None, :]) ** 2)
                             * V.shape[1] / (V.shape[1] - 1)))  # fmt: skip
    values = np.array(sorted(truth.values()))
    best = min(truth.values())
    target = best * (1 + args.within)
    n_good = int((values <= target).sum())
    print(f"\n{size} designs x {len(draws)} seeds evaluated in {time.perf_counter() - t0:.0f} s; pi0 width (mean of "
          f"the seeds): best {best:.3f} MeV, median {np.median(values):.3f}, worst {values[-1]:.3f}; spread between "
          f"seeds {np.median(spread):.3f} MeV (median; stored error {np.median(sigma):.3f}), of which a common shift "
          f"per seed of {np.std(shift, ddof=1):.3f} and {residual:.3f} between designs; "
          f"{int((values <= 1.01 * best).sum())} design(s) within 1 % of the best")  # fmt: skip

    # 2. evaluations to reach the best design of the table of means
    table = dict(truth)
    runs = {"random": {}, "bo": {"n_initial": 6}, "cmaes": {}, "lgso": {}}
    results = {}
    for name, options in runs.items():
        t1 = time.perf_counter()
        counts = [evaluations_to_reach(name, space, table, target, seed, options) for seed in range(args.seeds)]
        results[name] = (counts, time.perf_counter() - t1)
    ref = statistics.mean(results["random"][0])
    print(f"\nevaluations to reach the best design of the means ({args.seeds} seeds, space of {size}; "
          f"random search needs (N+1)/(k+1) = {(size + 1) / (n_good + 1):.1f} on average)")  # fmt: skip
    print(f"{'optimizer':<10}{'median':>8}{'mean':>8}{'max':>6}{'% of space':>12}{'vs random':>11}{'seconds':>9}")
    for name, (counts, secs) in results.items():
        mean = statistics.mean(counts)
        print(f"{name:<10}{statistics.median(counts):>8.1f}{mean:>8.1f}{max(counts):>6}"
              f"{100 * statistics.median(counts) / size:>11.1f}%{ref / mean:>10.2f}x{secs:>9.1f}")  # fmt: skip

    # 3. under noise, at equal budget
    noisy = [
        ("random", "random", {}, False),
        ("bo (noise ignored)", "bo", {"n_initial": 6, "noise": "ignore"}, False),
        ("bo (noise ignored) + confirm", "bo", {"n_initial": 6, "noise": "ignore"}, True),
        ("bo (noise-aware) + confirm", "bo", {"n_initial": 6, "noise": "observed"}, True),
        ("cmaes + confirm", "cmaes", {}, True),
        ("lgso + confirm", "lgso", {}, True),
    ]
    print(f"\nunder noise: {args.budget} evaluations (batches of {args.batch}) on one seed's table; confirmation of "
          f"the top {args.top_k} with {args.factor:g}x the crossings; {args.seeds} runs")  # fmt: skip
    print(f"{'optimizer':<32}{'P(best)':>9}{'P(1 %)':>9}{'evaluations':>13}{'seconds':>9}")
    for label, name, options, confirm in noisy:
        t1 = time.perf_counter()
        answers = [noisy_run(name, options, space, draws, truth, residual, args.budget, args.batch, seed, args.top_k,
                             args.factor, confirm) for seed in range(args.seeds)]  # fmt: skip
        # designs that differ only where no photon of the sample lands tie (common random numbers)
        p_best = np.mean([k is not None and truth[k] <= best + 1e-9 for k, _ in answers])
        p_close = np.mean([k is not None and truth[k] <= 1.01 * best for k, _ in answers])
        used = np.mean([u for _, u in answers])
        print(f"{label:<32}{p_best:>9.2f}{p_close:>9.2f}{used:>13.1f}{time.perf_counter() - t1:>9.1f}")


if __name__ == "__main__":
    main()
