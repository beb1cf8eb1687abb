"""Speed of the waveform simulation: waveforms per second (and the time for 1e5) per technology,
digitised at one rate (5 GS/s) and at five (0.4-10 GS/s), after the cascade light is made.

    python benchmarks/bench_waveforms.py [--n 100000]
"""

from __future__ import annotations

import argparse
import time

from calopt.readout.waveforms import PULSE_MODELS, cell_light, simulate_waveforms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000, help="waveforms per technology")
    args = ap.parse_args()
    print(f"{'technology':<15}{'rates':>6}{'waveforms':>11}{'s':>8}{'waveforms/s':>13}")
    for tech in PULSE_MODELS:
        light = cell_light(tech, 10.0, 40, seed=0)
        for rates in ((5.0,), (0.4, 1.0, 2.5, 5.0, 10.0)):
            t0 = time.perf_counter()
            simulate_waveforms([light], args.n, rates, seed=1)
            dt = time.perf_counter() - t0
            print(f"{tech:<15}{len(rates):>6}{args.n:>11}{dt:>8.1f}{args.n / dt:>13.0f}")


if __name__ == "__main__":
    main()
