"""Cascade samples of a module point, as a test beam takes them, with common random numbers.

A :class:`Beam` shoots particles of one energy at a module point (:class:`ModuleSpec`): along
the module axis, tilted by ``tilt_deg`` in x and y (SpaCal is measured at a small tilt because
particles along its fibres channel, as in :mod:`calopt.validation.cascade`), entry points
uniform over one readout cell. For each shower it records the visible energy in the 3 x 3
readout cells around the hit cell, the total in the window, and a standard normal for the
photo-statistics of that shower.

Every random number of shower i depends only on (seed, i): the cascade's per-shower seeds
(:func:`calopt.simulation.base.shower_seeds`), the entry point and the photo-statistics normal.
Two module points sampled with one seed therefore share their random numbers (common random
numbers), which is what makes finite differences on the cascade usable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.simulation.base import shower_seeds
from calopt.simulation.particles import MAX_ENERGY_GEV, Particles, species

__all__ = ["Beam", "CascadeSample", "cascade_sample", "clear_memo"]

# incidence tilt by structure [deg]: the values of calopt validate (validation/cascade.py TILT_DEG)
DEFAULT_TILT_DEG = {"layers": 0.0, "fibres": 3.0}


@dataclass(frozen=True)
class Beam:
    """Particles of ``energy_gev`` [GeV] at ``tilt_deg`` (None: 0 for layers, 3 for fibres)."""

    energy_gev: float = 10.0
    particle: str = "gamma"
    tilt_deg: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.energy_gev, int | float) and 0.05 <= self.energy_gev <= MAX_ENERGY_GEV):
            raise CaloptInputError(f"--energy {self.energy_gev!r} must be in [0.05, {MAX_ENERGY_GEV:g}] GeV")
        species(self.particle)
        if self.tilt_deg is not None and not (0.0 <= self.tilt_deg < 45.0):
            raise CaloptInputError(f"beam tilt {self.tilt_deg!r} must be in [0, 45) degrees")

    def tilt(self, spec: ModuleSpec) -> float:
        return DEFAULT_TILT_DEG[spec.structure] if self.tilt_deg is None else self.tilt_deg


@dataclass(frozen=True)
class CascadeSample:
    """Per-shower quantities of one cascade run [MeV of visible energy]."""

    cluster: np.ndarray  # (N,) visible energy in the 3 x 3 cells around the hit cell
    window: np.ndarray  # (N,) visible energy in the whole scoring window
    photo_normal: np.ndarray  # (N,) standard normals for the photo-statistics
    light_yield: float  # photo-electrons per GeV of deposited energy
    energy_mev: float
    cells: np.ndarray | None = None  # (N, 3, 3) visible energy of the 3 x 3 cells [.., y, x], hit cell in the middle
    impact_mm: np.ndarray | None = None  # (N, 2) entry point (x, y) from the hit-cell centre
    spec: ModuleSpec | None = None  # the module point sampled

    def __len__(self) -> int:
        return len(self.cluster)

    def measured(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Cluster energies calibrated by the sample's mean visible fraction of the full window,
        with Poisson photo-statistics (Gaussian, from the fixed normals) [MeV]."""
        return self._calibrated(self.cluster, idx)

    def measured_cells(self, idx: np.ndarray | None = None) -> np.ndarray:
        """(N, 3, 3) cell energies calibrated as :meth:`measured` (the cluster's photo-statistics
        factor on every cell) [MeV]; the input of a reconstruction from cells."""
        if self.cells is None:
            raise CaloptInputError("this cascade sample kept no cells")
        sel = slice(None) if idx is None else idx
        return self.cells[sel] * (self.measured(idx) / np.maximum(self.cluster[sel], 1e-12))[:, None, None]

    def _calibrated(self, visible: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        sel = slice(None) if idx is None else idx
        calib = float(np.mean(self.window[sel])) / self.energy_mev
        e = visible[sel] / calib
        n_pe = np.maximum(e / 1000.0 * self.light_yield, 1e-9)
        return e * (1.0 + self.photo_normal[sel] / np.sqrt(n_pe))


_MEMO: dict[tuple[str, Beam, int, int], CascadeSample] = {}


def clear_memo() -> None:
    """Forget the cascade samples kept in this process."""
    _MEMO.clear()


def _particles(spec: ModuleSpec, beam: Beam, n: int, seed: int) -> tuple[Particles, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xBEA4]))
    t = math.tan(math.radians(beam.tilt(spec)))
    d = np.array([t, t, 1.0]) / math.sqrt(1.0 + 2.0 * t * t)
    # entry points uniform over the cell whose lower-left corner is the window centre
    u = rng.random((n, 2))
    normals = rng.standard_normal(n)
    points = u * spec.cell_size_mm
    energies = np.full(n, beam.energy_gev * 1000.0)
    return Particles(np.full(n, species(beam.particle).pdg), energies, np.tile(d, (n, 1)), points), normals


def cascade_sample(spec: ModuleSpec, beam: Beam, n: int, seed: int) -> CascadeSample:
    """``n`` cascade showers of ``beam`` in ``spec`` with the random numbers of ``seed`` (kept in
    memory for the process, so an estimator and its check share them)."""
    key = (spec.technology().name + f"@{spec.cell_size_mm:.6f}", beam, int(n), int(seed))
    if key in _MEMO:
        return _MEMO[key]
    tech = spec.technology()
    k = round(spec.cell_size_mm / tech.fine_pitch)
    half = tech.grid // 2
    if half < k or half + 2 * k > tech.grid:
        raise CaloptInputError(f"cells of {spec.cell_size_mm:g} mm: 3 x 3 cells do not fit the scoring window of "
                               f"{tech.window_mm:g} mm")  # fmt: skip
    particles, normals = _particles(spec, beam, n, seed)
    sh = _simulator().simulate(particles, tech, int(seed), seeds=shower_seeds(int(seed), 0, n))
    e = sh.showers.sum(axis=1, dtype=np.float64)  # (N, H, W)
    lo, hi = half - k, half + 2 * k
    cells = e[:, lo:hi, lo:hi].reshape(n, 3, k, 3, k).sum(axis=(2, 4))  # [.., y, x] as the fine grid
    impact = particles.points - 0.5 * spec.cell_size_mm  # from the hit-cell centre
    sample = CascadeSample(e[:, lo:hi, lo:hi].sum(axis=(1, 2)), e.sum(axis=(1, 2)), normals, tech.light_yield,
                           beam.energy_gev * 1000.0, cells, impact, spec)  # fmt: skip
    _MEMO[key] = sample
    return sample


_SIM: list[Any] = []


def _simulator() -> Any:
    """One cascade simulator per process (it keeps its tables per technology)."""
    if not _SIM:
        from calopt.simulation.cascade import CascadeSimulator

        _SIM.append(CascadeSimulator())
    return _SIM[0]
