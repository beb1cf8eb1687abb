"""The hit model: discrete energy deposits in the shower tails of generated showers.

A cell in the tail of a real shower is hit by a few soft electrons or none: it is exactly
empty in most showers and otherwise holds a deposit of about half a MeV (visible energy;
single-hit deposits of lhcb-shashlik photons have a mean of 0.54 MeV and a Gamma shape of
0.78). For lhcb-shashlik photons of 1-100 GeV the 30 x 30 x 4 fine grid has 67 (1-2 GeV) to
484 (30-100 GeV) non-empty cells. A generative model with continuous outputs instead puts
small positive values into nearly every cell (about 900 non-empty cells, most below
0.01 MeV), so the number of cells above a threshold (the CaloChallenge "sparsity") is wrong
*for the given energy* even when its overall distribution looks right: a classifier given
the energy separates the flow from the cascade at AUC 0.97 on sparsity alone.

The hit model is calibrated after training, per species, ``n_bins`` bins of ln E and cell,
on the model's own showers for the training conditions against the training showers:

* ``a`` [MeV]: a generated cell of energy ``mu`` is hit with probability
  ``P = 1 - exp(-mu / a)``; ``a`` is solved (bisection in ln a) so that the mean of ``P``
  over the generated showers equals the fraction of real showers in which the cell is
  non-empty. A Poisson number of hits of mean energy ``a`` would give this form; solving
  for ``a`` per cell absorbs the clustering of real deposits;
* a hit cell gets ``mu / P`` times a Gamma(k', 1/k') factor of mean 1, with
  ``k' = k lam / P`` (``k`` the shape of one single-hit deposit, ``lam = mu / a`` and
  ``lam / P`` the mean number of hits in a hit cell): its mean energy is kept, an isolated
  hit fluctuates like one deposit and a cell with many hits like their sum. (With ``k' = k``
  for every cell, the cells with several hits had too many small deposits: 402 instead of
  440 cells above 0.1 MeV at 30-100 GeV.)

The generated mean energies are kept as they are: rescaling every tail cell to the real mean
(tried) widened the showers, 26.1 mm against 24.5 mm, because the cells the network
underestimates are not the only ones that set the width.

Only cells whose real mean energy in the bin is below ``max_mev`` are touched (the core is
left to the network); the parameters are interpolated linearly in ln E between the bin
centres. Each shower is finally rescaled to the visible energy it had before, so the
model's response and resolution are unchanged; for a flow with profile variables, each
longitudinal section that keeps a deposit is rescaled to its energy before (``sections``), so
that the section fractions the flow drew are kept too.

The random numbers come from a counter-based generator keyed by the shower's seed and the
cell (splitmix64, as :mod:`calopt.simulation.surrogates.noise`), so a shower does not
depend on the batch it is generated in.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from calopt.simulation.surrogates.calibration import interpolation, ln_e_bins
from calopt.simulation.surrogates.decoding import scale_cells
from calopt.simulation.surrogates.noise import (
    _ZIG_RATIO,
    _ZIG_X,
    _exp_many,
    _log_many,
    _normal_from,
    _ppnd7_many,
    _true_indices,
    _unit,
    _word,
)

__all__ = ["DEFAULT_MAX_MEV", "apply_hits", "calibrate_hits", "hit_tables", "single_hit_moments"]

DEFAULT_MAX_MEV = 10.0
_STREAM = np.uint64(0x4849545300000000)  # "HITS": keys this generator apart from noise.py's streams


def single_hit_moments(cells: np.ndarray, le: np.ndarray, *, n_bins: int = 6,
                       occupancy: tuple[float, float] = (0.005, 0.05)) -> tuple[float, float]:  # fmt: skip
    """(mean [MeV], Gamma shape) of single-hit deposits: the non-empty cells of (energy bin,
    cell) pairs hit in 0.5-5 % of the real showers (N, D), where nearly every deposit is one
    hit. ``le``: a monotonic function of the energy per shower (for the bins)."""
    which, _ = ln_e_bins(np.asarray(le, dtype=np.float64), n_bins)
    deposits = []
    for b in range(n_bins):
        xb = cells[which == b]
        if len(xb) < 50:
            continue
        occ = (xb > 0).mean(axis=0)
        sel = (occ >= occupancy[0]) & (occ <= occupancy[1])
        v = xb[:, sel]
        deposits.append(v[v > 0])
    d = np.concatenate(deposits).astype(np.float64) if deposits else np.zeros(0)
    if len(d) < 100:
        raise ValueError(f"too few single-hit deposits to fit the hit model ({len(d)})")
    return float(d.mean()), float(d.mean() ** 2 / d.var())


def calibrate_hits(model_cells: np.ndarray, real_cells: np.ndarray, le: np.ndarray, rows: np.ndarray,
                   n_species: int, *, n_bins: int = 8, max_mev: float = DEFAULT_MAX_MEV) -> dict[str, Any]:  # fmt: skip
    """Hit-model parameters from generated and real cells (N, D) [MeV] of the same
    conditions; ``le`` the encoded ln E and ``rows`` the species row of every shower."""
    real = np.asarray(real_cells, dtype=np.float64)
    gen = np.asarray(model_cells, dtype=np.float64)
    le = np.asarray(le, dtype=np.float64)
    mean_hit, shape = single_hit_moments(real, le)
    which, centres = ln_e_bins(le, n_bins)
    D = real.shape[1]
    a = np.full((n_species, n_bins, D), np.inf)  # inf: never hit
    touch = np.zeros((n_species, n_bins, D), dtype=bool)
    for p in range(n_species):
        for b in range(n_bins):
            sel = (rows == p) & (which == b)
            if sel.sum() < 20:
                sel = which == b
            xr, xg = real[sel], gen[sel]
            occ = (xr > 0).mean(axis=0)
            touch[p, b] = xr.mean(axis=0) < max_mev
            mu = xg
            # bisection in ln a for mean(1 - exp(-mu / a)) = occ (decreasing in a)
            lo, hi = np.full(D, np.log(1e-4)), np.full(D, np.log(1e4))
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                frac = (1.0 - np.exp(-mu / np.exp(mid))).mean(axis=0)
                big = frac > occ  # too many hits: larger a
                lo = np.where(big, mid, lo)
                hi = np.where(big, hi, mid)
            a[p, b] = np.where(occ > 0, np.exp(0.5 * (lo + hi)), np.inf)
    return {
        "mean_mev": mean_hit,
        "shape": shape,
        "max_mev": float(max_mev),
        "centres": centres.astype(np.float32),
        "a": np.where(touch, a, 0.0).astype(np.float32),  # 0: cell left as generated
    }


@numba.njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    """The splitmix64 finaliser of :mod:`calopt.simulation.surrogates.noise`."""
    return _word(z, np.uint64(0))


@numba.njit(cache=True, inline="always")
def _uniform(key: np.uint64, counter: np.uint64) -> float:
    return _unit(_word(key, counter))


@numba.njit(cache=True)
def _gamma_rest(a: float, key: np.uint64, counter: np.uint64, xs: np.ndarray, ratio: np.ndarray) -> float:
    """Gamma(a, 1), a >= 1, by Marsaglia & Tsang (ACM TOMS 26 (2000) 363), their squeeze
    first, with the ziggurat's normals and uniforms from the words at ``counter, counter + 1,
    ...`` (of :mod:`calopt.simulation.surrogates.noise`): the tries after a rejected first one
    (:func:`_gamma_first_tries`)."""
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    for _ in range(60):  # within the 2^8 words of a cell: a try takes 2-3 (the ziggurat's tail more, rarely)
        z, counter = _normal_from(key, counter, xs, ratio)
        u = _uniform(key, counter)
        counter += np.uint64(1)
        v = 1.0 + c * z
        if v > 0.0:
            v = v * v * v
            z2 = z * z
            if u < 1.0 - 0.0331 * z2 * z2 or np.log(u) < 0.5 * z2 + d - d * v + d * np.log(v):
                return d * v
    return d  # after 60 rejections (probability < 1e-70 for any a)


@numba.njit(cache=True, inline="always")
def _hit_probability(lam: float, stay: float) -> float:
    """``1 - exp(-lam)`` from ``stay`` = ``exp(-lam)`` (``-expm1(-lam)`` without its cost):
    below lam = 0.01 its series to lam^6 (relative error < lam^6 / 5040 < 2e-16), above it
    ``1 - stay`` (< 1e-14)."""
    if lam < 0.01:
        return lam * (1.0 - lam / 2.0 * (1.0 - lam / 3.0 * (1.0 - lam / 4.0 * (1.0 - lam / 5.0 * (1.0 - lam / 6.0)))))
    return 1.0 - stay


_MISS_MARGIN = 1.0 - 1e-6  # keeps the cheap miss test strict under (float32) rounding


def _miss_scales(a: np.ndarray) -> np.ndarray:
    """Per (species, bin, cell) the scale of the cheap miss test of :func:`_apply` for showers
    interpolated between bin b and b + 1 (the last bin: b alone): 0 for a core cell (either
    bin leaves it as generated), infinity for a cell never hit (either bin), otherwise
    ``min(a_b, a_b+1)`` shrunk by ``_MISS_MARGIN``, in float32. The hit scale interpolated in
    ln a is at least the smaller one, so ``u * scale >= mu`` implies ``u >= lam >= P``: a miss
    (the margin covers the two float32 roundings, 6e-8 each)."""
    a = np.asarray(a, dtype=np.float64)
    a1 = np.concatenate([a[:, 1:], a[:, -1:]], axis=1)
    core = (a == 0) | (a1 == 0)
    never = np.isinf(a) | np.isinf(a1)
    return np.where(core, 0.0, np.where(never, np.inf, np.minimum(a, a1) * _MISS_MARGIN)).astype(np.float32)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _section_sums(xi: np.ndarray, groups: int, out: np.ndarray) -> None:
    """The float64 sums of ``groups`` equal, contiguous groups of ``xi``, in any order. (Written
    as a loop over ``range(q size, (q + 1) size)`` the sum was not vectorised: 1.3 against
    0.36 us for 3600 cells, twice per shower.)"""
    size = len(xi) // groups
    for q in range(groups):
        s = 0.0
        for j in range(size):
            s += xi[q * size + j]
        out[q] = s


@numba.njit(cache=True, inline="always")
def _half_unit(k: np.uint32) -> np.float32:
    """(0, 1] in float32 from a 32-bit integer: (k + 1/2) 2^-32, rounded."""
    return (np.float32(k) + np.float32(0.5)) * np.float32(2.0**-32)


@numba.njit(cache=True)
def _candidates(xi: np.ndarray, key: np.uint64, scale: np.ndarray, u: np.ndarray, flag: np.ndarray) -> None:
    """The cell uniforms ``u`` (float32, of at least 2 ceil(n / 2) for n cells), two from each
    word: cell j < h = ceil(n / 2) from the low half of the word at counter j 2^8, cell h + j
    from its high half (cell j's counters j 2^8 + 1, ... are its Gamma draws'); and which cells
    are not a certain miss (branch-free: vectorised). Half the words and memory of one 53-bit
    float64 uniform per cell."""
    n = len(xi)
    h = (n + 1) // 2
    for m in range(h):
        w = _word(key, np.uint64(m) << np.uint64(8))
        u[m] = _half_unit(np.uint32(w & np.uint64(0xFFFFFFFF)))
        u[h + m] = _half_unit(np.uint32(w >> np.uint64(32)))
    for j in range(n):
        flag[j] = u[j] * scale[j] < xi[j]


@numba.njit(cache=True, inline="always")
def _unit32(k: np.uint32) -> float:
    """(0, 1) in float64 from a 32-bit integer: (k + 1/2) 2^-32, exact."""
    return (float(k) + 0.5) * 2.0**-32


@numba.njit(cache=True, error_model="numpy")
def _gamma_first_tries(key: np.uint64, cell: np.ndarray, a: np.ndarray, nh: int, out: np.ndarray, ok: np.ndarray,
                       work: np.ndarray, f32: np.ndarray, i32: np.ndarray, bits: np.ndarray) -> None:  # fmt: skip
    """Gamma(a, 1) deposits for the ``nh`` shapes ``a`` of the cells ``cell``, the first try of
    Marsaglia & Tsang (ACM TOMS 26 (2000) 363) for all of them without a branch (vectorised):
    for a < 1 (a single hit has 0.8) Gamma(a + 1) times the boost U^(1/a). Cell j's words from
    counter j 2^8 + 1 on: the first gives U (its low half) and the try's uniform u (its high
    half), the second's low half the try's normal z by inversion
    (:func:`~calopt.simulation.surrogates.noise._ppnd7_many`); the squeeze and the full test
    (its logs with :func:`~calopt.simulation.surrogates.noise._log_many`) for every one.
    ``ok`` where the try is accepted (~99 %), with ``out`` the deposit's Gamma factor; the
    others go on with :func:`_gamma_rest` from the cell's third word, times the boost in
    ``work[2]`` (:func:`_gamma_rest_of`). Without the ziggurat's table look-ups and its 3 %
    slow path, and with fewer rejects left to the one-at-a-time tries, 192 deposits of shapes
    like a 10 GeV flow photon's took 1.7 instead of 2.4 us. ``work``: float64 (5, >= nh),
    ``f32`` float32 (3, >= nh), ``i32`` int32 (2, >= nh) and ``bits`` int64 (>= nh) scratch."""
    ks, ibits = i32[0].view(np.uint32), i32[1]
    for h in range(nh):
        base = (np.uint64(cell[h]) << np.uint64(8)) + np.uint64(1)
        w = _word(key, base)
        ks[h] = np.uint32(_word(key, base + np.uint64(1)) & np.uint64(0xFFFFFFFF))
        work[1, h] = _unit32(np.uint32(w >> np.uint64(32)))  # u
        work[2, h] = _unit32(np.uint32(w & np.uint64(0xFFFFFFFF)))  # U
    _ppnd7_many(ks, nh, f32[2], f32[:2], ibits)  # z
    _log_many(work[2], nh, work[0], bits)
    for h in range(nh):
        work[0, h] = work[0, h] / a[h] if a[h] < 1.0 else 0.0
    _exp_many(work[0], nh, work[2], bits)  # the boost (1 for a >= 1)
    for h in range(nh):
        ah = a[h] + 1.0 if a[h] < 1.0 else a[h]
        d = ah - 1.0 / 3.0
        z = float(f32[2, h])
        v = 1.0 + z / np.sqrt(9.0 * d)
        v3 = v * v * v
        work[0, h] = z
        work[3, h] = max(v3, 1e-300)  # ln v^3 for the full test (v <= 0 is rejected anyway)
        out[h] = d * v3 * work[2, h]
    _log_many(work[3], nh, work[4], bits)  # ln v^3
    _log_many(work[1], nh, work[3], bits)  # ln u
    for h in range(nh):
        ah = a[h] + 1.0 if a[h] < 1.0 else a[h]
        d = ah - 1.0 / 3.0
        z = work[0, h]
        v = 1.0 + z / np.sqrt(9.0 * d)
        z2 = z * z
        squeeze = work[1, h] < 1.0 - 0.0331 * z2 * z2
        full = work[3, h] < 0.5 * z2 + d - d * (v * v * v) + d * work[4, h]
        ok[h] = (v > 0.0) & (squeeze | full)


@numba.njit(cache=True)
def _gamma_rest_of(key: np.uint64, cell: int, a: float, h: int, work: np.ndarray, xs: np.ndarray,
                   ratio: np.ndarray) -> float:  # fmt: skip
    """The Gamma factor of deposit ``h`` of :func:`_gamma_first_tries` whose first try was
    rejected."""
    ah = a + 1.0 if a < 1.0 else a
    return _gamma_rest(ah, key, (np.uint64(cell) << np.uint64(8)) + np.uint64(3), xs, ratio) * work[2, h]


@numba.njit(cache=True)
def _gamma(a: float, key: np.uint64, cell: int, xs: np.ndarray, ratio: np.ndarray) -> float:
    """One Gamma(a, 1) deposit of cell ``cell``: what :func:`_gamma_first_tries` and
    :func:`_gamma_rest` give it (KS-tested against scipy's Gamma)."""
    out, ok, cells, shape = np.empty(1), np.empty(1, np.bool_), np.array([cell]), np.array([a])
    work, f32, i32 = np.empty((5, 1)), np.empty((3, 1), np.float32), np.empty((2, 1), np.int32)
    bits = np.empty(1, np.int64)
    _gamma_first_tries(key, cells, shape, 1, out, ok, work, f32, i32, bits)
    return out[0] if ok[0] else _gamma_rest_of(key, cell, a, 0, work, xs, ratio)


@numba.njit(cache=True)
def _hit_scratch(m: int, groups: int) -> tuple[np.ndarray, ...]:
    """The work arrays of :func:`_hits_row` for showers of ``m`` cells in ``groups`` groups:
    float64 (12, m), int64 (3, m + 1), bool (3, m), float64 (2, groups), float32 (4, m + 1)
    and int32 (2, m)."""
    return (np.empty((12, m)), np.empty((3, m + 1), dtype=np.int64), np.empty((3, m), np.bool_), np.empty((2, groups)),
            np.empty((4, m + 1), np.float32), np.empty((2, m), np.int32))  # fmt: skip


@numba.njit(cache=True)
def _hits_row(xi: np.ndarray, key: np.uint64, p: int, b: int, w: float, log_a: np.ndarray, miss: np.ndarray,
              shape: float, groups: int, xs: np.ndarray, ratio: np.ndarray, fs: np.ndarray, ints: np.ndarray,
              bs: np.ndarray, sums: np.ndarray, f32: np.ndarray, i32: np.ndarray) -> None:  # fmt: skip
    """The hit model on the cells ``xi`` [MeV] of one shower, in place: generator ``key``,
    species row ``p``, lower ln E bin ``b`` and the upper one's weight ``w``; the work arrays
    are :func:`_hit_scratch`'s."""
    size = len(xi) // groups
    # the cell uniforms u; the candidates: index, energy, core flag, lam, exp(-lam) = 1 - P; the
    # hit cells' Gamma shapes and scales
    kk, sc, gam, mus, arg, lam, stay, work = fs[0], fs[1], fs[2], fs[3], fs[4], fs[5], fs[6], fs[7:12]
    u = f32[0]
    cell, idx, bits = ints[0], ints[1], ints[2]
    flag, ok, core = bs[0], bs[1], bs[2]
    before, after = sums[0], sums[1]
    b2 = min(b + 1, log_a.shape[1] - 1)
    _section_sums(xi, groups, before)
    # most cells are a certain miss (u >= mu / min(a)): only the others need exp
    _candidates(xi, key, miss[p, b], u, flag)
    nc = _true_indices(flag, idx)  # the candidates' indices
    for c in range(nc):  # their energies and hit scales (interpolated in ln a), core cells apart
        j = idx[c]
        mus[c] = xi[j]
        la0, la1 = log_a[p, b, j], log_a[p, b2, j]
        core[c] = (la0 == -np.inf) | (la1 == -np.inf)  # left as generated in this energy range
        arg[c] = 0.0 if core[c] else -((1.0 - w) * la0 + w * la1)  # a cell never hit is no candidate
    xi[:] = 0.0
    _exp_many(arg, nc, lam, bits)
    for c in range(nc):
        lam[c] *= mus[c]
        arg[c] = -lam[c]
    _exp_many(arg, nc, stay, bits)
    nh = 0
    for c in range(nc):  # the hit cells, without a branch (a candidate's energy is > 0, so is P)
        j = idx[c]
        la = lam[c]
        pr = _hit_probability(la, stay[c])
        xi[j] = mus[c] if core[c] else 0.0  # a core cell as generated
        cell[nh] = j
        kk[nh] = shape * la / pr  # Gamma shape of the sum of the lam / P hits of a hit cell
        sc[nh] = mus[c] / pr
        nh += (not core[c]) & (u[j] < pr)
    # the deposits: the Gamma factors' first tries together, the rest one by one
    _gamma_first_tries(key, cell, kk, nh, gam, ok, work, f32[1:], i32, bits)
    for h in range(nh):
        j = cell[h]
        g = gam[h] if ok[h] else _gamma_rest_of(key, j, kk[h], h, work, xs, ratio)
        xi[j] = sc[h] * g / kk[h]
    _section_sums(xi, groups, after)
    # every group (section) that kept a deposit back to its energy, all of them scaled up
    # by the energy of the groups that kept none: the shower keeps its visible energy
    kept = 0.0
    for q in range(groups):
        if after[q] > 0.0:
            kept += before[q]
    if kept > 0.0:
        f = before.sum() / kept
        for q in range(groups):
            if after[q] > 0.0:
                scale_cells(xi[q * size : (q + 1) * size], before[q] / after[q] * f)


@numba.njit(cache=True)
def hit_key(seed: np.uint64) -> np.uint64:
    """The hit model's generator key of a shower seed."""
    return _mix(np.uint64(seed) ^ _STREAM)


@numba.njit(cache=True)
def _apply(x: np.ndarray, seeds: np.ndarray, rows: np.ndarray, lo: np.ndarray, t: np.ndarray, log_a: np.ndarray,
           miss: np.ndarray, shape: float, groups: int, xs: np.ndarray, ratio: np.ndarray) -> None:  # fmt: skip
    fs, ints, bs, sums, f32, i32 = _hit_scratch(x.shape[1], groups)
    for i in range(x.shape[0]):
        _hits_row(x[i], hit_key(seeds[i]), rows[i], lo[i], t[i], log_a, miss, shape, groups, xs, ratio, fs, ints, bs,
                  sums, f32, i32)  # fmt: skip


def hit_tables(model: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """What the hit kernel derives from a hit model: ln a per (species, bin, cell) and the
    scales of the cheap miss test (to compute once per model: ~0.7 us per shower per chunk)."""
    with np.errstate(divide="ignore"):
        log_a = np.log(np.asarray(model["a"], dtype=np.float64))  # 0 (core) -> -inf, inf (never hit) -> inf
    return log_a, _miss_scales(model["a"])


def apply_hits(cells: np.ndarray, seeds: np.ndarray, le: np.ndarray, rows: np.ndarray,
               model: dict[str, Any], *, sections: int = 1, inplace: bool = False) -> np.ndarray:  # fmt: skip
    """Apply the hit model to generated cells (N, ...) [MeV] of showers with per-shower
    ``seeds``, encoded ln E ``le`` and species rows ``rows``; returns a new float32 array
    (``inplace``: ``cells`` itself, which must then be a C-contiguous float32 array).
    The visible energy of each shower is kept; with ``sections`` > 1 also the energy of each of
    that many equal, contiguous groups of cells (the longitudinal sections) that keeps a hit.
    (The simulator runs the same kernel shower by shower, with the tables made once per model.)"""
    if inplace and not (isinstance(cells, np.ndarray) and cells.dtype == np.float32 and cells.flags.c_contiguous):
        raise ValueError("apply_hits: inplace needs a C-contiguous float32 array")
    # the kernel sums in float64
    x = (cells if inplace else np.array(cells, dtype=np.float32, order="C")).reshape(len(cells), -1)
    lo, t = interpolation(le, np.asarray(model["centres"], dtype=np.float64))
    log_a, miss = hit_tables(model)
    _apply(x, np.asarray(seeds, dtype=np.uint64), np.asarray(rows, dtype=np.int64), lo.astype(np.int64),
           t, log_a, miss, float(model["shape"]), int(sections), _ZIG_X, _ZIG_RATIO)  # fmt: skip
    return x.reshape(np.shape(cells))
