"""Events at the ECAL face and their file format (``calopt-events`` v1, HDF5).

One file holds N bunch crossings. Particles are stored flat, with ``offsets`` (N+1) marking
each crossing's slice. Per particle:

| dataset | type | meaning |
|---|---|---|
| ``pdg``, ``charge`` | int32, int8 | PDG id, charge [e] |
| ``p`` | (M, 3) float32 | momentum at the ECAL face [MeV/c] (after the dipole kick) |
| ``energy`` | float32 | energy [MeV] |
| ``vertex`` | (M, 4) float32 | production point x, y, z [mm] and time [ns] |
| ``entry`` | (M, 3) float32 | x, y [mm] at the ECAL front face and arrival time [ns] |
| ``pv`` | int16 | which collision of the crossing: 0 the signal (or first) one, 1.. pile-up |
| ``flags`` | uint8 | bits: 1 from the signal collision, 2 photon of the signal pi0, 4 signal muon, 8 reaches the ECAL |

Per crossing: ``n_pileup`` (int32), ``pv_position`` (N, 2) float32 z [mm] and t [ns] of the
signal (or first) collision. Signal processes add a ``truth`` group with (N, 4) float32
four-momenta (px, py, pz, E) [MeV] of ``b``, ``jpsi``, ``pi0``, ``gamma1``, ``gamma2``,
``mu_plus``, ``mu_minus`` and the B decay vertex ``b_decay_vertex`` (N, 4).
Attributes: ``format = "calopt-events"``, ``format_version = 1``, ``process``, ``pileup_mu``,
``seed``, ``sigma_z_mm``, ``sigma_t_ns``, ``z_front_mm``, ``calopt_version``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calopt.errors import FileFormatError
from calopt.files import atomic_path, is_format, open_format, read_attrs
from calopt.hdf5 import Array, check_attrs, check_datasets, reading

__all__ = [
    "FLAG",
    "Events",
    "concatenate_events",
    "crossing_particles",
    "is_events_file",
    "read_events",
    "write_events",
]

FORMAT = "calopt-events"
FORMAT_VERSION = 1


class FLAG:
    FROM_SIGNAL = 1
    SIGNAL_PI0_PHOTON = 2
    SIGNAL_MUON = 4
    REACHES_ECAL = 8


PARTICLE_FIELDS = {
    "pdg": np.int32,
    "charge": np.int8,
    "p": np.float32,
    "energy": np.float32,
    "vertex": np.float32,
    "entry": np.float32,
    "pv": np.int16,
    "flags": np.uint8,
}
TRUTH_FIELDS = ("b", "jpsi", "pi0", "gamma1", "gamma2", "mu_plus", "mu_minus", "b_decay_vertex")
_PARTICLE_DIMS: dict[str, tuple[int | str, ...]] = {"p": ("M", 3), "vertex": ("M", 4), "entry": ("M", 3)}
LAYOUT = {
    **{f"particles/{k}": Array("float" if np.dtype(t).kind == "f" else "integer", (_PARTICLE_DIMS.get(k, ("M",)),))
       for k, t in PARTICLE_FIELDS.items()},
    "offsets": Array("integer", (("N+1",),)),
    "n_pileup": Array("integer", (("N",),)),
    "pv_position": Array("float", (("N", 2),)),
}  # fmt: skip
"""The datasets of a calopt-events file (module documentation): M particles in N crossings."""
REQUIRED_ATTRS = {"process": "text", "pileup_mu": "number", "seed": "number", "sigma_z_mm": "number",
                  "sigma_t_ns": "number", "z_front_mm": "number"}  # fmt: skip


@dataclass
class Events:
    """Crossings of particles at the ECAL face (see the module documentation for fields)."""

    particles: dict[str, np.ndarray]
    offsets: np.ndarray
    n_pileup: np.ndarray
    pv_position: np.ndarray
    attrs: dict[str, Any]
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.offsets) - 1)

    @property
    def n_particles(self) -> int:
        return int(self.offsets[-1])

    def event_index(self) -> np.ndarray:
        """(M,) crossing index of every particle."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def crossing(self, i: int) -> dict[str, np.ndarray]:
        """The particles of crossing ``i``."""
        sl = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        return {k: v[sl] for k, v in self.particles.items()}

    def head(self, n: int) -> Events:
        """The first ``n`` crossings (views of these arrays, the same attributes)."""
        n = min(max(int(n), 0), len(self))
        end = int(self.offsets[n])
        return Events(
            particles={k: v[:end] for k, v in self.particles.items()},
            offsets=self.offsets[: n + 1],
            n_pileup=self.n_pileup[:n],
            pv_position=self.pv_position[:n],
            attrs=dict(self.attrs),
            truth={k: v[:n] for k, v in self.truth.items()},
        )


def concatenate_events(parts: list[Events]) -> Events:
    if not parts:
        raise ValueError("nothing to concatenate")
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    for ev in parts:
        offsets.append(ev.offsets[1:] + base)
        base += ev.n_particles
    truth_keys = set(parts[0].truth)
    return Events(
        particles={k: np.concatenate([e.particles[k] for e in parts]) for k in PARTICLE_FIELDS},
        offsets=np.concatenate(offsets),
        n_pileup=np.concatenate([e.n_pileup for e in parts]),
        pv_position=np.concatenate([e.pv_position for e in parts]),
        attrs=dict(parts[0].attrs),
        truth={k: np.concatenate([e.truth[k] for e in parts]) for k in truth_keys},
    )


def write_events(path: str | os.PathLike[str], ev: Events) -> None:
    """Write ``ev`` atomically."""
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        for k, v in ev.attrs.items():
            f.attrs[k] = v
        g = f.create_group("particles")
        for k, dtype in PARTICLE_FIELDS.items():
            g.create_dataset(k, data=ev.particles[k].astype(dtype), compression="gzip", shuffle=True)
        f.create_dataset("offsets", data=ev.offsets.astype(np.int64))
        f.create_dataset("n_pileup", data=ev.n_pileup.astype(np.int32))
        f.create_dataset("pv_position", data=ev.pv_position.astype(np.float32))
        if ev.truth:
            t = f.create_group("truth")
            for k, v in ev.truth.items():
                t.create_dataset(k, data=v.astype(np.float32))


def is_events_file(path: str | os.PathLike[str]) -> bool:
    return is_format(path, FORMAT, FORMAT_VERSION)


def _check_layout(path: Path, f: Any) -> None:
    """Refuse a calopt-events file with broken insides: :data:`LAYOUT`, :data:`REQUIRED_ATTRS`
    and each ``truth`` array of one row of four per crossing."""
    import h5py

    dims = check_datasets(path, f, LAYOUT, FORMAT)
    check_attrs(path, f, REQUIRED_ATTRS, FORMAT)
    if "truth" in f:
        t = f["truth"]
        names = list(t) if isinstance(t, h5py.Group) else []
        check_datasets(path, f, {f"truth/{k}": Array("float", ((dims["N"], 4),)) for k in names}, FORMAT)


def _check_offsets(path: Path, offsets: np.ndarray, n_particles: int) -> None:
    """Refuse offsets that do not cut the ``n_particles`` particles into crossings in order."""
    if offsets[0] != 0 or offsets[-1] != n_particles or np.any(np.diff(offsets) < 0):
        raise FileFormatError(f"{str(path)!r} is a broken {FORMAT} file: 'offsets' must rise from 0 to the number "
                              f"of particles ({n_particles}), got {offsets[0]} .. {offsets[-1]}"
                              + (" and a decrease" if np.any(np.diff(offsets) < 0) else ""))  # fmt: skip


def read_events(path: str | os.PathLike[str]) -> Events:
    """Read a calopt-events file, refusing other formats and versions, and broken insides
    (:func:`_check_layout`, offsets, data that cannot be read) with a one-line
    :class:`~calopt.errors.FileFormatError` naming the file and what is wrong."""
    path = Path(path)
    with open_format(path, FORMAT, FORMAT_VERSION) as f, reading(path, FORMAT):
        _check_layout(path, f)
        ev = Events(
            particles={k: f["particles"][k][()] for k in PARTICLE_FIELDS},
            offsets=f["offsets"][()],
            n_pileup=f["n_pileup"][()],
            pv_position=f["pv_position"][()],
            attrs=read_attrs(f),
            truth={k: f["truth"][k][()] for k in f["truth"]} if "truth" in f else {},
        )
    _check_offsets(path, ev.offsets, len(ev.particles["pdg"]))
    return ev


def crossing_particles(events: Events, i: int,
                       pileup_only: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(pdg, energy, p, entry) of the particles of crossing ``i`` that reach the ECAL; with
    ``pileup_only`` only those of the pile-up collisions (vertex index > 0)."""
    c = events.crossing(i)
    hit = (c["flags"] & FLAG.REACHES_ECAL) > 0
    if pileup_only:
        hit &= c["pv"] > 0
    return c["pdg"][hit], c["energy"][hit], c["p"][hit], c["entry"][hit]
