"""Speed of the cascade Monte Carlo: ms per shower for 1, 10 and 100 GeV photons in each
technology, on one core (one process, no Dask).

    python benchmarks/bench_cascade.py [--n-scale 1.0]

The baseline printed first is a 1 GeV photon in lhcb-shashlik, measured in the same run; the
ratio column is relative to it. Target (issue #2): a 10 GeV photon in lhcb-shashlik in
<= 100 ms.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from calopt.detector import TECHNOLOGIES
from calopt.simulation.cascade import CascadeSimulator
from calopt.simulation.particles import Particles

N_SHOWERS = {1.0: 200, 10.0: 40, 100.0: 6}


def gun(e_gev: float, n: int, tech_name: str) -> Particles:
    tilt = np.radians(3.0) if tech_name.startswith("spacal") else 0.0
    d = np.array([np.tan(tilt), np.tan(tilt), 1.0])
    rng = np.random.default_rng(0)
    pitch = TECHNOLOGIES[tech_name].fine_pitch
    return Particles(
        np.full(n, 22),
        np.full(n, e_gev * 1000.0),
        np.tile(d / np.linalg.norm(d), (n, 1)),
        rng.uniform(-pitch / 2, pitch / 2, (n, 2)),
    )


def ms_per_shower(sim: CascadeSimulator, tech_name: str, e_gev: float, n: int) -> float:
    tech = TECHNOLOGIES[tech_name]
    p = gun(e_gev, n, tech_name)
    t0 = time.perf_counter()
    sim.simulate(p, tech, seed=1)
    return (time.perf_counter() - t0) / n * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-scale", type=float, default=1.0, help="scale the number of showers per point")
    args = ap.parse_args()
    sim = CascadeSimulator()
    for name in TECHNOLOGIES:  # compile and build tables outside the timing
        sim.simulate(gun(1.0, 2, name), TECHNOLOGIES[name], seed=0)
    base = ms_per_shower(sim, "lhcb-shashlik", 1.0, max(int(200 * args.n_scale), 5))
    print(f"baseline: 1 GeV photon in lhcb-shashlik: {base:.2f} ms/shower")
    print(f"{'technology':<15}{'E [GeV]':>8}{'showers':>9}{'ms/shower':>11}{'ratio':>8}")
    for name in TECHNOLOGIES:
        for e, n in N_SHOWERS.items():
            n = max(int(n * args.n_scale), 2)
            ms = ms_per_shower(sim, name, e, n)
            print(f"{name:<15}{e:>8g}{n:>9}{ms:>11.1f}{ms / base:>8.1f}")


if __name__ == "__main__":
    main()
