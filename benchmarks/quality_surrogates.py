"""Quick quality of surrogate checkpoints against cascade reference showers: response and
resolution (E_vis/E) per energy bin, mean high-level features, and the AUC of an XGBoost
classifier cascade-vs-surrogate on the same particles (see
calopt.simulation.surrogates._quick). The full evaluation is `calopt surrogate evaluate`.

    python benchmarks/quality_surrogates.py --ref REF.h5 [REF2.h5 ...] MODEL.pt [MODEL.pt ...] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from calopt.detector.technologies import get_technology
    from calopt.simulation.showers import read_showers
    from calopt.simulation.surrogates._quick import (
        FEATURES,
        classifier_auc,
        features,
        particles_of,
        response_table,
        section_times,
    )
    from calopt.simulation.surrogates.simulator import load_surrogate

    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--ref", nargs="+", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out: dict[str, dict] = {}
    for ref_path in args.ref:
        ref = read_showers(ref_path, diagnostics=False)
        tech = get_technology(str(ref.attrs["technology"]))
        fr = features(ref)
        for m in args.models:
            sim = load_surrogate(m)
            gen = sim.simulate(particles_of(ref), tech, args.seed)
            fg = features(gen)
            key = f"{m.name} on {ref_path.name}"
            out[key] = {
                "auc": classifier_auc(ref, gen),
                "response": response_table(ref, gen),
                "features_cascade": dict(zip(FEATURES, fr.mean(axis=0).round(4).tolist())),
                "features_surrogate": dict(zip(FEATURES, fg.mean(axis=0).round(4).tolist())),
                "section_times_cascade": section_times(ref).round(4).tolist(),
                "section_times_surrogate": section_times(gen).round(4).tolist(),
            }
            if not args.json:
                r = out[key]
                print(f"\n{key}: classifier AUC {r['auc']:.3f}")
                print("  E bin [GeV]   n   response cascade/surrogate   resolution cascade/surrogate")
                for row in r["response"]:
                    lo, hi = row["bin_gev"]
                    print(
                        f"  {lo:5.0f}-{hi:<5.0f} {row['n']:4d}     {row['cascade_response']:.4f} / "
                        f"{row['surrogate_response']:.4f}            {row['cascade_resolution']:.4f} / "
                        f"{row['surrogate_resolution']:.4f}"
                    )
                fc, fs = r["features_cascade"], r["features_surrogate"]
                print("  mean features cascade / surrogate: " + ", ".join(f"{k} {fc[k]}/{fs[k]}" for k in FEATURES))
                tc, ts = r["section_times_cascade"], r["section_times_surrogate"]
                print(f"  section times [ns] cascade {tc} surrogate {ts}")
    if args.json:
        print(json.dumps(out, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


if __name__ == "__main__":
    main()
