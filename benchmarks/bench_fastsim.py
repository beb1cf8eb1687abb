"""Speed of the fast simulations against the cascade: ms per shower of ``gflash`` (and of the
``library`` backend) at batch sizes 1, 100 and 10^4, for 10 GeV photons in lhcb-shashlik
(theta < 0.3 rad, entry points within +-pitch/2), single-threaded. The cascade is measured in
the same run on a few showers of the same gun.

    python benchmarks/bench_fastsim.py [--cascade-n 5] [--max-batch 10000]

Batch 1 is the mean over 20 calls (the first call, which prepares tables, is excluded for every
backend).
"""

from __future__ import annotations

import argparse
import time

from calopt.detector.technologies import get_technology
from calopt.simulation.base import get_simulator, shower_seeds
from calopt.simulation.runner import RunSpec, sample_particles

TECH = "lhcb-shashlik"


def ms_per_shower(backend: str, n: int, repeat: int = 1) -> float:
    sim = get_simulator(backend)
    tech = get_technology(TECH)
    spec = RunSpec(technology=TECH, particle="gamma", n=max(n, 1), seed=1, energy=10.0, theta_max=0.3)
    p = sample_particles(spec)
    seeds = shower_seeds(1, 0, len(p))
    sim.simulate(p[:1], tech, 0, seeds=seeds[:1])  # warm-up: tables, libraries, JIT
    t0 = time.perf_counter()
    for _ in range(repeat):
        sim.simulate(p, tech, 0, seeds=seeds)
    return 1000.0 * (time.perf_counter() - t0) / (repeat * len(p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cascade-n", type=int, default=5)
    ap.add_argument("--max-batch", type=int, default=10_000)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    cascade = ms_per_shower("cascade", args.cascade_n)
    print(f"10 GeV photons in {TECH}; cascade: {cascade:.1f} ms per shower ({args.cascade_n} showers)")
    print(f"{'backend':<10}{'batch':>8}{'ms/shower':>12}{'speed-up vs cascade':>22}")
    for backend in ("gflash", "library"):
        for batch in (1, 100, args.max_batch):
            ms = ms_per_shower(backend, batch, repeat=20 if batch == 1 else 1)
            print(f"{backend:<10}{batch:>8}{ms:>12.3f}{cascade / ms:>22.0f}")


if __name__ == "__main__":
    main()
