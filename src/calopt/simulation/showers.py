"""Showers in memory and the ``calopt-showers`` v1 HDF5 format (docs/formats.md, "calopt-showers").

Files are written atomically: to a temporary file in the same folder, then renamed, so a
crash or a kill never leaves a half-written file under the final name. Readers refuse files
whose format or version they do not know.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from calopt.errors import ShowerFormatError
from calopt.files import atomic_path, is_format, open_format, read_attrs
from calopt.hdf5 import Array, check_attrs, check_datasets, reading
from calopt.simulation.particles import Particles

if TYPE_CHECKING:
    from calopt.detector.technologies import Technology

__all__ = ["FORMAT", "FORMAT_VERSION", "Showers", "concatenate", "is_shower_file", "read_showers", "shower_attrs",
           "write_showers"]  # fmt: skip

FORMAT = "calopt-showers"
FORMAT_VERSION = 1
REQUIRED_ATTRS = ("technology", "fine_pitch_mm", "section_edges_mm", "generator", "seed", "sampling_fraction")
_ATTR_KINDS = {"technology": "text", "fine_pitch_mm": "number", "section_edges_mm": "numbers", "generator": "text",
               "seed": "number", "sampling_fraction": "number"}  # fmt: skip
LAYOUT = {
    "showers": Array("float", (("N", "S", "H", "W"),)),
    "times": Array("float", (("N", "S", "H", "W"),), optional=True),
    "incident_energies": Array("float", (("N", 1), ("N",))),
    "momenta": Array("float", (("N", 3),)),
    "points": Array("float", (("N", 2),)),
    "pdg": Array("integer", (("N",),)),
}
"""The datasets of a calopt-showers file (docs/formats.md): N showers of S sections of H x W cells."""


@dataclass
class Showers:
    """N showers of one technology on one fine grid.

    showers: (N, S, H, W) float32 visible energy [MeV]; times: (N, S, H, W) float32
    energy-weighted time [ns] or None; incident_energies: (N, 1) [MeV]; momenta: (N, 3)
    [MeV/c]; points: (N, 2) [mm]; pdg: (N,). ``attrs`` holds the file attributes;
    ``diagnostics`` optional extra per-shower arrays (energy balance, profiles) stored in
    the ``diagnostics`` group.
    """

    showers: np.ndarray
    incident_energies: np.ndarray
    momenta: np.ndarray
    points: np.ndarray
    pdg: np.ndarray
    attrs: dict[str, Any]
    times: np.ndarray | None = None
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.showers.shape[0])

    @classmethod
    def of_particles(cls, particles: Particles, showers: np.ndarray, times: np.ndarray | None, attrs: dict[str, Any],
                     diagnostics: dict[str, np.ndarray] | None = None) -> Showers:  # fmt: skip
        """Showers of ``particles`` (their energies, momenta, entry points and PDG ids)."""
        return cls(showers=showers, times=times, incident_energies=particles.energies.reshape(-1, 1),
                   momenta=particles.momenta, points=particles.points, pdg=particles.pdg, attrs=attrs,
                   diagnostics=diagnostics or {})  # fmt: skip

    def particles(self) -> Particles:
        """The primaries of the showers (PDG id, energy, unit direction, entry point)."""
        p = np.asarray(self.momenta, dtype=np.float64)
        norm = np.linalg.norm(p, axis=1, keepdims=True)
        return Particles(self.pdg, self.incident_energies[:, 0].astype(np.float64),
                         p / np.where(norm > 0, norm, 1.0), self.points.astype(np.float64))  # fmt: skip

    @property
    def visible_energy(self) -> np.ndarray:
        """(N,) total visible energy in the window [MeV]."""
        return self.showers.reshape(len(self), -1).sum(axis=1)


def shower_attrs(tech: Technology, generator: str, seed: int, **extra: Any) -> dict[str, Any]:
    """The file attributes (docs/formats.md, "calopt-showers") of showers of ``tech`` made by
    ``generator`` with ``seed``, plus any generator-specific ``extra`` ones."""
    from calopt import __version__

    return {
        "technology": tech.name,
        "fine_pitch_mm": tech.fine_pitch,
        "section_edges_mm": np.asarray(tech.section_edges, dtype=np.float64),
        "generator": generator,
        "seed": int(seed),
        "calopt_version": __version__,
        "sampling_fraction": tech.sampling_fraction,
    } | ({"module": tech.module_spec} if tech.module_spec else {}) | extra


def write_showers(path: str | os.PathLike[str], sh: Showers) -> None:
    """Write ``sh`` to ``path`` atomically."""
    import h5py

    path = Path(path)
    missing = [a for a in REQUIRED_ATTRS if a not in sh.attrs]
    if missing:
        raise ValueError(f"shower attributes missing: {missing}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        for k, v in sh.attrs.items():
            f.attrs[k] = v
        opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        chunk = (1, *sh.showers.shape[1:]) if len(sh) else None
        f.create_dataset("showers", data=sh.showers.astype(np.float32), chunks=chunk, **opts)
        if sh.times is not None:
            f.create_dataset("times", data=sh.times.astype(np.float32), chunks=chunk, **opts)
        f.create_dataset("incident_energies", data=sh.incident_energies.astype(np.float32).reshape(-1, 1))
        f.create_dataset("momenta", data=sh.momenta.astype(np.float32).reshape(-1, 3))
        f.create_dataset("points", data=sh.points.astype(np.float32).reshape(-1, 2))
        f.create_dataset("pdg", data=sh.pdg.astype(np.int32))
        if sh.diagnostics:
            g = f.create_group("diagnostics")
            for k, v in sh.diagnostics.items():
                g.create_dataset(k, data=v, **opts)


def is_shower_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a readable HDF5 file that says it is a calopt-showers file of the
    supported version. Its insides are checked by :func:`read_showers`, not here: a broken
    shower file is still one (an output check may replace it, a command given one says what is
    wrong with it rather than that it is not a shower file)."""
    return is_format(path, FORMAT, FORMAT_VERSION)


def _check_layout(path: Path, f: Any) -> None:
    """Refuse a calopt-showers file with broken insides: :data:`LAYOUT`, the attributes of
    :data:`REQUIRED_ATTRS` and one section edge more than sections."""
    dims = check_datasets(path, f, LAYOUT, FORMAT, ShowerFormatError)
    check_attrs(path, f, _ATTR_KINDS, FORMAT, ShowerFormatError)
    edges = len(f.attrs["section_edges_mm"])
    if edges != dims["S"] + 1:
        raise ShowerFormatError(f"{str(path)!r} is a broken {FORMAT} file: the attribute 'section_edges_mm' has "
                                f"{edges} values for {dims['S']} sections, expected {dims['S'] + 1}")  # fmt: skip
    if "diagnostics" in f:
        import h5py

        g = f["diagnostics"]
        for k in g if isinstance(g, h5py.Group) else ():
            if not isinstance(g[k], h5py.Dataset) or not g[k].shape or g[k].shape[0] != dims["N"]:
                raise ShowerFormatError(f"{str(path)!r} is a broken {FORMAT} file: 'diagnostics/{k}' is not an "
                                        f"array of one row per shower ({dims['N']})")  # fmt: skip


def read_showers(path: str | os.PathLike[str], *, diagnostics: bool = True) -> Showers:
    """Read a calopt-showers file; a file of another format or version, or with broken insides
    (:func:`_check_layout`, data that cannot be read), raises
    :class:`~calopt.errors.ShowerFormatError` naming the file and what is wrong."""
    path = Path(path)
    with open_format(path, FORMAT, FORMAT_VERSION, ShowerFormatError) as f, reading(path, FORMAT, ShowerFormatError):
        _check_layout(path, f)
        diag = {}
        if diagnostics and "diagnostics" in f:
            diag = {k: f["diagnostics"][k][()] for k in f["diagnostics"]}
        return Showers(
            showers=f["showers"][()],
            times=f["times"][()] if "times" in f else None,
            incident_energies=f["incident_energies"][()].reshape(-1, 1),
            momenta=f["momenta"][()],
            points=f["points"][()],
            pdg=f["pdg"][()],
            attrs=read_attrs(f),
            diagnostics=diag,
        )


def concatenate(parts: list[Showers]) -> Showers:
    """Join showers of the same technology and grid (attributes from the first part)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    diag_keys = set(first.diagnostics)
    return Showers(
        showers=cat("showers"),
        times=cat("times") if first.times is not None else None,
        incident_energies=cat("incident_energies"),
        momenta=cat("momenta"),
        points=cat("points"),
        pdg=cat("pdg"),
        attrs=dict(first.attrs),
        diagnostics={k: np.concatenate([p.diagnostics[k] for p in parts]) for k in diag_keys},
    )
