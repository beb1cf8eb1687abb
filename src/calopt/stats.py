"""Small statistics helpers shared by every stage.

* :func:`robust_sigma`: the Gaussian-core width of a sample (half its central 68 % interval),
  the width test beams quote from a Gaussian fit of the peak, and :func:`robust_sigma_error`,
  its statistical error;
* :func:`binomial_error`: the error of a fraction k / n of n independent trials;
* :func:`fit_energy_resolution`: sigma/E = a/sqrt(E) (+) b (+) c/E, the stochastic, constant
  and noise terms of the usual calorimeter parametrisation (PDG Review, "Calorimetry"),
  fitted by least squares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ROBUST_SIGMA_EFFICIENCY", "binomial_error", "fit_energy_resolution", "robust_sigma", "robust_sigma_error"]

# The error of the quantile width relative to that of the sample standard deviation,
# sigma / sqrt(2 (n - 1)), for a Gaussian sample. Asymptotically it is 1.36 (the variance of
# half the difference of the 15.9 % and 84.1 % quantiles is 0.93 sigma^2 / n, from the
# quantiles' variances p (1 - p) / (n f^2) and their covariance); 1.3 is what the energy
# resolution points have always been weighted with (tests/test_stats.py checks both against
# toys within 10 %).
ROBUST_SIGMA_EFFICIENCY = 1.3


def robust_sigma(x: np.ndarray) -> float:
    """Half the central 68 % interval: the Gaussian-core width, insensitive to tails (NaN for
    fewer than 5 values)."""
    if len(x) < 5:
        return float("nan")
    lo, hi = np.percentile(x, [15.865, 84.135])
    return float((hi - lo) / 2.0)


def robust_sigma_error(sigma: float, n: int) -> float:
    """The statistical error of :func:`robust_sigma` ``sigma`` of ``n`` values: sigma /
    sqrt(2 (n - 1)) times :data:`ROBUST_SIGMA_EFFICIENCY` (NaN for n < 2 or a NaN sigma)."""
    if n < 2 or not np.isfinite(sigma):
        return float("nan")
    return float(sigma / np.sqrt(2.0 * (n - 1)) * ROBUST_SIGMA_EFFICIENCY)


def binomial_error(k: int, n: int) -> float:
    """sqrt(p (1 - p) / n), p = k / n: the error of a fraction of ``n`` independent trials of
    which ``k`` succeeded (0 at p = 0 or 1; NaN for n = 0)."""
    if n <= 0:
        return float("nan")
    p = k / n
    return float(np.sqrt(max(p * (1.0 - p), 0.0) / n))


def fit_energy_resolution(e_gev: np.ndarray, rel_sigma: np.ndarray, rel_err: np.ndarray, *,
                          noise: bool = True) -> dict[str, Any]:  # fmt: skip
    """Fit (sigma/E)^2 = a^2/E + b^2 + c^2/E^2 to points (E [GeV], sigma/E, its error); with
    ``noise=False`` (a noise-free simulation) the c term is fixed to 0. Returns ``valid`` and
    ``a``, ``b``, ``c`` with their errors (None for a term at its bound of 0), or
    ``valid = False`` and the ``reason``."""
    from scipy.optimize import curve_fit

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
        # a term driven to its bound of 0 (the data want none) has no meaningful symmetric
        # error: the covariance there is singular (errors of 10^5 seen), so it is None
        at_bound = popt[k] < 1e-6
        out[name], out[f"{name}_err"] = float(popt[k]), None if at_bound else float(err[k])
    if not noise:
        out["c"], out["c_err"] = 0.0, 0.0
    return out
