"""4D reconstruction: cells out of time with the signal vertex are kept out of the clusters.

Upgrade II's vertex detector measures the time of the signal primary vertex (physics-reference
§2b: timing is how PicoCal mitigates pile-up), so the time at which a photon from it reaches
each cell is known. A cell whose measured time differs from that by more than ``n_sigma`` times
its resolution sigma_t(E) = a/sqrt(E) (+) b (the technology's a at the cell's energy, the
region's constant term b) holds mostly energy from another collision: it is removed before
seeds and clusters are made, so that the cluster energies, positions and times come from the
in-time cells only -- rather than whole photons being rejected afterwards. Cells without timing
(or without a measured time) are kept.

The pile-up offset subtracted afterwards must be the mean pile-up energy that survives the
same selection (:func:`calopt.reconstruction.pileup.pileup_density` with this selection as its
``cell_filter``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from calopt.readout.cells import CellMap
from calopt.readout.readout import CellHits, time_resolution
from calopt.reconstruction.candidates import expected_time

__all__ = ["CellTimeWindow"]


@dataclass(frozen=True)
class CellTimeWindow:
    """The in-time selection of the cells of one design: per channel, the calibrated time offset
    [ns] (cell time - arrival time of single photons, per technology), the technology's
    stochastic term ``a`` [ns sqrt(GeV)] and the region's constant term ``b`` [ns]; cells more than
    ``n_sigma`` sigma_t(E) off the expected time are out of time."""

    offset: np.ndarray
    a: np.ndarray
    b: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z_front: float
    n_sigma: float = 3.0

    @classmethod
    def for_cells(cls, cells: CellMap, a_ns_by_tech: np.ndarray, offset_ns_by_tech: np.ndarray, z_front: float,
                  n_sigma: float = 3.0) -> CellTimeWindow:  # fmt: skip
        """From the cell map, the technologies' a [ns sqrt(GeV)] and calibrated offsets [ns]
        (indexed like ``cells.technologies``)."""
        t = cells.table
        return cls(offset=np.asarray(offset_ns_by_tech, dtype=float)[t["tech"]],
                   a=np.asarray(a_ns_by_tech, dtype=float)[t["tech"]], b=t["time_b"] * 1e-3,
                   x=t["x"], y=t["y"], z_front=z_front, n_sigma=n_sigma)  # fmt: skip

    def in_time(self, hits: CellHits, z_pv: float, t_pv: float) -> np.ndarray:
        """(K,) whether each hit is kept: in time with the vertex (z_pv [mm], t_pv [ns]), or
        without a time."""
        ch = hits.channel
        t = hits.time.astype(float)
        timed = np.isfinite(t)
        if not timed.any():
            return np.ones(len(ch), dtype=bool)
        dt = t - expected_time(self.x[ch], self.y[ch], self.z_front, z_pv, t_pv) - self.offset[ch]
        sigma = time_resolution(self.a[ch], self.b[ch], hits.energy.astype(float))
        return ~timed | (np.abs(dt) <= self.n_sigma * sigma)

    def select(self, hits: CellHits, z_pv: float, t_pv: float) -> CellHits:
        """``hits`` without the cells out of time with the vertex."""
        keep = self.in_time(hits, z_pv, t_pv)
        if keep.all():
            return hits
        return replace(hits, channel=hits.channel[keep], energy=hits.energy[keep], time=hits.time[keep],
                       true_energy=hits.true_energy[keep])  # fmt: skip
