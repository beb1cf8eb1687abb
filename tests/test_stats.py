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


def test_binomial_error_known_cases():
    from calopt.stats import binomial_error

    assert binomial_error(5, 10) == pytest.approx(np.sqrt(0.25 / 10))
    assert binomial_error(0, 10) == 0.0 and binomial_error(10, 10) == 0.0
    assert np.isnan(binomial_error(0, 0))
    # the spread of k / n over binomial toys
    rng = np.random.default_rng(2)
    p = rng.binomial(400, 0.3, size=20000) / 400
    assert binomial_error(120, 400) == pytest.approx(np.std(p), rel=0.03)


def test_robust_sigma_error_against_toys():
    """The error of the Gaussian-core width is the spread of robust_sigma over Gaussian toys,
    within 10 % (the factor 1.3 against the asymptotic 1.36: 4.5 % low)."""
    from calopt.stats import ROBUST_SIGMA_EFFICIENCY, robust_sigma_error

    rng = np.random.default_rng(3)
    widths = [robust_sigma(rng.normal(0.0, 2.0, 400)) for _ in range(3000)]
    expected = robust_sigma_error(2.0, 400)
    assert expected == pytest.approx(2.0 / np.sqrt(2 * 399) * ROBUST_SIGMA_EFFICIENCY)
    assert expected == pytest.approx(np.std(widths), rel=0.1)
    assert np.isnan(robust_sigma_error(2.0, 1)) and np.isnan(robust_sigma_error(float("nan"), 100))
