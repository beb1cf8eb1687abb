"""The shower library: cascade showers simulated once per technology, reused for every design.

A library holds, for one technology and one class of particles (``em``: photons, which also
stand for electrons; ``hadron``: pi-, which also stands for other hadrons; ``muon``), showers
on a grid of energies and incidence angles (theta_x, theta_y >= 0; negative angles are
served by mirroring the shower) with ``n_per_point`` random entry points each. It is stored
as a ``calopt-showers`` file with the extra datasets ``grid_energy_index`` and
``grid_angle_index`` and cached on disk under a key made of its settings.

A lookup picks, for a particle of energy E, direction (theta_x, theta_y) and entry offset
(dx, dy) from the nearest fine-grid corner, the grid point nearest in log E and angle, then
among its showers the one with the nearest entry offset (after mirroring), and rescales it
by E / E_grid. The library also measures its technology's EM calibration: the mean visible
fraction of its photon showers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calopt.detector.technologies import get_technology
from calopt.errors import CaloptInputError
from calopt.files import cache_lock
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import Showers, concatenate, read_showers, write_showers

__all__ = ["CLASSES", "LibrarySpec", "ShowerLibrary", "cache_dir", "get_library", "species_class"]

CLASSES = {"em": "gamma", "hadron": "pi-", "muon": "mu-"}


def species_class(pdg: np.ndarray) -> np.ndarray:
    """(N,) library class per particle: 0 em, 1 hadron, 2 muon."""
    a = np.abs(np.asarray(pdg))
    return np.where(np.isin(a, [22, 11]), 0, np.where(a == 13, 2, 1))


def cache_dir() -> Path:
    """The cache folder: $CALOPT_CACHE, else ~/.cache/calopt."""
    return Path(os.environ.get("CALOPT_CACHE", Path.home() / ".cache" / "calopt"))


@dataclass(frozen=True)
class LibrarySpec:
    """Grid of a shower library: energies [GeV], angles [rad] per axis, showers per point."""

    technology: str
    particle_class: str = "em"
    energies: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    angles: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    n_per_point: int = 8
    seed: int = 0

    def validate(self) -> None:
        get_technology(self.technology)
        if self.particle_class not in CLASSES:
            raise CaloptInputError(f"unknown library class {self.particle_class!r}; expected one of {list(CLASSES)}")
        if not self.energies or min(self.energies) <= 0 or list(self.energies) != sorted(self.energies):
            raise CaloptInputError("library energies must be positive and increasing")
        if not self.angles or min(self.angles) < 0 or max(self.angles) >= math.pi / 2:
            raise CaloptInputError("library angles must lie in [0, pi/2)")
        if self.n_per_point <= 0:
            raise CaloptInputError("library: n_per_point must be positive")

    def key(self) -> str:
        doc = json.dumps(asdict(self), sort_keys=True)
        from calopt import __version__

        return hashlib.sha256(f"{doc}|{__version__}".encode()).hexdigest()[:16]


def _grid_particles(spec: LibrarySpec, rng: np.random.Generator) -> tuple[Particles, np.ndarray, np.ndarray]:
    tech = get_technology(spec.technology)
    sp = species(CLASSES[spec.particle_class])
    mesh = np.meshgrid(
        np.arange(len(spec.energies)), np.arange(len(spec.angles)), np.arange(len(spec.angles)), indexing="ij"
    )
    ie, ia, ja = (np.repeat(a.ravel(), spec.n_per_point) for a in mesh)
    n = len(ie)
    tx = np.tan(np.asarray(spec.angles)[ia])
    ty = np.tan(np.asarray(spec.angles)[ja])
    d = np.stack([tx, ty, np.ones(n)], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    e = np.asarray(spec.energies)[ie] * 1000.0 + (sp.mass if sp.mass > 0 else 0.0)
    pts = rng.uniform(-tech.fine_pitch / 2, tech.fine_pitch / 2, size=(n, 2))
    return Particles(np.full(n, sp.pdg), e, d, pts), ie, np.stack([ia, ja], axis=1)


def build_library(spec: LibrarySpec, path: Path, *, progress: Callable[[int, int], None] | None = None) -> Path:
    """Simulate the library with the cascade MC (largest energies first, so that progress is
    honest) and write it to ``path``. Shower i has its own seed, so the order does not matter."""
    from calopt.simulation.cascade import CascadeSimulator
    from calopt.simulation.cascade.simulator import shower_seeds

    spec.validate()
    tech = get_technology(spec.technology)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x11B]))
    particles, ie, iang = _grid_particles(spec, rng)
    seeds = shower_seeds(spec.seed, 0, len(particles))
    sim = CascadeSimulator()
    order = np.argsort(-particles.energies, kind="stable")
    chunks = [order[k : k + 64] for k in range(0, len(order), 64)]
    parts = []
    for k, idx in enumerate(chunks):
        parts.append(sim.simulate(particles[idx], tech, spec.seed, seeds=seeds[idx]))
        if progress is not None:
            progress(min((k + 1) * 64, len(order)), len(order))
    inv = np.argsort(np.concatenate(chunks))
    sh = concatenate(parts)
    sh = Showers(
        showers=sh.showers[inv],
        times=None if sh.times is None else sh.times[inv],
        incident_energies=sh.incident_energies[inv],
        momenta=sh.momenta[inv],
        points=sh.points[inv],
        pdg=sh.pdg[inv],
        attrs=sh.attrs | {"library": json.dumps(asdict(spec))},
        diagnostics={"grid_energy_index": ie.astype(np.int32), "grid_angle_index": iang.astype(np.int32)},
    )
    write_showers(path, sh)
    return path


@dataclass
class ShowerLibrary:
    """A loaded library in a sparse form for fast placement.

    For shower i, its deposits are ``s[o[i]:o[i+1]]`` (section), ``a``/``b`` (row/column in the
    window), ``e`` (visible MeV) and ``t`` (ns), with ``o`` the offsets.
    """

    spec: LibrarySpec
    energies: np.ndarray  # (G,) GeV
    angles: np.ndarray  # (A,) rad
    grid_e: np.ndarray  # (N,) energy index per shower
    grid_a: np.ndarray  # (N, 2) angle indices per shower
    points: np.ndarray  # (N, 2) entry offsets [mm]
    o: np.ndarray
    s: np.ndarray
    a: np.ndarray
    b: np.ndarray
    e: np.ndarray
    t: np.ndarray
    grid: int
    pitch: float
    calibration: float
    time_offset: float
    by_point: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 0), dtype=np.int64), repr=False)

    @classmethod
    def load(cls, path: Path) -> ShowerLibrary:
        sh = read_showers(path)
        spec_doc = json.loads(sh.attrs["library"])
        spec_doc["energies"] = tuple(spec_doc["energies"])
        spec_doc["angles"] = tuple(spec_doc["angles"])
        spec = LibrarySpec(**spec_doc)
        n, _, h, _ = sh.showers.shape
        nz = np.nonzero(sh.showers)
        counts = np.bincount(nz[0], minlength=n)
        o = np.concatenate([[0], np.cumsum(counts)])
        times = sh.times if sh.times is not None else np.zeros_like(sh.showers)
        visible = sh.showers.reshape(n, -1).sum(axis=1) / (sh.incident_energies[:, 0] - _mass(spec))
        calib = float(np.mean(visible)) if spec.particle_class == "em" else float("nan")
        # time calibration: the energy-weighted delay, after the particle crossed the front face,
        # of the deposits in the four fine cells around the shower axis (where a cluster's seed
        # takes its energy), so that a seed cell reads the arrival time of the shower
        core = slice(h // 2 - 1, h // 2 + 1)
        e_core = sh.showers[:, :, core, core]
        t_offset = float((e_core * times[:, :, core, core]).sum() / max(e_core.sum(), 1e-12))
        lib = cls(
            spec=spec, energies=np.asarray(spec.energies), angles=np.asarray(spec.angles),
            grid_e=sh.diagnostics["grid_energy_index"], grid_a=sh.diagnostics["grid_angle_index"],
            points=sh.points.astype(np.float64), o=o, s=nz[1].astype(np.int16), a=nz[2].astype(np.int16),
            b=nz[3].astype(np.int16), e=sh.showers[nz].astype(np.float64), t=times[nz].astype(np.float64),
            grid=h, pitch=float(sh.attrs["fine_pitch_mm"]), calibration=calib, time_offset=t_offset,
        )  # fmt: skip
        # (energy, angle x, angle y, k) -> shower index: the showers of each grid point
        shape = (len(spec.energies), len(spec.angles), len(spec.angles))
        flat = np.ravel_multi_index((lib.grid_e, lib.grid_a[:, 0], lib.grid_a[:, 1]), shape)
        order = np.argsort(flat, kind="stable")
        if np.any(np.bincount(flat, minlength=int(np.prod(shape))) != spec.n_per_point):
            raise ValueError(f"{path}: the library does not hold {spec.n_per_point} showers per grid point")
        lib.by_point = order.reshape(*shape, spec.n_per_point)
        return lib

    def lookup(self, energy_gev: np.ndarray, tan_x: np.ndarray, tan_y: np.ndarray, off_x: np.ndarray,
               off_y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Nearest showers: (index, scale E/E_grid, flip_x, flip_y) per particle. Offsets are the
        particle's entry point relative to its fine-grid corner [mm]."""
        loge = np.log(self.energies)
        ie = np.abs(np.log(np.maximum(energy_gev, 1e-6))[:, None] - loge[None, :]).argmin(axis=1)
        fx, fy = tan_x < 0, tan_y < 0
        ax_ = np.abs(np.arctan(np.abs(tan_x))[:, None] - self.angles[None, :]).argmin(axis=1)
        ay_ = np.abs(np.arctan(np.abs(tan_y))[:, None] - self.angles[None, :]).argmin(axis=1)
        ox = np.where(fx, -off_x, off_x)
        oy = np.where(fy, -off_y, off_y)
        cand = self.by_point[ie, ax_, ay_]  # (M, n_per_point)
        d2 = (self.points[cand, 0] - ox[:, None]) ** 2 + (self.points[cand, 1] - oy[:, None]) ** 2
        idx = cand[np.arange(len(ie)), np.argmin(d2, axis=1)]
        return idx, energy_gev / self.energies[ie], fx, fy


def _mass(spec: LibrarySpec) -> float:
    return species(CLASSES[spec.particle_class]).mass


_LOADED: dict[str, ShowerLibrary] = {}


def get_library(
    spec: LibrarySpec, *, folder: Path | None = None, progress: Callable[[int, int], None] | None = None
) -> ShowerLibrary:
    """The library for ``spec``: from memory, from the disk cache, or built (and cached)."""
    spec.validate()
    key = spec.key()
    if key in _LOADED:
        return _LOADED[key]
    folder = folder or cache_dir() / "libraries"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.technology}-{spec.particle_class}-{key}.h5"
    if not path.is_file():
        with cache_lock(path):
            if not path.is_file():  # another process may have built it while we waited
                build_library(spec, path, progress=progress)
    lib = ShowerLibrary.load(path)
    _LOADED[key] = lib
    return lib
