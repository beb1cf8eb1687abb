"""Objectives of a module point that gradients are taken of (all minimised).

``energy_resolution``: sigma/E of photons of one energy measured as a test beam measures it
(the r.m.s. over the mean of the 3 x 3-cell energy, calibrated, with photo-statistics;
:mod:`calopt.optimize.gradients.samples`). The r.m.s. rather than a Gaussian-core width: it is
a smooth function of the showers, so its finite differences and its derivative through a
surrogate estimate the same thing, and it keeps the leakage tails a physicist pays for.

``energy_resolution_ml``: sigma/E likewise (r.m.s. over mean), of the energy that a
design-conditioned regressor reconstructs from the 3 x 3 cells
(:mod:`calopt.optimize.gradients.reconstruction`): it recovers part of the leakage that a cell
sum loses, as a physicist's tuned reconstruction does, so designs are compared at their best
reconstruction rather than at one fixed recipe.

``position_resolution``: the r.m.s. per coordinate [mm] of the regressor's entry point against
the true one: what the cell size, the Moliere radius and the incidence tilt allow.

``cost``: the module's cost [kCHF per module] from :meth:`ModuleSpec.properties` (assumed
prices, :mod:`calopt.detector.module`); exact, no showers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients.samples import Beam, CascadeSample

__all__ = ["OBJECTIVES", "RECONSTRUCTED", "Objective", "get_objective"]


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
        if self.name in RECONSTRUCTED:
            import torch

            assert sample.spec is not None and sample.impact_mm is not None and self.beam is not None
            reco = self.reconstructor(sample.spec)
            sel = slice(None) if idx is None else idx
            with torch.no_grad():
                energy, pos = reco(torch.as_tensor(sample.measured_cells(idx)), reco.features(sample.spec.parameters()))
            return float(self.of_reconstructed(energy, pos, torch.as_tensor(sample.impact_mm[sel])))
        raise CaloptInputError(f"objective {self.name!r} is not measured on showers")

    def reconstructor(self, spec: ModuleSpec) -> Any:
        """The design-conditioned regressor of this objective's beam for ``spec``."""
        from calopt.optimize.gradients.reconstruction import reconstructor

        assert self.beam is not None
        return reconstructor(spec, self.beam.energy_gev * 1000.0, self.beam.tilt(spec))

    def of_reconstructed(self, energy: Any, pos: Any, true_pos: Any) -> Any:
        """The objective of reconstructed energies and entry points (numpy or torch; torch keeps
        the graph, for the pathwise estimator)."""
        if self.name == "energy_resolution_ml":
            return energy.std() / energy.mean()
        if self.name == "position_resolution":
            return (((pos - true_pos) ** 2).mean() ** 0.5)
        raise CaloptInputError(f"objective {self.name!r} is not reconstructed by the regressor")

    def exact(self, spec: ModuleSpec) -> float:
        """The objective of an exact objective (no showers)."""
        if self.name == "cost":
            return float(spec.properties()["cost_kchf_per_module"])
        raise CaloptInputError(f"objective {self.name!r} needs showers")

    def describe(self) -> str:
        if self.beam is None:
            return f"{self.name} [{self.unit}]"
        return f"{self.name} of {self.beam.energy_gev:g} GeV {self.beam.particle} [{self.unit}]"


OBJECTIVES = {
    "energy_resolution": "sigma/E of photons of --energy GeV (fraction), calibrated 3x3-cell sum",
    "energy_resolution_ml": "sigma/E of photons of --energy GeV (fraction), design-conditioned regressor",
    "position_resolution": "r.m.s. of the regressor's entry point per coordinate [mm]",
    "cost": "kCHF per module",
}
RECONSTRUCTED = ("energy_resolution_ml", "position_resolution")
"""Objectives measured through the design-conditioned reconstruction."""


def get_objective(name: str, energy_gev: float = 10.0, tilt_deg: float | None = None) -> Objective:
    """The objective ``name`` (:data:`OBJECTIVES`), at ``energy_gev`` where it takes showers."""
    if name in ("energy_resolution", "energy_resolution_ml"):
        return Objective(name, "fraction", Beam(energy_gev=energy_gev, tilt_deg=tilt_deg))
    if name == "position_resolution":
        return Objective(name, "mm", Beam(energy_gev=energy_gev, tilt_deg=tilt_deg))
    if name == "cost":
        return Objective(name, "kCHF", None)
    raise CaloptInputError(f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")
