"""The double-sided Crystal Ball and the Bernstein background."""

import numpy as np
import pytest
from scipy.stats import crystalball

from calopt.metrics.shapes import DoubleCrystalBall, bernstein_density, bernstein_fraction


def test_one_tail_is_scipy_crystalball():
    # a right tail starting 6 sigma out is invisible: the shape is scipy's one-sided Crystal Ball
    s = DoubleCrystalBall(135.0, 8.0, 1.3, 3.5, 6.0, 50.0, 0.0, 300.0)
    x = np.linspace(1.0, 180.0, 500)  # up to 5.6 sigma, where the right tail has not begun
    ref = crystalball.pdf(x, 1.3, 3.5, loc=135.0, scale=8.0)
    ref /= crystalball.cdf(300.0, 1.3, 3.5, loc=135.0, scale=8.0) - crystalball.cdf(0.0, 1.3, 3.5, loc=135.0, scale=8.0)
    assert np.allclose(s.pdf(x), ref, rtol=1e-6, atol=1e-12)


def test_normalisation_and_fractions():
    s = DoubleCrystalBall(120.0, 10.0, 0.8, 2.5, 1.1, 4.0, 50.0, 250.0)
    x = np.linspace(50.0, 250.0, 200001)
    y = s.pdf(x)
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-6)
    sel = (x >= 100.0) & (x <= 160.0)
    assert s.fraction(100.0, 160.0) == pytest.approx(np.trapezoid(y[sel], x[sel]), abs=1e-6)
    assert s.fraction(0.0, 400.0) == pytest.approx(1.0)
    assert s.fraction(200.0, 100.0) == 0.0
    # continuous at the joins of core and tails
    for t in (-0.8, 1.1):
        m = 120.0 + 10.0 * t
        assert s.pdf(np.array([m - 1e-7]))[0] == pytest.approx(s.pdf(np.array([m + 1e-7]))[0], rel=1e-5)


def test_effective_width():
    gauss = DoubleCrystalBall(135.0, 8.0, 6.0, 50.0, 6.0, 50.0, 0.0, 300.0)
    centre, width = gauss.effective_width()
    assert centre == pytest.approx(135.0, abs=0.2) and width == pytest.approx(8.0, rel=0.01)
    # tails widen sigma_eff beyond the core width
    tails = DoubleCrystalBall(135.0, 8.0, 0.7, 1.5, 0.9, 2.0, 0.0, 300.0)
    assert tails.effective_width()[1] > 1.2 * 8.0


def test_bernstein():
    c = np.array([0.0, 0.5, 2.0, 1.0])
    x = np.linspace(50.0, 250.0, 100001)
    y = bernstein_density(x, c, 50.0, 250.0)
    assert np.all(y >= 0) and np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-6)
    sel = (x >= 80.0) & (x <= 170.0)
    assert bernstein_fraction(c, 50.0, 250.0, 80.0, 170.0) == pytest.approx(np.trapezoid(y[sel], x[sel]), abs=1e-6)
    # degree 1 with equal coefficients is flat
    assert np.allclose(bernstein_density(x[:10], np.array([1.0, 1.0]), 50.0, 250.0), 1 / 200.0)
