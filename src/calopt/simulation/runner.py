"""Simulation runs: a gun of particles into one technology, in chunks, on Dask, resumable.

A run is fixed by its :class:`RunSpec`. Shower ``i`` depends only on (seed, i): its
conditions come from one generator seeded by the run seed, and its transport from its own
seed (:func:`~calopt.simulation.base.shower_seeds`). The output therefore does
not depend on the number of workers or on how often the run was interrupted.

Chunks of ``chunk_size`` showers are written atomically to ``OUT.parts/`` as they finish; a
killed run started again with the same settings skips the finished chunks. When all chunks
are there, they are merged into ``OUT`` (written atomically) and the parts are removed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calopt.detector.technologies import TECHNOLOGIES, Technology, get_technology
from calopt.errors import CaloptInputError
from calopt.jobs import ChunkedJob, check_fits_in_memory, check_seed
from calopt.simulation.base import ShowerSimulator, get_simulator, shower_seeds
from calopt.simulation.particles import MAX_ENERGY_GEV, Particles, species
from calopt.simulation.showers import concatenate, is_shower_file, read_showers, write_showers

__all__ = ["RunSpec", "check_output", "run_simulation", "sample_particles", "simulate_chunk"]


@dataclass(frozen=True)
class RunSpec:
    """Settings of a simulation run. Energies in GeV, angles in rad."""

    technology: str
    particle: str
    n: int
    seed: int = 0
    energy: float | None = None
    energy_range: tuple[float, float] | None = None
    log_uniform: bool = False
    theta_max: float = 0.0
    backend: str = "cascade"
    chunk_size: int = 100
    module: str | None = None  # a point of the module space (ModuleSpec JSON) instead of a built-in

    def tech(self) -> Technology:
        """The technology simulated: the module point's, else the built-in ``technology``."""
        if self.module is None:
            return get_technology(self.technology)
        from calopt.detector.module import ModuleSpec

        return ModuleSpec(**json.loads(self.module)).technology()

    def validate(self) -> None:
        tech = self.tech()
        if self.module is not None and tech.name not in TECHNOLOGIES and self.backend not in ("cascade", "gflash"):
            raise CaloptInputError(f"--backend {self.backend} serves the built-in technologies only; a module of "
                                   f"the space ({tech.name}) runs with --backend cascade or gflash")  # fmt: skip
        species(self.particle)
        sim = get_simulator(self.backend)  # a clear error if unavailable
        sim.check_particles(np.array([species(self.particle).pdg]))
        if self.n <= 0:
            raise CaloptInputError(f"--n must be a positive number of showers, got {self.n}")
        if self.chunk_size <= 0:
            raise CaloptInputError(f"chunk size must be positive, got {self.chunk_size}")
        if (self.energy is None) == (self.energy_range is None):
            raise CaloptInputError("give exactly one of --energy GEV or --energy-range LO HI")
        if self.energy is not None and not (0 < self.energy <= MAX_ENERGY_GEV):
            raise CaloptInputError(f"--energy must be in (0, {MAX_ENERGY_GEV:g}] GeV, got {self.energy}")
        if self.energy_range is not None:
            lo, hi = self.energy_range
            if not (0 < lo < hi <= MAX_ENERGY_GEV):
                raise CaloptInputError(f"--energy-range needs 0 < LO < HI <= {MAX_ENERGY_GEV:g} (GeV), got {lo} {hi}")
        check_seed(self.seed)
        if not (0.0 <= self.theta_max < math.pi / 2):
            raise CaloptInputError(f"--theta-max must be in [0, pi/2) rad, got {self.theta_max}")
        mass_gev = species(self.particle).mass / 1000.0
        e_min = self.energy if self.energy is not None else self.energy_range[0]  # type: ignore[index]
        e_max = self.energy if self.energy is not None else self.energy_range[1]  # type: ignore[index]
        if e_min <= mass_gev:
            raise CaloptInputError(
                f"energy {e_min} GeV is below the {self.particle} mass ({mass_gev:.4f} GeV); "
                "energies are total energies"
            )
        sim.check_run(self.technology, self.particle, e_min, e_max, self.theta_max)
        cells = (len(tech.section_edges) - 1) * tech.grid**2
        # the merge holds all showers (and their times) as float32
        check_fits_in_memory("--n", self.n, 2 * 4 * cells, "shower")

    def to_json(self) -> str:
        doc = asdict(self)
        if self.module is None:  # the JSON of runs of built-in technologies keeps its keys (resume)
            del doc["module"]
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        d = json.loads(text)
        if d["energy_range"] is not None:
            d["energy_range"] = (float(d["energy_range"][0]), float(d["energy_range"][1]))
        return cls(**d)


def sample_particles(spec: RunSpec, start: int = 0, stop: int | None = None) -> Particles:
    """The primaries start..stop of a run: energies (fixed, uniform or log-uniform), directions
    uniform in solid angle within ``theta_max`` of the module axis, entry points uniform within
    +-pitch/2 of the window centre. All N are drawn from one generator, then sliced."""
    tech = spec.tech()
    stop = spec.n if stop is None else stop
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0xC0D1]))
    n = spec.n
    if spec.energy is not None:
        e = np.full(n, spec.energy)
        rng.random(n)
    else:
        lo, hi = spec.energy_range  # type: ignore[misc]
        u = rng.random(n)
        e = lo * (hi / lo) ** u if spec.log_uniform else lo + (hi - lo) * u
    cos_max = math.cos(spec.theta_max)
    cost = 1.0 - rng.random(n) * (1.0 - cos_max)
    phi = 2.0 * math.pi * rng.random(n)
    sint = np.sqrt(1.0 - cost**2)
    dirs = np.stack([sint * np.cos(phi), sint * np.sin(phi), cost], axis=1)
    half = tech.fine_pitch / 2.0
    points = rng.uniform(-half, half, size=(n, 2))
    pdg = np.full(n, species(spec.particle).pdg)
    sl = slice(start, stop)
    return Particles(pdg[sl], e[sl] * 1000.0, dirs[sl], points[sl])


_SIMULATORS: dict[str, ShowerSimulator] = {}  # one per worker process, with its prepared tables


def simulate_chunk(spec_json: str, k: int, parts_dir: str) -> str:
    """Simulate chunk ``k`` of a run and write it atomically; returns the part's path.
    A top-level function so that Dask can ship it to workers."""
    spec = RunSpec.from_json(spec_json)
    sim = _SIMULATORS.get(spec.backend)
    if sim is None:
        sim = _SIMULATORS[spec.backend] = get_simulator(spec.backend)
    start = k * spec.chunk_size
    stop = min(start + spec.chunk_size, spec.n)
    particles = sample_particles(spec, start, stop)
    tech = spec.tech()
    showers = sim.simulate(particles, tech, spec.seed, seeds=shower_seeds(spec.seed, start, stop - start))
    path = Path(parts_dir) / f"chunk-{k:06d}.h5"
    write_showers(path, showers)
    return str(path)


def _job(spec: RunSpec, out: Path) -> ChunkedJob:
    return ChunkedJob(Path(out), spec.to_json(), spec.n, spec.chunk_size, is_shower_file, "calopt-showers")


def check_output(spec: RunSpec, out: Path, overwrite: bool) -> None:
    """Refuse, without touching anything, settings or an output that must not be used."""
    spec.validate()
    _job(spec, out).check(overwrite)


def run_simulation(
    spec: RunSpec,
    out: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run ``spec`` and write ``out``. ``workers > 1`` starts a Dask LocalCluster with that many
    single-threaded worker processes; ``scheduler`` connects to an existing Dask scheduler
    instead. ``progress(done, total)`` is called with numbers of showers."""
    spec.validate()
    job = _job(spec, Path(out))
    with job.lock():
        parts = job.run(simulate_chunk, workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress)
        write_showers(job.out, concatenate([read_showers(p) for p in parts]))
        job.finish()
    return job.out
