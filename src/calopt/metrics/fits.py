"""Fits of resolutions and mass peaks.

* :func:`fit_energy_resolution`: sigma/E = a/sqrt(E) (+) b (+) c/E (E in GeV), least squares;
* :func:`fit_mass_peak`: extended unbinned maximum likelihood (iminuit) of a Gaussian signal
  on a linear combinatorial background in a mass range. A fit that fails (too few entries,
  no convergence, a width at its limit) is reported as failed with the reason -- never as a
  number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

__all__ = ["MassFit", "fit_energy_resolution", "fit_mass_peak", "robust_sigma"]


def robust_sigma(x: np.ndarray) -> float:
    """Half the central 68 % interval: the Gaussian-core width, insensitive to tails."""
    if len(x) < 5:
        return float("nan")
    lo, hi = np.percentile(x, [15.865, 84.135])
    return float((hi - lo) / 2.0)


def fit_energy_resolution(e_gev: np.ndarray, rel_sigma: np.ndarray, rel_err: np.ndarray, *,
                          noise: bool = True) -> dict[str, Any]:  # fmt: skip
    """Fit (sigma/E)^2 = a^2/E + b^2 + c^2/E^2 to points (E [GeV], sigma/E, its error); with
    ``noise=False`` (a noise-free simulation) the c term is fixed to 0."""

    def model(e: np.ndarray, a: float, b: float, c: float = 0.0) -> np.ndarray:
        return np.sqrt(a * a / e + b * b + c * c / (e * e))

    n_par = 3 if noise else 2
    ok = np.isfinite(rel_sigma) & np.isfinite(rel_err) & (rel_err > 0)
    if ok.sum() < n_par:
        return {"valid": False, "reason": f"only {int(ok.sum())} usable energy points"}
    popt, pcov = curve_fit(model, e_gev[ok], rel_sigma[ok], p0=(0.1, 0.01, 0.01)[:n_par], sigma=rel_err[ok],
                           absolute_sigma=True, bounds=([0, 0, 0][:n_par], [1.0, 0.5, 1.0][:n_par]))  # fmt: skip
    err = np.sqrt(np.diag(pcov))
    out: dict[str, Any] = {"valid": True}
    for k, name in enumerate("abc"[:n_par]):
        out[name], out[f"{name}_err"] = float(popt[k]), float(err[k])
    if not noise:
        out["c"], out["c_err"] = 0.0, 0.0
    return out


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
