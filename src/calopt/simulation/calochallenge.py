"""calopt showers as CaloChallenge files and back (``calopt showers export | import``).

The Fast Calorimeter Simulation Challenge 2022 (CaloChallenge, github.com/CaloChallenge/homepage,
README "Datasets"; arXiv:2410.21611) stores showers in HDF5 files with two datasets:
``incident_energies`` (N, 1), the particle energy in MeV, and ``showers`` (N, n_voxels), the
energy of each voxel in MeV, flattened; its evaluation (``code/evaluate.py``) reads nothing
else. Its detectors are cylindrical: layers along z, each binned in r and alpha, described by
the ``binning_dataset_*.xml`` files (``<Layer id r_edges n_bin_alpha>``) that its helper class
``HighLevelFeatures`` reads.

calopt's grid is Cartesian: S longitudinal sections of H x W square cells of one pitch (docs/
formats.md, "calopt-showers"). An export therefore does not pretend to be cylindrical: the
showers are flattened in C order of (section, row, column), i.e. ``showers.reshape(N, S, H, W)``
restores calopt's array (the CaloChallenge's own order is (layer, alpha, r), r fastest), and
the group ``binning`` describes the Cartesian grid (sections, pitch, H, W, the edges and the
order). CaloChallenge's cylindrical-binning tools (``HighLevelFeatures``, the XML files, the
high-level classifier and the plots of ``evaluate.py``) do not apply unchanged; a model that
treats the voxels as a vector (the low-level classifier, most generative models) does.

Voxel values are calopt's cells copied bit for bit (float32), so every voxel sum equals the cell
sum exactly. The group ``calopt`` keeps what a CaloChallenge file has no place for (momenta,
entry points, species, times, the shower file's attributes), so that an import restores the
calopt-showers file exactly (its ``diagnostics`` are not exported).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from calopt.errors import CaloptInputError, FileFormatError
from calopt.files import atomic_path, describe_file, read_attrs
from calopt.hdf5 import Array, check_datasets, reading
from calopt.simulation.showers import REQUIRED_ATTRS, Showers, read_showers

__all__ = ["FORMAT_NAME", "export_calochallenge", "import_calochallenge", "is_calochallenge_file",
           "read_calochallenge", "summary"]  # fmt: skip

FORMAT_NAME = "CaloChallenge"
LAYOUT = {
    "incident_energies": Array("float", (("N", 1), ("N",))),
    "showers": Array("float", (("N", "V"),)),
}
"""The datasets a CaloChallenge file must have (homepage README, "Datasets")."""
VOXEL_ORDER = "section, row (y), column (x); column fastest: showers.reshape(N, n_sections, n_rows, n_columns)"


def is_calochallenge_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is an HDF5 file with ``incident_energies`` and ``showers`` datasets and
    no calopt format attribute (a CaloChallenge file, or a calopt export): the kind of file
    ``calopt showers export --overwrite`` may replace."""
    import h5py

    if not Path(path).is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return "format" not in f.attrs and all(isinstance(f.get(k), h5py.Dataset) for k in LAYOUT)
    except (OSError, ValueError, KeyError, RuntimeError):
        return False


def export_calochallenge(sh: Showers, out: str | os.PathLike[str]) -> None:
    """Write ``sh`` atomically as a CaloChallenge file (module doc): ``incident_energies``
    (N, 1) and ``showers`` (N, S*H*W) in MeV, gzip-compressed as the CaloChallenge files are,
    the group ``binning`` (the Cartesian grid) and the group ``calopt`` (the rest)."""
    import h5py

    from calopt import __version__

    n, ns, h, w = sh.showers.shape
    pitch = float(sh.attrs["fine_pitch_mm"])
    with atomic_path(Path(out)) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["exported_by"] = f"calopt {__version__}"
        f.attrs["source_format"] = "calopt-showers"
        f.attrs["source_format_version"] = 1
        f.create_dataset("incident_energies", data=np.asarray(sh.incident_energies, np.float32).reshape(n, 1),
                         compression="gzip")  # fmt: skip
        flat = np.asarray(sh.showers, np.float32).reshape(n, ns * h * w)
        f.create_dataset("showers", data=flat, compression="gzip", chunks=(1, flat.shape[1]) if n else None)
        b = f.create_group("binning")
        b.attrs["geometry"] = "cartesian"
        b.attrs["n_sections"] = ns
        b.attrs["n_rows"] = h
        b.attrs["n_columns"] = w
        b.attrs["cell_pitch_mm"] = pitch
        b.attrs["section_edges_mm"] = np.asarray(sh.attrs["section_edges_mm"], np.float64)
        b.attrs["x_edges_mm"] = (np.arange(w + 1) - w / 2) * pitch
        b.attrs["y_edges_mm"] = (np.arange(h + 1) - h / 2) * pitch
        b.attrs["voxel_order"] = VOXEL_ORDER
        b.attrs["description"] = (
            "Cartesian grid, not CaloChallenge's cylindrical r/alpha binning: layers are calopt's longitudinal "
            "sections (depths section_edges_mm from the front face), each n_rows x n_columns square cells of "
            "cell_pitch_mm; x, y relative to the window centre, the particle's nominal entry point."
        )
        c = f.create_group("calopt")
        for k, v in sh.attrs.items():
            c.attrs[k] = v
        c.create_dataset("momenta", data=np.asarray(sh.momenta, np.float32).reshape(n, 3))
        c.create_dataset("points", data=np.asarray(sh.points, np.float32).reshape(n, 2))
        c.create_dataset("pdg", data=np.asarray(sh.pdg, np.int32).reshape(n))
        if sh.times is not None:
            c.create_dataset("times", data=np.asarray(sh.times, np.float32), compression="gzip")


def _refuse_non_hdf5(path: Path) -> Any:
    import h5py

    if not path.exists():
        raise CaloptInputError(f"{FORMAT_NAME} file {str(path)!r} does not exist")
    if not path.is_file():
        raise CaloptInputError(f"{str(path)!r} is {describe_file(path)}, expected a {FORMAT_NAME} HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise FileFormatError(f"{str(path)!r} is {describe_file(path)}, not a readable HDF5 file; expected a "
                              f"{FORMAT_NAME} file") from None  # fmt: skip


def read_calochallenge(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The arrays of a CaloChallenge file: ``incident_energies`` (N,) float32, ``showers``
    (N, V) float32, and when present the ``binning`` and ``calopt`` groups of a calopt export
    (``binning``: its attributes; ``calopt``: attributes and per-shower arrays). A file that is
    not HDF5, is a calopt-format file, lacks a dataset, has datasets of unequal length, or holds
    non-finite or negative energies is refused with one line."""
    import h5py

    path = Path(path)
    with _refuse_non_hdf5(path) as f, reading(path, FORMAT_NAME, FileFormatError):
        fmt = f.attrs.get("format")
        if fmt is not None:
            fmt = fmt.decode(errors="replace") if isinstance(fmt, bytes) else str(fmt)
            raise FileFormatError(f"{str(path)!r} is a {fmt} file, not a {FORMAT_NAME} file "
                                  "(one with 'incident_energies' and 'showers')")  # fmt: skip
        e_ds, s_ds = f.get("incident_energies"), f.get("showers")
        if isinstance(e_ds, h5py.Dataset) and isinstance(s_ds, h5py.Dataset) and e_ds.shape and s_ds.shape \
                and e_ds.shape[0] != s_ds.shape[0]:  # fmt: skip
            raise FileFormatError(f"{str(path)!r} is a broken {FORMAT_NAME} file: {s_ds.shape[0]} showers but "
                                  f"{e_ds.shape[0]} incident energies")  # fmt: skip
        dims = check_datasets(path, f, LAYOUT, FORMAT_NAME)
        energies = np.asarray(f["incident_energies"][()], np.float32).reshape(-1)
        showers = np.asarray(f["showers"][()], np.float32)
        out: dict[str, Any] = {"incident_energies": energies, "showers": showers, "binning": None, "calopt": None}
        if isinstance(f.get("binning"), h5py.Group):
            out["binning"] = read_attrs(f["binning"])
        g = f.get("calopt")
        if isinstance(g, h5py.Group):
            arrays = {k: g[k][()] for k in ("momenta", "points", "pdg", "times") if isinstance(g.get(k), h5py.Dataset)}
            out["calopt"] = {"attrs": read_attrs(g), "arrays": arrays}
    n = dims["N"]
    if n == 0:
        raise FileFormatError(f"{str(path)!r} holds no showers")
    bad = int(np.count_nonzero(~np.isfinite(energies) | (energies <= 0)))
    if bad:
        raise FileFormatError(f"{str(path)!r}: {bad} of {n} incident energies are not finite positive numbers [MeV]")
    bad = int(np.count_nonzero(~np.isfinite(showers).all(axis=1)))
    if bad:
        raise FileFormatError(f"{str(path)!r}: {bad} of {n} showers hold non-finite voxel energies")
    return out


def _grid_from_binning(path: Path, b: dict[str, Any], n_voxels: int) -> tuple[int, int, int, float, np.ndarray]:
    try:
        if str(b.get("geometry")) != "cartesian":
            raise ValueError(f"geometry {b.get('geometry')!r}")
        ns, h, w = (int(b[k]) for k in ("n_sections", "n_rows", "n_columns"))
        pitch = float(b["cell_pitch_mm"])
        edges = np.asarray(b["section_edges_mm"], np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{str(path)!r}: its 'binning' group is not a calopt Cartesian binning ({exc})") from None
    if min(ns, h, w) < 1 or ns * h * w != n_voxels or len(edges) != ns + 1 or not pitch > 0:
        raise FileFormatError(f"{str(path)!r}: its 'binning' ({ns} sections x {h} x {w} cells, "
                              f"{len(edges)} section edges) does not fit its {n_voxels} voxels")  # fmt: skip
    return ns, h, w, pitch, edges


def _gun_particles(particle: str, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pdg, momenta along the module axis and entry points at the window centre for ``particle``."""
    from calopt.simulation.particles import species

    sp = species(particle)
    e = energies.astype(np.float64)
    p = np.sqrt(np.maximum(e**2 - sp.mass**2, 0.0))
    momenta = np.column_stack([np.zeros_like(p), np.zeros_like(p), p]).astype(np.float32)
    return np.full(len(e), sp.pdg, np.int32), momenta, np.zeros((len(e), 2), np.float32)


def import_calochallenge(path: str | os.PathLike[str], *, like: str | os.PathLike[str] | None = None,
                         particle: str | None = None) -> Showers:  # fmt: skip
    """Showers of a CaloChallenge file on calopt's grid.

    The grid and the file attributes come from ``like`` (a calopt-showers file: the sample a
    model was trained on) or else from the file's own ``binning`` and ``calopt`` groups (a
    calopt export). Per shower, momenta, entry points and species come, in this order, from the
    file's ``calopt`` group, from ``like`` when it holds as many showers with the same incident
    energies (a model run for the reference's particles), or from ``particle`` (along the module
    axis, at the window centre: CaloChallenge models are conditioned on the energy alone).
    An export imported without ``like`` gives back the exported calopt-showers file exactly
    (without its ``diagnostics``)."""
    from calopt import __version__

    path = Path(path)
    cc = read_calochallenge(path)
    energies, flat = cc["incident_energies"], cc["showers"]
    n, n_vox = flat.shape
    own = cc["calopt"]
    ref = read_showers(like, diagnostics=False) if like is not None else None
    if ref is not None:
        ns, h, w = ref.showers.shape[1:]
        if ns * h * w != n_vox:
            raise CaloptInputError(f"{str(path)!r} has {n_vox} voxels per shower; --like {str(like)!r} has "
                                   f"{ns} x {h} x {w} = {ns * h * w} cells")  # fmt: skip
        attrs = {k: v for k, v in ref.attrs.items() if k not in ("generator_identity",)}
        attrs |= {"generator": "calochallenge", "seed": 0, "calopt_version": __version__, "imported_from": path.name}
    elif cc["binning"] is not None and own is not None:
        ns, h, w, _, _ = _grid_from_binning(path, cc["binning"], n_vox)
        attrs = dict(own["attrs"])
        missing = [a for a in REQUIRED_ATTRS if a not in attrs]
        if missing:
            raise FileFormatError(f"{str(path)!r}: its 'calopt' group lacks the attributes {', '.join(missing)}")
    else:
        raise CaloptInputError(f"{str(path)!r} does not say which calopt grid its {n_vox} voxels are on (no calopt "
                               "'binning' group); give --like FILE.h5, a calopt-showers file of that grid")  # fmt: skip
    arrays = own["arrays"] if own is not None else {}
    times = None
    if all(k in arrays and len(arrays[k]) == n for k in ("momenta", "points", "pdg")):
        pdg = np.asarray(arrays["pdg"], np.int32).reshape(n)
        momenta = np.asarray(arrays["momenta"], np.float32).reshape(n, 3)
        points = np.asarray(arrays["points"], np.float32).reshape(n, 2)
        t = arrays.get("times")
        if t is not None and t.size == n * n_vox:
            times = np.asarray(t, np.float32).reshape(n, ns, h, w)
    elif ref is not None and len(ref) == n and np.array_equal(ref.incident_energies[:, 0].astype(np.float32), energies):
        pdg, momenta, points = ref.pdg.astype(np.int32), ref.momenta.astype(np.float32), ref.points.astype(np.float32)
    elif particle is not None:
        pdg, momenta, points = _gun_particles(particle, energies)
    else:
        raise CaloptInputError(f"{str(path)!r} does not say which particles made its showers; give --particle NAME "
                               "(along the module axis, at the window centre) or --like a calopt-showers file of "
                               "the same particles (same number and incident energies)")  # fmt: skip
    return Showers(showers=flat.reshape(n, ns, h, w), times=times, incident_energies=energies.reshape(n, 1),
                   momenta=momenta, points=points, pdg=pdg, attrs=attrs)  # fmt: skip


def summary(sh: Showers) -> dict[str, Any]:
    """What a conversion printed: showers, grid and technology."""
    n, ns, h, w = sh.showers.shape
    return {"n": n, "technology": str(sh.attrs["technology"]), "grid": [ns, h, w], "voxels": ns * h * w,
            "generator": str(sh.attrs["generator"])}  # fmt: skip
