"""Per-shower random numbers that depend only on (shower seed, stream, index): a counter-based
generator (splitmix64 finaliser), so that a shower's noise does not depend on the batch it is
generated in. Uniforms are evaluated with vectorised numpy; normals (thousands per shower
for the flow's residual model) with a compiled ziggurat (Marsaglia & Tsang, J. Stat. Softw.
5 (2000) 8, in the form of Doornik's ZIGNOR, "An Improved Ziggurat Method to Generate Normal
Random Samples", 2005: 128 layers, the layer index and the value from separate bits of one
64-bit word). Normal j takes the words at counters ``j 2^32, j 2^32 + 1, ...`` (one word
for 97 % of them; more off the fast path: the wedges, and the tail beyond R = 3.44), so the
numbers stay independent of each other. The first word of every normal is made in a
branch-free pass (vectorised) and the 3 % off the fast path drawn again after it. The
ziggurat is 10x faster than the Box-Muller transform it replaced (3672 normals per flow
shower: 81 -> 8 us).
"""

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


ZIG_LAYERS = 128
ZIG_R = 3.442619855899  # start of the tail (Marsaglia & Tsang 2000, 128 layers)
ZIG_V = 9.91256303526217e-3  # area of every layer


def _zig_tables() -> tuple[np.ndarray, np.ndarray]:
    """Layer edges x (x[0] the bottom layer's equivalent width, x[1] = R, x[128] = 0) and the
    ratios x[i + 1] / x[i] below which a point is inside the next layer (ZIGNOR)."""
    x = np.zeros(ZIG_LAYERS + 1)
    f = np.exp(-0.5 * ZIG_R * ZIG_R)
    x[0] = ZIG_V / f
    x[1] = ZIG_R
    for i in range(2, ZIG_LAYERS):
        x[i] = np.sqrt(-2.0 * np.log(ZIG_V / x[i - 1] + f))
        f = np.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1]


_ZIG_X, _ZIG_RATIO = _zig_tables()


@numba.njit(cache=True, inline="always")
def _word(key: np.uint64, counter: np.uint64) -> np.uint64:
    z = key + counter + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _unit(w: np.uint64) -> float:
    """(0, 1) from the upper 53 bits."""
    return ((w >> np.uint64(11)) + 0.5) * 2.0**-53


@numba.njit(cache=True, inline="always")
def _zig_split(w: np.uint64) -> tuple[int, float]:
    """The ziggurat's layer (the low 7 bits of a word) and its value in (-1, 1) (the upper 53)."""
    return int(w & np.uint64(ZIG_LAYERS - 1)), 2.0 * _unit(w) - 1.0


@numba.njit(cache=True, inline="always")
def _normal_from(key: np.uint64, c: np.uint64, xs: np.ndarray, ratio: np.ndarray) -> tuple[float, np.uint64]:
    """A standard normal from the words at counters ``c, c + 1, ...`` (one word for 97 % of
    them), and the next unused counter."""
    r = xs[1]
    while True:
        layer, u = _zig_split(_word(key, c))
        c += np.uint64(1)
        if abs(u) < ratio[layer]:
            return u * xs[layer], c
        if layer == 0:  # the tail beyond R (Marsaglia 1964)
            while True:
                a = np.log(_unit(_word(key, c))) / r
                b = np.log(_unit(_word(key, c + np.uint64(1))))
                c += np.uint64(2)
                if -2.0 * b >= a * a:
                    break
            return (a - r if u < 0.0 else r - a), c
        x = u * xs[layer]
        f0 = np.exp(-0.5 * (xs[layer] * xs[layer] - x * x))
        f1 = np.exp(-0.5 * (xs[layer + 1] * xs[layer + 1] - x * x))
        v = _unit(_word(key, c))
        c += np.uint64(1)
        if f1 + v * (f0 - f1) < 1.0:
            return x, c


@numba.njit(cache=True)
def _ziggurat_one(key: np.uint64, j: int, xs: np.ndarray, ratio: np.ndarray) -> float:
    """Normal ``j`` of a shower (the words from counter ``j 2^32`` on)."""
    return _normal_from(key, np.uint64(j) << np.uint64(32), xs, ratio)[0]


@numba.njit(cache=True)
def _ziggurat(keys: np.ndarray, n: int, xs: np.ndarray, ratio: np.ndarray, out: np.ndarray) -> None:
    u = np.empty(n)
    layer = np.empty(n, dtype=np.int32)
    redo = np.empty(n, dtype=np.int32)  # the normals off the fast path
    for i in range(len(keys)):
        key = keys[i]
        o = out[i]
        # the first word of every normal, without the table look-ups (vectorised)
        for j in range(n):
            lj, u[j] = _zig_split(_word(key, np.uint64(j) << np.uint64(32)))
            layer[j] = np.int32(lj)
        slow = 0
        for j in range(n):
            o[j] = u[j] * xs[layer[j]]
            if abs(u[j]) >= ratio[layer[j]]:  # a wedge or the tail (3 %): drawn below
                redo[slow] = j
                slow += 1
        for k in range(slow):
            o[redo[k]] = _ziggurat_one(key, redo[k], xs, ratio)


def normals(seeds: np.ndarray, n: int, stream: int = 0, dtype: type = np.float64,
            out: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N, n) standard normals from per-shower seeds (a ziggurat on the counter-based words),
    into ``out`` when given (C-contiguous, (N, n), of ``dtype``)."""
    s = np.asarray(seeds).astype(np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        keys = _mix(s ^ (np.uint64(stream + 1) << np.uint64(40)))
    if out is None:
        out = np.empty((len(s), int(n)), dtype=dtype)
    elif out.shape != (len(s), int(n)) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"normals: out of shape {out.shape} and {out.dtype}, expected C-contiguous {(len(s), n)} {dtype}"
        )
    _ziggurat(keys, int(n), _ZIG_X, _ZIG_RATIO, out)
    return out


def run_seeds(seed: int, start: int, n: int) -> np.ndarray:
    """Per-shower seeds of showers start..start+n-1 of a run (vectorised)."""
    base = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return _mix(base + np.arange(start, start + n, dtype=np.uint64))
