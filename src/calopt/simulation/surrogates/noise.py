"""Per-shower random numbers that depend only on (shower seed, stream, index): a counter-based
generator (splitmix64 finaliser), so that a shower's noise does not depend on the batch it is
generated in. Uniforms are evaluated with vectorised numpy; normals (thousands per shower
for the flow's residual model) with a compiled Box-Muller loop, 7x faster than the inverse
normal CDF on the same uniforms."""

from __future__ import annotations

import numba
import numpy as np

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


@numba.njit(cache=True)
def _box_muller(keys: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((len(keys), n))
    for i in range(len(keys)):
        for j in range(0, n, 2):
            c = np.uint64(j)
            z1 = keys[i] + c + np.uint64(0x9E3779B97F4A7C15)
            z1 = (z1 ^ (z1 >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z1 = (z1 ^ (z1 >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z1 = z1 ^ (z1 >> np.uint64(31))
            z2 = keys[i] + c + np.uint64(1) + np.uint64(0x9E3779B97F4A7C15)
            z2 = (z2 ^ (z2 >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z2 = (z2 ^ (z2 >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z2 = z2 ^ (z2 >> np.uint64(31))
            u1 = ((z1 >> np.uint64(11)) + 0.5) * 2.0**-53
            u2 = ((z2 >> np.uint64(11)) + 0.5) * 2.0**-53
            r = np.sqrt(-2.0 * np.log(u1))
            out[i, j] = r * np.cos(2.0 * np.pi * u2)
            if j + 1 < n:
                out[i, j + 1] = r * np.sin(2.0 * np.pi * u2)
    return out


def normals(seeds: np.ndarray, n: int, stream: int = 0) -> np.ndarray:
    """(N, n) standard normals from per-shower seeds (Box-Muller on the counter-based uniforms)."""
    s = np.asarray(seeds).astype(np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        keys = _mix(s ^ (np.uint64(stream + 1) << np.uint64(40)))
    return _box_muller(keys, int(n))


def run_seeds(seed: int, start: int, n: int) -> np.ndarray:
    """Per-shower seeds of showers start..start+n-1 of a run (vectorised)."""
    base = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return _mix(base + np.arange(start, start + n, dtype=np.uint64))
