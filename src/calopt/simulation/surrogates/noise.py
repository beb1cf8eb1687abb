"""Per-shower random numbers: every shower draws from a numpy generator of its own, seeded by
the shower's seed (``numpy.random.default_rng(seed)``: a SeedSequence of the seed into PCG64),
so that a shower depends only on its seed, not on the batch or the chunk it is made in.

A simulator draws from each shower's generator in a fixed order: the choice of an ensemble's
component, the networks' noise, a flow's residual normals, the section-time normals (models
without learnt times), the hit model's cell uniforms and its Gamma deposits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normals", "shower_rngs", "uniforms"]


def shower_rngs(seeds: np.ndarray) -> list[np.random.Generator]:
    """One generator per shower seed (integers >= 0)."""
    return [np.random.default_rng(int(s)) for s in np.asarray(seeds).reshape(-1)]


def normals(rngs: list[np.random.Generator], n: int, dtype: type = np.float32) -> np.ndarray:
    """(N, n) standard normals, row i from ``rngs[i]``."""
    out: np.ndarray = np.empty((len(rngs), n), dtype=dtype)
    for g, row in zip(rngs, out):
        g.standard_normal(out=row, dtype=dtype)
    return out


def uniforms(rngs: list[np.random.Generator], n: int, dtype: type = np.float64) -> np.ndarray:
    """(N, n) uniforms in [0, 1), row i from ``rngs[i]``."""
    out: np.ndarray = np.empty((len(rngs), n), dtype=dtype)
    for g, row in zip(rngs, out):
        g.random(out=row, dtype=dtype)
    return out
