"""Per-shower random numbers that depend only on (shower seed, stream, index): a counter-based
generator (splitmix64 finaliser) evaluated with vectorised numpy, so that a shower's noise
does not depend on the batch it is generated in, and 10^4 showers need no Python loop."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["normals", "run_seeds", "uniforms"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLD
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniforms(seeds: np.ndarray, n: int, stream: int = 0) -> np.ndarray:
    """(N, n) uniforms in (0, 1) from per-shower seeds."""
    s = np.asarray(seeds).astype(np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        key = _mix(s ^ (np.uint64(stream + 1) << np.uint64(40)))
        x = _mix(key + np.arange(n, dtype=np.uint64)[None, :])
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def normals(seeds: np.ndarray, n: int, stream: int = 0) -> np.ndarray:
    """(N, n) standard normals from per-shower seeds."""
    return ndtri(uniforms(seeds, n, stream))


def run_seeds(seed: int, start: int, n: int) -> np.ndarray:
    """Per-shower seeds of showers start..start+n-1 of a run (vectorised)."""
    base = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return _mix(base + np.arange(start, start + n, dtype=np.uint64))
