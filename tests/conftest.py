"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from calopt.detector import get_technology
from calopt.simulation.cascade import CascadeSimulator
from calopt.simulation.particles import Particles, species


@pytest.fixture
def shared_cache(tmp_path_factory, monkeypatch):
    """One CALOPT_CACHE for the whole test session: shower libraries, regressors and events built
    by one test are reused by the next."""
    path = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("CALOPT_CACHE", str(path))
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
