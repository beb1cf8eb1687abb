"""Cluster features for the energy and position regressors (seed talk 000: 5x5 cell energies
around the seed, barycentre, sums and rings; 2 x 25 with a longitudinal split).

The 5x5 block is laid out in units of the seed's cell size. Where a block position falls in a
cell of another size (a border between regions), it takes that cell's energy times the area
ratio (s_seed / s_cell)^2, i.e. the cell's energy is spread uniformly over its area -- exact
inside a region, an approximation at region borders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calopt.readout.cells import CellMap
from calopt.reconstruction.clusters import Clusters

__all__ = ["ClusterFeatures", "cluster_features"]

OFFSETS = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)])


@dataclass
class ClusterFeatures:
    """Per cluster: ``X`` (K, F) features; ``seed_x``, ``seed_y``, ``size`` [mm] of the seed
    cell; ``tech`` index into ``CellMap.technologies``; ``energy`` [MeV], ``x``, ``y`` [mm]
    of the cluster (barycentre) and its ``time`` [ns] (NaN without timing; used to reject
    pile-up photons, not by the regressors: a single photon's time carries no information on
    its energy or position)."""

    X: np.ndarray
    seed_x: np.ndarray
    seed_y: np.ndarray
    size: np.ndarray
    tech: np.ndarray
    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    time: np.ndarray

    def take(self, idx: np.ndarray) -> ClusterFeatures:
        """The clusters selected by an index or mask array."""
        return ClusterFeatures(*(getattr(self, k)[idx] for k in ClusterFeatures.__dataclass_fields__))

    @staticmethod
    def concat(parts: list[ClusterFeatures]) -> ClusterFeatures:
        """Clusters of several crossings, in order."""
        return ClusterFeatures(
            *(np.concatenate([getattr(p, k) for p in parts]) for k in ClusterFeatures.__dataclass_fields__)
        )


def block_energies(cl: Clusters, cells: CellMap) -> np.ndarray:
    """(K, 2, 25) front/back energies [MeV] of the 5x5 block around each seed (back is zero for
    unsplit cells)."""
    ct = cells.cell_table
    s = ct["size"][cl.seed]
    px = ct["x"][cl.seed][:, None] + OFFSETS[None, :, 1] * s[:, None]
    py = ct["y"][cl.seed][:, None] + OFFSETS[None, :, 0] * s[:, None]
    ch = cells.channel(px.ravel(), py.ravel(), np.ones(px.size, dtype=bool)).reshape(px.shape)
    ok = ch >= 0
    phys = np.where(ok, cells.physical[np.maximum(ch, 0)], 0)
    ratio = np.where(ok, (s[:, None] / ct["size"][phys]) ** 2, 0.0)
    e = cl.cell_energy_parts[phys] * ratio[..., None]  # (K, 25, 2)
    return np.transpose(e, (0, 2, 1))


def cluster_features(cl: Clusters, cells: CellMap, z_front: float) -> ClusterFeatures:
    """Features of every cluster of a crossing."""
    ct = cells.cell_table
    k = len(cl)
    blocks = block_energies(cl, cells)  # (K, 2, 25)
    total = blocks.sum(axis=1)  # (K, 25)
    e = np.maximum(cl.energy, 1e-3)
    s = ct["size"][cl.seed]
    sx, sy = ct["x"][cl.seed], ct["y"][cl.seed]
    frac = total / e[:, None]
    front_frac = blocks[:, 0, :] / e[:, None]
    ring1 = np.abs(OFFSETS).max(axis=1) == 1
    ring2 = np.abs(OFFSETS).max(axis=1) == 2
    split = blocks[:, 1, :].sum(axis=1) > 0
    X = np.column_stack(
        [
            np.log(e / 1000.0),
            frac,
            np.where(split[:, None], front_frac, 0.0),
            (cl.x - sx) / s,
            (cl.y - sy) / s,
            sx / z_front,
            sy / z_front,
            frac[:, 12],
            (frac**2).sum(axis=1),
            frac[:, ring1].sum(axis=1),
            frac[:, ring2].sum(axis=1),
            total.sum(axis=1) / e,
            cl.n_cells,
            s,
        ]
    ) if k else np.zeros((0, 1 + 25 + 25 + 11))  # fmt: skip
    return ClusterFeatures(
        X=X, seed_x=sx, seed_y=sy, size=s, tech=ct["tech"][cl.seed], energy=cl.energy, x=cl.x, y=cl.y, time=cl.time
    )
