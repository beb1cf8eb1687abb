"""Conditions of a generative surrogate and their training range.

A shower is generated for the condition vector (all scaled to about [-1, 1]):

* ``2 (ln E - ln E_lo) / (ln E_hi - ln E_lo) - 1``: log of the total energy in the range;
* ``tan(theta_x) / tan_max``, ``tan(theta_y) / tan_max`` with ``tan(theta_x) = u_x / u_z``;
* ``x / (pitch / 2)``, ``y / (pitch / 2)``: the entry point relative to the window centre;
* a one-hot particle type when the model knows more than one species (e.g. gamma, e-).

The first five are the "5 initial parameters" of the LHCb GAN (seeds/002) and are also the
targets of the auxiliary regressor. :class:`ConditionSpace` stores the training range;
:meth:`ConditionSpace.check` refuses particles outside it (a surrogate never extrapolates
silently). Tolerances: 1e-6 relative on the energy bounds and 1e-6 on the angle and entry
point, i.e. only rounding, nothing physical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.errors import CaloptInputError
from calopt.simulation.particles import BY_PDG, Particles

__all__ = ["N_KINEMATIC", "ConditionSpace", "species_name"]

N_KINEMATIC = 5  # ln E, tan theta_x, tan theta_y, x, y
_TOL = 1e-6


def species_name(pdg: int) -> str:
    """A species' calopt name (``gamma``, ``e-``, ...), or its PDG code if calopt has none."""
    return BY_PDG[pdg].name if pdg in BY_PDG else str(pdg)


@dataclass(frozen=True)
class ConditionSpace:
    """Training range: energies [MeV], maximum polar angle [rad] (the scale of the tangents
    is tan(theta_max)), half the fine pitch [mm], and the PDG ids the model knows."""

    energy_range: tuple[float, float]
    theta_max: float
    half_pitch: float
    pdgs: tuple[int, ...]

    @property
    def n_cond(self) -> int:
        return N_KINEMATIC + (len(self.pdgs) if len(self.pdgs) > 1 else 0)

    @property
    def tan_scale(self) -> float:
        return max(math.tan(self.theta_max), 1e-3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy_range_mev": [float(self.energy_range[0]), float(self.energy_range[1])],
            "theta_max": float(self.theta_max),
            "half_pitch_mm": float(self.half_pitch),
            "pdgs": [int(p) for p in self.pdgs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConditionSpace:
        lo, hi = d["energy_range_mev"]
        return cls((float(lo), float(hi)), float(d["theta_max"]), float(d["half_pitch_mm"]), tuple(d["pdgs"]))

    @classmethod
    def from_data(
        cls, energies: np.ndarray, directions: np.ndarray, half_pitch: float, pdgs: np.ndarray
    ) -> ConditionSpace:
        """The range covered by training data (energies in MeV, unit directions)."""
        theta = np.arccos(np.clip(directions[:, 2], -1.0, 1.0))
        order = [p for p in (22, 11, -11) if p in set(pdgs.tolist())]
        order += sorted(set(pdgs.tolist()) - set(order))
        return cls((float(energies.min()), float(energies.max())), float(theta.max()), half_pitch, tuple(order))

    def species_names(self) -> str:
        return ", ".join(species_name(p) for p in self.pdgs)

    def check_species(self, pdg: np.ndarray) -> None:
        """Raise :class:`CaloptInputError` naming the first PDG id the model does not know."""
        pdg = np.asarray(pdg)
        known = np.isin(pdg, np.array(self.pdgs))
        if not known.all():
            name = species_name(int(pdg[~known][0]))
            raise CaloptInputError(f"surrogate trained on {self.species_names()} only, got particle {name}")

    def check(self, p: Particles) -> None:
        """Raise :class:`CaloptInputError` naming the first value outside the training range."""
        if not len(p):
            return
        self.check_species(p.pdg)
        lo, hi = self.energy_range
        e = p.energies
        bad_e = (e < lo * (1 - _TOL)) | (e > hi * (1 + _TOL))
        if bad_e.any():
            raise CaloptInputError(
                f"energy {e[bad_e][0] / 1000:.6g} GeV is outside the surrogate's training range "
                f"{lo / 1000:.6g}-{hi / 1000:.6g} GeV"
            )
        theta = np.arccos(np.clip(p.directions[:, 2], -1.0, 1.0))
        bad_t = theta > self.theta_max + _TOL
        if bad_t.any():
            raise CaloptInputError(
                f"angle {theta[bad_t][0]:.6g} rad to the module axis is outside the surrogate's training range "
                f"0-{self.theta_max:.6g} rad"
            )
        bad_p = np.abs(p.points).max(axis=1) > self.half_pitch * (1 + _TOL)
        if bad_p.any():
            x, y = p.points[bad_p][0]
            raise CaloptInputError(
                f"entry point ({x:.6g}, {y:.6g}) mm is outside the surrogate's training range "
                f"+-{self.half_pitch:.6g} mm (half the fine pitch)"
            )

    def check_run(self, particle_pdg: int, e_lo_mev: float, e_hi_mev: float, theta_max: float) -> None:
        """The same check for the settings of a run, before anything is simulated."""
        dirs = np.array([[0.0, 0.0, 1.0], [math.sin(theta_max), 0.0, math.cos(theta_max)]])
        self.check(Particles(np.full(2, particle_pdg), np.array([e_lo_mev, e_hi_mev]), dirs, np.zeros((2, 2))))

    def species_rows(self, cond: np.ndarray) -> np.ndarray:
        """(N,) index in ``pdgs`` of the species of every encoded condition vector."""
        n_sp = len(self.pdgs)
        if n_sp == 1:
            return np.zeros(len(cond), dtype=np.int64)
        return np.argmax(cond[:, N_KINEMATIC : N_KINEMATIC + n_sp], axis=1)

    def encode(self, energies: np.ndarray, directions: np.ndarray, points: np.ndarray, pdg: np.ndarray) -> np.ndarray:
        """(N, n_cond) float32 condition vectors (energies in MeV, unit directions, points in mm)."""
        lo, hi = self.energy_range
        span = max(math.log(hi / lo), 1e-6)
        le = 2.0 * (np.log(energies) - math.log(lo)) / span - 1.0
        uz = directions[:, 2]
        cols = [
            le,
            directions[:, 0] / uz / self.tan_scale,
            directions[:, 1] / uz / self.tan_scale,
            points[:, 0] / self.half_pitch,
            points[:, 1] / self.half_pitch,
        ]
        if len(self.pdgs) > 1:
            cols += [(pdg == q).astype(np.float64) for q in self.pdgs]
        return np.stack(cols, axis=1).astype(np.float32)
