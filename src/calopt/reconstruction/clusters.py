"""Clustering: local-maximum seeds, 3x3 clusters with shared-energy splitting (the LHCb scheme).

Works on physical cells (front and back of a split cell summed) of any design, across module
and cell-size borders: the "3x3" of a seed is the seed and every cell touching it (sides or
corners), which is exactly the 3x3 block in a uniform region and the natural generalisation
at a border between cell sizes.

* seeds: cells with transverse energy above ``seed_et_mev`` that are local maxima (no
  touching cell has more energy; ties go to the lower index);
* a cell touching several seeds shares its energy between their clusters in proportion to
  the clusters' energies, iterated (``sharing_iterations``), as in LHCb's cellular-automaton
  clustering (LHCb-2003-091 [M]);
* cluster energy, energy-weighted barycentre, and the time of the seed cell (where it has
  timing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calopt.arrays import ranges
from calopt.readout.cells import CellMap
from calopt.readout.readout import CellHits

__all__ = ["ClusterSettings", "Clusters", "cluster_cells"]


@dataclass(frozen=True)
class ClusterSettings:
    seed_et_mev: float = 50.0
    sharing_iterations: int = 3


@dataclass
class Clusters:
    """K clusters: ``seed`` physical cell, ``energy`` [MeV], ``x``, ``y`` barycentre [mm],
    ``time`` [ns] (NaN without timing), ``n_cells``; ``members`` (L,) cell indices with
    ``member_cluster`` (L,) and ``member_fraction`` (L,) (shared-energy weights); ``cell_energy``
    the dense per-cell energies of the crossing (n_cells,) and per part (n_cells, 2: front,
    back; for unsplit cells the energy is in the front column)."""

    seed: np.ndarray
    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    time: np.ndarray
    n_cells: np.ndarray
    members: np.ndarray
    member_cluster: np.ndarray
    member_fraction: np.ndarray
    cell_energy: np.ndarray
    cell_energy_parts: np.ndarray

    def __len__(self) -> int:
        return len(self.seed)


def cluster_cells(hits: CellHits, cells: CellMap, z_front: float,
                  settings: ClusterSettings | None = None) -> Clusters:  # fmt: skip
    """Cluster one crossing's hits."""
    st = settings or ClusterSettings()
    n = cells.n_cells
    phys = cells.physical[hits.channel]
    part = cells.table["part"][hits.channel]
    e_cell = np.bincount(phys, weights=hits.energy, minlength=n)
    parts = np.zeros((n, 2))
    np.add.at(parts, (phys, np.where(part == 2, 1, 0)), hits.energy)
    has_t = ~np.isnan(hits.time)
    et_sum = np.bincount(phys[has_t], weights=(hits.energy * hits.time)[has_t], minlength=n)
    e_t = np.bincount(phys[has_t], weights=hits.energy[has_t], minlength=n)
    ct = cells.cell_table
    off, nb = cells.neighbours
    hit_cells = np.unique(phys)
    r = np.hypot(ct["x"][hit_cells], ct["y"][hit_cells])
    et = e_cell[hit_cells] * r / np.hypot(r, z_front)
    cand = hit_cells[et > st.seed_et_mev]
    # local maxima; equal energies go to the lower index (the key decreases with the index)
    key = e_cell - np.arange(n) * 1e-9
    neigh_max = np.maximum.reduceat(key[nb], off[:-1])
    seeds_arr = cand[key[cand] > neigh_max[cand]]
    k = len(seeds_arr)
    flat, owner = ranges(off[seeds_arr], off[seeds_arr + 1] - off[seeds_arr])
    members = np.concatenate([seeds_arr, nb[flat]])
    member_cluster = np.concatenate([np.arange(k), owner])
    keep = e_cell[members] != 0
    members, member_cluster = members[keep], member_cluster[keep]
    e_m = e_cell[members]
    cl_e = e_cell[seeds_arr].copy()
    frac = np.ones(len(members))
    for _ in range(max(st.sharing_iterations, 1)):
        denom = np.bincount(members, weights=cl_e[member_cluster], minlength=n)
        frac = cl_e[member_cluster] / np.where(denom[members] > 0, denom[members], 1.0)
        cl_e = np.bincount(member_cluster, weights=frac * e_m, minlength=k)
    w = frac * e_m
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.bincount(member_cluster, weights=w * ct["x"][members], minlength=k) / cl_e
        y = np.bincount(member_cluster, weights=w * ct["y"][members], minlength=k) / cl_e
        # the seed cell's time: an energy-weighted time over all the cluster's cells is pulled
        # away from the photon's by pile-up deposits in the outer cells
        time = np.where(e_t[seeds_arr] > 0, et_sum[seeds_arr] / np.where(e_t[seeds_arr] > 0, e_t[seeds_arr], 1.0),
                        np.nan)  # fmt: skip
    return Clusters(
        seed=seeds_arr, energy=cl_e, x=x, y=y, time=time,
        n_cells=np.bincount(member_cluster, minlength=k), members=members, member_cluster=member_cluster,
        member_fraction=frac, cell_energy=e_cell, cell_energy_parts=parts,
    )  # fmt: skip
