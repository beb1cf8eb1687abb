"""Pareto fronts and hypervolumes of minimised objectives."""

from __future__ import annotations

import numpy as np

from calopt.errors import CaloptInputError

__all__ = ["hypervolume_2d", "pareto_front"]


def pareto_front(values: np.ndarray) -> np.ndarray:
    """Mask (n,) of the non-dominated rows of ``values`` (n, m), all objectives minimised. A row
    is dominated when another is <= in every objective and < in at least one; equal rows are
    all kept. Rows with a NaN are never on the front."""
    V = np.asarray(values, dtype=float)
    if V.ndim != 2:
        raise CaloptInputError(f"pareto_front: expected values of shape (n, m), got {V.shape}")
    ok = ~np.isnan(V).any(axis=1)
    mask = ok.copy()
    for i in np.flatnonzero(ok):
        others = V[ok]
        dominated = np.all(others <= V[i], axis=1) & np.any(others < V[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def hypervolume_2d(points: np.ndarray, ref: np.ndarray | tuple[float, float]) -> float:
    """Area dominated by ``points`` (n, 2) and bounded by the reference point ``ref`` (2,), both
    objectives minimised: the measure of {z : z <= ref and some point <= z}. Points not strictly
    below ``ref`` in both objectives add nothing; no point gives 0."""
    P = np.asarray(points, dtype=float).reshape(-1, 2) if np.size(points) else np.zeros((0, 2))
    r = np.asarray(ref, dtype=float)
    if r.shape != (2,):
        raise CaloptInputError(f"hypervolume_2d: ref must have 2 values, got shape {r.shape}")
    P = P[np.all(P < r, axis=1)]
    if len(P) == 0:
        return 0.0
    P = P[np.lexsort((P[:, 1], P[:, 0]))]  # by f1, then f2
    area, best_f2 = 0.0, r[1]
    for f1, f2 in P:
        if f2 < best_f2:
            area += (r[0] - f1) * (best_f2 - f2)
            best_f2 = f2
    return float(area)
