"""Pile-up crossings and the per-channel offset subtraction, shared by ``calopt evaluate`` and
the training of pile-up-aware photon regressors.

* :func:`cached_events`: crossings of an :class:`EventSpec`, generated once and cached;
* :func:`pileup_density`: the mean energy per channel over the first crossings, the expected
  pile-up offset of every channel (the area-based offset correction of the LHC experiments, per
  cell); :func:`subtract_offsets` removes it from the hits of a crossing before clustering;
* :func:`crossing_particles`: the particles of a crossing that reach the ECAL (optionally only
  those of the pile-up collisions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from calopt.files import build_once
from calopt.generation.events import FLAG, Events, read_events
from calopt.generation.runner import EventSpec, generate_events
from calopt.readout.library import cache_dir
from calopt.readout.readout import CellHits, Readout

__all__ = ["cached_events", "crossing_particles", "pileup_density", "subtract_offsets"]


def cached_events(spec: EventSpec, progress: Callable[[str], None] | None = None) -> Events:
    """The crossings of ``spec``, generated once and cached under ``<cache>/events``, keyed by
    the spec."""
    folder = cache_dir() / "events"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.process}-{hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]}.h5"

    def generate() -> None:
        if progress:
            progress(f"generating {spec.n} {spec.process} crossings at mu = {spec.pileup:g} (cached for later)")
        generate_events(spec, path)

    build_once(path, generate)
    return read_events(path)


def crossing_particles(events: Events, i: int,
                       pileup_only: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(pdg, energy, p, entry) of the particles of crossing ``i`` that reach the ECAL; with
    ``pileup_only`` only those of the pile-up collisions (vertex index > 0)."""
    c = events.crossing(i)
    hit = (c["flags"] & FLAG.REACHES_ECAL) > 0
    if pileup_only:
        hit &= c["pv"] > 0
    return c["pdg"][hit], c["energy"][hit], c["p"][hit], c["entry"][hit]


def pileup_density(readout: Readout, events: Events, seed: int, n: int = 200, pileup_only: bool = False) -> np.ndarray:
    """Mean energy per channel [MeV] over the first ``n`` crossings of ``events``: the expected
    pile-up offset of every channel. In signal crossings the two signal photons are a negligible
    part of it at the pile-up where it matters (``pileup_only`` leaves the primary collision out).
    Uses its own generator so that the crossings themselves are read out exactly as without the
    subtraction."""
    total = np.zeros(readout.cells.n_channels)
    sub = np.random.default_rng(np.random.SeedSequence([seed, 0x9E0]))
    k = min(n, len(events))
    for ev in range(k):
        pdg, energy, p, entry = crossing_particles(events, ev, pileup_only)
        h = readout.read(pdg, energy, p, entry, sub)
        np.add.at(total, h.channel, h.energy)
    return total / max(k, 1)


def subtract_offsets(hits: CellHits, rho: np.ndarray | None) -> CellHits:
    """``hits`` less the mean pile-up energy ``rho`` of their channels (None: unchanged)."""
    return hits if rho is None else replace(hits, energy=hits.energy - rho[hits.channel])
