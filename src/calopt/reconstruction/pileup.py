"""The per-channel pile-up offset subtraction, shared by ``calopt evaluate`` and the training of
pile-up-aware photon regressors: :func:`pileup_density` is the mean energy per channel over
the first crossings, the expected pile-up offset of every channel (the area-based offset
correction of the LHC experiments, per cell); :func:`subtract_offsets` removes it from the hits
of a crossing before clustering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from calopt.generation.events import Events
from calopt.readout.readout import CellHits, Readout

__all__ = ["pileup_density", "subtract_offsets"]


def pileup_density(readout: Readout, events: Events, seed: int, n: int = 200, pileup_only: bool = False,
                   cell_filter: Callable[[CellHits, int], CellHits] | None = None) -> np.ndarray:  # fmt: skip
    """Mean energy per channel [MeV] over the first ``n`` crossings of ``events``: the expected
    pile-up offset of every channel. In signal crossings the two signal photons are a negligible
    part of it at the pile-up where it matters (``pileup_only`` leaves the primary collision out).
    The crossings are read out as evaluate reads them (:meth:`~calopt.readout.readout.Readout.read_crossing`),
    spill-over from the previous crossing included. Uses its own generator so that the crossings
    themselves are read out exactly as without the subtraction. ``cell_filter(hits, i)``: the
    cells of crossing ``i`` that the reconstruction keeps (the 4D selection of
    :class:`calopt.reconstruction.timing.CellTimeWindow`), so that the offset is the mean pile-up
    energy that survives it."""
    total = np.zeros(readout.cells.n_channels)
    sub = np.random.default_rng(np.random.SeedSequence([seed, 0x9E0]))
    k = min(n, len(events))
    for ev in range(k):
        h = readout.read_crossing(events, ev, sub, pileup_only=pileup_only)
        if cell_filter is not None:
            h = cell_filter(h, ev)
        np.add.at(total, h.channel, h.energy)
    return total / max(k, 1)


def subtract_offsets(hits: CellHits, rho: np.ndarray | None) -> CellHits:
    """``hits`` less the mean pile-up energy ``rho`` of their channels (None: unchanged)."""
    return hits if rho is None else replace(hits, energy=hits.energy - rho[hits.channel])
