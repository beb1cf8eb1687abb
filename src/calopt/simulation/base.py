"""The simulation stage's interface: a :class:`ShowerSimulator` turns particles entering one
module technology into showers on that technology's fine grid (docs/architecture.md).

Every backend (``cascade``, ``gflash``, ``library``, a ``surrogate`` checkpoint) implements the
whole protocol, so that the runner, the library builder and the command line call it without
probing; :class:`SimulatorDefaults` gives the members a backend has nothing special to do for.
Per-shower seeds come from :func:`shower_seeds`, the same for every backend, so that a shower
depends only on (run seed, index) and not on chunking or workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from calopt.cache import file_digest
from calopt.detector.technologies import Technology
from calopt.errors import CaloptInputError
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import Showers, shower_attrs

__all__ = [
    "BACKENDS",
    "ShowerSimulator",
    "SimulatorDefaults",
    "backend_identity",
    "get_simulator",
    "shower_seeds",
]

BACKENDS = ("cascade", "gflash", "library", "surrogate")  # by name; a surrogate also by its checkpoint's path


@runtime_checkable
class ShowerSimulator(Protocol):
    """A simulation backend: everything the runner, the library builder and the command line
    call on one.

    * ``name``: the backend's name;
    * ``attrs(tech, seed)``: the attributes of the shower file of its showers of ``tech`` made
      with ``seed`` (at least :data:`~calopt.simulation.showers.REQUIRED_ATTRS`);
    * ``check_particles(pdg)``: refuse, with a one-line :class:`~calopt.errors.CaloptInputError`,
      species (PDG ids) the backend cannot simulate;
    * ``check_run(technology, particle, e_lo_gev, e_hi_gev, theta_max)``: refuse the settings of
      a run (technology name, species name, total energies in GeV, maximum polar angle in rad)
      outside what the backend can simulate, before anything is simulated;
    * ``simulate(particles, tech, seed, *, seeds=None)``: the showers. Deterministic in ``seed``;
      the i-th shower belongs to the i-th particle, on ``tech``'s fine grid and sections.
      ``seeds``, when given, are per-particle seeds (a slice of :func:`shower_seeds`), so that a
      shower does not depend on how a run is chunked.
    """

    name: str

    def attrs(self, tech: Technology, seed: int) -> dict[str, Any]: ...

    def check_particles(self, pdg: np.ndarray) -> None: ...

    def check_run(
        self, technology: str, particle: str, e_lo_gev: float, e_hi_gev: float, theta_max: float
    ) -> None: ...

    def simulate(
        self, particles: Particles, tech: Technology, seed: int, *, seeds: np.ndarray | None = None
    ) -> Showers: ...


class SimulatorDefaults:
    """The protocol members a backend has nothing special to do for: the standard file
    attributes, no species refused, and a run refused only for a species that
    :meth:`check_particles` refuses. A backend overrides what it restricts or records more of."""

    name: str

    def attrs(self, tech: Technology, seed: int) -> dict[str, Any]:
        """The standard shower-file attributes with this backend as ``generator``."""
        return shower_attrs(tech, self.name, seed)

    def check_particles(self, pdg: np.ndarray) -> None:
        """Every species is simulated: nothing to refuse."""

    def check_run(self, technology: str, particle: str, e_lo_gev: float, e_hi_gev: float, theta_max: float) -> None:
        """Refuse a run only for its species (any technology, energy and angle is simulated)."""
        self.check_particles(np.array([species(particle).pdg]))


def shower_seeds(seed: int, start: int, n: int) -> np.ndarray:
    """Per-shower 32-bit seeds for showers start .. start+n-1 of a run with ``seed``: shower i's
    seed depends only on (``seed``, i), so any slice of a run can be simulated on its own."""
    return np.array(
        [
            np.random.SeedSequence([int(seed), 0x5EED, i]).generate_state(1, dtype=np.uint32)[0]
            for i in range(start, start + n)
        ],
        dtype=np.uint32,
    )


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
    if _is_surrogate(backend):
        from calopt.simulation.surrogates.simulator import load_surrogate

        return load_surrogate(None if backend == "surrogate" else backend)
    raise _unknown(backend)


def _is_surrogate(backend: str) -> bool:
    """``surrogate`` (the shipped default) or the path of a checkpoint."""
    return backend == "surrogate" or backend.endswith(".pt") or (backend not in BACKENDS and Path(backend).is_file())


def _unknown(backend: str) -> CaloptInputError:
    return CaloptInputError(
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
    if _is_surrogate(backend):
        if backend == "surrogate":
            from calopt.simulation.surrogates.simulator import DEFAULT_MODEL

            path = Path(DEFAULT_MODEL)
        else:
            path = Path(backend)
        if not path.is_file():
            raise CaloptInputError(f"surrogate checkpoint {str(path)!r} does not exist")
        return f"surrogate-sha256:{file_digest(path)}"
    raise _unknown(backend)
