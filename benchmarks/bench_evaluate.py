"""Time of one ``evaluate`` of a new design once showers, regressors and events are cached.

    python benchmarks/bench_evaluate.py [--events 10000] [--pileup 0]

The first evaluation of lhcb-run3 fills the caches (shower libraries, regressors, signal
crossings) and is timed as the baseline; then a new design -- lhcb-run3 with its inner and
middle regions enlarged by one module, so that it reuses every cache -- is evaluated and timed.
Target (issue #4): <= 60 s on 2 cores for 10^4 signal crossings at mu = 0 (the LHCb studies
quote 20 core-hours per option).
"""

from __future__ import annotations

import argparse
import time

from calopt.detector.design import design_from_dict, load_design
from calopt.pipeline import EvaluateSettings, evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--pileup", type=float, default=0.0)
    args = ap.parse_args()
    st = EvaluateSettings(pileup=args.pileup, n_events=args.events)
    t0 = time.perf_counter()
    first = evaluate(load_design("lhcb-run3"), st)
    t_first = time.perf_counter() - t0
    doc = load_design("lhcb-run3").spec.model_dump(mode="json")
    doc["name"] = "lhcb-run3-enlarged"
    for region, grow in zip(doc["regions"][:2], (121.2, 121.2)):
        region["shape"]["half_x"] += grow
        region["shape"]["half_y"] += grow
    t0 = time.perf_counter()
    new = evaluate(design_from_dict(doc), st)
    t_new = time.perf_counter() - t0
    print(f"{'evaluation':<42}{'seconds':>9}{'ratio':>8}  pi0 width [MeV]  channels")
    rows = (("lhcb-run3, caches filled (baseline)", t_first, first), ("new design, caches reused", t_new, new))
    for label, t, r in rows:
        print(f"{label:<42}{t:>9.1f}{t / t_first:>8.2f}  {r.metric('pi0_mass_width_mev')}  {r.metric('channels')}")
    per = 1000 * new.timing_seconds["crossings"] / args.events
    print(f"per crossing: {per:.2f} ms; {args.events} crossings, mu = {args.pileup:g}")


if __name__ == "__main__":
    main()
