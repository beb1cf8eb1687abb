"""Fits of mass peaks (the resolution fit and the robust width are in :mod:`calopt.stats`).

* :func:`fit_mass_peak`: extended unbinned maximum likelihood (iminuit) of a Gaussian signal
  on a linear combinatorial background in a mass range. A fit that fails (too few entries,
  no convergence, a width at its limit) is reported as failed with the reason -- never as a
  number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from calopt.metrics.shapes import DoubleCrystalBall, bernstein_density, bernstein_fraction
from calopt.stats import robust_sigma

__all__ = [
    "MassFit",
    "ShapeFit",
    "SpectrumFit",
    "fit_mass_peak",
    "fit_mass_spectrum",
    "fit_signal_shape",
    "sigma_eff_bootstrap",
]


@dataclass
class MassFit:
    """Result of a mass-peak fit: ``valid`` (False with a ``reason`` when the fit failed),
    peak ``mean`` and ``sigma`` [MeV], yields ``n_signal``, ``n_background`` in the range,
    and ``s_window``, ``b_window`` in mean +- ``window`` sigma."""

    valid: bool
    reason: str = ""
    mean: float = float("nan")
    sigma: float = float("nan")
    sigma_err: float = float("nan")
    n_signal: float = float("nan")
    n_background: float = float("nan")
    s_window: float = float("nan")
    b_window: float = float("nan")
    window: float = 2.0
    slope: float = 0.0

    @property
    def significance(self) -> float:
        """S / sqrt(S + B) in the window."""
        if not self.valid or self.s_window + self.b_window <= 0:
            return float("nan")
        return self.s_window / math.sqrt(self.s_window + self.b_window)

    def to_dict(self) -> dict[str, object]:
        d = {k: getattr(self, k) for k in ("valid", "reason", "mean", "sigma", "sigma_err", "n_signal",
                                           "n_background", "s_window", "b_window", "window", "slope")}  # fmt: skip
        d["significance"] = self.significance
        return {k: (None if not math.isfinite(v) else float(v)) if isinstance(v, float) else v for k, v in d.items()}


def fit_mass_peak(m: np.ndarray, lo: float, hi: float, mean0: float, sigma0: float, *, window: float = 2.0,
                  min_entries: int = 30, sigma_max: float | None = None) -> MassFit:  # fmt: skip
    """Gaussian + linear background, extended unbinned likelihood in [lo, hi]."""
    from iminuit import Minuit
    from iminuit.cost import ExtendedUnbinnedNLL
    from scipy.stats import norm

    m = np.asarray(m, dtype=float)
    m = m[(m > lo) & (m < hi)]
    if len(m) < min_entries:
        return MassFit(False, f"too few candidates for a fit: {len(m)} < {min_entries}")
    width = hi - lo
    smax = sigma_max or width / 4

    def density(x: np.ndarray, ns: float, nb: float, mu: float, sigma: float, slope: float) -> tuple[float, np.ndarray]:
        gnorm = norm.cdf(hi, mu, sigma) - norm.cdf(lo, mu, sigma)
        sig = norm.pdf(x, mu, sigma) / max(gnorm, 1e-12)
        # linear background normalised on [lo, hi]: (1 + slope * t) / width, t in [-1, 1]
        t = 2 * (x - lo) / width - 1
        bkg = (1 + slope * t) / width
        return ns + nb, ns * sig + nb * bkg

    cost = ExtendedUnbinnedNLL(m, density)
    mi = Minuit(cost, ns=len(m) / 2, nb=len(m) / 2, mu=mean0, sigma=sigma0, slope=0.0)
    mi.limits["ns"] = (0, 2 * len(m))
    mi.limits["nb"] = (0, 2 * len(m))
    mi.limits["mu"] = (lo, hi)
    mi.limits["sigma"] = (width / 500, smax)
    mi.limits["slope"] = (-1, 1)
    mi.migrad()
    if not mi.valid:
        return MassFit(False, "the fit did not converge")
    mu, sigma = mi.values["mu"], mi.values["sigma"]
    if sigma > 0.98 * smax or sigma < width / 400:
        return MassFit(False, f"the fitted width {sigma:.3g} is at its limit: no peak found")
    mi.hesse()
    ns_val, ns_err, s_err = mi.values["ns"], mi.errors["ns"], mi.errors["sigma"]
    if not (ns_val > 3.0 * ns_err and s_err < 0.5 * sigma):
        # a "peak" whose yield is not 3 sigma from zero, or whose width is not measured to 50 %,
        # is a fluctuation the fit latched on to (seen at mu = 50: a 0.8 MeV "pi0 peak")
        return MassFit(False, f"no significant peak: signal {ns_val:.3g} +- {ns_err:.2g}, width {sigma:.3g} +- "
                              f"{s_err:.2g}")  # fmt: skip
    a, b = mu - window * sigma, mu + window * sigma
    frac_s = (norm.cdf(b, mu, sigma) - norm.cdf(a, mu, sigma)) / (norm.cdf(hi, mu, sigma) - norm.cdf(lo, mu, sigma))
    slope = mi.values["slope"]
    ta, tb = 2 * (a - lo) / width - 1, 2 * (b - lo) / width - 1
    frac_b = ((tb - ta) + slope * (tb**2 - ta**2) / 2) / 2
    ns, nb = mi.values["ns"], mi.values["nb"]
    return MassFit(
        True, "", mu, sigma, mi.errors["sigma"], ns, nb, float(ns * frac_s), float(nb * frac_b), window, slope
    )


@dataclass
class ShapeFit:
    """Signal shape fitted to the truth-matched candidates: ``shape`` (None when the fit
    failed, with a ``reason``), its parameter errors, ``centre`` and ``sigma_eff`` [MeV] (see
    :meth:`DoubleCrystalBall.effective_width`), the error of sigma_eff (a bootstrap,
    :func:`sigma_eff_bootstrap`) and the number of entries."""

    valid: bool
    reason: str = ""
    shape: DoubleCrystalBall | None = None
    errors: dict[str, float] = field(default_factory=dict)
    centre: float = float("nan")
    sigma_eff: float = float("nan")
    n_entries: int = 0
    sigma_eff_err: float = float("nan")

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"valid": self.valid, "reason": self.reason, "n_entries": self.n_entries,
                                "centre": _num(self.centre), "sigma_eff": _num(self.sigma_eff),
                                "sigma_eff_err": _num(self.sigma_eff_err)}  # fmt: skip
        if self.shape is not None:
            d["parameters"] = {k: float(v) for k, v in asdict(self.shape).items()}
            d["errors"] = {k: _num(v) for k, v in self.errors.items()}
        return d


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


SHAPE_PARAMETERS = ("mu", "sigma", "alpha_lo", "n_lo", "alpha_hi", "n_hi")


N_BOOTSTRAP = 30  # resamples for the error of sigma_eff: the error known to ~13 %


def _shape_minuit(m: np.ndarray, lo: float, hi: float, start: dict[str, float]) -> Any:
    """A Minuit of the double-sided Crystal Ball likelihood of ``m`` on [lo, hi], its limits set."""
    from iminuit import Minuit
    from iminuit.cost import UnbinnedNLL

    def pdf(x: np.ndarray, mu: float, sigma: float, alpha_lo: float, n_lo: float, alpha_hi: float,
            n_hi: float) -> np.ndarray:  # fmt: skip
        return DoubleCrystalBall(mu, sigma, alpha_lo, n_lo, alpha_hi, n_hi, lo, hi).pdf(x)

    width = hi - lo
    mi = Minuit(UnbinnedNLL(m, pdf), **start)
    mi.limits["mu"] = (lo, hi)
    mi.limits["sigma"] = (width / 1000, width)
    # alpha below ~0.3 makes the "core" a cusp; n above ~50 is a Gaussian tail for any alpha
    mi.limits["alpha_lo"] = mi.limits["alpha_hi"] = (0.3, 6.0)
    mi.limits["n_lo"] = mi.limits["n_hi"] = (1.05, 50.0)
    return mi


def sigma_eff_bootstrap(m: np.ndarray, shape: DoubleCrystalBall, fixed: set[str], *, n_bootstrap: int = N_BOOTSTRAP,
                        seed: int = 0) -> float:  # fmt: skip
    """The error of the sigma_eff of ``shape`` fitted to the masses ``m`` (K,) [MeV]: the
    standard deviation of sigma_eff over ``n_bootstrap`` refits to ``m`` resampled with
    replacement (from the fitted values, the parameters ``fixed`` in the fit kept fixed). Every
    crossing gives at most one truth-matched candidate, so this is a bootstrap over crossings.
    Chosen over propagating the parameter covariance to sigma_eff, which the tails of a
    near-Gaussian peak make useless: with its tail parameters unconstrained, that overestimated
    the spread of sigma_eff over toy fits by two orders of magnitude (Gaussian toys of 40-200
    entries); the bootstrap matches the spread within a few % for a peak with tails and is 10-20 %
    low for a Gaussian one with 300 entries, ~25 % low with 40. NaN unless half the refits
    converge. Deterministic: resampled from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EFF]))
    start = {k: float(getattr(shape, k)) for k in SHAPE_PARAMETERS}
    widths = []
    for _ in range(n_bootstrap):
        mi = _shape_minuit(rng.choice(m, size=len(m), replace=True), shape.lo, shape.hi, start)
        for k in fixed:
            mi.fixed[k] = True
        mi.migrad()
        if mi.fmin.is_above_max_edm or mi.fmin.has_reached_call_limit:
            continue
        v = {k: float(mi.values[k]) for k in SHAPE_PARAMETERS}
        widths.append(DoubleCrystalBall(**v, lo=shape.lo, hi=shape.hi).effective_width()[1])
    if len(widths) < max(2, n_bootstrap // 2):
        return float("nan")
    return float(np.std(widths, ddof=1))


def fit_signal_shape(m: np.ndarray, lo: float, hi: float, *, min_entries: int = 30,
                     n_bootstrap: int = N_BOOTSTRAP) -> ShapeFit:  # fmt: skip
    """Unbinned maximum-likelihood fit of a double-sided Crystal Ball, normalised on [lo, hi],
    to the masses ``m`` (K,) [MeV] of truth-matched signal candidates: the signal shape that an
    analysis takes from its simulation. The error of sigma_eff from ``n_bootstrap`` resamples
    (:func:`sigma_eff_bootstrap`; 0: none)."""
    m = np.asarray(m, dtype=float)
    m = m[(m > lo) & (m < hi)]
    if len(m) < min_entries:
        return ShapeFit(False, f"too few truth-matched candidates for the signal shape: {len(m)} < {min_entries}",
                        n_entries=len(m))  # fmt: skip
    width = hi - lo
    core = robust_sigma(m) if len(m) >= 5 else width / 10
    start = {"mu": float(np.median(m)), "sigma": max(core, width / 500), "alpha_lo": 1.5, "n_lo": 5.0,
             "alpha_hi": 1.5, "n_hi": 5.0}  # fmt: skip
    mi = _shape_minuit(m, lo, hi, start)
    mi.migrad()
    if not mi.valid:
        # a tail that starts beyond (nearly) all entries leaves its alpha and n undetermined: the
        # minimum is found but the covariance is singular (seen with ~80 truth-matched pi0s of
        # upgrade2-like at mu = 20). Such a tail is fixed where it is and the rest refitted.
        t = (m - mi.values["mu"]) / mi.values["sigma"]
        for side, beyond in (("lo", t < -mi.values["alpha_lo"]), ("hi", t > mi.values["alpha_hi"])):
            if beyond.sum() < 5:
                mi.fixed[f"alpha_{side}"] = mi.fixed[f"n_{side}"] = True
        mi.migrad()
    if not mi.valid:
        return ShapeFit(False, "the signal-shape fit did not converge", n_entries=len(m))
    mi.hesse()
    v = {k: float(mi.values[k]) for k in SHAPE_PARAMETERS}
    shape = DoubleCrystalBall(v["mu"], v["sigma"], v["alpha_lo"], v["n_lo"], v["alpha_hi"], v["n_hi"], lo, hi)
    centre, sigma_eff = shape.effective_width()
    errors = {k: float(mi.errors[k]) for k in SHAPE_PARAMETERS}
    fixed = {k for k in SHAPE_PARAMETERS if mi.fixed[k]}
    err = sigma_eff_bootstrap(m, shape, fixed, n_bootstrap=n_bootstrap) if n_bootstrap > 0 else float("nan")
    return ShapeFit(True, "", shape, errors, centre, sigma_eff, len(m), err)


@dataclass
class SpectrumFit:
    """Extended unbinned fit of a candidate mass spectrum with a fixed signal shape: yields
    ``n_signal``, ``n_background`` in the range with errors, background Bernstein
    ``coefficients``, and S, B in the window [``window_lo``, ``window_hi``] (centre +- k
    sigma_eff of the shape) with errors; ``significance`` S / sqrt(S + B) with its error.
    ``valid`` False with a ``reason`` when the fit failed."""

    valid: bool
    reason: str = ""
    shape: ShapeFit | None = None
    n_signal: float = float("nan")
    n_signal_err: float = float("nan")
    n_background: float = float("nan")
    n_background_err: float = float("nan")
    coefficients: list[float] = field(default_factory=list)
    window_lo: float = float("nan")
    window_hi: float = float("nan")
    s_window: float = float("nan")
    s_window_err: float = float("nan")
    b_window: float = float("nan")
    b_window_err: float = float("nan")
    significance: float = float("nan")
    significance_err: float = float("nan")
    n_entries: int = 0

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {}
        for k, v in asdict(self).items():
            if k == "shape":
                continue
            d[k] = _num(v) if isinstance(v, float) else v
        d["signal_shape"] = self.shape.to_dict() if self.shape is not None else None
        return d

    def curves(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(total, background) densities [candidates / MeV] of the fit at masses ``x`` (K,)."""
        if not self.valid or self.shape is None or self.shape.shape is None:
            raise ValueError("no curves for a failed fit")
        s = self.shape.shape
        bkg = self.n_background * bernstein_density(x, np.array(self.coefficients), s.lo, s.hi)
        return self.n_signal * s.pdf(x) + bkg, bkg


def fit_mass_spectrum(m: np.ndarray, shape: ShapeFit, *, degree: int = 2, window: float = 2.0,
                      min_entries: int = 30, min_significance: float = 3.0) -> SpectrumFit:  # fmt: skip
    """Extended unbinned maximum-likelihood fit of the candidate masses ``m`` (K,) [MeV] on the
    range of ``shape``: its signal shape with every shape parameter fixed (it comes from the
    same simulation, so there is no data/simulation difference for a mean shift to absorb),
    yields free, and a Bernstein-polynomial background of ``degree`` (coefficients >= 0, the
    largest fixed by the normalisation). The fit fails (``valid`` False, a reason) when the
    shape failed, with too few candidates, without convergence, or when the signal yield is not
    ``min_significance`` standard deviations from zero. S and B are integrated in
    centre +- ``window`` sigma_eff; their errors, and the significance's, from the covariance."""
    from iminuit import Minuit
    from iminuit.cost import ExtendedUnbinnedNLL

    if not shape.valid or shape.shape is None:
        return SpectrumFit(False, f"no signal shape: {shape.reason}", shape)
    s = shape.shape
    lo, hi = s.lo, s.hi
    m = np.asarray(m, dtype=float)
    m = m[(m > lo) & (m < hi)]
    if len(m) < min_entries:
        return SpectrumFit(False, f"too few candidates for a fit: {len(m)} < {min_entries}", shape, n_entries=len(m))
    # starting background: the Bernstein coefficients that fit the histogram of all candidates
    from scipy.optimize import nnls

    counts, edges = np.histogram(m, bins=20, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    basis = np.stack([bernstein_density(centres, np.eye(degree + 1)[k], lo, hi) for k in range(degree + 1)], axis=1)
    c0 = nnls(basis, counts.astype(float))[0]
    c0 = c0 / c0.max() if c0.max() > 0 else np.ones(degree + 1)
    fixed = int(np.argmax(c0))
    names = ["ns", "nb", *[f"c{k}" for k in range(degree + 1)]]
    sig_pdf = s.pdf(m)  # the shape is fixed: its density at the candidates once

    def density(x: np.ndarray, *par: float) -> tuple[float, np.ndarray]:
        ns, nb, c = par[0], par[1], np.array(par[2:])
        sp = sig_pdf if x.shape == m.shape and np.array_equal(x, m) else s.pdf(x)
        return ns + nb, ns * sp + nb * bernstein_density(x, np.maximum(c, 0.0), lo, hi)

    mi = Minuit(ExtendedUnbinnedNLL(m, density, name=names), len(m) / 4, 3 * len(m) / 4, *c0)
    mi.limits["ns"] = (0, 2 * len(m))
    mi.limits["nb"] = (0, 2 * len(m))
    for k in range(degree + 1):
        mi.limits[f"c{k}"] = (0.0, 100.0)
    mi.fixed[f"c{fixed}"] = True
    mi.migrad()
    if not mi.valid:
        mi.migrad()
    result = SpectrumFit(False, "", shape, n_entries=len(m))
    if not mi.valid:
        result.reason = "the fit did not converge"
        return result
    mi.hesse()
    coef = np.array([mi.values[f"c{k}"] for k in range(degree + 1)])
    a, b = shape.centre - window * shape.sigma_eff, shape.centre + window * shape.sigma_eff
    f_s = s.fraction(a, b)
    free = [n for n in names if not mi.fixed[n]]
    cov = np.array([[mi.covariance[p, q] for q in free] for p in free])
    values = np.array([mi.values[p] for p in free])

    def window_values(v: np.ndarray) -> np.ndarray:
        par = dict(zip(free, v, strict=True))
        c = np.array([par.get(f"c{k}", coef[k]) for k in range(degree + 1)])
        sw = par["ns"] * f_s
        bw = par["nb"] * bernstein_fraction(np.maximum(c, 0.0), lo, hi, a, b)
        z = sw / math.sqrt(sw + bw) if sw + bw > 0 else float("nan")
        return np.array([sw, bw, z])

    central = window_values(values)
    jac = np.zeros((3, len(free)))
    for k in range(len(free)):
        h = 1e-4 * max(abs(values[k]), 1e-2)
        up, down = values.copy(), values.copy()
        up[k] += h
        down[k] -= h
        jac[:, k] = (window_values(up) - window_values(down)) / (2 * h)
    err = np.sqrt(np.maximum(np.diag(jac @ cov @ jac.T), 0.0))
    result.n_signal, result.n_signal_err = float(mi.values["ns"]), float(mi.errors["ns"])
    result.n_background, result.n_background_err = float(mi.values["nb"]), float(mi.errors["nb"])
    result.coefficients = [float(v) for v in coef]
    result.window_lo, result.window_hi = float(a), float(b)
    result.s_window, result.b_window, result.significance = (float(v) for v in central)
    result.s_window_err, result.b_window_err, result.significance_err = (float(v) for v in err)
    if not result.n_signal > min_significance * result.n_signal_err:
        result.reason = (f"no significant signal: yield {result.n_signal:.3g} +- {result.n_signal_err:.2g} is "
                         f"less than {min_significance:g} standard deviations from 0")  # fmt: skip
        return result
    result.valid = True
    return result
