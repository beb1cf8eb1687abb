"""Bayesian optimisation with BoTorch.

* model: a Gaussian process on the encoded points (:meth:`Space.encode`, [0, 1]^dim) --
  ``SingleTaskGP`` (Matern-5/2, ARD), or ``MixedSingleTaskGP`` (a categorical kernel on the
  one-hot columns) when the space has categorical parameters -- with standardised outcomes,
  hyper-parameters fitted by maximum marginal likelihood (each fit starting from the previous
  one's). Every observation is a row: replicates of a design are separate rows, which the GP
  combines;
* noise (option ``noise``): ``"observed"`` (default) fits the GP with the told errors as known
  per-observation noise (``train_Yvar`` = error^2; BoTorch's ``Standardize`` rescales it with the
  outcomes) when every successful observation has one -- failed ones get the largest observed
  variance -- and otherwise lets the GP infer a homoscedastic noise; the acquisition is then
  ``qLogNoisyExpectedImprovement`` (BoTorch; LogEI: Ament et al., arXiv:2310.20708), which
  integrates over the unknown true values at the observed points (``X_baseline``) instead of
  taking the best -- with noise the luckiest -- observed value as the incumbent.
  ``"ignore"`` takes the values as exact: no ``train_Yvar``, ``qLogExpectedImprovement`` on
  the best observed value, candidate scoring (below) -- the benchmark's baseline;
* a batch of q points is chosen sequentially greedily, each point conditioned on the pending
  ones (asked, not told; the acquisition's ``X_pending``) and on those already chosen;
* acquisition maximisation (option ``acq_optimizer``; default ``"candidates"`` with
  ``noise="ignore"``, else ``"botorch"``):

  - ``"botorch"``: in an enumerable finite space with at most ``_MAX_DISCRETE`` remaining
    valid points, ``optimize_acqf_discrete`` over all of them (encoded; its sequential greedy
    mode for q > 1), so every proposal is valid and unused; otherwise
    ``optimize_acqf_mixed_alternating`` -- discrete dimensions for integer parameters of at most
    ``_MAX_DISCRETE_VALUES`` values, categorical (0/1) dimensions for the one-hot columns, a
    continuous relaxation for reals and wider integers -- or ``optimize_acqf`` when everything is
    continuous; the optimum is decoded (:meth:`Space.decode`) and kept when valid (constraint)
    and unused, else the best-scoring of ``_N_FALLBACK`` random valid unused points is taken;
  - ``"candidates"``: scoring candidates: in an enumerable finite space, every remaining valid
    point (or a random subset of ``n_candidates`` plus neighbours of the best observed points);
    otherwise ``n_candidates`` random valid points plus Gaussian perturbations of the best
    observed points, then a second round of smaller perturbations around the best candidates;
* the first ``n_initial`` points (default 2*dim clipped to [4, 10]) are random valid points;
* a failed evaluation (None) counts as the worst value observed;
* if the GP fit or the acquisition fails, that ask falls back to random points with a warning;
* :meth:`~BayesianOptimization.recommend`: the told designs of best GP posterior mean (the
  model's estimate of the true value, less fooled by a lucky draw than the observed value).

Torch is imported only when a model is fitted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from calopt.errors import CaloptInputError
from calopt.optimize.optimizers.base import Optimizer
from calopt.optimize.space import Categorical, Integer, Space

if TYPE_CHECKING:
    import torch

__all__ = ["BayesianOptimization"]

_CHUNK = 1024
_FIT_MAXITER = 200  # L-BFGS iterations of a GP fit: a few hundred suffice, a mixed GP may take 1000+
_MAX_DISCRETE = 20_000  # remaining points up to which the acquisition is maximised over all of them
_MAX_DISCRETE_VALUES = 64  # integer parameters with more values are relaxed to continuous
_N_FALLBACK = 64  # random valid points scored when the optimum decodes to an invalid or used point
_NUM_RESTARTS = 4  # restarts of the gradient-based acquisition optimisers
_NOISE = ("observed", "ignore")
_ACQ_OPTIMIZERS = ("botorch", "candidates")


class BayesianOptimization(Optimizer):
    """GP-based Bayesian optimisation (module docstring). Options: ``n_initial`` (random points
    first; default 2*dim clipped to [4, 10]), ``n_candidates`` (candidates scored per proposal
    with ``acq_optimizer="candidates"``; raw samples, at most 512, of BoTorch's optimisers;
    default 4000), ``mc_samples`` (quasi-MC samples of the acquisition, default 128), ``noise``
    ("observed" or "ignore", module docstring), ``acq_optimizer`` ("botorch" or "candidates";
    default by ``noise``)."""

    name: ClassVar[str] = "bo"
    default_options: ClassVar[dict[str, Any]] = {"n_initial": None, "n_candidates": 4000, "mc_samples": 128,
                                                 "noise": "observed", "acq_optimizer": None}  # fmt: skip
    _n_refine: ClassVar[int] = 60  # perturbations per scale around each of the 5 best candidates

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> None:
        super().__init__(space, seed=seed, n_objectives=n_objectives, **options)
        if self.options["n_initial"] is None:
            self.options["n_initial"] = int(np.clip(2 * space.dim, 4, 10))
        self.n_initial = self._int_option("n_initial", 1)
        self.n_candidates = self._int_option("n_candidates", 10)
        self.mc_samples = self._int_option("mc_samples", 8)
        self.noise = self.options["noise"]
        if self.noise not in _NOISE:
            raise CaloptInputError(f"optimiser {self.name!r}: option 'noise' must be one of {', '.join(_NOISE)}, "
                                   f"got {self.noise!r}")  # fmt: skip
        if self.options["acq_optimizer"] is None:
            self.options["acq_optimizer"] = "candidates" if self.noise == "ignore" else "botorch"
        self.acq_optimizer = self.options["acq_optimizer"]
        if self.acq_optimizer not in _ACQ_OPTIMIZERS:
            raise CaloptInputError(f"optimiser {self.name!r}: option 'acq_optimizer' must be one of "
                                   f"{', '.join(_ACQ_OPTIMIZERS)}, got {self.acq_optimizer!r}")  # fmt: skip
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
        Yvar = self._variance(Y)
        seed = int(self.rng.integers(0, 2**31 - 1))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = self._fit_model(*self._tensors(X, -Y, Yvar))
            pend = list(self._pending.values()) + extra_pending
            if self.acq_optimizer == "botorch":
                return self._botorch_ask(model, X, -Y, q, pend, chosen, seed)
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

    def _variance(self, Y: np.ndarray) -> np.ndarray | None:
        """Observed noise variances of the training rows (with ``noise="observed"`` and every
        error known), floored at 1e-6 of the outcomes' variance: a zero variance (an exact value)
        would make the GP's covariance singular."""
        if self.noise == "ignore":
            return None
        Yvar = self._training_variance()
        if Yvar is None:
            return None
        floor = 1e-6 * np.maximum(np.var(Y, axis=0), 1e-12)
        return np.maximum(Yvar, floor[None, :])

    @staticmethod
    def _tensors(X: np.ndarray, Ymax: np.ndarray, Yvar: np.ndarray | None) -> tuple[Any, ...]:
        import torch

        out = (torch.as_tensor(X, dtype=torch.double), torch.as_tensor(Ymax, dtype=torch.double))
        return out if Yvar is None else (*out, torch.as_tensor(Yvar, dtype=torch.double))

    # -- acquisition maximisation with BoTorch ---------------------------------------------------------
    def _botorch_ask(self, model: Any, X: np.ndarray, Ymax: np.ndarray, q: int, pend: list[dict[str, Any]],
                     chosen: set[str], seed: int) -> list[dict[str, Any]]:  # fmt: skip
        """q proposals maximising the acquisition with BoTorch's optimisers (module docstring)."""
        import torch
        from botorch.optim import optimize_acqf_discrete

        out: list[dict[str, Any]] = []
        n_rest = self._n_remaining()
        if n_rest is not None and n_rest <= _MAX_DISCRETE:
            rest = [p for p in self._remaining() if self.space.key(p) not in chosen]
            if not rest:
                return out
            acq = self._acquisition(model, X, Ymax, self.space.encode(pend) if pend else None, seed)
            choices = torch.as_tensor(self.space.encode(rest), dtype=torch.double)
            cand, _ = optimize_acqf_discrete(acq, q=min(q, len(rest)), choices=choices, unique=True)
            for p in self.space.decode(cand.detach().numpy()):
                if self.space.key(p) not in chosen:
                    chosen.add(self.space.key(p))
                    out.append(p)
            return out
        for _ in range(q):
            acq = self._acquisition(model, X, Ymax, self.space.encode(pend) if pend else None, seed)
            p = self.space.decode(self._optimise_relaxed(acq))[0]
            k = self.space.key(p)
            if not self.space.is_valid(p) or k in chosen or self.is_used(k):
                rand = self._fresh_random(_N_FALLBACK, chosen)
                if not rand:
                    break
                p = rand[int(np.argmax(self._score(acq, rand)))]
                k = self.space.key(p)
            out.append(p)
            pend.append(p)
            chosen.add(k)
        return out

    def _optimise_relaxed(self, acq: Any) -> np.ndarray:
        """Encoded maximiser (1, dim) of the acquisition over the cube: integer columns of few
        values discrete, one-hot columns 0/1, the rest continuous."""
        import torch
        from botorch.optim import optimize_acqf, optimize_acqf_mixed_alternating

        bounds = torch.stack([torch.zeros(self.space.dim), torch.ones(self.space.dim)]).to(torch.double)
        discrete: dict[int, list[float]] = {}
        for prm, sl in zip(self.space.params, self.space.slices):
            if isinstance(prm, Integer) and prm.n_values <= _MAX_DISCRETE_VALUES:
                discrete[sl.start] = [(v + 0.5) / prm.n_values for v in range(prm.n_values)]
                bounds[:, sl.start] = torch.tensor([discrete[sl.start][0], discrete[sl.start][-1]], dtype=torch.double)
        cats = {i: [0.0, 1.0] for i in self._cat_dims}
        raw = min(self.n_candidates, 512)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an L-BFGS stop short of convergence still gives a usable optimum
            if discrete or cats:
                x, _ = optimize_acqf_mixed_alternating(acq, bounds, discrete_dims=discrete or None,
                                                       cat_dims=cats or None, q=1, raw_samples=raw,
                                                       num_restarts=_NUM_RESTARTS)  # fmt: skip
            else:
                x, _ = optimize_acqf(acq, bounds, q=1, num_restarts=_NUM_RESTARTS, raw_samples=raw)
        return x.detach().numpy().reshape(1, self.space.dim)

    # -- model and acquisition (overridden by the multi-objective variant) ---------------------------
    def _gp(self, X: torch.Tensor, y: torch.Tensor, j: int = 0, yvar: torch.Tensor | None = None, *,
            remember: bool = True) -> Any:  # fmt: skip
        """A fitted single-output GP on X (n, dim), y (n, 1) (to be maximised), for objective j,
        with the known noise variances ``yvar`` (n, 1) or an inferred homoscedastic noise. The
        fit starts from the hyper-parameters of the previous fit for the same objective, and
        (``remember``) leaves its own for the next."""
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import MixedSingleTaskGP, SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        model: Any
        if self._cat_dims:
            model = MixedSingleTaskGP(X, y, cat_dims=self._cat_dims, train_Yvar=yvar)
        else:
            model = SingleTaskGP(X, y, train_Yvar=yvar)
        if j in self._hyper:
            try:
                model.load_state_dict(self._hyper[j], strict=False)
            except RuntimeError:  # the noise model changed (inferred <-> observed): start afresh
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # botorch reports retried fits and input scaling at length
            fit_gpytorch_mll(
                ExactMarginalLogLikelihood(model.likelihood, model),
                optimizer_kwargs={"options": {"maxiter": _FIT_MAXITER}},
            )
        if remember:  # the observed noise is data, not a hyper-parameter
            self._hyper[j] = {k: v.detach().clone() for k, v in model.state_dict().items()
                              if not k.startswith(("outcome_transform", "input_transform"))
                              and not (yvar is not None and k.startswith("likelihood."))}  # fmt: skip
        return model

    def _fit_model(self, X: torch.Tensor, Y: torch.Tensor, Yvar: torch.Tensor | None = None, *,
                   remember: bool = True) -> Any:  # fmt: skip
        return self._gp(X, Y, 0, Yvar, remember=remember)

    def _acquisition(self, model: Any, X: np.ndarray, Ymax: np.ndarray, X_pending: np.ndarray | None, seed: int) -> Any:
        """Acquisition function of the model; ``Ymax`` (n, m) are the negated objectives.
        ``noise="observed"``: qLogNEI over the observed points; ``"ignore"``: qLogEI on the best
        observed value (module docstring)."""
        import torch
        from botorch.acquisition import qLogExpectedImprovement, qLogNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=seed)
        Xp = None if X_pending is None else torch.as_tensor(X_pending, dtype=torch.double)
        if self.noise == "ignore":
            return qLogExpectedImprovement(model, best_f=float(Ymax.max()), sampler=sampler, X_pending=Xp)
        return qLogNoisyExpectedImprovement(model, X_baseline=torch.as_tensor(X, dtype=torch.double),
                                            sampler=sampler, X_pending=Xp, prune_baseline=True)  # fmt: skip

    # -- the recommendation --------------------------------------------------------------------------
    def recommend(self, k: int = 1) -> list[dict[str, Any]]:
        """Up to ``k`` told designs of best GP posterior mean (with several objectives: on the
        Pareto front of the posterior means), best first. The model is fitted afresh on every
        observation (without changing the optimiser's state or random stream); with fewer than two
        successful observations, or if the fit fails (with a warning), the base class's combined
        values decide; with ``noise="ignore"`` they always do (the values taken as exact: the
        best observed value)."""
        base = super().recommend(k)
        if self.noise == "ignore" or sum(v is not None for v in self.told_values) < 2:
            return base
        import torch

        try:
            comb = [c for c in self.combined().values() if c.value is not None]
            points, Y = self._training_data()
            X = self.space.encode(points)
            with torch.random.fork_rng():
                torch.manual_seed(self.seed + len(points))
                model = self._fit_model(*self._tensors(X, -Y, self._variance(Y)), remember=False)
                Z = torch.as_tensor(self.space.encode([c.point for c in comb]), dtype=torch.double)
                with torch.no_grad():
                    mean = model.posterior(Z).mean.numpy().reshape(len(comb), self.n_objectives)
            return [dict(comb[i].point) for i in self._best_rows(-mean, int(k))]
        except Exception as e:  # a numerical failure must not stop a campaign
            warnings.warn(f"optimiser {self.name!r}: recommendation by the model failed ({type(e).__name__}: {e}); "
                          "recommending by the combined observed values", RuntimeWarning, stacklevel=2)  # fmt: skip
            return base

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
