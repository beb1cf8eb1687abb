"""Where a technology's stochastic term comes from, for issue #18's target: the intrinsic
sampling fluctuations of the cascade showers that ``calopt evaluate`` reads out (the shower
library of the readout, per grid energy), and what photo-statistics add in quadrature.

    python studies/stochastic_term.py [TECHNOLOGY ...]

For each library energy E: the relative r.m.s. of the showers' visible energy (window total,
calibrated), the equivalent a = rms x sqrt(E), and a with the Poisson photo-statistics of the
technology's light yield added in quadrature (1/sqrt(light yield per GeV)). The mean over
1-50 GeV is the stochastic term the readout can give before noise, gain spread and light
collection (which act mostly on the constant term). The last column leaves out the library's
0-degree showers, which channel along the fibres of a SpaCal.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from calopt.detector.technologies import get_technology
from calopt.readout.readout import ReadoutSettings
from calopt.simulation.library import get_library


def main(names: list[str]) -> None:
    for name in names or ["lhcb-shashlik"]:
        tech = get_technology(name)
        lib = get_library(ReadoutSettings().library_spec(name, "em"))
        total = np.add.reduceat(lib.e, lib.o[:-1])
        rel = total / (lib.energies[lib.grid_e] * 1000.0) / lib.calibration
        pe = 1.0 / math.sqrt(tech.light_yield)
        print(f"{name}: {lib.spec.n_per_point} showers per (energy, angle) point, angles {lib.spec.angles} rad; "
              f"photo-statistics {100 * pe:.2f} %/sqrt(E) ({tech.light_yield:g} p.e./GeV)")  # fmt: skip
        terms = []
        for ie, e in enumerate(lib.energies):
            v = rel[lib.grid_e == ie]
            tilted = rel[(lib.grid_e == ie) & (lib.grid_a[:, 0] > 0) & (lib.grid_a[:, 1] > 0)]
            a = v.std(ddof=1) * math.sqrt(e)
            if 1.0 <= e <= 50.0:
                terms.append(a)
            print(f"  {e:6.1f} GeV: rms {100 * v.std(ddof=1):6.2f} %  a = {100 * a:5.2f} %/sqrt(E)  "
                  f"with photo-statistics {100 * math.hypot(a, pe):5.2f}; rms without 0 degrees "
                  f"{100 * tilted.std(ddof=1):6.2f} %")  # fmt: skip
        a = float(np.mean(terms))
        print(f"  mean over 1-50 GeV: a = {100 * a:.2f} %, with photo-statistics {100 * math.hypot(a, pe):.2f} %")


if __name__ == "__main__":
    main(sys.argv[1:])
