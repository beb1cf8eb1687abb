"""Photon guns over a design's wall: the single photons that train and test the photon
reconstruction (``calopt evaluate``'s resolutions, the regressors of
:mod:`calopt.reconstruction.regression`).

Each photon is shot from a vertex of the luminous region (z ~ N(0, 53 mm), physics-reference
§2, as :class:`~calopt.generation.runner.EventSpec`) to a point uniform over the wall's
modules, with an energy log-uniform in a range. A fiducial cut keeps the point ``margin_cells``
cells (of its module) away from the outer edge of the wall and the beam hole, where showers leak
out of the calorimeter. Optionally it comes with a second photon nearby (the two photons of a
pi0) and with the pile-up particles of a crossing around it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from calopt.constants import SPEED_OF_LIGHT
from calopt.detector.design import Design
from calopt.generation.events import Events, crossing_particles

__all__ = ["SIGMA_Z_MM", "GunPhoton", "wall_photons"]

SIGMA_Z_MM = 53.0  # luminous region, physics-reference §2 (the default of EventSpec.sigma_z_mm)


@dataclass
class GunPhoton:
    """One gun photon: its truth ``energy`` [MeV], entry point ``x``, ``y`` [mm] and ``arrival``
    time [ns] on the ECAL face, its module's ``cell_size`` [mm], and every particle to read out
    with it (the photon first): ``pdg`` (M,), ``energies`` (M,) [MeV], ``momenta`` (M, 3) [MeV/c],
    ``entry`` (M, 3) x, y [mm] and arrival time [ns] on the face; ``previous``: the particles of
    the previous crossing whose signal spills over into this one (the same four arrays), or None.
    """

    energy: float
    x: float
    y: float
    arrival: float
    cell_size: float
    pdg: np.ndarray
    energies: np.ndarray
    momenta: np.ndarray
    entry: np.ndarray
    previous: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


def wall_photons(design: Design, n: int, rng: np.random.Generator, energy_range: tuple[float, float] = (1.0, 100.0),
                 *, margin_cells: float = 2.5, overlay: float = 0.0, pileup: Events | None = None,
                 pileup_radius_cells: float = 8.0) -> Iterator[GunPhoton]:  # fmt: skip
    """``n`` photons over ``design``'s wall, log-uniform in ``energy_range`` [GeV], one at a time
    from ``rng`` (drawn as each is asked for, so that a caller can draw its own numbers from
    ``rng`` between photons).

    ``overlay``: that fraction of the photons comes with a second photon 1.5-5 cells away
    (energy log-uniform between 0.3 GeV and the first photon's), like the two photons of a pi0.
    ``pileup``: every photon comes with the particles of the pile-up collisions (vertex index
    > 0) of a randomly chosen crossing of ``pileup`` that enter the wall within
    ``pileup_radius_cells`` cells of it (those further away do not reach its cluster), and with
    those of the crossing before it as ``previous`` (their signal spills over)."""
    wall = design.wall
    jj, ii = np.nonzero(design.region_index >= 0)
    z_front = wall.z_front
    hx, hy = wall.hole_x * wall.pitch / 2, wall.hole_y * wall.pitch / 2
    for _ in range(n):
        while True:
            m = rng.integers(len(jj))
            x = (ii[m] - wall.nx / 2.0 + rng.random()) * wall.pitch
            y = (jj[m] - wall.ny / 2.0 + rng.random()) * wall.pitch
            margin = margin_cells * design.cell_size[jj[m], ii[m]]
            inside = abs(x) < wall.half_width - margin and abs(y) < wall.half_height - margin
            if inside and not (abs(x) < hx + margin and abs(y) < hy + margin):
                break
        size = float(design.cell_size[jj[m], ii[m]])
        e = math.exp(rng.uniform(math.log(energy_range[0]), math.log(energy_range[1]))) * 1000.0
        zv = rng.normal(0.0, SIGMA_Z_MM)
        d = np.array([x, y, z_front - zv])
        path = float(np.linalg.norm(d))
        pdg, energy = np.array([22]), np.array([e])
        mom, entry = (d / path * e)[None, :], np.array([[x, y, path / SPEED_OF_LIGHT]])
        if overlay > 0 and rng.random() < overlay:
            r, phi = rng.uniform(1.5, 5.0) * size, rng.uniform(0.0, 2.0 * math.pi)
            x2, y2 = x + r * math.cos(phi), y + r * math.sin(phi)
            e2 = math.exp(rng.uniform(math.log(300.0), math.log(max(e, 301.0))))
            d2 = np.array([x2, y2, z_front - zv])
            p2 = float(np.linalg.norm(d2))
            pdg, energy = np.array([22, 22]), np.array([e, e2])
            mom = np.vstack([mom, d2 / p2 * e2])
            entry = np.vstack([entry, [x2, y2, p2 / SPEED_OF_LIGHT]])
        previous = None
        if pileup is not None:
            k = int(rng.integers(len(pileup)))
            pu = crossing_particles(pileup, k, pileup_only=True)
            close = np.hypot(pu[3][:, 0] - x, pu[3][:, 1] - y) < pileup_radius_cells * size
            pdg = np.concatenate([pdg, pu[0][close]])
            energy = np.concatenate([energy, pu[1][close]])
            mom = np.vstack([mom, pu[2][close]])
            entry = np.vstack([entry, pu[3][close]])
            prev = crossing_particles(pileup, (k - 1) % len(pileup), pileup_only=True)
            near = np.hypot(prev[3][:, 0] - x, prev[3][:, 1] - y) < pileup_radius_cells * size
            previous = (prev[0][near], prev[1][near], prev[2][near], prev[3][near])
        yield GunPhoton(e, x, y, path / SPEED_OF_LIGHT, size, pdg, energy, mom, entry, previous)
