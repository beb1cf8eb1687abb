"""``calopt cache list|clear``: the entries of the on-disk cache (:mod:`calopt.cache`).

An entry is one file of a stage folder named ``<what>-<key>`` (``.h5`` for libraries and
events, ``.json`` for regressors); what it holds is read from its name (technology, particle
class, cell size, process) and, where cheap, from the file (a library's generator and grid, a
regressor's training, a run's size and pile-up). ``clear`` removes entries and the ``.lock``
files of their builds; a lock that a running build holds is left in place. Unfinished builds
(hidden temporary files, ``*.parts`` folders of event runs, which a rerun resumes) are neither
listed nor removed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from calopt.cli._common import JSON_OPTION, print_json
from calopt.jobs import format_bytes

cache_app = typer.Typer(help="The on-disk cache of shower libraries, regressors and events.", no_args_is_help=True,
                        rich_markup_mode=None)

STAGE_OPTION = typer.Option(None, "--stage", help="Only this stage: libraries, regressors or events.")
_SUFFIX = {"libraries": ".h5", "regressors": ".json", "events": ".h5", "reconstructions": ".pt"}
_NAME = re.compile(r"^(?P<what>.+)-(?P<key>[0-9a-f]{16})$")


@dataclass
class _Entry:
    stage: str
    path: Path
    key: str
    size: int
    holds: dict[str, Any]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "name": self.path.name, "key": self.key, "size_bytes": self.size,
                "holds": self.holds, "description": self.description}  # fmt: skip


def _stages(stage: str | None) -> tuple[str, ...]:
    from calopt.cache import STAGES, stage_dir

    if stage is None:
        return STAGES
    stage_dir(stage)  # an unknown stage is an input error
    return (stage,)


def _h5_attrs(path: Path) -> dict[str, Any]:
    """The root attributes of an HDF5 file (byte strings decoded), {} if it cannot be read."""
    import h5py

    from calopt.files import read_attrs

    try:
        with h5py.File(path, "r") as f:
            return read_attrs(f)
    except OSError:
        return {}


def _library(what: str, path: Path) -> tuple[dict[str, Any], str]:
    technology, _, particle_class = what.rpartition("-")
    holds: dict[str, Any] = {"technology": technology, "particle_class": particle_class}
    attrs = _h5_attrs(path)
    try:
        spec = json.loads(attrs["library"])
        holds |= {"generator": spec["generator"], "energies": len(spec["energies"]), "angles": len(spec["angles"]),
                  "n_per_point": spec["n_per_point"], "seed": spec["seed"]}  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return holds, f"{technology} {particle_class} showers"
    if "generator_identity" in attrs:
        holds["generator_identity"] = attrs["generator_identity"]
    by, ident = holds["generator"], holds.get("generator_identity", "")
    if ident.startswith("surrogate-sha256:"):
        by += f" (sha256 {ident.split(':', 1)[1][:12]})"
    elif ident:
        by = ident
    grid = f"{holds['energies']} energies x {holds['angles']}x{holds['angles']} angles x {holds['n_per_point']}"
    return holds, f"{technology} {particle_class} showers by {by}, {grid}, seed {holds['seed']}"


def _regressors(what: str, path: Path) -> tuple[dict[str, Any], str]:
    technology, _, cell = what.rpartition("-")
    holds: dict[str, Any] = {"technology": technology, "cell_size_mm": float(cell) if _is_float(cell) else cell}
    text = f"{technology} regressors for {cell} mm cells"
    try:
        inputs = json.loads(path.read_text())["inputs"]
        training, readout = inputs["training"], inputs["readout"]
        holds |= {"n_train": training["n_train"], "pileup": training.get("pileup", 0.0),
                  "fastsim": readout.get("fastsim")}  # fmt: skip
    except (OSError, KeyError, TypeError, ValueError):
        return holds, text
    text += f", {holds['n_train']} photons"
    if holds["pileup"]:
        text += f" at mu = {holds['pileup']:g}"
    if holds["fastsim"]:
        text += f", EM showers by {holds['fastsim']}"
    return holds, text


def _events(what: str, path: Path) -> tuple[dict[str, Any], str]:
    holds: dict[str, Any] = {"process": what}
    try:
        spec = json.loads(_h5_attrs(path)["settings"])
        holds |= {"n": spec["n"], "pileup": spec["pileup"], "seed": spec["seed"]}
    except (KeyError, TypeError, ValueError):
        return holds, f"{what} crossings"
    return holds, f"{holds['n']} {what} crossings at mu = {holds['pileup']:g}, seed {holds['seed']}"


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _reconstructions(what: str, path: Path) -> tuple[dict[str, Any], str]:
    technology, _, cell = what.rpartition("-")
    holds: dict[str, Any] = {"technology": technology, "cell_size_mm": float(cell) if _is_float(cell) else cell}
    return holds, f"design-conditioned reconstruction of {technology}-based modules, {cell} mm cells"


_DESCRIBE = {"libraries": _library, "regressors": _regressors, "events": _events, "reconstructions": _reconstructions}


def _entries(stages: tuple[str, ...]) -> list[_Entry]:
    """The entries of ``stages``, in stage order and by name; a missing folder has none."""
    from calopt.cache import stage_dir

    out = []
    for stage in stages:
        folder = stage_dir(stage)
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            m = _NAME.match(path.stem)
            if path.suffix != _SUFFIX[stage] or m is None or path.name.startswith(".") or not path.is_file():
                continue
            holds, text = _DESCRIBE[stage](m["what"], path)
            out.append(_Entry(stage, path, m["key"], path.stat().st_size, holds, text))
    return out


def _totals(entries: list[_Entry], stages: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    per = {s: {"entries": 0, "size_bytes": 0} for s in stages}
    for e in entries:
        per[e.stage]["entries"] += 1
        per[e.stage]["size_bytes"] += e.size
    return per, {"entries": len(entries), "size_bytes": sum(e.size for e in entries)}


def _summary(per: dict[str, Any], total: dict[str, Any]) -> str:
    parts = "; ".join(f"{s} {d['entries']}, {format_bytes(d['size_bytes'])}" for s, d in per.items())
    n = total["entries"]
    return f"{n} entr{'y' if n == 1 else 'ies'}, {format_bytes(total['size_bytes'])} ({parts})"


@cache_app.command("list")
def list_(stage: str | None = STAGE_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Show the cache's entries: stage, file name, key, size and what each holds, with totals."""
    from calopt.cache import cache_dir

    stages = _stages(stage)
    entries = _entries(stages)
    per, total = _totals(entries, stages)
    if json_out:
        print_json({"cache": str(cache_dir()), "entries": [e.to_dict() for e in entries], "stages": per,
                    "total": total})  # fmt: skip
        return
    typer.echo(f"cache {cache_dir()}")
    if entries:
        width = max(len(e.path.name) for e in entries)
        for e in entries:
            typer.echo(f"  {e.stage:<10} {e.path.name:<{width}}  {e.key}  {format_bytes(e.size):>8}  {e.description}")
    typer.echo(f"  total: {_summary(per, total)}")


def _remove_lock(lock: Path) -> bool:
    """Remove a build's lock file unless a running build holds it."""
    import fcntl

    try:
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            lock.unlink(missing_ok=True)
            return True
    except OSError:
        return False


@cache_app.command("clear")
def clear(stage: str | None = STAGE_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Remove the cache's entries (all, or one stage's) and their lock files; report what was freed."""
    from calopt.cache import cache_dir, stage_dir

    stages = _stages(stage)
    entries = _entries(stages)
    for e in entries:
        e.path.unlink(missing_ok=True)
    locks = 0
    for s in stages:
        folder = stage_dir(s)
        if folder.is_dir():
            locks += sum(_remove_lock(p) for p in sorted(folder.glob("*.lock")))
    per, total = _totals(entries, stages)
    if json_out:
        print_json({"cache": str(cache_dir()), "removed": [e.to_dict() for e in entries], "locks_removed": locks,
                    "stages": per, "total": total})  # fmt: skip
        return
    typer.echo(f"cache {cache_dir()}: removed {_summary(per, total)}, {locks} lock files")
