"""The contract of :class:`~calopt.simulation.base.ShowerSimulator`, run over every backend: the
cascade, GFlash, a tiny shower library, each surrogate model type (tiny checkpoints trained on
synthetic showers) and the shipped default surrogate.

Every backend must: be a ``ShowerSimulator`` that ``get_simulator`` gives; put showers and times
on the technology's fine grid and sections (non-negative, finite, times 0 in empty cells) with
the required shower-file attributes, and survive a write and read; be deterministic in the seed
(and change with it, except the library, which ignores it by design); give a shower that does
not depend on the chunk it is simulated in or on the number of workers; have the energy scale
the cascade's containment implies; and refuse, with one-line errors, what it cannot simulate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calopt.detector.technologies import get_technology
from calopt.errors import CaloptInputError
from calopt.simulation.base import BACKENDS as NAMES
from calopt.simulation.base import ShowerSimulator, get_simulator, shower_seeds
from calopt.simulation.cascade.kernel import DIAG
from calopt.simulation.cascade.simulator import CascadeSimulator
from calopt.simulation.gflash import GFlashSimulator
from calopt.simulation.library import LibrarySimulator
from calopt.simulation.particles import BY_PDG, Particles
from calopt.simulation.runner import RunSpec, run_simulation
from calopt.simulation.showers import REQUIRED_ATTRS, Showers, read_showers, write_showers
from calopt.simulation.surrogates.registry import MODEL_TYPES
from calopt.simulation.surrogates.simulator import SurrogateSimulator
from calopt.simulation.surrogates.training import train_surrogate
from tests.simulation.test_surrogates import CROP, TINY, synthetic_showers

TECH = get_technology("lhcb-shashlik")
N = 20
SEED = 5
E_MEV = 10_000.0  # within every backend's range (the surrogates': 1-100 GeV)
SURROGATE_TYPES = tuple(MODEL_TYPES)  # wgan, flow, adagan: tiny checkpoints
BACKENDS = ("cascade", "gflash", "library", *SURROGATE_TYPES, "surrogate")
EXACT = {"cascade", "gflash", "library"}  # the others: batched network arithmetic, equal to rounding


def photons(n: int, seed: int) -> Particles:
    """10 GeV photons within 0.1 rad of the module axis, entering within +-0.45 pitch of the
    window centre (inside every backend's range)."""
    rng = np.random.default_rng(seed)
    th, ph = 0.1 * np.sqrt(rng.random(n)), rng.uniform(0.0, 2 * np.pi, n)
    d = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=1)
    half = 0.45 * TECH.fine_pitch
    return Particles(np.full(n, 22), np.full(n, E_MEV), d, rng.uniform(-half, half, (n, 2)))


P = photons(N, 0)


@dataclass
class Backend:
    """A backend under test: its ``get_simulator`` argument and its simulator."""

    name: str
    spec: str
    sim: ShowerSimulator


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint per surrogate model type, trained as in test_surrogates.py."""
    folder = tmp_path_factory.mktemp("backends")
    data = folder / "train.h5"
    write_showers(data, synthetic_showers(96, 1))
    out = {}
    for mt in SURROGATE_TYPES:
        out[mt] = folder / f"{mt}.pt"
        train_surrogate(mt, [data], out[mt], steps=6, seed=3, crop=CROP, energy_range_gev=(1, 100), theta_max=0.3,
                        settings=TINY)  # fmt: skip
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, checkpoints, tmp_path_factory) -> Backend:
    name = request.param
    if name == "library":  # one energy, one angle, four entry points: four cascade showers
        folder = tmp_path_factory.mktemp("library")
        return Backend(name, name, LibrarySimulator(energies=(10.0,), angles=(0.0,), n_per_point=4, folder=folder))
    spec = str(checkpoints[name]) if name in checkpoints else name
    return Backend(name, spec, get_simulator(spec))


@pytest.fixture(scope="module")
def showers(backend) -> Showers:
    """The backend's showers of the photons ``P`` with ``SEED``."""
    return backend.sim.simulate(P, TECH, SEED)


@pytest.fixture(scope="module")
def cascade_scale() -> dict[str, float]:
    """From 20 cascade photons of 10 GeV: ``containment``, the fraction of the energy deposited
    in the module and seen in the scoring window (leakage ~1 %), and ``response``, the mean
    E_vis/E (the cascade's own sampling fraction, ~8 % above the nominal one, times the
    containment)."""
    sh = CascadeSimulator().simulate(photons(20, 99), TECH, 99)
    d = sh.diagnostics["energy_balance"].astype(np.float64)
    containment = d[:, DIAG.DEPOSITED] / E_MEV * d[:, DIAG.VISIBLE_WINDOW] / d[:, DIAG.VISIBLE_ALL]
    return {"containment": float(containment.mean()), "response": float((sh.visible_energy / E_MEV).mean())}


def assert_same(name: str, a: np.ndarray, b: np.ndarray) -> None:
    """Bit for bit for an exact backend; to float rounding for a network (its sums over a batch
    may be ordered differently)."""
    if name in EXACT:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_is_a_shower_simulator_that_get_simulator_gives(backend):
    assert isinstance(backend.sim, ShowerSimulator)
    given = get_simulator(backend.spec)
    assert isinstance(given, ShowerSimulator) and type(given) is type(backend.sim)
    expected = {"cascade": CascadeSimulator, "gflash": GFlashSimulator, "library": LibrarySimulator}
    assert isinstance(backend.sim, expected.get(backend.name, SurrogateSimulator))
    if backend.name in ("cascade", "gflash", "library", "surrogate"):
        assert backend.name in NAMES and backend.sim.name == backend.name
    if isinstance(backend.sim, SurrogateSimulator):
        assert backend.sim.model_type.name in ((backend.name,) if backend.name in SURROGATE_TYPES else MODEL_TYPES)


def test_grid_sections_attributes_and_file(backend, showers, tmp_path):
    shape = (N, len(TECH.section_edges) - 1, TECH.grid, TECH.grid)
    assert showers.showers.shape == shape and showers.times is not None and showers.times.shape == shape
    for a in (showers.showers, showers.times):
        assert a.dtype == np.float32 and np.isfinite(a).all() and (a >= 0).all()
    assert (showers.times[showers.showers == 0] == 0).all()
    assert (showers.visible_energy > 0).all()
    np.testing.assert_array_equal(showers.incident_energies[:, 0], P.energies)
    np.testing.assert_array_equal(showers.pdg, P.pdg)
    attrs = backend.sim.attrs(TECH, SEED)
    assert set(REQUIRED_ATTRS) <= attrs.keys() and attrs.keys() == showers.attrs.keys()
    assert attrs["technology"] == TECH.name and attrs["seed"] == SEED
    assert attrs["sampling_fraction"] == TECH.sampling_fraction
    np.testing.assert_array_equal(attrs["section_edges_mm"], TECH.section_edges)
    path = tmp_path / "showers.h5"
    write_showers(path, showers)
    back = read_showers(path)
    np.testing.assert_array_equal(back.showers, showers.showers)
    np.testing.assert_array_equal(back.times, showers.times)
    np.testing.assert_array_equal(back.pdg, showers.pdg)
    for key in REQUIRED_ATTRS:
        np.testing.assert_array_equal(back.attrs[key], attrs[key])


def test_deterministic_in_the_seed(backend, showers):
    again = backend.sim.simulate(P, TECH, SEED)
    np.testing.assert_array_equal(again.showers, showers.showers)
    np.testing.assert_array_equal(again.times, showers.times)
    other = backend.sim.simulate(P[:5], TECH, SEED + 1)
    if backend.name == "library":  # a lookup: the seed is recorded, the showers do not depend on it
        np.testing.assert_array_equal(other.showers, showers.showers[:5])
        assert other.attrs["seed"] == SEED + 1
    else:
        for i in range(5):
            assert not np.array_equal(other.showers[i], showers.showers[i])


def test_a_shower_does_not_depend_on_its_chunk(backend, showers):
    np.testing.assert_array_equal(
        backend.sim.simulate(P, TECH, SEED, seeds=shower_seeds(SEED, 0, N)).showers, showers.showers
    )
    for a, b in [(0, 1), (3, 8), (15, N)]:
        part = backend.sim.simulate(P[a:b], TECH, SEED, seeds=shower_seeds(SEED, a, b - a))
        assert_same(backend.name, part.showers, showers.showers[a:b])
        assert_same(backend.name, part.times, showers.times[a:b])


# Energy scale at 10 GeV: (anchor, relative tolerance) per backend, the anchors from the cascade's
# containment c and response (cascade_scale):
# * "cascade" (the cascade's response): the cascade itself (another 20 showers: ~0.5 % statistical
#   error each), the library (cascade showers) and the shipped surrogate (trained on the cascade);
# * "nominal" (sampling_fraction x c): GFlash, whose visible scale is the nominal sampling
#   fraction by construction, with a leakage like the cascade's;
# * "synthetic" (sampling_fraction): the tiny surrogates, trained for 6 steps on synthetic showers
#   that are fully contained with E_vis/E = 0.166 (1.06 x the nominal 0.156): their scale is
#   the synthetic one to a few % (a 6-step model), so 12 % around the nominal value.
SCALE = {"cascade": ("cascade", 0.03), "library": ("cascade", 0.03), "surrogate": ("cascade", 0.04),
         "gflash": ("nominal", 0.03)} | {mt: ("synthetic", 0.12) for mt in SURROGATE_TYPES}  # fmt: skip


def test_energy_scale(backend, showers, cascade_scale):
    anchor, tol = SCALE[backend.name]
    expected = {
        "cascade": cascade_scale["response"],
        "nominal": TECH.sampling_fraction * cascade_scale["containment"],
        "synthetic": TECH.sampling_fraction,
    }[anchor]
    assert 0.97 < cascade_scale["containment"] < 1.0
    assert (showers.visible_energy / E_MEV).mean() == pytest.approx(expected, rel=tol)


ALL_PDG = np.array(sorted(BY_PDG))
SURROGATE_REFUSALS: list[tuple[str, tuple[Any, ...], str]] = [
    ("check_particles", (np.array([22, 211]),), r"trained on gamma, e- only, got particle pi\+"),
    ("check_particles", (np.array([-11]),), r"got particle e\+"),
    ("check_run", (TECH.name, "pi+", 1.0, 10.0, 0.0), r"got particle pi\+"),
    ("check_run", (TECH.name, "gamma", 1.0, 200.0, 0.0), "energy 200 GeV is outside"),
    ("check_run", (TECH.name, "gamma", 0.5, 10.0, 0.0), "energy 0.5 GeV is outside"),
    ("check_run", (TECH.name, "gamma", 1.0, 100.0, 0.5), "angle 0.5 rad .* outside"),
    ("check_run", ("spacal-w", "gamma", 1.0, 10.0, 0.0), "trained for technology 'lhcb-shashlik', not 'spacal-w'"),
]
# what each backend must refuse (method, arguments, message) and accept (method, arguments)
REFUSALS: dict[str, list[tuple[str, tuple[Any, ...], str]]] = {
    "cascade": [],
    "library": [],
    "gflash": [
        ("check_particles", (np.array([22, 211]),), r"electromagnetic showers only .* \[211\]"),
        ("check_particles", (np.array([13, 2112]),), r"electromagnetic showers only .* \[13, 2112\]"),
        ("check_run", (TECH.name, "pi+", 1.0, 10.0, 0.0), "electromagnetic showers only"),
    ],
} | {name: SURROGATE_REFUSALS for name in (*SURROGATE_TYPES, "surrogate")}
ACCEPTS: dict[str, list[tuple[str, tuple[Any, ...]]]] = {
    name: [("check_particles", (ALL_PDG,)), ("check_run", ("spacal-w", "n", 0.1, 1000.0, 1.5))]
    for name in ("cascade", "library")
} | {
    "gflash": [("check_particles", (np.array([22, 11, -11]),)), ("check_run", ("spacal-w", "e+", 0.1, 1000.0, 1.5))],
} | {
    name: [("check_particles", (np.array([22, 11]),)), ("check_run", (TECH.name, "e-", 1.0, 100.0, 0.3))]
    for name in (*SURROGATE_TYPES, "surrogate")
}  # fmt: skip


def test_refusals_are_one_line_input_errors(backend):
    for method, args, match in REFUSALS[backend.name]:
        with pytest.raises(CaloptInputError, match=match) as exc:
            getattr(backend.sim, method)(*args)
        assert "\n" not in str(exc.value), (method, args)
    for method, args in ACCEPTS[backend.name]:
        assert getattr(backend.sim, method)(*args) is None
    if REFUSALS[backend.name]:  # simulate refuses the species that check_particles refuses
        pions = replace(P[:2], pdg=np.full(2, 211, dtype=np.int32))
        with pytest.raises(CaloptInputError, match=r"pi\+|211"):
            backend.sim.simulate(pions, TECH, SEED)
    if backend.name not in ("cascade", "library", "gflash"):  # and the surrogates, a 200 GeV photon
        with pytest.raises(CaloptInputError, match="energy 200 GeV is outside"):
            backend.sim.simulate(replace(P[:2], energies=np.full(2, 200_000.0)), TECH, SEED)


@pytest.mark.parametrize("name", ["gflash", "flow"])
def test_a_run_does_not_depend_on_the_workers(name, checkpoints, tmp_path):
    spec = RunSpec(TECH.name, "gamma", 6, seed=4, energy_range=(2.0, 20.0), theta_max=0.2, chunk_size=2,
                   backend=str(checkpoints.get(name, name)))  # fmt: skip
    one = read_showers(run_simulation(spec, tmp_path / "one.h5"))
    two = read_showers(run_simulation(spec, tmp_path / "two.h5", workers=2))
    assert_same(name, two.showers, one.showers)
    assert_same(name, two.times, one.times)
    np.testing.assert_array_equal(two.incident_energies, one.incident_energies)
