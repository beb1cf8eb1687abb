"""Per-shower random numbers that depend only on (shower seed, stream, index): a counter-based
generator (splitmix64 finaliser), so that a shower's noise does not depend on the batch it is
generated in. Uniforms are evaluated with vectorised numpy; the networks' normals with a
compiled ziggurat (Marsaglia & Tsang, J. Stat. Softw. 5 (2000) 8, in the form of Doornik's
ZIGNOR, "An Improved Ziggurat Method to Generate Normal Random Samples", 2005: 128 layers,
the layer index and the value from separate bits of one 64-bit word). Normal j takes the
words at counters ``j 2^32, j 2^32 + 1, ...`` (one word for 97 % of them; more off the fast
path: the wedges, and the tail beyond R = 3.44), so the numbers stay independent of each
other. The first word of every normal is made in a branch-free pass (vectorised) and the 3 %
off the fast path go through the rest of the algorithm together after it (:func:`_ziggurat`).
The ziggurat is 13x faster than the Box-Muller transform it replaced (3672 normals per flow
shower: 81 -> 6 us). The 3600 normals of a flow shower's residual model are made by
inversion instead (:func:`inverse_normals`: Wichura's PPND7 of 32-bit uniforms, two per
word, in float32), which runs without table look-ups and in less memory: a flow shower took
4-5 us less.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["inverse_normals", "normals", "run_seeds", "uniforms"]

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


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (Cody & Waite): k ln 2 exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_EXP_TAYLOR = 1.0 / np.cumprod(np.r_[1.0, np.arange(1.0, 14.0)])  # 1 / q!, q = 0..13


@numba.njit(cache=True, fastmath={"contract"})
def _exp_many(x: np.ndarray, n: int, out: np.ndarray, bits: np.ndarray) -> None:
    """``exp(x[:n])`` into ``out`` for -700 <= x <= 700, in branch-free (vectorised) passes:
    2^k exp(r) with |r| <= ln 2 / 2, exp(r) to r^13 (relative error < 5e-16 against numpy's,
    tested). numba calls libm's exp one value at a time: 4.5 against 1.7 ns here. ``bits``:
    int64 scratch of at least n."""
    for i in range(n):
        xi = min(max(x[i], -700.0), 700.0)
        k = np.floor(xi * _LOG2E + 0.5)
        r = (xi - k * _LN2_HI) - k * _LN2_LO
        e = _EXP_TAYLOR[13]
        for q in range(12, -1, -1):  # Horner
            e = e * r + _EXP_TAYLOR[q]
        out[i] = e
        bits[i] = (np.int64(k) + np.int64(1023)) << np.int64(52)  # 2^k
    two_k = bits[:n].view(np.float64)
    for i in range(n):
        out[i] *= two_k[i]


_SQRT2 = 1.4142135623730951
_ATANH_SERIES = 1.0 / np.arange(1.0, 24.0, 2.0)  # 1 / (2q + 1), q = 0..11


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _log_many(x: np.ndarray, n: int, out: np.ndarray, bits: np.ndarray) -> None:
    """``log(x[:n])`` into ``out`` for normal positive floats (x = m 2^k, 1/sqrt 2 <= m <
    sqrt 2), in branch-free (vectorised) passes: k ln 2 + 2 atanh(s), s = (m - 1) / (m + 1),
    |s| < 0.172, its series to s^23 (relative error < 1e-15 against numpy's, tested; 4.8 ns a
    call to libm's log in numba). ``bits``: int64 scratch of at least n."""
    bits[:n] = x[:n].view(np.int64)
    for i in range(n):
        b = bits[i]
        k = (b >> np.int64(52)) - np.int64(1023)
        bits[i] = (b & np.int64(0xFFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000)  # m in [1, 2)
        out[i] = float(k)
    m = bits[:n].view(np.float64)
    for i in range(n):
        big = m[i] >= _SQRT2
        mi = 0.5 * m[i] if big else m[i]
        k = out[i] + 1.0 if big else out[i]
        s = (mi - 1.0) / (mi + 1.0)
        s2 = s * s
        p = _ATANH_SERIES[11]
        for q in range(10, -1, -1):  # Horner in s^2
            p = p * s2 + _ATANH_SERIES[q]
        out[i] = (k * _LN2_LO + 2.0 * s * p) + k * _LN2_HI


@numba.njit(cache=True)
def _tail(key: np.uint64, c: np.uint64, r: float, negative: bool) -> tuple[float, np.uint64]:
    """A normal beyond ``r`` (the ziggurat's tail, Marsaglia 1964) from the words at counters
    ``c, c + 1, ...``, and the next unused counter."""
    while True:
        a = np.log(_unit(_word(key, c))) / r
        b = np.log(_unit(_word(key, c + np.uint64(1))))
        c += np.uint64(2)
        if -2.0 * b >= a * a:
            return (a - r if negative else r - a), c


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
        if layer == 0:
            return _tail(key, c, r, u < 0.0)
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


_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)  # every 6-bit window distinct: the lowest set bit's place from a product


def _de_bruijn_table() -> np.ndarray:
    table = np.zeros(64, dtype=np.int64)
    for k in range(64):
        table[((1 << k) * int(_DE_BRUIJN) % 2**64) >> 58] = k
    return table


_LOWEST_BIT = _de_bruijn_table()
_PACK_BYTES = np.uint64(0x0102040810204080)  # bytes of 0 or 1 -> their bits in the top byte


@numba.njit(cache=True)
def _true_indices(flags: np.ndarray, idx: np.ndarray) -> int:
    """The indices of the true entries of the bool array ``flags`` into ``idx``, in order; their
    number. 64 flags at a time: their bytes packed into the bits of one 64-bit mask (8 bytes
    of 0 or 1 times 0x0102040810204080 put their bits in the top byte), then each set bit by a
    de Bruijn look-up of the lowest one. The loop over a mask's bits ends once per 64 flags,
    so a branch is mispredicted that rarely: 0.7 against 2.1 us for 3600 flags, 7 % of them
    true, that change from one call to the next (the same flags again and again, which the
    branch predictor learns, took 0.5 us both ways)."""
    n = len(flags)
    ng = n // 64
    words = flags[: 64 * ng].view(np.uint64)
    k = 0
    for g in range(ng):
        m = np.uint64(0)
        for b in range(8):
            m |= ((words[8 * g + b] * _PACK_BYTES) >> np.uint64(56)) << np.uint64(8 * b)
        while m != np.uint64(0):
            low = m & (np.uint64(0) - m)
            idx[k] = 64 * g + _LOWEST_BIT[(low * _DE_BRUIJN) >> np.uint64(58)]
            k += 1
            m ^= low
    for j in range(64 * ng, n):
        idx[k] = j
        k += flags[j]
    return k


@numba.njit(cache=True)
def _zig_scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The work arrays of :func:`_normals_row` for ``n`` normals: float64 (6, n), int64 (4, n + 1),
    uint64 (n) and bool (n)."""
    return np.empty((6, n)), np.empty((4, n + 1), dtype=np.int64), np.empty(n, dtype=np.uint64), np.empty(n, np.bool_)


@numba.njit(cache=True)
def _normals_row(key: np.uint64, o: np.ndarray, xs: np.ndarray, ratio: np.ndarray, fs: np.ndarray,
                 ints: np.ndarray, cnt: np.ndarray, slow: np.ndarray) -> None:  # fmt: skip
    """Normals ``0, 1, ...`` of a key into ``o``: :func:`_normal_from` from counter ``j 2^32``
    for normal ``j``, in branch-free (vectorised) passes over all of them. The first
    word of every normal is drawn together; the 3 % off the fast path then go through the
    wedge test together (its two exponentials with :func:`_exp_many`), and those it rejects
    draw their next word, round after round, until none is left. The same numbers as one
    normal at a time (the exponentials agree to 5e-16), in 6.2 instead of 8.2 us per 3672 (what
    a flow shower took with its residual normals; the table look-ups of the first pass, not
    vectorised, take 2.8). The work arrays are :func:`_zig_scratch`'s."""
    n = len(o)
    u, val, a0, a1, f0, f1 = fs[0], fs[1], fs[2], fs[3], fs[4], fs[5]
    layer, redo, lay, bits = ints[0], ints[1], ints[2], ints[3]  # redo: the open normals' indices
    r = xs[1]
    for j in range(n):  # the first word of every normal
        layer[j], u[j] = _zig_split(_word(key, np.uint64(j) << np.uint64(32)))
    for j in range(n):
        lj = layer[j]
        o[j] = u[j] * xs[lj]
        slow[j] = abs(u[j]) >= ratio[lj]
    m = _true_indices(slow, redo)  # the normals off the fast path
    for k in range(m):  # their next counter, layer and value
        j = redo[k]
        cnt[k] = (np.uint64(j) << np.uint64(32)) + np.uint64(1)
        lay[k] = layer[j]
        val[k] = u[j]
    while m > 0:
        for k in range(m):  # the wedge test's exponents (a tail's are unused)
            lk = lay[k]
            x = val[k] * xs[lk]
            a0[k] = -0.5 * (xs[lk] * xs[lk] - x * x)
            a1[k] = -0.5 * (xs[lk + 1] * xs[lk + 1] - x * x)
        _exp_many(a0, m, f0, bits)
        _exp_many(a1, m, f1, bits)
        left = 0
        for k in range(m):
            j, c, lk = redo[k], cnt[k], lay[k]
            if lk == 0:  # the tail
                o[j] = _tail(key, c, r, val[k] < 0.0)[0]
                continue
            if f1[k] + _unit(_word(key, c)) * (f0[k] - f1[k]) < 1.0:  # inside the wedge
                o[j] = val[k] * xs[lk]
                continue
            l2, u2 = _zig_split(_word(key, c + np.uint64(1)))  # a new try
            if abs(u2) < ratio[l2]:
                o[j] = u2 * xs[l2]
                continue
            redo[left], cnt[left], lay[left], val[left] = j, c + np.uint64(2), l2, u2
            left += 1
        m = left


@numba.njit(cache=True)
def _ziggurat(keys: np.ndarray, n: int, xs: np.ndarray, ratio: np.ndarray, out: np.ndarray) -> None:
    """``n`` normals per key into ``out`` (:func:`_normals_row`)."""
    fs, ints, cnt, slow = _zig_scratch(n)
    for i in range(len(keys)):
        _normals_row(keys[i], out[i], xs, ratio, fs, ints, cnt, slow)


# Normals by inversion, for the flow's residual model: Wichura's algorithm AS 241 (Appl.
# Statist. 37 (1988) 477), PPND7, accurate to about 1 part in 10^7: a rational function of
# degree 3/3 of q = p - 1/2 for |q| <= 0.425 and of degree 3/2 of r = sqrt(-ln min(p, 1 - p))
# - 1.6 beyond (its second tail form, for r > 5, is never needed: p >= 2^-33 here).
_PPND7_A = (3.3871327179, 50.434271938, 159.29113202, 59.109374720)  # central numerator, r^0..r^3
_PPND7_B = (1.0, 17.895169469, 78.757757664, 67.187563600)  # central denominator
_PPND7_C = (1.4234372777, 2.7568153900, 1.3067284816, 0.17023821103)  # tail numerator
_PPND7_D = (1.0, 0.73700164250, 0.12021132975)  # tail denominator
# ln(1 + x) - x + x^2 / 2 = x^3 P(x) for 1/sqrt 2 <= 1 + x < sqrt 2: the minimax polynomial
# of the Cephes library's logf (S. L. Moshier), highest power first
_LOGF_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
           -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)  # fmt: skip


@numba.njit(cache=True, fastmath={"contract"})
def _logf_many(x: np.ndarray, n: int, out: np.ndarray, bits: np.ndarray) -> None:
    """``log(x[:n])`` in float32 into ``out`` for normal positive float32 ``x`` (x = m 2^k,
    1/sqrt 2 <= m < sqrt 2: k ln 2 + ln m, ln m by :data:`_LOGF_P`), in branch-free
    (vectorised) passes; relative error < 1e-7 against numpy's float64 log (tested).
    ``bits``: int32 scratch of at least n."""
    bits[:n] = x[:n].view(np.int32)
    for i in range(n):
        b = bits[i]
        out[i] = np.float32((b >> np.int32(23)) - np.int32(127))
        bits[i] = (b & np.int32(0x7FFFFF)) | np.int32(0x3F800000)  # m in [1, 2)
    m = bits[:n].view(np.float32)
    c = _LOGF_P
    for i in range(n):
        big = m[i] >= np.float32(_SQRT2)
        v = (np.float32(0.5) * m[i] if big else m[i]) - np.float32(1.0)
        k = out[i] + np.float32(1.0) if big else out[i]
        p = np.float32(c[0])
        for q in range(1, len(c)):  # Horner
            p = p * v + np.float32(c[q])
        v2 = v * v
        out[i] = (v + (v * v2 * p - np.float32(0.5) * v2)) + k * np.float32(_LN2_HI + _LN2_LO)


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _ppnd7_many(ks: np.ndarray, n: int, o: np.ndarray, fs: np.ndarray, bits: np.ndarray) -> None:
    """The standard normal quantiles (PPND7) of the uniforms p = (k + 1/2) 2^-32 of the 32-bit
    integers ``ks[:n]`` into the float32 ``o`` (|z| <= 6.34), in branch-free (vectorised)
    float32 passes: the rational functions, the tail's log and sqrt for every value; within
    4e-7 (relative) of the exact quantile of p (tested). ``fs``: float32 (2, >= n) and
    ``bits`` int32 (>= n) scratch."""
    t, lg = fs[0], fs[1]
    half, scale = np.float32(0.5), np.float32(2.0**-32)
    for j in range(n):
        k = ks[j]
        t[j] = (np.float32(min(k, ~k)) + half) * scale  # min(p, 1 - p)
    _logf_many(t, n, lg, bits)
    a, b, c, d = _PPND7_A, _PPND7_B, _PPND7_C, _PPND7_D
    for j in range(n):
        k = ks[j]
        q = (np.float32(np.int32(k ^ np.uint32(0x80000000))) + half) * scale  # p - 1/2
        r = np.float32(0.180625) - q * q
        num_c = q * (((np.float32(a[3]) * r + np.float32(a[2])) * r + np.float32(a[1])) * r + np.float32(a[0]))
        den_c = ((np.float32(b[3]) * r + np.float32(b[2])) * r + np.float32(b[1])) * r + np.float32(b[0])
        s = np.sqrt(-lg[j]) - np.float32(1.6)
        num_t = ((np.float32(c[3]) * s + np.float32(c[2])) * s + np.float32(c[1])) * s + np.float32(c[0])
        den_t = (np.float32(d[2]) * s + np.float32(d[1])) * s + np.float32(d[0])
        central = abs(q) <= np.float32(0.425)
        num_t = num_t if q >= np.float32(0.0) else -num_t
        o[j] = (num_c if central else num_t) / (den_c if central else den_t)


@numba.njit(cache=True)
def _inverse_normals_row(key: np.uint64, o: np.ndarray, ks: np.ndarray, fs: np.ndarray, bits: np.ndarray) -> None:
    """Standard normals into the float32 row ``o`` (n of them) by inversion (:func:`_ppnd7_many`)
    of 32-bit uniforms, two from each word of ``key``: normal j < h = ceil(n / 2) from the low
    half of word j (counter j), normal h + j from its high half. Without a branch (vectorised):
    ~3.5 us per 3600 normals against 6.2 for the ziggurat of :func:`_normals_row`, whose table
    look-ups cannot be vectorised. ``ks``: uint32 scratch of 2h, ``fs``: float32 (2, n),
    ``bits``: int32 of n."""
    n = len(o)
    h = (n + 1) // 2
    for m in range(h):
        w = _word(key, np.uint64(m))
        ks[m] = np.uint32(w & np.uint64(0xFFFFFFFF))
        ks[h + m] = np.uint32(w >> np.uint64(32))
    _ppnd7_many(ks, n, o, fs, bits)


@numba.njit(cache=True)
def _inverse_scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The work arrays of :func:`_inverse_normals_row` for rows of ``n`` normals."""
    return np.empty(2 * ((n + 1) // 2), np.uint32), np.empty((2, n), np.float32), np.empty(n, np.int32)


@numba.njit(cache=True)
def _inverse_normals(keys: np.ndarray, out: np.ndarray) -> None:
    ks, fs, bits = _inverse_scratch(out.shape[1])
    for i in range(len(keys)):
        _inverse_normals_row(keys[i], out[i], ks, fs, bits)


def stream_keys(seeds: np.ndarray, stream: int) -> np.ndarray:
    """The per-shower keys of a stream of :func:`normals` or :func:`inverse_normals` (uint64)."""
    s = np.asarray(seeds).astype(np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        return _mix(s ^ (np.uint64(stream + 1) << np.uint64(40)))


def _rows_out(name: str, out: np.ndarray | None, shape: tuple[int, int], dtype: type) -> np.ndarray:
    """``out`` if it is a C-contiguous array of ``shape`` and ``dtype`` (a ValueError naming
    ``name`` if not), a new one when it is None."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{name}: out of shape {out.shape} and {out.dtype}, expected C-contiguous {shape} "
                         f"{np.dtype(dtype)}")  # fmt: skip
    return out


def normals(seeds: np.ndarray, n: int, stream: int = 0, dtype: type = np.float64,
            out: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N, n) standard normals from per-shower seeds (a ziggurat on the counter-based words),
    into ``out`` when given (C-contiguous, (N, n), of ``dtype``)."""
    keys = stream_keys(seeds, stream)
    out = _rows_out("normals", out, (len(keys), int(n)), dtype)
    _ziggurat(keys, int(n), _ZIG_X, _ZIG_RATIO, out)
    return out


def inverse_normals(seeds: np.ndarray, n: int, stream: int, out: np.ndarray | None = None) -> np.ndarray:
    """(N, n) float32 standard normals from per-shower seeds by inversion of 32-bit uniforms
    (:func:`_inverse_normals_row`; the flow's residual normals), into ``out`` when given
    (C-contiguous float32 (N, n)). A stream of its own: not the numbers of :func:`normals`."""
    keys = stream_keys(seeds, stream)
    out = _rows_out("inverse_normals", out, (len(keys), int(n)), np.float32)
    _inverse_normals(keys, out)
    return out


def run_seeds(seed: int, start: int, n: int) -> np.ndarray:
    """Per-shower seeds of showers start..start+n-1 of a run (vectorised)."""
    base = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return _mix(base + np.arange(start, start + n, dtype=np.uint64))
