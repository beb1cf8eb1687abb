"""``calopt events generate``: bunch crossings at the ECAL face, in resumable chunks.

A crossing is one primary collision (a B0 -> J/psi pi0 signal event, a minimum-bias event, or
a particle gun) plus a Poisson number (mean ``pileup``) of minimum-bias pile-up collisions.
Every collision gets its own vertex from the luminous region: z ~ N(0, sigma_z),
t ~ N(0, sigma_t), uncorrelated (physics-reference §2: sigma_z = 53 mm, sigma_t = 178 ps for
head-on Gaussian bunches). Pile-up is drawn, with replacement, from a library of
pre-generated minimum-bias collisions (per chunk), each reuse with a new vertex, so high mu
stays cheap. Particles are propagated to the ECAL face (:mod:`.propagation`); those that hit
the wall outside the beam hole are kept, and the signal's pi0 photons and muons always.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calopt import __version__
from calopt.cache import build_once, cache_key, stage_dir
from calopt.detector.wall import LHCB_WALL
from calopt.errors import CaloptInputError
from calopt.generation.events import FLAG, Events, concatenate_events, is_events_file, read_events, write_events
from calopt.generation.events import FORMAT_VERSION as EVENTS_FORMAT_VERSION
from calopt.generation.propagation import propagate_to_ecal
from calopt.generation.pythia import Collision, minbias_collisions, pythia_seed, signal_collisions
from calopt.jobs import ChunkedJob, check_fits_in_memory, check_seed
from calopt.simulation.particles import MAX_ENERGY_GEV, species

__all__ = [
    "EVENTS_VERSION",
    "MAX_PILEUP",
    "PROCESSES",
    "EventSpec",
    "cached_events",
    "check_output",
    "generate_chunk",
    "generate_events",
]

# Version of the generated crossings; it enters the key of cached crossings (EventSpec.key).
# Bump it whenever a spec would generate other crossings: the generators' settings (pythia.py),
# the gun, the vertices, the pile-up overlay, the propagation (propagation.py) or the selection
# of kept particles.
EVENTS_VERSION = 1

PROCESSES = ("minbias", "b0-jpsipi0", "gun")
GUN_REGIONS = {
    "all": None,
    "inner": (969.6, 727.2, 0.0, 0.0),
    "middle": (1939.2, 1212.0, 969.6, 727.2),
    "outer": (LHCB_WALL.half_width, LHCB_WALL.half_height, 1939.2, 1212.0),
}  # (outer half x, outer half y, inner half x, inner half y) of the lhcb-run3 regions [mm]


# The largest mean pile-up the event generation serves: 5 x the Upgrade II reference of ~40
# (LHCb speakers' bureau abstract 12853, physics-reference §2b); a crossing then holds ~10^4
# particles at the ECAL and the pile-up library of a chunk grows with mu.
MAX_PILEUP = 200.0

# Orders of magnitude for refusing sample sizes that cannot fit in memory (measured on the
# cached b0-jpsipi0 samples: 77 particles per signal crossing at mu = 0, 37 more per pile-up
# collision, 52 bytes per particle in memory)
PARTICLES_PER_SIGNAL = 80
PARTICLES_PER_COLLISION = 40
BYTES_PER_PARTICLE = 52
# the luminous region's widths: the LHC's are ~50 mm and ~180 ps; a metre or a nanosecond is
# no collider's
MAX_SIGMA_Z_MM = 1000.0
MAX_SIGMA_T_PS = 1000.0


def crossing_bytes(pileup: float) -> float:
    """Estimated memory [bytes] of one crossing at mean pile-up ``pileup``."""
    return BYTES_PER_PARTICLE * (PARTICLES_PER_SIGNAL + PARTICLES_PER_COLLISION * pileup)


@dataclass(frozen=True)
class EventSpec:
    """Settings of an event-generation run (energies in GeV)."""

    process: str
    n: int
    pileup: float = 0.0
    seed: int = 0
    sigma_z_mm: float = 53.0
    sigma_t_ps: float = 178.0
    gun_particle: str = "gamma"
    gun_energy_range: tuple[float, float] = (1.0, 100.0)
    gun_log_uniform: bool = True
    gun_region: str = "all"
    chunk_size: int = 500

    def validate(self) -> None:
        if self.process not in PROCESSES:
            raise CaloptInputError(f"unknown process {self.process!r}; expected one of {', '.join(PROCESSES)}")
        if self.n <= 0:
            raise CaloptInputError(f"--n must be a positive number of events, got {self.n}")
        if not (0 <= self.pileup <= MAX_PILEUP):
            raise CaloptInputError(f"--pileup must be between 0 and {MAX_PILEUP:g} (the largest mean pile-up the event "
                                   f"generation serves; Upgrade II's reference is 40), got {self.pileup}")  # fmt: skip
        if not 0 <= self.sigma_z_mm <= MAX_SIGMA_Z_MM:
            raise CaloptInputError(f"--sigma-z must be in [0, {MAX_SIGMA_Z_MM:g}] mm, got {self.sigma_z_mm}")
        if not 0 <= self.sigma_t_ps <= MAX_SIGMA_T_PS:
            raise CaloptInputError(f"--sigma-t must be in [0, {MAX_SIGMA_T_PS:g}] ps, got {self.sigma_t_ps}")
        if self.chunk_size <= 0:
            raise CaloptInputError(f"chunk size must be positive, got {self.chunk_size}")
        check_seed(self.seed)
        # parts and the merged sample are in memory together when they are merged
        check_fits_in_memory("--n", self.n, 2 * crossing_bytes(self.pileup), "crossing")
        if self.process == "gun":
            sp = species(self.gun_particle)
            lo, hi = self.gun_energy_range
            if not (0 < lo <= hi <= MAX_ENERGY_GEV):
                raise CaloptInputError(f"--gun-energy-range needs 0 < LO <= HI <= {MAX_ENERGY_GEV:g} (GeV), "
                                       f"got {lo} {hi}")  # fmt: skip
            if lo * 1000.0 <= sp.mass:
                raise CaloptInputError(f"gun energy {lo} GeV is below the {self.gun_particle} mass")
            if self.gun_region not in GUN_REGIONS:
                known = ", ".join(GUN_REGIONS)
                raise CaloptInputError(f"unknown --gun-region {self.gun_region!r}; expected one of {known}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def key(self) -> str:
        """The cache key of these crossings: the settings, :data:`EVENTS_VERSION` and the
        events file format version (:func:`calopt.cache.cache_key`)."""
        return cache_key("events", {"spec": asdict(self), "events_version": EVENTS_VERSION,
                                    "events_format": EVENTS_FORMAT_VERSION})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> EventSpec:
        d = json.loads(text)
        d["gun_energy_range"] = tuple(d["gun_energy_range"])
        return cls(**d)


def _reaches_wall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return LHCB_WALL.slot_of(x, y)[2]


def signal_accepted(col: Collision) -> bool:
    """Both photons of the signal pi0 hit the ECAL outside the beam hole and both muons are
    in the LHCb tracking acceptance 2 < eta < 5 (collision at the nominal vertex)."""
    assert col.truth is not None
    ok = True
    vertex = col.truth["b_decay_vertex"][None, :]
    for key in ("gamma1", "gamma2"):
        x, y, _, _, hit = propagate_to_ecal(col.truth[key][None, :3], np.zeros(1), np.zeros(1), vertex)
        ok &= bool(hit[0] and _reaches_wall(x, y)[0])
    for key in ("mu_plus", "mu_minus"):
        px, py, pz = col.truth[key][:3]
        pt = math.hypot(px, py)
        eta = math.asinh(pz / pt) if pt > 0 else math.inf
        ok &= 2.0 < eta < 5.0
    return ok


def _gun_collision(spec: EventSpec, rng: np.random.Generator, z_vertex: float) -> Collision:
    """One gun particle from a vertex at z_vertex [mm], aimed at a uniform point of the region."""
    sp = species(spec.gun_particle)
    lo, hi = spec.gun_energy_range
    u = rng.random()
    e = lo * (hi / lo) ** u if spec.gun_log_uniform else lo + (hi - lo) * u
    e *= 1000.0
    region = GUN_REGIONS[spec.gun_region]
    hx_o, hy_o, hx_i, hy_i = region if region else (LHCB_WALL.half_width, LHCB_WALL.half_height, 0.0, 0.0)
    while True:  # uniform over the region, outside the beam hole and the inner rectangle
        x, y = rng.uniform(-hx_o, hx_o), rng.uniform(-hy_o, hy_o)
        if not (abs(x) < hx_i and abs(y) < hy_i) and _reaches_wall(np.array([x]), np.array([y]))[0]:
            break
    d = np.array([x, y, LHCB_WALL.z_front - z_vertex])
    d /= np.linalg.norm(d)
    pabs = math.sqrt(max(e * e - sp.mass**2, 0.0))
    return Collision(
        pdg=np.array([sp.pdg], dtype=np.int32),
        charge=np.array([sp.charge], dtype=np.int8),
        p=(d * pabs)[None, :],
        energy=np.array([e]),
        mass=np.array([sp.mass]),
        vertex=np.zeros((1, 4)),
        flags=np.array([FLAG.FROM_SIGNAL], dtype=np.uint8),
    )


def _crossing(collisions: list[Collision], vertices: np.ndarray) -> dict[str, np.ndarray]:
    """Place collisions at their vertices (z [mm], t [ns]), propagate, keep what reaches the wall."""
    cols = []
    for k, (c, (z, t)) in enumerate(zip(collisions, vertices)):
        vtx = c.vertex + np.array([0.0, 0.0, z, t])
        x, y, ta, p_face, ok = propagate_to_ecal(c.p, c.charge, c.mass, vtx)
        hit = ok & _reaches_wall(x, y)
        flags = c.flags | np.where(hit, FLAG.REACHES_ECAL, 0).astype(np.uint8)
        keep = hit | ((c.flags & (FLAG.SIGNAL_MUON | FLAG.SIGNAL_PI0_PHOTON)) > 0)
        cols.append(
            {
                "pdg": c.pdg[keep],
                "charge": c.charge[keep],
                "p": np.where(ok[:, None], p_face, c.p)[keep],
                "energy": c.energy[keep],
                "vertex": vtx[keep],
                "entry": np.stack([x, y, ta], axis=1)[keep],
                "pv": np.full(int(keep.sum()), k, dtype=np.int16),
                "flags": flags[keep],
            }
        )
    return {key: np.concatenate([c[key] for c in cols]) for key in cols[0]}


def generate_chunk(spec_json: str, k: int, parts_dir: str) -> str:
    """Generate chunk ``k`` of a run and write it atomically (a Dask-shippable function)."""
    spec = EventSpec.from_json(spec_json)
    start = k * spec.chunk_size
    n = min(spec.chunk_size, spec.n - start)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0xE7E7, k]))
    truth: dict[str, list[np.ndarray]] = {}
    tried = 0
    if spec.process == "b0-jpsipi0":
        primaries, tried = signal_collisions(n, pythia_seed(spec.seed, 1, k), signal_accepted)
        for c in primaries:
            assert c.truth is not None
            for key, v in c.truth.items():
                truth.setdefault(key, []).append(v)
    n_pu = rng.poisson(spec.pileup, size=n) if spec.pileup > 0 else np.zeros(n, dtype=np.int64)
    n_minbias = int(n_pu.sum()) + (n if spec.process == "minbias" else 0)
    library: list[Collision] = []
    if n_minbias:
        size = min(n_minbias, max(100, min(2000, n_minbias // 4)))
        library = minbias_collisions(size, pythia_seed(spec.seed, 2, k))
    if spec.process == "minbias":
        primaries = library[:n] if len(library) >= n else [library[i] for i in rng.integers(len(library), size=n)]
    sigma_t_ns = spec.sigma_t_ps * 1e-3
    pv_pos = np.stack([rng.normal(0.0, spec.sigma_z_mm, n), rng.normal(0.0, sigma_t_ns, n)], axis=1)
    if spec.process == "gun":
        primaries = [_gun_collision(spec, rng, z) for z in pv_pos[:, 0]]
    crossings = []
    for i in range(n):
        pile = [library[j] for j in rng.integers(len(library), size=int(n_pu[i]))] if n_pu[i] else []
        vtx = np.stack([rng.normal(0.0, spec.sigma_z_mm, len(pile)), rng.normal(0.0, sigma_t_ns, len(pile))], axis=1)
        crossings.append(_crossing([primaries[i], *pile], np.concatenate([pv_pos[i : i + 1], vtx])))
    offsets = np.concatenate([[0], np.cumsum([len(c["pdg"]) for c in crossings])])
    ev = Events(
        particles={key: np.concatenate([c[key] for c in crossings]) for key in crossings[0]},
        offsets=offsets,
        n_pileup=n_pu.astype(np.int32),
        pv_position=pv_pos,
        attrs=_attrs(spec) | {"signal_candidates_tried": tried},
        truth={key: np.stack(v) for key, v in truth.items()},
    )
    path = Path(parts_dir) / f"chunk-{k:06d}.h5"
    write_events(path, ev)
    return str(path)


def _attrs(spec: EventSpec) -> dict[str, object]:
    return {
        "process": spec.process,
        "pileup_mu": spec.pileup,
        "seed": spec.seed,
        "sigma_z_mm": spec.sigma_z_mm,
        "sigma_t_ns": spec.sigma_t_ps * 1e-3,
        "z_front_mm": LHCB_WALL.z_front,
        "calopt_version": __version__,
        "settings": spec.to_json(),
    }


def _job(spec: EventSpec, out: Path) -> ChunkedJob:
    return ChunkedJob(Path(out), spec.to_json(), spec.n, spec.chunk_size, is_events_file, "calopt-events")


def check_output(spec: EventSpec, out: Path, overwrite: bool) -> None:
    spec.validate()
    _job(spec, out).check(overwrite)


def generate_events(
    spec: EventSpec,
    out: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run ``spec`` and write ``out`` (resumable, parallel on Dask like simulation runs)."""
    spec.validate()
    job = _job(spec, Path(out))
    with job.lock():
        parts = [read_events(p) for p in job.run(generate_chunk, workers=workers, scheduler=scheduler,
                                                  overwrite=overwrite, progress=progress)]  # fmt: skip
        merged = concatenate_events(parts)
        merged.attrs["signal_candidates_tried"] = int(sum(int(p.attrs["signal_candidates_tried"]) for p in parts))
        write_events(job.out, merged)
        job.finish()
    return job.out


def cached_events(spec: EventSpec, progress: Callable[[str], None] | None = None) -> Events:
    """The crossings of ``spec``, generated once and cached as
    ``<cache>/events/<process>-<key>.h5`` (:meth:`EventSpec.key`)."""
    folder = stage_dir("events")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.process}-{spec.key()}.h5"

    def generate() -> None:
        if progress:
            progress(f"generating {spec.n} {spec.process} crossings at mu = {spec.pileup:g} (cached for later)")
        generate_events(spec, path)

    build_once(path, generate)
    return read_events(path)
