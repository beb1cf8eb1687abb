"""The shower library (:mod:`calopt.readout.library`) as a :class:`~calopt.simulation.base.ShowerSimulator`.

For each particle, the library's lookup picks the nearest pre-simulated cascade shower (nearest
grid point in log E and in the two projected angles, then the nearest entry offset within the
fine cell, mirroring the shower for negative angles) and rescales its energies by E/E_grid --
exactly what the readout does (:meth:`calopt.readout.readout.Readout.deposits`). The shower is
then placed on the particle's window: its window centre goes to the fine-grid corner nearest to
the entry point (an integer shift of cells, zero for entry points within +-pitch/2 of the window
centre, as in every gun sample). Deposits that fall outside the window are lost. Cell times are
the library's (relative to the front-face crossing), not rescaled. Visible energies are
returned (the readout divides by the EM calibration afterwards; a simulator does not).

The library is deterministic: ``seed`` does not change the showers (it is stored in the
attributes for the record). Photons and electrons use the ``em`` library, hadrons the
``hadron`` one, muons the ``muon`` one (whose deposits are not rescaled with energy), as in the
readout; libraries are built with the cascade on first use and cached on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.technologies import Technology
from calopt.readout.library import CLASSES, LibrarySpec, ShowerLibrary, get_library, species_class
from calopt.simulation.particles import Particles
from calopt.simulation.showers import Showers, shower_attrs

__all__ = ["LibrarySimulator"]


@dataclass
class LibrarySimulator:
    """Nearest-shower library backend. The grid defaults to the readout's
    (:class:`~calopt.readout.library.LibrarySpec`); ``folder`` overrides the cache folder."""

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

    def attrs(self, tech: Technology, seed: int) -> dict[str, Any]:
        return shower_attrs(tech, self.name, seed)

    def simulate(
        self, particles: Particles, tech: Technology, seed: int, *, seeds: np.ndarray | None = None
    ) -> Showers:
        """Place the nearest library shower of each particle (``seed``/``seeds`` are unused: the
        lookup is deterministic)."""
        from calopt.readout.readout import ranges

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
