"""The shared statistics helpers."""

import numpy as np
import pytest

from calopt.stats import fit_energy_resolution, robust_sigma


def test_robust_sigma_ignores_tails():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 20000), rng.uniform(-50, 50, 500)])
    assert robust_sigma(x) == pytest.approx(1.0, rel=0.05)
    assert np.isnan(robust_sigma(np.ones(3)))


def test_energy_resolution_fit():
    e = np.array([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0])
    s = np.sqrt(0.1**2 / e + 0.01**2 + 0.05**2 / e**2)
    fit = fit_energy_resolution(e, s, s * 0.01)
    assert fit["valid"] and fit["a"] == pytest.approx(0.1, rel=0.02) and fit["b"] == pytest.approx(0.01, rel=0.05)
    assert not fit_energy_resolution(e[:2], s[:2], s[:2] * 0.01)["valid"]
