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

The random numbers (one uniform per cell, then a Gamma draw per hit cell) come from the
shower's own generator (:mod:`calopt.simulation.surrogates.noise`), so a shower does not
depend on the batch it is generated in.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from calopt.simulation.surrogates.calibration import interpolation, ln_e_bins
from calopt.simulation.surrogates.noise import uniforms

__all__ = ["DEFAULT_MAX_MEV", "apply_hits", "calibrate_hits", "single_hit_moments"]

DEFAULT_MAX_MEV = 10.0


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


@numba.njit(cache=True, fastmath={"reassoc"})
def _group_sums(row: np.ndarray, out: np.ndarray) -> None:
    """The sums of the ``len(out)`` equal, contiguous groups of ``row`` (in any order: vectorised)."""
    size = len(row) // len(out)
    for q in range(len(out)):
        acc = 0.0
        for j in range(size):
            acc += row[q * size + j]
        out[q] = acc


@numba.njit(cache=True)
def _hit_cells(cells: np.ndarray, u: np.ndarray, rows: np.ndarray, lo: np.ndarray, w: np.ndarray,
               log_a: np.ndarray, a_min: np.ndarray, shape: float, before: np.ndarray, hit_j: np.ndarray,
               hit_shape: np.ndarray, hit_mean: np.ndarray, counts: np.ndarray) -> None:  # fmt: skip
    """Which cells of each shower are hit, in place: a core cell (a = 0 in either ln E bin) is
    left as generated; every other cell is emptied, and is hit when its uniform ``u`` is below
    P = 1 - exp(-lam), lam = mu / a (a interpolated in ln a between the bins ``lo`` and
    ``lo + 1`` with the upper one's weight ``w``). ``u * a_min >= mu`` is a certain miss (the
    interpolated a is at least the smaller one; ``a_min`` is 0 for a core cell and inf for one
    that is never hit), so only the other cells need exp. A hit cell j is recorded in
    ``hit_j`` with its Gamma shape (``shape`` lam / P, that of the lam / P hits of a hit cell)
    and mean energy mu / P, shower after shower; ``counts[i]``: the hits of shower i;
    ``before`` (N, G): the energy of each of the G equal groups of cells before."""
    n, d = cells.shape
    last = log_a.shape[1] - 1
    open_ = np.empty(d, dtype=np.bool_)
    k = 0
    for i in range(n):
        p, b0, wi = rows[i], lo[i], w[i]
        b1 = min(b0 + 1, last)
        x, ui, amin = cells[i], u[i], a_min[p, b0]
        _group_sums(x, before[i])
        for j in range(d):  # branch-free (vectorised): the certain misses emptied
            open_[j] = ui[j] * amin[j] < x[j]
            x[j] = x[j] if open_[j] else np.float32(0.0)
        start = k
        for j in range(d):
            if not open_[j]:
                continue
            la0, la1 = log_a[p, b0, j], log_a[p, b1, j]
            if la0 == -np.inf or la1 == -np.inf:  # a core cell: as generated
                continue
            mu = x[j]
            x[j] = 0.0
            lam = mu * np.exp(-((1.0 - wi) * la0 + wi * la1))
            prob = -np.expm1(-lam)
            if ui[j] < prob:
                hit_j[k], hit_shape[k], hit_mean[k] = j, shape * lam / prob, mu / prob
                k += 1
        counts[i] = k - start


@numba.njit(cache=True)
def _deposit(cells: np.ndarray, counts: np.ndarray, hit_j: np.ndarray, hit_shape: np.ndarray, hit_mean: np.ndarray,
             gamma: np.ndarray, before: np.ndarray) -> None:  # fmt: skip
    """Put the deposits (mean energy times a Gamma factor of mean 1) into the hit cells, then
    bring every group that kept a deposit back to its energy, all of them scaled up by the
    energy of the groups that kept none, so that the shower keeps its visible energy."""
    n_groups = before.shape[1]
    size = cells.shape[1] // n_groups
    after = np.empty(n_groups)
    k = 0
    for i in range(cells.shape[0]):
        x = cells[i]
        for h in range(k, k + counts[i]):
            x[hit_j[h]] = hit_mean[h] * gamma[h] / hit_shape[h]
        k += counts[i]
        _group_sums(x, after)
        kept = 0.0
        for q in range(n_groups):
            kept += before[i, q] if after[q] > 0.0 else 0.0
        if kept <= 0.0:
            continue
        total = before[i].sum()
        for q in range(n_groups):
            if after[q] > 0.0:
                group = x[q * size : (q + 1) * size]
                f = np.float32(before[i, q] / after[q] * total / kept)
                for j in range(size):
                    group[j] *= f


def apply_hits(cells: np.ndarray, rngs: list[np.random.Generator], le: np.ndarray, rows: np.ndarray,
               model: dict[str, Any], *, sections: int = 1) -> None:  # fmt: skip
    """Apply the hit model, in place, to the generated cells (N, D) float32 [MeV] of showers
    with generators ``rngs``, encoded ln E ``le`` and species rows ``rows`` (module doc). The
    visible energy of each shower is kept; with ``sections`` > 1 also the energy of each of
    that many equal, contiguous groups of cells (the longitudinal sections) that keeps a hit.
    Each shower draws one uniform per cell, then one Gamma factor per hit cell (in cell order).
    The per-cell pass is compiled (:func:`_hit_cells`, :func:`_deposit`): as numpy operations
    over a chunk's (N, D) arrays it was the simulator's costliest step after the flow."""
    n, d = cells.shape
    lo, w = interpolation(le, np.asarray(model["centres"], dtype=np.float64))
    a = np.asarray(model["a"], dtype=np.float64)  # (species, bins, D): 0 core, inf never hit
    with np.errstate(divide="ignore"):
        log_a = np.log(a)
    a_min = np.minimum(a, np.concatenate([a[:, 1:], a[:, -1:]], axis=1)).astype(np.float32)  # bins b, b + 1
    u = uniforms(rngs, d, np.float32)
    before = np.empty((n, sections))
    hit_j, counts = np.empty(cells.size, dtype=np.int64), np.empty(n, dtype=np.int64)
    shape, mean = np.empty(cells.size), np.empty(cells.size)
    _hit_cells(cells, u, rows.astype(np.int64), lo.astype(np.int64), w, log_a, a_min, float(model["shape"]), before,
               hit_j, shape, mean, counts)  # fmt: skip
    gamma = np.empty(int(counts.sum()))
    ends = np.cumsum(counts)
    for i in np.flatnonzero(counts):
        gamma[ends[i] - counts[i] : ends[i]] = rngs[i].standard_gamma(shape[ends[i] - counts[i] : ends[i]])
    _deposit(cells, counts, hit_j, shape, mean, gamma, before)
