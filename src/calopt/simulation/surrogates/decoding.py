"""The flow's decoding of its cells after the inverse PCA, compiled, one shower at a time
(:func:`_decode_row`), for :meth:`~calopt.simulation.surrogates.models.FlowModel.decode` and
the simulator's shower-by-shower pass (:func:`~calopt.simulation.surrogates.simulator.
_make_showers`). Free of torch, like the simulator's other kernels."""

from __future__ import annotations

import numba
import numpy as np


def no_residual(n: int, d: int) -> tuple[np.ndarray, ...]:
    """The residual statistics of :func:`_decode_row` for ``n`` showers of ``d`` cells without a
    residual model: zero means and standard deviations (one species, one bin), species row,
    bins and weight 0 for every shower."""
    zero = np.zeros(n, dtype=np.int64)
    return np.zeros((1, 1, d), np.float32), np.zeros((1, 1, d), np.float32), zero, zero, zero, np.zeros(n)


@numba.njit(cache=True)
def scale_cells(v: np.ndarray, scale: float | np.float32) -> None:
    """``v *= scale`` in place, in the arithmetic of ``scale``'s type. (Written inline over a
    range of a longer row, such a loop is not vectorised: 1.3 against 0.23 us for 3600 cells.)"""
    for j in range(len(v)):
        v[j] = v[j] * scale


@numba.njit(cache=True, fastmath={"reassoc"})
def _sum_squares(v: np.ndarray) -> float:
    """The sum of ``v^2`` in float64, in any order (vectorised: 0.16 us per flow shower against
    2.2 in order, each addition waiting for the last; with the decoding's other loop then
    vectorised too and :func:`scale_cells`, its 7.6 us became 1.9)."""
    acc = 0.0
    for j in range(len(v)):
        acc += float(v[j]) * float(v[j])
    return acc


@numba.njit(cache=True)
def _decode_row(base: np.ndarray, m0: np.ndarray, m1: np.ndarray, s0: np.ndarray, s1: np.ndarray, w: float,
                eps: np.ndarray, target: np.ndarray, out: np.ndarray, now: np.ndarray) -> None:  # fmt: skip
    """The flow's decoding of one shower after the inverse PCA ``base`` (D,): ``g = relu(base +
    mean + std eps)`` with the residual means and standard deviations of its two ln E bins
    (``m0``, ``s0`` and ``m1``, ``s1``) interpolated with weight ``w``, each of the S =
    ``len(target)`` sections rescaled to its fraction ``target`` (a section left empty stays
    empty) and the whole to unit L2 norm (S = 1, a flow without profile variables: the
    normalisation alone), into ``out``; ``now``: float64 scratch of S."""
    d = len(base)
    S = len(target)
    size = d // S
    wf = np.float32(w)
    for j in range(d):  # branch-free (vectorised)
        mean = (np.float32(1.0) - wf) * m0[j] + wf * m1[j]
        std = (np.float32(1.0) - wf) * s0[j] + wf * s1[j]
        out[j] = max(base[j] + mean + std * eps[j], np.float32(0.0))
    for q in range(S):
        now[q] = _sum_squares(out[q * size : (q + 1) * size])
    norm = 0.0
    for q in range(S):
        if now[q] > 0.0:
            norm += target[q]
    for q in range(S):
        sc = np.float32(np.sqrt(target[q] / now[q] / norm) if now[q] > 0.0 and norm > 0.0 else 0.0)
        scale_cells(out[q * size : (q + 1) * size], sc)


@numba.njit(cache=True)
def _decode_cells(base: np.ndarray, res_mean: np.ndarray, res_std: np.ndarray, eps: np.ndarray,
                  rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray, target: np.ndarray,
                  out: np.ndarray) -> None:  # fmt: skip
    """:func:`_decode_row` for every shower of ``base`` (N, D), with the residual statistics of
    (species ``rows``, bins ``lo``/``hi``), weight ``t``, ``eps`` (N, D) and ``target`` (N, S)."""
    now = np.zeros(target.shape[1])
    for i in range(base.shape[0]):
        p, a, b = rows[i], lo[i], hi[i]
        _decode_row(base[i], res_mean[p, a], res_mean[p, b], res_std[p, a], res_std[p, b], t[i], eps[i], target[i],
                    out[i], now)  # fmt: skip
