"""Single-photon energy resolution of a design with and without the detector response of the
readout (light-collection non-uniformity, gain errors, coherent noise, spill-over), beside the
published figures (issue 18, part 1).

Usage: python studies/response_study.py [design] [n_photons] > table.md
"""

from __future__ import annotations

import sys

from calopt.detector.design import load_design
from calopt.pipeline import EvaluateSettings, measure_resolution, train_reconstruction
from calopt.readout.readout import Readout, ReadoutSettings
from calopt.validation.cascade import PUBLISHED

# the response effects that issue 18 adds, switched off: sampling, photo-statistics, incoherent
# noise and zero suppression remain
BARE = {"light_collection": False, "gain_spread": 0.0, "coherent_noise_mev": 0.0, "spillover": False}


def main() -> None:
    design = load_design(sys.argv[1] if len(sys.argv) > 1 else "lhcb-run3")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    print(f"| {design.name} | a [%/sqrt(GeV)] | b [%] | c [GeV] | position [mm] |")
    print("|---|---|---|---|---|")
    for label, readout in (("bare (sampling, photo-statistics, noise)", ReadoutSettings(**BARE)),
                           ("full response", ReadoutSettings())):  # fmt: skip
        st = EvaluateSettings(n_resolution=n, readout=readout)
        ro = Readout(design, st.readout)
        models, _ = train_reconstruction(ro, st)
        res = measure_resolution(ro, models, st)
        for region, r in [("all", res["xgb"]), *res["xgb"]["per_region"].items()]:
            fit = r["energy_fit"]
            a, b, c = (fit.get(k) for k in ("a", "b", "c"))
            fmt = lambda v, s=100: "-" if v is None else f"{v * s:.2f}"  # noqa: E731
            print(f"| {label}, {region} | {fmt(a)} | {fmt(b)} | {fmt(c, 1)} | {r['position_resolution_mm']:.2f} |")
    pub = PUBLISHED["lhcb-shashlik"]
    a_lo, a_hi = (100 * v for v in pub["a"])
    print(f"\npublished lhcb-shashlik: a = {a_lo:.1f}-{a_hi:.1f} %, b = {pub['b'] * 100:.1f} % ({pub['source']})")


if __name__ == "__main__":
    main()
