"""The simulation stage's interface: a :class:`ShowerSimulator` turns particles entering one
module technology into showers on that technology's fine grid (DESIGN.md, stage 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from calopt.cache import file_digest
from calopt.detector.technologies import Technology
from calopt.errors import CaloptInputError
from calopt.simulation.particles import Particles
from calopt.simulation.showers import Showers

__all__ = ["BACKENDS", "ShowerSimulator", "get_simulator"]

BACKENDS = ("cascade", "gflash", "library", "surrogate")
AVAILABLE = ("cascade", "gflash", "library", "surrogate")


@runtime_checkable
class ShowerSimulator(Protocol):
    """Anything with a ``name`` and ``simulate(particles, technology, seed) -> Showers``.

    ``simulate`` must be deterministic in ``seed`` and return showers whose i-th entry
    belongs to the i-th particle, on ``technology``'s fine grid and sections. ``seeds``, when
    given, are per-particle seeds (so that a shower does not depend on how a run is chunked).
    """

    name: str

    def simulate(
        self, particles: Particles, tech: Technology, seed: int, *, seeds: np.ndarray | None = None
    ) -> Showers: ...


def get_simulator(backend: str) -> ShowerSimulator:
    """The simulator for a backend name, or for the path of a ``calopt-surrogate`` checkpoint
    (``surrogate`` is the default model shipped with calopt)."""
    if backend == "cascade":
        from calopt.simulation.cascade.simulator import CascadeSimulator

        return CascadeSimulator()
    if backend == "gflash":
        from calopt.simulation.gflash import GFlashSimulator

        return GFlashSimulator()
    if backend == "library":
        from calopt.simulation.library import LibrarySimulator

        return LibrarySimulator()
    if backend == "surrogate" or backend.endswith(".pt") or (backend not in BACKENDS and Path(backend).is_file()):
        from calopt.simulation.surrogates.simulator import load_surrogate

        return load_surrogate(None if backend == "surrogate" else backend)
    if backend in BACKENDS:
        raise CaloptInputError(
            f"backend {backend!r} is not available in this version of calopt; available: {', '.join(AVAILABLE)}"
        )
    raise CaloptInputError(
        f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)} or the path of a surrogate checkpoint"
    )


def backend_identity(backend: str) -> str:
    """What identifies the showers ``backend`` makes (the ``generator`` of a library), for cache
    keys: ``cascade-v<CASCADE_VERSION>``, ``gflash-v<GFLASH_VERSION>``, and for a surrogate
    ``surrogate-sha256:<hex>``, the hash of its checkpoint's content (``surrogate``: the default
    model shipped with calopt; a path: that file), so that a checkpoint retrained at the same
    path gives new libraries. The version constants are read when called (not imported with
    this module), so that a test can change them.

    The ``library`` backend has no identity of its own (its showers are those of its libraries,
    each identified by :meth:`calopt.simulation.library.LibrarySpec.key`) and is refused, as are
    unknown names and missing checkpoints."""
    if backend == "cascade":
        from calopt.simulation.cascade.simulator import CASCADE_VERSION

        return f"cascade-v{CASCADE_VERSION}"
    if backend == "gflash":
        from calopt.simulation.gflash import GFLASH_VERSION

        return f"gflash-v{GFLASH_VERSION}"
    if backend == "library":
        raise CaloptInputError("the library backend has no shower identity of its own; its libraries' keys identify it")
    if backend == "surrogate" or backend.endswith(".pt") or (backend not in BACKENDS and Path(backend).is_file()):
        if backend == "surrogate":
            from calopt.simulation.surrogates.simulator import DEFAULT_MODEL

            path = Path(DEFAULT_MODEL)
        else:
            path = Path(backend)
        if not path.is_file():
            raise CaloptInputError(f"surrogate checkpoint {str(path)!r} does not exist")
        return f"surrogate-sha256:{file_digest(path)}"
    raise CaloptInputError(
        f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)} or the path of a surrogate checkpoint"
    )
