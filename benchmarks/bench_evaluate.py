"""Time of one ``evaluate`` of a new design once showers, regressors and events are cached, at
mu = 0 and at the Upgrade II reference pile-up mu = 40, in the same run.

    python benchmarks/bench_evaluate.py [--events 10000] [--events-40 3000] [--precision 0.1]

mu = 0: the first evaluation of lhcb-run3 fills the caches (shower libraries, regressors, signal
crossings) and is timed as the baseline; then a new design -- lhcb-run3 with its inner and
middle regions enlarged by one module, so that it reuses every cache -- is evaluated and timed.
Target (issue #4): <= 60 s on 2 cores for 10^4 signal crossings.

mu = 40: likewise upgrade2-like (caches filled, baseline) and upgrade2-like with its SpaCal
regions enlarged by one module (new), each with ``--precision`` on S/sqrt(S+B) (at most
``--events-40`` crossings). Targets (issue #18): the new design in <= 3 min on 2 cores at 10 %
precision; readout plus reconstruction <= 30 ms per crossing.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from calopt.detector.design import Design, design_from_dict, load_design
from calopt.pipeline import EvaluateSettings, EvaluationResult, evaluate, evaluate_to_precision


def enlarged(name: str, regions: int) -> Design:
    """Design ``name`` with its first ``regions`` regions one module larger on every side."""
    doc: dict[str, Any] = load_design(name).spec.model_dump(mode="json")
    doc["name"] = f"{name}-enlarged"
    for region in doc["regions"][:regions]:
        region["shape"]["half_x"] += 121.2
        region["shape"]["half_y"] += 121.2
    return design_from_dict(doc)


def timed(design: Design, st: EvaluateSettings, precision: float | None) -> tuple[float, EvaluationResult]:
    t0 = time.perf_counter()
    r = evaluate(design, st) if precision is None else evaluate_to_precision(design, st, precision)
    return time.perf_counter() - t0, r


def row(label: str, t: float, base: float, r: EvaluationResult) -> str:
    n = r.crossings.n_events
    per = 1000 * r.timing_seconds["crossings"] / n
    sig, err = r.metric("significance"), r.errors.get("significance")
    s = f"{sig:.2f} +- {err:.2f}" if sig is not None and err is not None else "not measured"
    return f"{label:<44}{t:>9.1f}{t / base:>8.2f}{n:>10}{per:>14.1f}  {s}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=10_000, help="crossings at mu = 0")
    ap.add_argument("--events-40", type=int, default=3_000, help="crossings generated at mu = 40 (the --precision cap)")
    ap.add_argument("--precision", type=float, default=0.1, help="relative error on S/sqrt(S+B) at mu = 40")
    args = ap.parse_args()
    print(f"{'evaluation':<44}{'seconds':>9}{'ratio':>8}{'crossings':>10}{'ms/crossing':>14}  S/sqrt(S+B)")
    st0 = EvaluateSettings(pileup=0.0, n_events=args.events)
    t_base0, r = timed(load_design("lhcb-run3"), st0, None)
    print(row("mu = 0: lhcb-run3, caches filled (baseline)", t_base0, t_base0, r), flush=True)
    t, r = timed(enlarged("lhcb-run3", 2), st0, None)
    print(row("mu = 0: new design, caches reused", t, t_base0, r), flush=True)
    st40 = EvaluateSettings(pileup=40.0, n_events=args.events_40)
    t_base40, r = timed(load_design("upgrade2-like"), st40, args.precision)
    print(row("mu = 40: upgrade2-like, caches filled", t_base40, t_base0, r), flush=True)
    t, r = timed(enlarged("upgrade2-like", 2), st40, args.precision)
    print(row(f"mu = 40: new design, precision {args.precision:g}", t, t_base0, r), flush=True)
    if r.precision is not None:
        print(f"mu = 40 precision: {r.precision}")
    print("ratio: against the mu = 0 baseline; ms/crossing: readout, reconstruction and candidates of the "
          "crossings (evaluate's timing_seconds['crossings'] / crossings)")  # fmt: skip


if __name__ == "__main__":
    main()
