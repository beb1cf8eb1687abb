"""L-GSO: local generative surrogate optimisation (Shirobokov et al., NeurIPS 2020,
arXiv:2002.04632), in the encoded unit cube.

The search keeps a current point psi in [0, 1]^dim. One step:

1. propose decode(psi) and ``n_local`` - 1 points drawn uniformly in the box psi +- ``radius``
   (clipped to the cube; invalid or already used decodings are redrawn);
2. once all points proposed for this psi are told (and at least ``n_local`` of them), train a
   surrogate of the stochastic objective y given the design on every told point whose ordinal
   (real and integer) coordinates lie within ``radius`` of psi -- points of earlier steps and
   points told from outside included;
3. take one Adam step (learning rate ``lr``) on psi along the gradient of the surrogate's mean
   objective, clip psi to [0, 1], and go to 1.

The surrogate is a **conditional Gaussian** (a mean-variance network: a one-component mixture
density network) rather than the paper's conditional GAN: an MLP maps the design to the mean and
log standard deviation of y (standardised in the neighbourhood) and is trained for ``steps``
Adam iterations on the Gaussian negative log-likelihood; the mean objective E[y | psi] is then its
mean output, differentiable in psi. For a Gaussian-shaped noise this is what the GAN would learn,
with a far more stable training on the few tens of points of a neighbourhood.

Categorical parameters use the relaxed one-hot encoding: psi holds a weight per choice, the box
samples are decoded by argmax, so categories are explored while their weights are close. psi
starts at a random valid point with every categorical weight at 1/k; or, when points were told
before the first ``ask`` (a resumed campaign), at the best of them. A failed value counts as the
worst one in the neighbourhood. Single objective.

**Re-evaluation of the centre** (option ``reevaluate``, default 3): with a noisy objective (some
told error > 0), when a step starts at a psi that decodes to a design already told (psi stayed
in its integer bin, or came back), that design is re-evaluated (:meth:`Optimizer._reask`) instead
of skipped, until it has ``reevaluate`` observations: the surrogate, which models the
distribution of y given the design, learns the noise at the centre from the replicates, and the
centre's estimate does not rest on one lucky draw. The start after a resume and
:meth:`Optimizer.recommend` use the combined value of each design (:meth:`Optimizer.combined`);
every observation, replicates included, is a training row of the surrogate. ``reevaluate=1``
disables re-evaluations; with exact or unknown errors none happen.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from calopt.optimize.optimizers.base import Optimizer
from calopt.optimize.space import Categorical, Space

__all__ = ["LGSO"]


class LGSO(Optimizer):
    """Local generative surrogate optimisation (module docstring). Options: ``radius`` (half-width
    of the neighbourhood box in the unit cube, default 0.15), ``n_local`` (points per step,
    default max(6, 2*dim + 2)), ``lr`` (Adam step on psi, default 0.05), ``steps`` (surrogate
    training iterations, default 300), ``hidden`` (surrogate hidden width, default 32),
    ``reevaluate`` (observations of the centre design to reach by re-evaluation with a noisy
    objective, default 3; 1 = never)."""

    name: ClassVar[str] = "lgso"
    default_options: ClassVar[dict[str, Any]] = {"radius": 0.15, "n_local": None, "lr": 0.05, "steps": 300,
                                                 "hidden": 32, "reevaluate": 3}  # fmt: skip

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> None:
        super().__init__(space, seed=seed, n_objectives=n_objectives, **options)
        if self.options["n_local"] is None:
            self.options["n_local"] = max(6, 2 * space.dim + 2)
        self.radius = self._float_option("radius", 0.0, 1.0)
        self.n_local = self._int_option("n_local", 2)
        self.lr = self._float_option("lr", 0.0)
        self.steps = self._int_option("steps", 1)
        self.hidden = self._int_option("hidden", 1)
        self.reevaluate = self._int_option("reevaluate", 1)
        self._ordinal = np.ones(space.dim, dtype=bool)
        for p, sl in zip(space.params, space.slices):
            if isinstance(p, Categorical):
                self._ordinal[sl] = False
        self.psi: np.ndarray | None = None
        self.n_steps = 0  # gradient steps taken
        self._m = np.zeros(space.dim)
        self._v = np.zeros(space.dim)
        self._queue: list[dict[str, Any]] = []  # proposals for the current psi not yet handed out
        self._step_asked: set[str] = set()  # keys handed out for the current psi
        self._step_open: set[str] = set()  # ... and not yet told

    # -- psi ---------------------------------------------------------------------------------------
    def _start(self) -> np.ndarray:
        ok = [c for c in self.combined().values() if c.value is not None]
        if ok:
            return self.space.encode(min(ok, key=lambda c: c.value[0]).point)[0]  # type: ignore[index]
        psi = self.space.encode(self.space.sample(self.rng, 1))[0]
        for p, sl in zip(self.space.params, self.space.slices):
            if isinstance(p, Categorical):
                psi[sl] = 1.0 / p.width
        return psi

    def _propose_step(self, n: int, exclude: set[str]) -> list[dict[str, Any]]:
        """n new points around psi: decode(psi) first at a fresh step, then box samples."""
        assert self.psi is not None
        out: list[dict[str, Any]] = []
        keys = set(exclude)

        def take(p: dict[str, Any]) -> None:
            k = self.space.key(p)
            if k not in keys and not self.is_used(k) and self.space.is_valid(p):
                keys.add(k)
                out.append(p)

        if not self._step_asked:
            centre = self.space.decode(self.psi)[0]
            k = self.space.key(centre)
            if (self.reevaluate > 1 and self._noisy() and k not in self._pending and
                    0 < self.told_count(centre) < self.reevaluate):  # fmt: skip
                self._reask([centre])  # handed out by ask; part of this step
                self._step_asked.add(k)
                self._step_open.add(k)
            else:
                take(centre)
        for _ in range(20):
            if len(out) >= n:
                break
            m = 4 * (n - len(out)) + 4
            Z = self.psi + self.rng.uniform(-self.radius, self.radius, (m, self.space.dim))
            for p in self.space.decode(np.clip(Z, 0.0, 1.0)):
                take(p)
                if len(out) >= n:
                    break
        if len(out) < n:  # a used-up neighbourhood (finite space): anywhere
            out.extend(self._fresh_random(n - len(out), keys))
        return out[:n]

    def _ask(self, n: int) -> list[dict[str, Any]]:
        if self.psi is None:
            self.psi = self._start()
        if not self._queue:
            self._queue = self._propose_step(max(n, self.n_local - len(self._step_asked)), set())
        out, self._queue = self._queue[:n], self._queue[n:]
        if len(out) < n:
            out += self._propose_step(n - len(out), {self.space.key(p) for p in out})
        keys = {self.space.key(p) for p in out}
        self._step_asked |= keys
        self._step_open |= keys
        return out

    # -- tell and the gradient step ------------------------------------------------------------------
    def _tell(self, points: list[dict[str, Any]], values: list[tuple[float, ...] | None]) -> None:
        for p in points:
            self._step_open.discard(self.space.key(p))
        if self.psi is not None and not self._step_open and len(self._step_asked) >= self.n_local:
            self._step()

    def _neighbourhood(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.psi is not None
        X = self.space.encode(self.told_points)
        near = np.all(np.abs(X[:, self._ordinal] - self.psi[self._ordinal]) <= self.radius + 1e-9, axis=1)
        v = [self.told_values[i] for i in np.flatnonzero(near)]
        ok = [x[0] for x in v if x is not None]
        if not ok:
            return X[:0], np.zeros(0)
        worst = max(ok)
        return X[near], np.array([worst if x is None else x[0] for x in v])

    def _step(self) -> None:
        assert self.psi is not None
        X, y = self._neighbourhood()
        seed = int(self.rng.integers(0, 2**31 - 1))
        if len(y) >= 3 and np.ptp(y) > 0:
            g = self._surrogate_gradient(X, y, seed)
            self.n_steps += 1
            b1, b2, eps = 0.9, 0.999, 1e-8
            self._m = b1 * self._m + (1 - b1) * g
            self._v = b2 * self._v + (1 - b2) * g * g
            mh = self._m / (1 - b1**self.n_steps)
            vh = self._v / (1 - b2**self.n_steps)
            self.psi = np.clip(self.psi - self.lr * mh / (np.sqrt(vh) + eps), 0.0, 1.0)
        self._queue = []
        self._step_asked = set()
        self._step_open = set()

    def _surrogate_gradient(self, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        """Gradient of the surrogate's mean objective at psi, in standardised-y units (dim,)."""
        import torch

        assert self.psi is not None
        centre = np.where(self._ordinal, self.psi, 0.5)
        scale = np.where(self._ordinal, self.radius, 0.5)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            c = torch.as_tensor(centre, dtype=torch.float32)
            s = torch.as_tensor(scale, dtype=torch.float32)
            U = (torch.as_tensor(X, dtype=torch.float32) - c) / s
            t = torch.as_tensor((y - y.mean()) / y.std(), dtype=torch.float32)
            d, h = self.space.dim, self.hidden
            net = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, h), torch.nn.Tanh(),
                                      torch.nn.Linear(h, 2))  # fmt: skip
            opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
            for _ in range(self.steps):
                opt.zero_grad()
                out = net(U)
                mu, log_sd = out[:, 0], out[:, 1].clamp(-5.0, 3.0)
                loss = (0.5 * ((t - mu) / log_sd.exp()) ** 2 + log_sd).mean()
                loss.backward()
                opt.step()
            psi = torch.as_tensor(self.psi, dtype=torch.float32).requires_grad_(True)
            net(((psi - c) / s)[None, :])[0, 0].backward()
            assert psi.grad is not None
            return psi.grad.numpy().astype(float)
