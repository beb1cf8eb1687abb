"""Mass-peak shapes: the double-sided Crystal Ball signal and a Bernstein-polynomial background.

The Crystal Ball function (a Gaussian core with a power-law tail) is the standard shape of
calorimeter mass peaks whose low side has a tail from energy leakage [J. E. Gaiser, SLAC-R-255
(1982), appendix F; T. Skwarnicki, DESY F31-86-02 (1986)]; LHCb fits its resolved pi0 and
B -> X pi0 peaks with it. Pile-up adds energy to the clusters as well as noise, so a tail
appears on the high side too: the double-sided Crystal Ball [e.g. CMS, JHEP 10 (2011) 132;
ATLAS, Phys. Rev. D 90 (2014) 112015] has one power-law tail on each side of the Gaussian
core. For one tail it is scipy.stats.crystalball (tested against it). Its integral is analytic,
so the shape is normalised exactly on a finite fit range.

A positive polynomial of degree d is a non-negative combination of the Bernstein basis
polynomials B_{k,d}(t) = C(d, k) t^k (1 - t)^(d - k), t in [0, 1]: the usual flexible model of
a smooth combinatorial background (the basis of RooBernstein); each B_{k,d} integrates to
1 / (d + 1) on [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betainc, comb, erf

__all__ = ["DoubleCrystalBall", "bernstein_density", "bernstein_fraction"]

_SQRT_HALF_PI = math.sqrt(math.pi / 2)


@dataclass(frozen=True)
class DoubleCrystalBall:
    """Double-sided Crystal Ball of mean ``mu`` and core width ``sigma`` [MeV]: a Gaussian for
    -alpha_lo <= (m - mu) / sigma <= alpha_hi, power-law tails of exponents ``n_lo``, ``n_hi``
    (> 1) beyond, continuous with a continuous derivative. Normalised on [``lo``, ``hi``]."""

    mu: float
    sigma: float
    alpha_lo: float
    n_lo: float
    alpha_hi: float
    n_hi: float
    lo: float
    hi: float

    def _primitive(self, m: np.ndarray) -> np.ndarray:
        """Integral of the unnormalised shape in t = (m - mu) / sigma from -infinity to t."""
        t = (np.asarray(m, dtype=float) - self.mu) / self.sigma
        al, nl, ar, nr = self.alpha_lo, self.n_lo, self.alpha_hi, self.n_hi
        a_l = math.exp(-0.5 * al * al)
        a_r = math.exp(-0.5 * ar * ar)
        # left tail A (B - t)^-n with A = (n / alpha)^n exp(-alpha^2 / 2), B = n / alpha - alpha;
        # written with (B - t) alpha / n to keep the powers finite for large n
        u_l = np.maximum((nl / al - al - np.minimum(t, -al)) * al / nl, 1.0)
        left = a_l * nl / al / (nl - 1.0) * u_l ** (1.0 - nl)
        left_edge = a_l * nl / al / (nl - 1.0)
        core = left_edge + _SQRT_HALF_PI * (erf(np.clip(t, -al, ar) / math.sqrt(2)) - erf(-al / math.sqrt(2)))
        core_edge = left_edge + _SQRT_HALF_PI * (erf(ar / math.sqrt(2)) - erf(-al / math.sqrt(2)))
        u_r = np.maximum((nr / ar - ar + np.maximum(t, ar)) * ar / nr, 1.0)
        right = core_edge + a_r * nr / ar / (nr - 1.0) * (1.0 - u_r ** (1.0 - nr))
        return np.where(t < -al, left, np.where(t <= ar, core, right))

    def _unnormalised(self, m: np.ndarray) -> np.ndarray:
        t = (np.asarray(m, dtype=float) - self.mu) / self.sigma
        al, nl, ar, nr = self.alpha_lo, self.n_lo, self.alpha_hi, self.n_hi
        u_l = np.maximum((nl / al - al - t) * al / nl, 1.0)
        u_r = np.maximum((nr / ar - ar + t) * ar / nr, 1.0)
        left = math.exp(-0.5 * al * al) * u_l ** (-nl)
        right = math.exp(-0.5 * ar * ar) * u_r ** (-nr)
        return np.where(t < -al, left, np.where(t <= ar, np.exp(-0.5 * t * t), right))

    @property
    def norm(self) -> float:
        """Integral of the unnormalised shape on [lo, hi] [MeV]."""
        lo_hi = self._primitive(np.array([self.lo, self.hi]))
        return float(lo_hi[1] - lo_hi[0]) * self.sigma

    def pdf(self, m: np.ndarray) -> np.ndarray:
        """(K,) probability density [1/MeV] on [lo, hi] at masses ``m`` (K,) [MeV]."""
        return self._unnormalised(m) / max(self.norm, 1e-300)

    def fraction(self, a: float, b: float) -> float:
        """Fraction of the shape (normalised on [lo, hi]) in [a, b]."""
        a, b = max(a, self.lo), min(b, self.hi)
        if b <= a:
            return 0.0
        pa, pb = self._primitive(np.array([a, b]))
        return float((pb - pa) * self.sigma / max(self.norm, 1e-300))

    def effective_width(self, coverage: float = 0.6827) -> tuple[float, float]:
        """(centre, sigma_eff) [MeV]: half the width of the shortest interval holding ``coverage``
        of the shape, and its centre (sigma for a Gaussian; the sigma_eff of CMS's H -> gamma
        gamma, which unlike the core width counts the tails)."""
        x = np.linspace(self.lo, self.hi, 4001)
        cdf = (self._primitive(x) - self._primitive(np.array([self.lo]))[0]) * self.sigma / max(self.norm, 1e-300)
        ok = cdf + coverage <= cdf[-1]
        if not ok.any():
            return 0.5 * (self.lo + self.hi), 0.5 * (self.hi - self.lo)
        left = x[ok]
        right = np.interp(cdf[ok] + coverage, cdf, x)  # the cumulative rises strictly: the shape is > 0
        k = int(np.argmin(right - left))
        return float(0.5 * (left[k] + right[k])), float(0.5 * (right[k] - left[k]))


def bernstein_density(m: np.ndarray, coefficients: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(K,) density [1/MeV] on [lo, hi] of the Bernstein polynomial with non-negative
    ``coefficients`` (d + 1,) at masses ``m`` (K,) [MeV]."""
    c = np.asarray(coefficients, dtype=float)
    d = len(c) - 1
    t = np.clip((np.asarray(m, dtype=float) - lo) / (hi - lo), 0.0, 1.0)
    k = np.arange(d + 1)
    basis = comb(d, k) * t[:, None] ** k * (1.0 - t[:, None]) ** (d - k)
    return (basis @ c) * (d + 1) / (c.sum() * (hi - lo))


def bernstein_fraction(coefficients: np.ndarray, lo: float, hi: float, a: float, b: float) -> float:
    """Fraction of the Bernstein density of ``coefficients`` (d + 1,) on [lo, hi] in [a, b]."""
    c = np.asarray(coefficients, dtype=float)
    d = len(c) - 1
    ta, tb = (np.clip((v - lo) / (hi - lo), 0.0, 1.0) for v in (a, b))
    k = np.arange(d + 1)
    # integral of B_{k,d} from 0 to x is I_x(k + 1, d - k + 1) / (d + 1)
    part = betainc(k + 1, d - k + 1, tb) - betainc(k + 1, d - k + 1, ta)
    return float((c * part).sum() / c.sum())
