"""Pareto fronts and hypervolumes of minimised objectives, with BoTorch's utilities
(``is_non_dominated``, ``Hypervolume``; BoTorch maximises, so the values are negated).

Torch is imported only when a function is called: light code paths (the report) import this
module.
"""

from __future__ import annotations

import numpy as np

from calopt.errors import CaloptInputError

__all__ = ["hypervolume_2d", "pareto_front"]


def pareto_front(values: np.ndarray) -> np.ndarray:
    """Mask (n,) of the non-dominated rows of ``values`` (n, m), all objectives minimised. A row
    is dominated when another is <= in every objective and < in at least one; equal rows are
    all kept. Rows with a NaN are never on the front. BoTorch's ``is_non_dominated`` compares
    every pair of rows: meant for the hundreds of trials of a campaign."""
    V = np.asarray(values, dtype=float)
    if V.ndim != 2:
        raise CaloptInputError(f"pareto_front: expected values of shape (n, m), got {V.shape}")
    ok = ~np.isnan(V).any(axis=1)
    mask = np.zeros(len(V), dtype=bool)
    if ok.any():
        import torch
        from botorch.utils.multi_objective.pareto import is_non_dominated

        nd = is_non_dominated(-torch.as_tensor(V[ok], dtype=torch.double), deduplicate=False)
        mask[np.flatnonzero(ok)] = nd.numpy()
    return mask


def _front_2d(P: np.ndarray) -> np.ndarray:
    """The distinct non-dominated points of P (n, 2), minimised, by one sort (O(n log n)):
    ``is_non_dominated`` is quadratic, too slow for the 10^5-point fronts of the toy problems."""
    P = np.unique(P, axis=0)  # sorted by f1, then f2
    best = np.minimum.accumulate(P[:, 1])
    keep = np.ones(len(P), dtype=bool)
    keep[1:] = P[1:, 1] < best[:-1]
    return P[keep]


def hypervolume_2d(points: np.ndarray, ref: np.ndarray | tuple[float, float]) -> float:
    """Area dominated by ``points`` (n, 2) and bounded by the reference point ``ref`` (2,), both
    objectives minimised: the measure of {z : z <= ref and some point <= z}. Points not strictly
    below ``ref`` in both objectives add nothing; no point gives 0. Computed by BoTorch's
    ``Hypervolume`` on the non-dominated points."""
    P = np.asarray(points, dtype=float).reshape(-1, 2) if np.size(points) else np.zeros((0, 2))
    r = np.asarray(ref, dtype=float)
    if r.shape != (2,):
        raise CaloptInputError(f"hypervolume_2d: ref must have 2 values, got shape {r.shape}")
    P = P[np.all(P < r, axis=1)]
    if len(P) == 0:
        return 0.0
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    front = torch.as_tensor(_front_2d(P), dtype=torch.double)
    return float(Hypervolume(ref_point=-torch.as_tensor(r, dtype=torch.double)).compute(-front))
