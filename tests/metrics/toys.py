"""Samples from the fit shapes, for tests with a known truth."""

import numpy as np

from calopt.metrics.shapes import DoubleCrystalBall, bernstein_density


def sample_shape(shape: DoubleCrystalBall, n: int, rng: np.random.Generator) -> np.ndarray:
    """n masses from the shape on its range (inverse of the cumulative on a fine grid)."""
    x = np.linspace(shape.lo, shape.hi, 20001)
    cdf = np.cumsum(shape.pdf(x))
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    return np.interp(rng.uniform(size=n), cdf, x)


def sample_bernstein(c: np.ndarray, lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.linspace(lo, hi, 20001)
    cdf = np.cumsum(bernstein_density(x, c, lo, hi))
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    return np.interp(rng.uniform(size=n), cdf, x)
