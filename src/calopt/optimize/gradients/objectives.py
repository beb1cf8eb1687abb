"""Objectives of a module point that gradients are taken of (all minimised).

``energy_resolution``: sigma/E of photons of one energy measured as a test beam measures it
(the r.m.s. over the mean of the 3 x 3-cell energy, calibrated, with photo-statistics;
:mod:`calopt.optimize.gradients.samples`). The r.m.s. rather than a Gaussian-core width: it is
a smooth function of the showers, so its finite differences and its derivative through a
surrogate estimate the same thing, and it keeps the leakage tails a physicist pays for.

``cost``: the module's cost [kCHF per module] from :meth:`ModuleSpec.properties` (assumed
prices, :mod:`calopt.detector.module`); exact, no showers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients.samples import Beam, CascadeSample

__all__ = ["OBJECTIVES", "Objective", "get_objective"]


@dataclass(frozen=True)
class Objective:
    """An objective: ``name``, ``unit``, and the ``beam`` its showers come from (None for an
    exact objective of the parameters alone)."""

    name: str
    unit: str
    beam: Beam | None

    def of_sample(self, sample: CascadeSample, idx: np.ndarray | None = None) -> float:
        """The objective measured on (the rows ``idx`` of) a cascade sample."""
        if self.name == "energy_resolution":
            e = sample.measured(idx)
            return float(np.std(e, ddof=1) / np.mean(e))
        raise CaloptInputError(f"objective {self.name!r} is not measured on showers")

    def exact(self, spec: ModuleSpec) -> float:
        """The objective of an exact objective (no showers)."""
        if self.name == "cost":
            return float(spec.properties()["cost_kchf_per_module"])
        raise CaloptInputError(f"objective {self.name!r} needs showers")

    def describe(self) -> str:
        if self.beam is None:
            return f"{self.name} [{self.unit}]"
        return f"{self.name} of {self.beam.energy_gev:g} GeV {self.beam.particle} [{self.unit}]"


OBJECTIVES = {"energy_resolution": "sigma/E of photons of --energy GeV (fraction)", "cost": "kCHF per module"}


def get_objective(name: str, energy_gev: float = 10.0, tilt_deg: float | None = None) -> Objective:
    """The objective ``name`` (:data:`OBJECTIVES`), at ``energy_gev`` where it takes showers."""
    if name == "energy_resolution":
        return Objective(name, "fraction", Beam(energy_gev=energy_gev, tilt_deg=tilt_deg))
    if name == "cost":
        return Objective(name, "kCHF", None)
    raise CaloptInputError(f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")
