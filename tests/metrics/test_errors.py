"""The statistical errors of the metrics and the truth-count fallback of the significance."""

import math

import numpy as np
import pytest

from calopt.metrics.fits import ShapeFit, SpectrumFit, fit_signal_shape
from calopt.metrics.mass import (
    B_FALLBACK_WINDOW_MEV,
    Candidates,
    mass_metrics,
    significance_fallback_window,
    truth_count_significance,
)
from calopt.metrics.shapes import DoubleCrystalBall
from calopt.reconstruction.candidates import B0_MASS, JPSI_MASS

from .toys import sample_shape

PI0_SHAPE = DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0)


def test_truth_count_significance_against_poisson_toys():
    z, err = truth_count_significance(100.0, 400.0)
    assert z == pytest.approx(100.0 / math.sqrt(500.0))
    # the propagation written out: (s + 2b) / (2 n^1.5) and -s / (2 n^1.5)
    n = 500.0
    assert err == pytest.approx(math.hypot(900.0 / (2 * n**1.5) * 10.0, 100.0 / (2 * n**1.5) * 20.0))
    rng = np.random.default_rng(11)
    s, b = rng.poisson(100.0, 50000), rng.poisson(400.0, 50000)
    assert err == pytest.approx(np.std(s / np.sqrt(s + b)), rel=0.03)
    # background-free: Z = sqrt(s), error 1/2
    assert truth_count_significance(64.0, 0.0) == pytest.approx((8.0, 0.5))
    assert all(math.isnan(v) for v in truth_count_significance(0.0, 0.0))


@pytest.mark.parametrize(
    ("shape", "n"),
    [(PI0_SHAPE, 300), (DoubleCrystalBall(5280.0, 40.0, 6.0, 50.0, 6.0, 50.0, 4500.0, 6000.0), 300)],
    ids=["pi0-with-tails", "gaussian-b"],
)
def test_sigma_eff_error_against_toy_fits(shape, n):
    """The bootstrap error of sigma_eff is the spread of sigma_eff over independent toy samples
    of the same size, within 30 % (100 toys: the spread is known to 7 %), with tails and
    without (where propagating the parameter covariance fails: see sigma_eff_bootstrap)."""
    rng = np.random.default_rng(12)
    samples = [sample_shape(shape, n, rng) for _ in range(100)]
    fits = [fit_signal_shape(m, shape.lo, shape.hi, n_bootstrap=0) for m in samples]
    assert all(f.valid for f in fits) and all(math.isnan(f.sigma_eff_err) for f in fits)
    spread = np.std([f.sigma_eff for f in fits], ddof=1)
    errors = [fit_signal_shape(m, shape.lo, shape.hi).sigma_eff_err for m in samples[:5]]
    assert np.median(errors) == pytest.approx(spread, rel=0.3)
    # deterministic, and in the shape's dictionary
    again = fit_signal_shape(samples[0], shape.lo, shape.hi)
    assert again.sigma_eff_err == errors[0] and again.to_dict()["sigma_eff_err"] == pytest.approx(errors[0])
    assert math.isnan(fit_signal_shape(np.full(5, 135.0), 50.0, 250.0).sigma_eff_err)


def test_fallback_window():
    shape = ShapeFit(True, "", PI0_SHAPE, {}, 5270.0, 40.0, 100)
    fit = SpectrumFit(False, "no significant signal", shape, window_lo=5200.0, window_hi=5350.0)
    assert significance_fallback_window(fit, shape) == (5200.0, 5350.0)
    assert significance_fallback_window(SpectrumFit(False), shape) == (5190.0, 5350.0)
    assert significance_fallback_window(SpectrumFit(False), ShapeFit(False)) == (
        B0_MASS - B_FALLBACK_WINDOW_MEV,
        B0_MASS + B_FALLBACK_WINDOW_MEV,
    )


MU_PLUS = np.array([1000.0, 0.0, 30000.0])
MU_MINUS = np.array([-1000.0, 0.0, 30000.0])


def _pi0_for_b_mass(m_b: np.ndarray, m_pi0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pi0 momenta (K, 3) and energies (K,) perpendicular to the dimuon that give the B masses
    ``m_b`` (K,) with the generated muons MU_PLUS, MU_MINUS (before their smearing)."""
    m_mu = 105.6583755
    e_mm = math.sqrt((MU_PLUS**2).sum() + m_mu**2) + math.sqrt((MU_MINUS**2).sum() + m_mu**2)
    m_mm = math.sqrt(e_mm**2 - ((MU_PLUS + MU_MINUS) ** 2).sum())
    m_raw = m_b - JPSI_MASS + m_mm  # b_masses applies the J/psi mass constraint
    e_pi0 = (m_raw**2 - m_mm**2 - m_pi0**2) / (2 * e_mm)  # m^2 = m_mm^2 + m_pi0^2 + 2 E_mm E_pi0
    p = np.sqrt(np.maximum(e_pi0**2 - m_pi0**2, 0.0))
    return np.stack([np.zeros_like(p), p, np.zeros_like(p)], axis=1), e_pi0


def _b_candidates(n_events: int, n_signal: int, n_background: int, seed: int) -> Candidates:
    """``n_signal`` crossings with a signal candidate (B mass ~ N(B0, 40 MeV)) and
    ``n_background`` combinatorial candidates with B masses uniform in 4500-6000 MeV, all with
    pi0 masses ~ N(135, 4 MeV)."""
    rng = np.random.default_rng(seed)
    m_b = np.concatenate([rng.normal(B0_MASS, 40.0, n_signal), rng.uniform(4500.0, 6000.0, n_background)])
    m_pi0 = rng.normal(135.0, 4.0, len(m_b))
    is_sig = np.arange(len(m_b)) < n_signal
    ev = np.concatenate([np.arange(n_signal), rng.integers(0, n_events, n_background)])
    order = np.argsort(ev, kind="stable")
    p, e = _pi0_for_b_mass(m_b, m_pi0)
    mup, mum = np.tile(MU_PLUS, (n_events, 1)), np.tile(MU_MINUS, (n_events, 1))
    return Candidates(m_pi0[order], is_sig[order], ev[order], p[order], e[order], m_pi0[:n_signal], n_events, mup,
                      mum)  # fmt: skip


def test_significance_from_the_fit_with_a_clear_peak():
    r = mass_metrics(_b_candidates(600, 500, 1500, seed=1), np.random.default_rng(0))
    assert r["fits"]["b"]["valid"], r["fits"]["b"]["reason"]
    assert r["significance_method"] == "fit" and r["significance"] == pytest.approx(r["fits"]["b"]["significance"])
    assert 0 < r["significance_err"] < r["significance"]
    assert r["b_mass_width_mev"] is not None and 0 < r["b_mass_width_mev_err"] < r["b_mass_width_mev"]
    # one signal pi0 per crossing at most: a binomial error
    k = r["pi0_efficiency"] * 600
    assert r["pi0_efficiency_err"] == pytest.approx(math.sqrt(k / 600 * (1 - k / 600) / 600))


def test_significance_falls_back_to_truth_counts_where_the_fit_fails():
    # a small signal under much background: the spectrum fit finds no 3 sigma yield
    r = mass_metrics(_b_candidates(600, 40, 3000, seed=2), np.random.default_rng(0))
    b = r["fits"]["b"]
    assert not b["valid"] and "no significant signal" in b["reason"]
    assert r["significance_method"] == "truth_count"
    truth = b["truth"]
    assert truth["window_mev"] == pytest.approx([b["window_lo"], b["window_hi"]])
    z, err = truth_count_significance(truth["s_window"], truth["b_window"])
    assert truth["s_window"] > 0 and math.isfinite(r["significance"])
    assert r["significance"] == pytest.approx(z) and r["significance_err"] == pytest.approx(err)
    # too few crossings for any fit: the truth counts in the fixed window around the B0 mass
    few = mass_metrics(_b_candidates(30, 25, 50, seed=3), np.random.default_rng(0))
    assert few["fits"]["b"]["valid"] is False and few["b_mass_width_mev"] is None
    assert few["b_mass_width_mev_err"] is None and few["pi0_mass_width_mev_err"] is None
    assert few["significance_method"] == "truth_count" and few["significance"] > 0
    assert few["fits"]["b"]["truth"]["window_mev"] == pytest.approx(
        [B0_MASS - B_FALLBACK_WINDOW_MEV, B0_MASS + B_FALLBACK_WINDOW_MEV]
    )


def test_no_signal_gives_no_significance():
    r = mass_metrics(_b_candidates(600, 0, 3000, seed=4), np.random.default_rng(0))
    assert r["fits"]["b"]["truth"]["s_window"] == 0
    assert r["significance"] is None and r["significance_err"] is None and r["significance_method"] is None
