"""The shower library: showers simulated once per technology (by the cascade MC or a fast
simulation), reused for every design.

A library holds, for one technology and one class of particles (``em``: photons, which also
stand for electrons; ``hadron``: pi-, which also stands for other hadrons; ``muon``), showers
on a grid of energies and incidence angles (theta_x, theta_y >= 0; negative angles are
served by mirroring the shower) with ``n_per_point`` random entry points each. It is stored
as a ``calopt-showers`` file with the extra datasets ``grid_energy_index`` and
``grid_angle_index`` (in its ``diagnostics`` group) and cached on disk
(``<cache>/libraries/<technology>-<class>-<key>.h5``) under a key made of its settings,
:data:`LIBRARY_VERSION` and its generator's identity (:meth:`LibrarySpec.key`).

A lookup picks, for a particle of energy E, direction (theta_x, theta_y) and entry offset
(dx, dy) from the nearest fine-grid corner, the grid point nearest in log E and angle, then
among its showers the one with the nearest entry offset (after mirroring), and rescales it
by E / E_grid. The library also measures its technology's EM calibration: the mean visible
fraction of its photon showers. The readout places looked-up showers on the wall
(:meth:`calopt.readout.readout.Readout.deposits`).

:class:`LibrarySimulator` is the library as a :class:`~calopt.simulation.base.ShowerSimulator`
(the ``library`` backend): the looked-up shower is placed on the particle's window, its window
centre at the fine-grid corner nearest to the entry point (an integer shift of cells, zero for
entry points within +-pitch/2 of the window centre, as in every gun sample); deposits that fall
outside the window are lost. Cell times are the library's (relative to the front-face crossing),
not rescaled. Visible energies are returned (the readout divides by the EM calibration
afterwards; a simulator does not). It is deterministic: ``seed`` does not change the showers
(it is stored in the attributes for the record). Photons and electrons use the ``em``
library, hadrons the ``hadron`` one, muons the ``muon`` one (whose deposits are not rescaled
with energy), as in the readout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calopt.arrays import ranges
from calopt.cache import build_once, cache_key, stage_dir
from calopt.detector.technologies import Technology, get_technology
from calopt.errors import CaloptInputError
from calopt.simulation.base import SimulatorDefaults
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import FORMAT_VERSION as SHOWERS_FORMAT_VERSION
from calopt.simulation.showers import Showers, concatenate, read_showers, write_showers

__all__ = [
    "CLASSES",
    "LIBRARY_VERSION",
    "LibrarySimulator",
    "LibrarySpec",
    "ShowerLibrary",
    "get_library",
    "species_class",
]

CLASSES = {"em": "gamma", "hadron": "pi-", "muon": "mu-"}

# Version of the library build and layout; it enters every library's cache key (LibrarySpec.key).
# Bump it whenever a library with the same settings would hold other showers or another layout:
# the grid particles and their entry points, the seeds, the extra datasets or attributes, or how
# ShowerLibrary.load reads them. The showers' physics is versioned by the generator
# (calopt.simulation.base.backend_identity).
LIBRARY_VERSION = 1


def species_class(pdg: np.ndarray) -> np.ndarray:
    """(N,) library class per particle: 0 em, 1 hadron, 2 muon."""
    a = np.abs(np.asarray(pdg))
    return np.where(np.isin(a, [22, 11]), 0, np.where(a == 13, 2, 1))


@dataclass(frozen=True)
class LibrarySpec:
    """Grid of a shower library: energies [GeV], angles [rad] per axis, showers per point;
    ``generator``: the simulation backend that fills it (the cascade MC, or a fast simulation
    for EM libraries: ``gflash``, ``surrogate`` or a surrogate checkpoint path)."""

    technology: str
    particle_class: str = "em"
    energies: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    angles: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    n_per_point: int = 8
    seed: int = 0
    generator: str = "cascade"

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
        if self.generator != "cascade" and self.particle_class != "em":
            raise CaloptInputError(f"library: {self.particle_class} showers come from the cascade MC only, not from "
                                   f"{self.generator!r}")  # fmt: skip
        if self.generator == "library":
            raise CaloptInputError("a shower library cannot be generated by the library backend; use cascade, gflash, "
                                   "surrogate or a surrogate checkpoint")  # fmt: skip

    def key(self) -> str:
        """The cache key (:func:`calopt.cache.cache_key`): the settings, :data:`LIBRARY_VERSION`,
        the shower file format version and the identity of the generator
        (:func:`calopt.simulation.base.backend_identity`: the cascade or GFlash version, or the
        content hash of a surrogate checkpoint), so that new physics, a new library build or a
        retrained checkpoint at the same path make a new library."""
        from calopt.simulation.base import backend_identity

        doc = {"spec": asdict(self), "library_version": LIBRARY_VERSION, "showers_format": SHOWERS_FORMAT_VERSION,
               "generator_identity": backend_identity(self.generator)}  # fmt: skip
        return cache_key("libraries", doc)


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
    """Simulate the library with its generator (largest energies first, so that progress is
    honest) and write it to ``path``. Shower i has its own seed, so the order does not matter.
    The attributes record the spec (``library``) and the generator's identity
    (``generator_identity``, :func:`calopt.simulation.base.backend_identity`)."""
    from calopt.simulation.base import backend_identity, get_simulator, shower_seeds

    spec.validate()
    tech = get_technology(spec.technology)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x11B]))
    particles, ie, iang = _grid_particles(spec, rng)
    seeds = shower_seeds(spec.seed, 0, len(particles))
    sim = get_simulator(spec.generator)
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
        attrs=sh.attrs | {"library": json.dumps(asdict(spec)), "generator_identity": backend_identity(spec.generator)},
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
        lib = cls(
            spec=spec, energies=np.asarray(spec.energies), angles=np.asarray(spec.angles),
            grid_e=sh.diagnostics["grid_energy_index"], grid_a=sh.diagnostics["grid_angle_index"],
            points=sh.points.astype(np.float64), o=o, s=nz[1].astype(np.int16), a=nz[2].astype(np.int16),
            b=nz[3].astype(np.int16), e=sh.showers[nz].astype(np.float64), t=times[nz].astype(np.float64),
            grid=h, pitch=float(sh.attrs["fine_pitch_mm"]), calibration=calib,
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
    folder = folder or stage_dir("libraries")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.technology}-{spec.particle_class}-{key}.h5"
    build_once(path, lambda: build_library(spec, path, progress=progress))
    lib = ShowerLibrary.load(path)
    _LOADED[key] = lib
    return lib


@dataclass
class LibrarySimulator(SimulatorDefaults):
    """Nearest-shower library backend. The grid defaults to the readout's
    (:class:`LibrarySpec`); ``folder`` overrides the cache folder. Every species has a library
    class and every energy and angle a nearest grid point, so it refuses nothing."""

    energies: tuple[float, ...] = LibrarySpec.energies
    angles: tuple[float, ...] = LibrarySpec.angles
    n_per_point: int = LibrarySpec.n_per_point
    library_seed: int = 0
    folder: Path | None = None
    name: str = "library"
    _libs: dict[tuple[str, str], ShowerLibrary] = field(default_factory=dict, init=False, repr=False)

    def spec(self, tech: Technology, particle_class: str) -> LibrarySpec:
        return LibrarySpec(tech.name, particle_class, self.energies, self.angles, self.n_per_point, self.library_seed)

    def library(self, tech: Technology, particle_class: str) -> ShowerLibrary:
        key = (tech.name, particle_class)
        if key not in self._libs:
            self._libs[key] = get_library(self.spec(tech, particle_class), folder=self.folder)
        return self._libs[key]

    def simulate(
        self, particles: Particles, tech: Technology, seed: int, *, seeds: np.ndarray | None = None
    ) -> Showers:
        """Place the nearest library shower of each particle (``seed``/``seeds`` are unused: the
        lookup is deterministic)."""
        n = len(particles)
        ns, g = len(tech.section_edges) - 1, tech.grid
        showers = np.zeros((n, ns, g, g), dtype=np.float32)
        times = np.zeros((n, ns, g, g), dtype=np.float32)
        cls = species_class(particles.pdg)
        kinetic = np.where(cls == 0, particles.energies, particles.energies - particles.masses)
        x, y = particles.points[:, 0], particles.points[:, 1]
        for c, class_name in enumerate(CLASSES):
            sel = np.nonzero(cls == c)[0]
            if len(sel) == 0:
                continue
            lib = self.library(tech, class_name)
            if lib.grid != g or abs(lib.pitch - tech.fine_pitch) > 1e-9:
                raise ValueError(f"library of {tech.name} has another fine grid than the technology")
            pitch = lib.pitch
            kx = np.rint(x[sel] / pitch).astype(np.int64)  # window shift in cells
            ky = np.rint(y[sel] / pitch).astype(np.int64)
            d = particles.directions[sel]
            idx, scale, fx, fy = lib.lookup(
                kinetic[sel] / 1000.0, d[:, 0] / d[:, 2], d[:, 1] / d[:, 2], x[sel] - kx * pitch, y[sel] - ky * pitch
            )
            if class_name == "muon":
                scale = np.ones_like(scale)  # a MIP deposit does not scale with energy
            flat, k = ranges(lib.o[idx], lib.o[idx + 1] - lib.o[idx])
            b = np.where(fx[k], g - 1 - lib.b[flat], lib.b[flat]) + kx[k]
            a = np.where(fy[k], g - 1 - lib.a[flat], lib.a[flat]) + ky[k]
            ok = (a >= 0) & (a < g) & (b >= 0) & (b < g)
            i, s = sel[k[ok]], lib.s[flat[ok]]
            showers[i, s, a[ok], b[ok]] = lib.e[flat[ok]] * scale[k[ok]]
            times[i, s, a[ok], b[ok]] = lib.t[flat[ok]]
        return Showers.of_particles(particles, showers, times, self.attrs(tech, seed))
