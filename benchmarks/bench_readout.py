"""Speed of the readout: ms per crossing for a design at mu = 0 and mu = 20, with showers from
the cached shower libraries (built on the first run, several minutes; then reused).

    python benchmarks/bench_readout.py [--n 50]

Events are B0 -> J/psi pi0 crossings from Pythia 8 generated in the same run. The baseline is
the mu = 0 readout of lhcb-run3; the ratio column is relative to it. Target (issue #3): one
mu = 20 crossing for a new design in well under 50 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from calopt.detector.design import load_design
from calopt.generation import EventSpec, generate_events, read_events
from calopt.readout import Readout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50, help="crossings per pile-up point")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    events = {}
    for mu in (0.0, 20.0):
        t0 = time.perf_counter()
        path = generate_events(EventSpec(process="b0-jpsipi0", n=args.n, pileup=mu, seed=1), tmp / f"mu{mu:g}.h5")
        events[mu] = read_events(path)
        print(f"generated {args.n} crossings at mu = {mu:g} in {time.perf_counter() - t0:.1f} s "
              f"({events[mu].n_particles / args.n:.0f} particles per crossing)")  # fmt: skip
    for name in ("lhcb-run3", "upgrade2-like"):  # build or load the libraries outside the timing
        ro = Readout(load_design(name))
        ro.read_crossing(events[20.0], 0, np.random.default_rng(0))
    libraries = ro.libraries
    base = None
    print(f"{'design':<15}{'mu':>5}{'setup [ms]':>12}{'ms/crossing':>13}{'crossings/s':>13}{'hits':>8}{'ratio':>8}")
    for name in ("lhcb-run3", "upgrade2-like"):
        for mu, ev in events.items():
            t0 = time.perf_counter()
            ro = Readout(load_design(name), libraries=dict(libraries))  # a new design, cached showers
            _ = ro.cells.base, ro.cells.table
            setup = (time.perf_counter() - t0) * 1000
            rng = np.random.default_rng(1)
            t0 = time.perf_counter()
            hits = 0
            for i in range(len(ev)):
                hits += len(ro.read_crossing(ev, i, rng).channel)
            ms = (time.perf_counter() - t0) / len(ev) * 1000
            base = base or ms
            print(
                f"{name:<15}{mu:>5g}{setup:>12.1f}{ms:>13.2f}{1000 / ms:>13.1f}{hits / len(ev):>8.0f}{ms / base:>8.2f}"
            )


if __name__ == "__main__":
    main()
