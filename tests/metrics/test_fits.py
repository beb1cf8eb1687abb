"""Resolution and mass-peak fits."""

import numpy as np
import pytest

from calopt.metrics import fit_energy_resolution, fit_mass_peak, robust_sigma


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


def test_mass_peak_fit():
    rng = np.random.default_rng(1)
    m = np.concatenate([rng.normal(135.0, 8.0, 3000), rng.uniform(50.0, 250.0, 4000)])
    f = fit_mass_peak(m, 50.0, 250.0, 135.0, 10.0)
    assert f.valid
    assert f.mean == pytest.approx(135.0, abs=0.7) and f.sigma == pytest.approx(8.0, rel=0.06)
    assert f.n_signal == pytest.approx(3000, rel=0.07)
    # S and B in +-2 sigma: 95.4 % of the signal, 4 sigma / 200 MeV of the flat background
    assert f.s_window == pytest.approx(0.954 * f.n_signal, rel=1e-3)
    assert f.b_window == pytest.approx(4000 * 4 * 8.0 / 200.0, rel=0.1)
    assert f.significance == pytest.approx(f.s_window / np.sqrt(f.s_window + f.b_window))


def test_failed_fits_are_reported_not_numbers():
    rng = np.random.default_rng(2)
    few = fit_mass_peak(rng.normal(135, 8, 10), 50.0, 250.0, 135.0, 10.0)
    assert not few.valid and "too few" in few.reason and few.to_dict()["sigma"] is None
    flat = fit_mass_peak(rng.uniform(50.0, 250.0, 3000), 50.0, 250.0, 135.0, 10.0)
    assert not flat.valid or flat.n_signal < 200


def test_a_spike_in_background_is_not_a_peak():
    """Flat background with a handful of coincident entries: the fit may latch on to them with a
    tiny width, but such a "peak" is reported as failed, not as a number."""
    rng = np.random.default_rng(1)
    m = np.concatenate([rng.uniform(50.0, 250.0, 4000), np.full(8, 180.0) + rng.normal(0, 0.3, 8)])
    fit = fit_mass_peak(m, 50.0, 250.0, 178.0, 2.0)  # converges on the spike: width ~0.7 +- 0.3
    assert not fit.valid and "no significant peak" in fit.reason
    assert fit.to_dict()["sigma"] is None
