"""Bayesian optimisation with BoTorch.

* model: a Gaussian process on the encoded points (:meth:`Space.encode`, [0, 1]^dim) --
  ``SingleTaskGP`` (Matern-5/2, ARD), or ``MixedSingleTaskGP`` (a categorical kernel on the
  one-hot columns) when the space has categorical parameters -- with standardised outcomes,
  hyper-parameters fitted by maximum marginal likelihood (each fit starting from the previous
  one's);
* acquisition: ``qLogExpectedImprovement`` of the negated objective; a batch of q points is
  chosen sequentially greedily, each point conditioned on the pending ones (asked, not told)
  and on those already chosen for the batch;
* acquisition maximisation by scoring candidates: in an enumerable finite space, every
  remaining valid point (or a random subset of ``n_candidates`` plus neighbours of the best
  observed points); otherwise ``n_candidates`` random valid points plus Gaussian perturbations of
  the best observed points, then a second round of smaller perturbations around the best
  candidates. Every candidate is a decoded valid point, so the proposal is valid;
* the first ``n_initial`` points (default 2*dim clipped to [4, 10]) are random valid points;
* a failed evaluation (None) counts as the worst value observed;
* if the GP fit or the acquisition fails, that ask falls back to random points with a warning.

Torch is imported only when a model is fitted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from calopt.optimize.optimizers.base import Optimizer
from calopt.optimize.space import Categorical, Space

if TYPE_CHECKING:
    import torch

__all__ = ["BayesianOptimization"]

_CHUNK = 1024
_FIT_MAXITER = 200  # L-BFGS iterations of a GP fit: a few hundred suffice, a mixed GP may take 1000+


class BayesianOptimization(Optimizer):
    """GP-based Bayesian optimisation (module docstring). Options: ``n_initial`` (random points
    first; default 2*dim clipped to [4, 10]), ``n_candidates`` (candidates scored per proposal,
    default 4000), ``mc_samples`` (quasi-MC samples of the acquisition, default 128)."""

    name: ClassVar[str] = "bo"
    default_options: ClassVar[dict[str, Any]] = {"n_initial": None, "n_candidates": 4000, "mc_samples": 128}
    _n_refine: ClassVar[int] = 60  # perturbations per scale around each of the 5 best candidates

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> None:
        super().__init__(space, seed=seed, n_objectives=n_objectives, **options)
        if self.options["n_initial"] is None:
            self.options["n_initial"] = int(np.clip(2 * space.dim, 4, 10))
        self.n_initial = self._int_option("n_initial", 1)
        self.n_candidates = self._int_option("n_candidates", 10)
        self.mc_samples = self._int_option("mc_samples", 8)
        self._cat_dims = [i for p, sl in zip(space.params, space.slices) if isinstance(p, Categorical)
                          for i in range(sl.start, sl.stop)]  # fmt: skip
        self._ordinal = np.ones(space.dim, dtype=bool)
        self._ordinal[self._cat_dims] = False
        self._hyper: dict[int, dict[str, Any]] = {}  # fitted GP hyper-parameters per objective

    # -- ask ---------------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[dict[str, Any]]:
        n_known = len(self.told_points) + len(self._pending)
        n_ok = sum(v is not None for v in self.told_values)
        n_random = n if n_ok < 2 else min(n, max(0, self.n_initial - n_known))
        out = self._fresh_random(n_random)
        if len(out) < n_random:  # the space is exhausted
            return out
        if len(out) < n:
            chosen = {self.space.key(p) for p in out}
            try:
                out.extend(self._model_ask(n - len(out), out, chosen))
            except Exception as e:  # a numerical failure must not stop a campaign
                warnings.warn(f"optimiser {self.name!r}: model-based proposal failed ({type(e).__name__}: {e}); "
                              "proposing random points instead", RuntimeWarning, stacklevel=3)  # fmt: skip
                out.extend(self._fresh_random(n - len(out), chosen))
        return out

    def _model_ask(self, q: int, extra_pending: list[dict[str, Any]], chosen: set[str]) -> list[dict[str, Any]]:
        import torch

        points, Y = self._training_data()
        X = self.space.encode(points)
        seed = int(self.rng.integers(0, 2**31 - 1))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = self._fit_model(torch.as_tensor(X, dtype=torch.double), torch.as_tensor(-Y, dtype=torch.double))
            pend = list(self._pending.values()) + extra_pending
            cands = self._candidates(X, Y, chosen)
            out: list[dict[str, Any]] = []
            for _ in range(q):
                if not cands:
                    break
                Xp = self.space.encode(pend) if pend else None
                acq = self._acquisition(model, X, -Y, Xp, seed)
                i, best = self._maximise(acq, cands, chosen)
                if i >= 0:
                    cands.pop(i)
                out.append(best)
                pend.append(best)
                chosen.add(self.space.key(best))
        return out

    # -- model and acquisition (overridden by the multi-objective variant) ---------------------------
    def _gp(self, X: torch.Tensor, y: torch.Tensor, j: int = 0) -> Any:
        """A fitted single-output GP on X (n, dim), y (n, 1) (to be maximised), for objective j.
        The fit starts from the hyper-parameters of the previous fit for the same objective."""
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import MixedSingleTaskGP, SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        model: Any
        if self._cat_dims:
            model = MixedSingleTaskGP(X, y, cat_dims=self._cat_dims)
        else:
            model = SingleTaskGP(X, y)
        if j in self._hyper:
            model.load_state_dict(self._hyper[j], strict=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # botorch reports retried fits and input scaling at length
            fit_gpytorch_mll(
                ExactMarginalLogLikelihood(model.likelihood, model),
                optimizer_kwargs={"options": {"maxiter": _FIT_MAXITER}},
            )
        self._hyper[j] = {k: v.detach().clone() for k, v in model.state_dict().items()
                          if not k.startswith(("outcome_transform", "input_transform"))}  # fmt: skip
        return model

    def _fit_model(self, X: torch.Tensor, Y: torch.Tensor) -> Any:
        return self._gp(X, Y)

    def _acquisition(self, model: Any, X: np.ndarray, Ymax: np.ndarray, X_pending: np.ndarray | None, seed: int) -> Any:
        """Acquisition function of the model; ``Ymax`` (n, m) are the negated objectives."""
        import torch
        from botorch.acquisition import qLogExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=seed)
        Xp = None if X_pending is None else torch.as_tensor(X_pending, dtype=torch.double)
        return qLogExpectedImprovement(model, best_f=float(Ymax.max()), sampler=sampler, X_pending=Xp)

    # -- candidates --------------------------------------------------------------------------------
    def _perturb(self, centres: np.ndarray, scales: list[float], n_each: int) -> list[dict[str, Any]]:
        """Valid points near encoded ``centres`` (k, dim): Gaussian steps of each scale on the
        ordinal columns, and with probability 0.2 per categorical parameter a random choice."""
        rows = []
        for c in centres:
            for s in scales:
                Z = np.repeat(c[None, :], n_each, axis=0)
                Z[:, self._ordinal] += s * self.rng.standard_normal((n_each, int(self._ordinal.sum())))
                for p, sl in zip(self.space.params, self.space.slices):
                    if isinstance(p, Categorical):
                        flip = self.rng.random(n_each) < 0.2
                        block = np.zeros((int(flip.sum()), p.width))
                        block[np.arange(len(block)), self.rng.integers(0, p.width, len(block))] = 1.0
                        Z[flip, sl] = block
                rows.append(Z)
        return [p for p in self.space.decode(np.concatenate(rows)) if self.space.is_valid(p)]

    def _candidates(self, X: np.ndarray, Y: np.ndarray, chosen: set[str]) -> list[dict[str, Any]]:
        centres = self._centres(X, Y)
        if self._enumerable():
            rest = [p for p in self._remaining() if self.space.key(p) not in chosen]
            if len(rest) <= self.n_candidates:
                return rest
            idx = self.rng.choice(len(rest), self.n_candidates, replace=False)
            cands = [rest[int(i)] for i in np.sort(idx)]
            cands += self._perturb(centres, [0.05, 0.15], max(10, self.n_candidates // 40))
        else:
            cands = self._fresh_random(self.n_candidates // 2, chosen)
            cands += self._perturb(centres, [0.01, 0.03, 0.1, 0.3], max(10, self.n_candidates // 40))
        return self._unused(cands, chosen)

    def _centres(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Encoded points around which to search locally: the 5 best observed."""
        return X[np.argsort(Y[:, 0], kind="stable")[:5]]

    def _unused(self, cands: list[dict[str, Any]], chosen: set[str]) -> list[dict[str, Any]]:
        out, seen = [], set(chosen)
        for p in cands:
            k = self.space.key(p)
            if k not in seen and not self.is_used(k):
                seen.add(k)
                out.append(p)
        return out

    def _score(self, acq: Any, points: list[dict[str, Any]]) -> np.ndarray:
        import torch

        Z = torch.as_tensor(self.space.encode(points), dtype=torch.double).unsqueeze(1)
        with torch.no_grad():
            vals = [acq(Z[i : i + _CHUNK]) for i in range(0, len(Z), _CHUNK)]
        s = torch.cat(vals).numpy().astype(float)
        return np.where(np.isfinite(s), s, -np.inf)

    def _maximise(self, acq: Any, cands: list[dict[str, Any]], chosen: set[str]) -> tuple[int, dict[str, Any]]:
        """The point of highest acquisition value among ``cands`` (not empty) and, in an infinite
        space, small perturbations of the best of them; with its index in ``cands`` (-1 for a
        perturbation)."""
        s = self._score(acq, cands)
        i = int(np.argmax(s))
        if not self._enumerable():  # refine around the best candidates
            top = np.argsort(-s)[:5]
            local = self._unused(self._perturb(self.space.encode([cands[int(j)] for j in top]),
                                               [0.003, 0.01, 0.03], self._n_refine), chosen)  # fmt: skip
            if local:
                sl = self._score(acq, local)
                if sl.max() > s[i]:
                    return -1, local[int(np.argmax(sl))]
        return i, cands[i]
