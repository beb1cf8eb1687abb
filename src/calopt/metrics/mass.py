"""pi0 and B mass peaks of an evaluation: signal shapes, yields, significance, efficiency.

The way an analysis does it with its simulation:

1. the signal shape of each peak is a double-sided Crystal Ball (:mod:`calopt.metrics.shapes`)
   fitted to the truth-matched candidates -- a pi0 candidate is signal when it is the pair of
   the two reconstructed photons matched to the signal pi0's photons, a B candidate when its
   pi0 candidate is;
2. the whole candidate spectrum is fitted (extended unbinned likelihood) with that shape fixed,
   free yields and a Bernstein-polynomial combinatorial background (degree 4 for the pi0, whose
   background turns on just below the pi0 mass under the tight selections of high pile-up --
   degrees 2 and 3 fail a chi2 test of the truth-background candidates of lhcb-run3 at mu = 50
   with 3000 crossings, p = 0.000 and 0.06, degree 4 passes, p = 0.42; degree 2 for the B,
   p > 0.05 at mu = 0 and 50); S and B in centre +- 2 sigma_eff of the shape and their errors give
   S / sqrt(S + B). A fit that fails, or whose signal yield is not 3 standard deviations from
   zero, is reported as failed (the reason in ``fits``);
3. the significance is that of the B spectrum fit (``significance_method`` ``"fit"``). Where
   the fit (or the B signal shape) failed but there is signal, it falls back to the truth
   counts s, b of signal and background B candidates in the window (``"truth_count"``):
   s / sqrt(s + b), its error propagated from independent Poisson counts
   (:func:`truth_count_significance`). The window is the fit's, else centre +- 2 sigma_eff of
   the B signal shape, else :data:`B_FALLBACK_WINDOW_MEV` around the PDG B0 mass. The
   significance is None only without a signal candidate in the window (s = 0): an optimiser
   then still gets a number wherever the design sees any signal at all;
4. the mass widths are the sigma_eff of the signal shapes (half the shortest interval with
   68.3 % of the signal): comparable between designs and pile-up whatever the tails do; their
   errors from a bootstrap of the truth-matched candidates
   (:func:`calopt.metrics.fits.sigma_eff_bootstrap`). A failed shape leaves the width None;
5. the pi0 efficiency counts truth-matched signal pi0s within a fixed +-30 MeV of the PDG
   mass, the same window for every design and pile-up, independent of any fit; a crossing
   contributes at most one (its two signal photons), so the error is binomial;
6. cross-checks in ``fits``: free Gaussian + linear fits (``pi0_free``, ``b_free``)
   and the truth counts of signal and background in the window (``*.truth``). The B truth
   counts check the fitted S and B directly; the pi0 yield does not compare with them, since
   the pi0s of the rest of the b event and of pile-up peak with the signal B's.

B candidates take the pi0 candidates within +-2 sigma_eff of the pi0 signal shape's centre
(+-30 MeV around the PDG mass when there is no shape). Measured (studies/pi0_window_study.py:
truth-count S / sqrt(S + B) of the B candidates in one B window per run, seed 1, pile-up-aware
regressors; lhcb-run3 / upgrade2-like): +-2 sigma_eff 13.52 / 15.53 at mu = 0 (1000 crossings),
4.22 / 6.57 at mu = 20 (1000), 4.11 / 7.09 at mu = 50 (3000), against 13.34 / 15.48, 4.17 / 6.60
and 3.91 / 6.77 with +-2.5 sigma_eff -- better or equal everywhere, by 1-5 %, which
no other rule tried was: +-2.5 or 3 core sigma of the Crystal Ball (4.65, 4.83 for lhcb-run3 at
mu = 50) lose 0.4-0.5 for upgrade2-like at mu = 20 (6.12, 6.22), the shortest interval with 80 %
of the shape loses at mu = 20 for both (4.06, 6.27).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.errors import CaloptInputError
from calopt.metrics.fits import ShapeFit, SpectrumFit, fit_mass_peak, fit_mass_spectrum, fit_signal_shape
from calopt.reconstruction.candidates import B0_MASS, PI0_MASS, b_masses, smear_muon
from calopt.stats import binomial_error

__all__ = [
    "B_FALLBACK_WINDOW_MEV",
    "B_PI0_WINDOW",
    "PI0_EFFICIENCY_WINDOW",
    "Candidates",
    "mass_metrics",
    "pi0_window_for_b",
    "significance_fallback_window",
    "truth_count_significance",
]

# +-30 MeV around the PDG pi0 mass: the resolved-pi0 mass window of LHCb selections is
# 20-30 MeV wide on either side [assumption, of the order of those in LHCb's B -> h h pi0
# analyses]; at mu = 0 it is +-3.5 sigma of the peak, at high pile-up it keeps only the
# well-measured pi0s, which is the point of comparing designs with it.
PI0_EFFICIENCY_WINDOW = 30.0  # MeV
PI0_RANGE = (50.0, 250.0)  # MeV
B_RANGE = (4500.0, 6000.0)  # MeV
PI0_DEGREE, B_DEGREE = 4, 2  # Bernstein background degrees, checked on the mu = 0 and 50 spectra
B_PI0_WINDOW = "sigma_eff:2"  # the pi0 candidates that make B candidates: see pi0_window_for_b and above
MIN_EVENTS = 50  # below this, mass fits are reported as failed rather than as numbers
# Half width of the window of the truth-count significance when there is neither a spectrum
# fit nor a B signal shape to take it from: 2 x 75 MeV, 2 sigma_eff of a typical B0 peak
# (lhcb-run3, mu = 0, --quick: sigma_eff 71 +- 6 MeV with 300 crossings, 70 +- 4 with 700; wider
# at pile-up, where a fixed window then keeps less of the signal). It matters only where even
# the signal shape of the truth-matched B candidates failed (too few of them).
B_FALLBACK_WINDOW_MEV = 150.0


@dataclass(frozen=True)
class Candidates:
    """The pi0 candidates of ``n_events`` crossings, K in all: ``pi0_mass`` (K,) [MeV],
    ``pi0_signal`` (K,) bool (the pair of truth-matched photons), ``pi0_event`` (K,) crossing
    index, ``pi0_momentum`` (K, 3) [MeV/c], ``pi0_energy`` (K,) [MeV]; ``matched_mass`` (M,)
    [MeV] the mass of the two truth-matched photons of each crossing where both were
    reconstructed (before the selection); ``mu_plus``, ``mu_minus`` (n_events, 3) generated
    muon momenta [MeV/c]."""

    pi0_mass: np.ndarray
    pi0_signal: np.ndarray
    pi0_event: np.ndarray
    pi0_momentum: np.ndarray
    pi0_energy: np.ndarray
    matched_mass: np.ndarray
    n_events: int
    mu_plus: np.ndarray
    mu_minus: np.ndarray


def _hist(x: np.ndarray, lo: float, hi: float, bins: int) -> dict[str, list[float]]:
    """The mass histogram as ``evaluate`` stores it (a :mod:`hist` histogram's edges and counts;
    values outside [lo, hi) fall in its flow bins, which are not stored)."""
    import hist

    h = hist.Hist(hist.axis.Regular(bins, lo, hi), storage=hist.storage.Int64())
    h.fill(np.asarray(x, dtype=float))
    return {"edges": h.axes[0].edges.tolist(), "counts": h.values().tolist()}


def _num(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def truth_count_significance(s: float, b: float) -> tuple[float, float]:
    """(Z, error) of Z = s / sqrt(s + b) for independent Poisson counts ``s`` and ``b``: var(Z) =
    (dZ/ds)^2 s + (dZ/db)^2 b with dZ/ds = (s + 2b) / (2 (s + b)^1.5) and dZ/db = -s / (2 (s +
    b)^1.5). (NaN, NaN) for s + b = 0."""
    if s + b <= 0:
        return float("nan"), float("nan")
    n = s + b
    dz_ds = (s + 2.0 * b) / (2.0 * n**1.5)
    dz_db = -s / (2.0 * n**1.5)
    return s / math.sqrt(n), math.sqrt(dz_ds**2 * s + dz_db**2 * b)


def _truth_counts(m: np.ndarray, signal: np.ndarray, lo: float, hi: float) -> dict[str, Any]:
    """Signal and background candidates in [lo, hi] counted with the truth (a cross-check of
    the fitted S and B, and the fallback significance) and their S / sqrt(S + B) with its
    Poisson error."""
    w = (m > lo) & (m < hi)
    s, b = int((w & signal).sum()), int((w & ~signal).sum())
    z, err = truth_count_significance(s, b)
    return {"window_mev": [float(lo), float(hi)], "s_window": s, "b_window": b, "significance": _num(z),
            "significance_err": _num(err)}  # fmt: skip


def significance_fallback_window(fit: SpectrumFit, shape: ShapeFit) -> tuple[float, float]:
    """The B mass window [MeV] of the truth-count significance: the spectrum fit's when it has
    one, else centre +- 2 sigma_eff of the signal shape, else +- :data:`B_FALLBACK_WINDOW_MEV`
    around the PDG B0 mass."""
    if math.isfinite(fit.window_lo) and math.isfinite(fit.window_hi):
        return fit.window_lo, fit.window_hi
    if shape.valid and math.isfinite(shape.centre) and math.isfinite(shape.sigma_eff):
        return shape.centre - 2.0 * shape.sigma_eff, shape.centre + 2.0 * shape.sigma_eff
    return B0_MASS - B_FALLBACK_WINDOW_MEV, B0_MASS + B_FALLBACK_WINDOW_MEV


def pi0_window_for_b(shape: ShapeFit, rule: str = B_PI0_WINDOW) -> tuple[float, float]:
    """The pi0 mass window [MeV] of the pi0 candidates that make B candidates, from the pi0
    signal shape by ``rule``: ``sigma_eff:K`` (centre +- K sigma_eff), ``core:K`` (the Crystal
    Ball's Gaussian mean +- K sigma) or ``shortest:F`` (the shortest interval holding the
    fraction F of the shape); +-30 MeV around the PDG mass when there is no shape."""
    kind, _, value = rule.partition(":")
    try:
        k = float(value)
    except ValueError:
        k = float("nan")
    if kind not in ("sigma_eff", "core", "shortest") or not (k > 0 and math.isfinite(k)) or (
            kind == "shortest" and k >= 1):  # fmt: skip
        raise CaloptInputError(f"bad pi0 window rule {rule!r}; expected sigma_eff:K, core:K or shortest:F (0 < F < 1)")
    if not shape.valid or shape.shape is None:
        return PI0_MASS - 30.0, PI0_MASS + 30.0
    if kind == "sigma_eff":
        return shape.centre - k * shape.sigma_eff, shape.centre + k * shape.sigma_eff
    if kind == "core":
        return shape.shape.mu - k * shape.shape.sigma, shape.shape.mu + k * shape.shape.sigma
    centre, half = shape.shape.effective_width(k)
    return centre - half, centre + half


def mass_metrics(c: Candidates, rng: np.random.Generator, pi0_window: str = B_PI0_WINDOW) -> dict[str, Any]:
    """Fits, widths, significance and efficiency of the candidates ``c`` (``rng`` smears the
    muons of the B candidates) as the JSON-ready keys of ``evaluate``; ``pi0_window``: the rule
    of :func:`pi0_window_for_b`."""
    lo, hi = pi0_window_for_b(ShapeFit(False), pi0_window)  # a bad rule fails before any fit
    too_few = c.n_events < MIN_EVENTS
    few = f"too few events for a fit: {c.n_events} < {MIN_EVENTS}"
    pi0_shape = fit_signal_shape(c.pi0_mass[c.pi0_signal], *PI0_RANGE)
    if too_few:
        pi0_shape.valid, pi0_shape.reason = False, few
    pi0_fit = fit_mass_spectrum(c.pi0_mass, pi0_shape, degree=PI0_DEGREE)
    pi0_free = fit_mass_peak(c.pi0_mass, *PI0_RANGE, PI0_MASS, 10.0)
    lo, hi = pi0_window_for_b(pi0_shape, pi0_window)
    b_m, b_sig = [], []
    n_pi0_events = 0
    in_window = (c.pi0_mass > lo) & (c.pi0_mass < hi)
    starts = np.searchsorted(c.pi0_event, np.arange(c.n_events + 1))
    for ev in range(c.n_events):
        w = slice(starts[ev], starts[ev + 1])
        sel = in_window[w]
        if not sel.any():
            continue
        n_pi0_events += 1
        mup = smear_muon(c.mu_plus[ev], rng)
        mum = smear_muon(c.mu_minus[ev], rng)
        b_m.append(b_masses(mup, mum, c.pi0_momentum[w][sel], c.pi0_energy[w][sel]))
        b_sig.append(c.pi0_signal[w][sel])
    bm = np.concatenate(b_m) if b_m else np.zeros(0)
    bs = np.concatenate(b_sig) if b_sig else np.zeros(0, dtype=bool)
    b_shape = fit_signal_shape(bm[bs], *B_RANGE)
    if too_few:
        b_shape.valid, b_shape.reason = False, few
    b_fit = fit_mass_spectrum(bm, b_shape, degree=B_DEGREE)
    b_free = fit_mass_peak(bm, *B_RANGE, B0_MASS, 60.0, sigma_max=400.0)
    if too_few:
        pi0_free.valid, pi0_free.reason = False, few
        b_free.valid, b_free.reason = False, few

    win = np.abs(c.matched_mass - PI0_MASS) < PI0_EFFICIENCY_WINDOW
    win_sel = c.pi0_signal & (np.abs(c.pi0_mass - PI0_MASS) < PI0_EFFICIENCY_WINDOW)
    fits: dict[str, Any] = {
        "pi0": pi0_fit.to_dict(),
        "b": b_fit.to_dict(),
        "pi0_free": pi0_free.to_dict(),
        "b_free": b_free.to_dict(),
        "pi0_window_for_b_mev": [float(lo), float(hi)],
    }
    if math.isfinite(pi0_fit.window_lo):
        fits["pi0"]["truth"] = _truth_counts(c.pi0_mass, c.pi0_signal, pi0_fit.window_lo, pi0_fit.window_hi)
    fits["b"]["truth"] = _truth_counts(bm, bs, *significance_fallback_window(b_fit, b_shape))
    z: float | None
    if b_fit.valid and math.isfinite(b_fit.significance):
        z, z_err, z_method = b_fit.significance, b_fit.significance_err, "fit"
    elif fits["b"]["truth"]["s_window"] > 0:
        z, z_err, z_method = fits["b"]["truth"]["significance"], fits["b"]["truth"]["significance_err"], "truth_count"
    else:
        z, z_err, z_method = None, None, None
    n_win = int(win.sum())
    return {
        "pi0_mass_width_mev": _num(pi0_shape.sigma_eff) if pi0_shape.valid else None,
        "pi0_mass_width_mev_err": _num(pi0_shape.sigma_eff_err) if pi0_shape.valid else None,
        "pi0_mass_mev": _num(pi0_shape.centre) if pi0_shape.valid else None,
        "pi0_efficiency": float(n_win / c.n_events),
        "pi0_efficiency_err": _num(binomial_error(n_win, c.n_events)),
        "pi0_efficiency_window_mev": PI0_EFFICIENCY_WINDOW,
        "pi0_efficiency_selected": float(win_sel.sum() / c.n_events),
        "b_mass_width_mev": _num(b_shape.sigma_eff) if b_shape.valid else None,
        "b_mass_width_mev_err": _num(b_shape.sigma_eff_err) if b_shape.valid else None,
        "significance": _num(z),
        "significance_err": _num(z_err) if z is not None else None,
        "significance_method": z_method,
        "fits": fits,
        "histograms": {
            "pi0": _hist(c.pi0_mass, *PI0_RANGE, 80),
            "pi0_signal": _hist(c.pi0_mass[c.pi0_signal], *PI0_RANGE, 80),
            "b": _hist(bm, *B_RANGE, 60),
            "b_signal": _hist(bm[bs], *B_RANGE, 60),
        },
        "events_with_pi0_candidate": n_pi0_events,
    }
