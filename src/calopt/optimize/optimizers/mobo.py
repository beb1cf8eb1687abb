"""Multi-objective Bayesian optimisation with BoTorch.

As :mod:`~calopt.optimize.optimizers.bo` (encoding, random initial points, the ``noise`` and
``acq_optimizer`` options, failures counted as the worst value of each objective, random
fallback), with

* model: one independent GP per objective (a ``ModelListGP``), each with its objective's
  observed noise variances (``train_Yvar``) under ``noise="observed"`` when all are known;
* acquisition: ``qLogNoisyExpectedHypervolumeImprovement`` (qNEHVI: Daulton et al.,
  arXiv:2006.05078; its log form: arXiv:2310.20708) of the negated objectives -- already the
  noisy acquisition, so ``noise="ignore"`` differs only in the model --, with the reference point
  worst observed + 10 % of the observed range in each objective (a range of 0 counts as 1 or the
  value's magnitude), batches chosen sequentially greedily;
* with ``acq_optimizer="candidates"``, local search around (a random subset of up to 10 of) the
  observed Pareto-optimal points;
* :meth:`~BayesianOptimization.recommend`: the told designs on the Pareto front of the GP
  posterior means (up to k, spread along the first objective).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from calopt.errors import CaloptInputError
from calopt.optimize.optimizers.bo import BayesianOptimization
from calopt.optimize.pareto import pareto_front
from calopt.optimize.space import Space

if TYPE_CHECKING:
    import torch

__all__ = ["MultiObjectiveBO", "reference_point"]


def reference_point(Y: np.ndarray) -> np.ndarray:
    """Reference point (m,) for minimised objectives Y (n, m): worst + 10 % of the range."""
    hi, lo = Y.max(axis=0), Y.min(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(1.0, np.abs(hi)))
    return hi + 0.1 * span


class MultiObjectiveBO(BayesianOptimization):
    """GP-based multi-objective optimisation (module docstring); needs n_objectives >= 2. Options
    as ``bo``, with smaller defaults (the acquisition is costlier): ``n_candidates`` 1000,
    ``mc_samples`` 32."""

    name: ClassVar[str] = "mobo"
    supports_multi_objective: ClassVar[bool] = True
    default_options: ClassVar[dict[str, Any]] = {"n_initial": None, "n_candidates": 1000, "mc_samples": 32,
                                                 "noise": "observed", "acq_optimizer": None}  # fmt: skip
    _n_refine: ClassVar[int] = 20

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 2, **options: Any) -> None:
        if n_objectives == 1:
            raise CaloptInputError("optimiser 'mobo' needs n_objectives >= 2 (use 'bo' for one objective)")
        super().__init__(space, seed=seed, n_objectives=n_objectives, **options)

    def _fit_model(self, X: torch.Tensor, Y: torch.Tensor, Yvar: torch.Tensor | None = None, *,
                   remember: bool = True) -> Any:  # fmt: skip
        from botorch.models import ModelListGP

        return ModelListGP(*(self._gp(X, Y[:, j : j + 1], j, None if Yvar is None else Yvar[:, j : j + 1],
                                      remember=remember) for j in range(Y.shape[1])))  # fmt: skip

    def _acquisition(self, model: Any, X: np.ndarray, Ymax: np.ndarray, X_pending: np.ndarray | None, seed: int) -> Any:
        import torch
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.sampling import SobolQMCNormalSampler

        ref = -reference_point(-Ymax)
        return qLogNoisyExpectedHypervolumeImprovement(
            model,
            ref_point=torch.as_tensor(ref, dtype=torch.double),
            X_baseline=torch.as_tensor(X, dtype=torch.double),
            sampler=SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=seed),
            X_pending=None if X_pending is None else torch.as_tensor(X_pending, dtype=torch.double),
            prune_baseline=True,
        )

    def _centres(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(pareto_front(Y))
        if len(idx) > 10:
            idx = np.sort(self.rng.choice(idx, 10, replace=False))
        return X[idx]
