"""Speed of the generative surrogates: ms per shower at batch 1, 100, 1000 and 10^4 on this
CPU for each model type, against the cascade's ms per 10 GeV photon measured in the same run,
and the speed-up at batch 10^4 by energy (the cascade's time grows about linearly with the
energy, a surrogate's hardly).

    python benchmarks/bench_surrogates.py [MODEL.pt ...] [--threads N] [--energies 1 10 100]

Without arguments: the shipped default and the checkpoints found in benchmarks/models/ (if
any). Target: <= 0.25 ms per shower at batch >= 1000 on one core for the shipped default.
Also printed: the speed-up over the cascade at each scanned energy and over a log-uniform
spectrum between them (with the default scan, the 1-100 GeV of the shipped model's training).
Times are the best of several runs: the first touch of fresh memory is slow on some machines.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

REPEAT_1E4 = 5  # best of: on a shared machine one run in a few can be 30-50 % slow
REPEAT_CASCADE = 3  # the cascade's best of too, so that its noise does not inflate the speed-ups


def gun(n: int, pdg: int = 22, energy_mev: float = 10_000.0, seed: int = 0):
    from calopt.simulation.particles import Particles

    rng = np.random.default_rng(seed)
    th = rng.uniform(0, 0.2, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    d = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=1)
    return Particles(np.full(n, pdg), np.full(n, energy_mev), d, rng.uniform(-10, 10, (n, 2)))


def ms_per_shower(sim, tech, n: int, repeat: int, energy_mev: float = 10_000.0) -> float:
    p = gun(n, energy_mev=energy_mev)
    sim.simulate(p, tech, 0)  # warm-up
    best = float("inf")
    for r in range(repeat):
        t0 = time.perf_counter()
        sim.simulate(p, tech, r + 1)
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best / n


def main() -> None:
    import torch

    from calopt.detector.technologies import get_technology
    from calopt.simulation.cascade import CascadeSimulator
    from calopt.simulation.surrogates.simulator import DEFAULT_MODEL, load_surrogate

    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cascade-n", type=int, default=20)
    ap.add_argument("--energies", type=float, nargs="*", default=[1.0, 10.0, 100.0], help="GeV (speed-up scan)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tech = get_technology("lhcb-shashlik")
    models = args.models or [DEFAULT_MODEL, *sorted((Path(__file__).parent / "models").glob("*.pt"))]
    cas = CascadeSimulator()
    cas.simulate(gun(2), tech, 0)  # tables and JIT

    def cascade_at(e_gev: float) -> float:
        """ms per shower, the best of REPEAT_CASCADE runs like the surrogates' best of several."""
        n = max(3, round(args.cascade_n * min(1.0, 10.0 / e_gev)))  # fewer of the slow high-energy ones
        best = float("inf")
        for r in range(REPEAT_CASCADE):
            t0 = time.perf_counter()
            cas.simulate(gun(n, energy_mev=1000.0 * e_gev), tech, r + 1)
            best = min(best, time.perf_counter() - t0)
        return 1000.0 * best / n

    cascade_ms = cascade_at(10.0)
    scan = {e: (cascade_ms if e == 10.0 else cascade_at(e)) for e in args.energies}
    print(f"torch threads: {args.threads}; cascade: {cascade_ms:.1f} ms per 10 GeV photon "
          f"(best of {REPEAT_CASCADE} runs of {args.cascade_n} showers)")  # fmt: skip
    print("cascade by energy: " + ", ".join(f"{e:g} GeV {t:.1f} ms" for e, t in scan.items()))
    print(f"{'model':38s} {'type':7s} {'batch 1':>9s} {'batch 100':>10s} {'batch 1e3':>10s} {'batch 1e4':>10s} "
          f"{'speed-up':>9s}")  # fmt: skip
    for path in models:
        if not path.is_file():
            print(f"{path}: missing")
            continue
        bench_model(load_surrogate(path), path, tech, cascade_ms, scan)


def bench_model(sim, path: Path, tech, cascade_ms: float, scan: dict[float, float]) -> None:
    """The timing lines of one model."""
    t1 = ms_per_shower(sim, tech, 1, 50)
    t100 = ms_per_shower(sim, tech, 100, 10)
    t1e3 = ms_per_shower(sim, tech, 1000, REPEAT_1E4)
    t1e4 = ms_per_shower(sim, tech, 10_000, REPEAT_1E4)
    print(
        f"{path.name:38s} {sim.model_type.name:7s} {t1:8.3f}  {t100:9.4f}  {t1e3:9.4f}  {t1e4:9.4f}  "
        f"{cascade_ms / t1e4:8.0f}x   (ms per shower)"
    )
    by_e = {e: (t1e4 if e == 10.0 else ms_per_shower(sim, tech, 10_000, REPEAT_1E4, 1000.0 * e)) for e in scan}
    speedup = {e: scan[e] / t for e, t in by_e.items()}
    print(f"{'':38s} speed-up at batch 1e4 by energy: "
          + ", ".join(f"{e:g} GeV {speedup[e]:.0f}x ({t:.3f} ms)" for e, t in by_e.items()))  # fmt: skip
    print(f"{'':38s} 1000x from {crossing(speedup, 1000.0)}")
    if len(scan) > 1:
        lo, hi = min(scan), max(scan)
        print(f"{'':38s} over a log-uniform spectrum of {lo:g}-{hi:g} GeV: "
              f"{log_uniform_mean(scan) / log_uniform_mean(by_e):.0f}x")  # fmt: skip


def log_uniform_mean(t: dict[float, float], steps: int = 2000) -> float:
    """The mean of a time ``t(E)`` over energies log-uniform between the first and the last
    scanned energy, ``t`` interpolated in log-log between the scanned points."""
    e = np.log(sorted(t))
    grid = np.linspace(e[0], e[-1], steps)
    return float(np.exp(np.interp(grid, e, np.log([t[k] for k in sorted(t)]))).mean())


def crossing(speedup: dict[float, float], target: float) -> str:
    """The energy at which the speed-up reaches ``target``, interpolated in log-log between the
    scanned energies (the cascade's time is close to a power of the energy, a surrogate's
    nearly constant)."""
    pts = sorted(speedup.items())
    if pts[0][1] >= target:
        return f"below {pts[0][0]:g} GeV"
    for (e0, s0), (e1, s1) in itertools.pairwise(pts):
        if s0 < target <= s1:
            f = np.log(target / s0) / np.log(s1 / s0)
            return f"{np.exp(np.log(e0) + f * np.log(e1 / e0)):.0f} GeV"
    return f"beyond {pts[-1][0]:g} GeV"


if __name__ == "__main__":
    main()
