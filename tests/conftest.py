"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest

import calopt.simulation.library as library
from calopt.detector import get_technology
from calopt.simulation.cascade import CascadeSimulator
from calopt.simulation.particles import Particles, species


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory):
    """One CALOPT_CACHE for the whole test session, set before the first test and for every
    test: shower libraries, regressors and events built by one test are reused by the next, and
    no test reads or writes the user's cache. What the folder holds depends on which tests ran
    before (their selection and order vary): a test that asserts on the cache's content uses
    ``fresh_cache`` instead."""
    path = tmp_path_factory.mktemp("cache", numbered=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CALOPT_CACHE", str(path))
        yield path


@pytest.fixture
def fresh_cache(tmp_path_factory, monkeypatch):
    """An empty CALOPT_CACHE of the test's own, with no shower library held in memory (a
    library loaded from another folder would be used without a file here), for a test that
    asserts on what the cache holds before and after it runs. The shared cache and the loaded
    libraries come back after the test."""
    path = tmp_path_factory.mktemp("fresh-cache")
    monkeypatch.setenv("CALOPT_CACHE", str(path))
    monkeypatch.setattr(library, "_LOADED", {})
    return path


@pytest.fixture(scope="session")
def sim() -> CascadeSimulator:
    return CascadeSimulator()


@pytest.fixture(scope="session")
def shashlik():
    return get_technology("lhcb-shashlik")


def gun(
    particle: str, energy_mev: float, n: int, *, tilt_deg: float = 0.0, spread: float = 0.0, seed: int = 0
) -> Particles:
    """n particles along the module axis (optionally tilted in x and y), entry points uniform
    within +-spread/2 of the window centre."""
    t = np.tan(np.radians(tilt_deg))
    d = np.array([t, t, 1.0])
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-spread / 2, spread / 2, size=(n, 2)) if spread else np.zeros((n, 2))
    return Particles(
        np.full(n, species(particle).pdg), np.full(n, energy_mev), np.tile(d / np.linalg.norm(d), (n, 1)), pts
    )
