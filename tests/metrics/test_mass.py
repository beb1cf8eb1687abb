"""The pi0 and B mass analysis of an evaluation on synthetic candidates with a known truth."""

import numpy as np
import pytest

from calopt.metrics.mass import PI0_EFFICIENCY_WINDOW, Candidates, mass_metrics
from calopt.metrics.shapes import DoubleCrystalBall
from calopt.reconstruction.candidates import PI0_MASS

from .toys import sample_bernstein, sample_shape


def _candidates(n_events: int, signal_shape: DoubleCrystalBall | None, n_background: int, seed: int) -> Candidates:
    """One signal pi0 candidate in each crossing (masses from ``signal_shape``; none if None)
    and ``n_background`` combinatorial ones spread over the crossings; B candidates from muons
    at rest-frame-free fixed momenta (the B masses are not what is tested here)."""
    rng = np.random.default_rng(seed)
    sig = sample_shape(signal_shape, n_events, rng) if signal_shape is not None else np.zeros(0)
    bkg = sample_bernstein(np.array([0.0, 1.0, 1.5, 1.5]), 50.0, 250.0, n_background, rng)
    m = np.concatenate([sig, bkg])
    is_sig = np.arange(len(m)) < len(sig)
    ev = np.concatenate([np.arange(len(sig)), rng.integers(0, n_events, n_background)])
    order = np.argsort(ev, kind="stable")
    p = np.tile([0.0, 0.0, 20000.0], (len(m), 1))
    e = np.sqrt(20000.0**2 + m**2)
    mu = np.tile([1000.0, 0.0, 30000.0], (n_events, 1))
    return Candidates(m[order], is_sig[order], ev[order], p[order], e[order], sig, n_events, mu, -mu * [1, 1, -1])


def test_efficiency_is_counted_in_a_fixed_window():
    shape = DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0)
    c = _candidates(800, shape, 3000, seed=7)
    r = mass_metrics(c, np.random.default_rng(0))
    assert r["pi0_efficiency_window_mev"] == PI0_EFFICIENCY_WINDOW == 30.0
    expected = np.sum(np.abs(c.matched_mass - PI0_MASS) < 30.0) / 800
    assert r["pi0_efficiency"] == pytest.approx(expected) and r["pi0_efficiency_selected"] == pytest.approx(expected)
    assert r["pi0_efficiency"] == pytest.approx(shape.fraction(PI0_MASS - 30.0, PI0_MASS + 30.0), abs=0.04)
    # the pi0 peak: width = sigma_eff of the truth-matched shape, yield found, the cross-checks kept
    assert r["pi0_mass_width_mev"] == pytest.approx(shape.effective_width()[1], rel=0.1)
    pi0 = r["fits"]["pi0"]
    assert pi0["valid"], pi0["reason"]
    assert abs(pi0["n_signal"] - 800) < 3 * pi0["n_signal_err"]
    assert pi0["truth"]["s_window"] == pytest.approx(pi0["s_window"], abs=3 * pi0["s_window_err"])
    assert {"pi0_free", "b_free", "pi0_window_for_b_mev"} <= set(r["fits"])
    # a wider peak: fewer pi0s in the same window, whatever a fit would say
    wide = mass_metrics(_candidates(800, DoubleCrystalBall(135.0, 25.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0), 3000, 7),
                        np.random.default_rng(0))  # fmt: skip
    assert wide["pi0_efficiency"] < 0.8 * r["pi0_efficiency"]


def test_no_signal_is_reported_as_failed():
    shape = DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0)
    c = _candidates(800, shape, 3000, seed=8)
    # the same crossings with the signal candidates removed from the spectrum (still truth-matched
    # before the selection, as when the selection loses them): the shape is known, the peak is not there
    keep = ~c.pi0_signal
    few_sig = np.nonzero(c.pi0_signal)[0][:60]  # enough truth-matched candidates for the shape only
    keep[few_sig] = True
    sub = Candidates(c.pi0_mass[keep], c.pi0_signal[keep], c.pi0_event[keep], c.pi0_momentum[keep],
                     c.pi0_energy[keep], c.matched_mass, c.n_events, c.mu_plus, c.mu_minus)  # fmt: skip
    r = mass_metrics(sub, np.random.default_rng(0))
    assert not r["fits"]["pi0"]["valid"] and "no significant signal" in r["fits"]["pi0"]["reason"]
    assert r["pi0_efficiency"] > 0.5  # the efficiency does not depend on the fit


def test_too_few_events():
    c = _candidates(20, DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0), 100, seed=9)
    r = mass_metrics(c, np.random.default_rng(0))
    assert r["pi0_mass_width_mev"] is None and r["pi0_mass_width_mev_err"] is None
    # no B candidate of these toys lies near the B0 mass: no truth-count fallback either
    # (tests/metrics/test_errors.py has one with too few crossings that falls back)
    assert r["fits"]["b"]["truth"]["s_window"] == 0 and r["significance"] is None
    for key in ("pi0", "b", "pi0_free", "b_free"):
        assert r["fits"][key]["valid"] is False and "too few" in r["fits"][key]["reason"]


def _shape_fit(shape: DoubleCrystalBall):
    from calopt.metrics.fits import ShapeFit

    centre, sigma_eff = shape.effective_width()
    return ShapeFit(True, "", shape, {}, centre, sigma_eff, 1000)


def test_pi0_window_rules():
    from calopt.metrics.mass import pi0_window_for_b

    # a pile-up-like pi0 shape: narrow core, wide tails (sigma_eff well above the core sigma)
    shape = DoubleCrystalBall(135.0, 15.0, 0.6, 1.5, 0.8, 2.0, 50.0, 250.0)
    fit = _shape_fit(shape)
    assert fit.sigma_eff > 1.5 * shape.sigma
    lo, hi = pi0_window_for_b(fit, "sigma_eff:2.5")
    assert (lo, hi) == pytest.approx((fit.centre - 2.5 * fit.sigma_eff, fit.centre + 2.5 * fit.sigma_eff))
    assert pi0_window_for_b(fit, "core:2") == pytest.approx((135.0 - 30.0, 135.0 + 30.0))
    lo9, hi9 = pi0_window_for_b(fit, "shortest:0.9")
    assert shape.fraction(lo9, hi9) == pytest.approx(0.9, abs=0.005)
    assert pi0_window_for_b(fit, "shortest:0.6827") == pytest.approx(pi0_window_for_b(fit, "sigma_eff:1"), abs=0.2)
    assert hi9 - lo9 > pi0_window_for_b(fit, "shortest:0.8")[1] - pi0_window_for_b(fit, "shortest:0.8")[0]
    # no shape: the fixed +-30 MeV window
    from calopt.metrics.fits import ShapeFit

    assert pi0_window_for_b(ShapeFit(False), "core:2") == pytest.approx((PI0_MASS - 30.0, PI0_MASS + 30.0))


@pytest.mark.parametrize("rule", ["core", "core:-1", "width:2", "shortest:1.2", "sigma_eff:nan"])
def test_bad_pi0_window_rule(rule):
    from calopt.errors import CaloptInputError

    c = _candidates(100, DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0), 100, seed=3)
    with pytest.raises(CaloptInputError, match="pi0 window rule"):
        mass_metrics(c, np.random.default_rng(0), pi0_window=rule)


def test_mass_metrics_uses_the_window_rule():
    shape = DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0)
    c = _candidates(800, shape, 3000, seed=7)
    wide = mass_metrics(c, np.random.default_rng(0), pi0_window="sigma_eff:2.5")["fits"]["pi0_window_for_b_mev"]
    narrow = mass_metrics(c, np.random.default_rng(0), pi0_window="core:1")["fits"]["pi0_window_for_b_mev"]
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_default_pi0_window_is_two_sigma_eff():
    # one rule for every design and pile-up (the study of studies/pi0_window_study.py)
    from calopt.metrics.mass import B_PI0_WINDOW

    assert B_PI0_WINDOW == "sigma_eff:2"
    shape = DoubleCrystalBall(135.0, 9.0, 1.2, 4.0, 1.8, 6.0, 50.0, 250.0)
    c = _candidates(800, shape, 3000, seed=7)
    r = mass_metrics(c, np.random.default_rng(0))
    lo, hi = r["fits"]["pi0_window_for_b_mev"]
    centre, sigma_eff = r["pi0_mass_mev"], r["pi0_mass_width_mev"]
    assert (lo, hi) == pytest.approx((centre - 2 * sigma_eff, centre + 2 * sigma_eff))
    # the B candidates are the pi0 candidates of that window (one B candidate per pi0 candidate)
    n_in = int(((c.pi0_mass > lo) & (c.pi0_mass < hi)).sum())
    b = r["histograms"]["b"]
    assert sum(b["counts"]) <= n_in
