"""Mass-peak fits."""

import numpy as np
import pytest

from calopt.metrics import fit_mass_peak, fit_mass_spectrum, fit_signal_shape
from calopt.metrics.shapes import DoubleCrystalBall, bernstein_fraction

from .toys import sample_bernstein, sample_shape


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


PI0_SHAPE = DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0)
RISING = np.array([0.0, 1.0, 1.5, 1.5])  # a background that turns on from the low edge, as at high pile-up


def test_signal_shape_fit_recovers_the_shape():
    rng = np.random.default_rng(3)
    m = sample_shape(PI0_SHAPE, 4000, rng)
    f = fit_signal_shape(m, 50.0, 250.0, n_bootstrap=0)  # its error: test_errors.py
    assert f.valid and f.shape is not None
    for k in ("mu", "sigma", "alpha_lo", "alpha_hi"):
        assert abs(getattr(f.shape, k) - getattr(PI0_SHAPE, k)) < 4 * f.errors[k], k
    centre, width = PI0_SHAPE.effective_width()
    assert f.sigma_eff == pytest.approx(width, rel=0.05) and f.centre == pytest.approx(centre, abs=1.0)
    few = fit_signal_shape(m[:10], 50.0, 250.0)
    assert not few.valid and "too few" in few.reason


def test_spectrum_fit_recovers_the_signal_yield():
    """Toys of 600 signal (shape from an independent 'simulation' sample) on 4000 background:
    the fitted yield is unbiased and its error is the spread of the toys."""
    rng = np.random.default_rng(4)
    shape = fit_signal_shape(sample_shape(PI0_SHAPE, 5000, rng), 50.0, 250.0, n_bootstrap=0)
    pulls, z = [], []
    for _ in range(25):
        n_s = rng.poisson(600)
        m = np.concatenate([sample_shape(PI0_SHAPE, n_s, rng), sample_bernstein(RISING, 50.0, 250.0, 4000, rng)])
        f = fit_mass_spectrum(m, shape, degree=3)
        assert f.valid, f.reason
        pulls.append((f.n_signal - n_s) / f.n_signal_err)
        z.append(f.significance)
        assert f.significance == pytest.approx(f.s_window / np.sqrt(f.s_window + f.b_window))
        assert 0 < f.significance_err < f.significance
    assert abs(np.mean(pulls)) < 0.6 and 0.6 < np.std(pulls) < 1.5
    # S and B in +-2 sigma_eff against their true values
    a, b = f.window_lo, f.window_hi
    assert a == pytest.approx(shape.centre - 2 * shape.sigma_eff)
    assert b == pytest.approx(shape.centre + 2 * shape.sigma_eff)
    s_true = 600 * PI0_SHAPE.fraction(a, b)
    b_true = 4000 * bernstein_fraction(RISING, 50.0, 250.0, a, b)
    assert np.mean(z) == pytest.approx(s_true / np.sqrt(s_true + b_true), rel=0.1)


def test_pure_background_is_a_failed_fit():
    rng = np.random.default_rng(5)
    shape = fit_signal_shape(sample_shape(PI0_SHAPE, 3000, rng), 50.0, 250.0, n_bootstrap=0)
    f = fit_mass_spectrum(sample_bernstein(RISING, 50.0, 250.0, 5000, rng), shape, degree=3)
    assert not f.valid and "no significant signal" in f.reason
    d = f.to_dict()
    assert d["valid"] is False and d["reason"] == f.reason
    # a failed signal shape makes a failed spectrum fit, with the shape's reason
    g = fit_mass_spectrum(rng.uniform(50.0, 250.0, 1000), fit_signal_shape(np.full(3, 135.0), 50.0, 250.0))
    assert not g.valid and "too few truth-matched" in g.reason
