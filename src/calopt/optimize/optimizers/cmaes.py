"""CMA-ES (the ``cma`` package) in the encoded unit cube.

CMA-ES runs on [0, 1]^dim (``cma``'s bound handling) from the centre x0 = 0.5 with step size
``sigma0``; a candidate is decoded to a point (:meth:`Space.decode`). The mapping to ask/tell:

* ``ask`` hands out the candidates of the current CMA generation; when they run out before the
  generation is told, further candidates are drawn from the same distribution (``cma`` allows
  several ``ask`` per generation). A candidate that decodes to an invalid point (constraint) or
  to one already used (told or pending, e.g. two candidates in the same integer bin) is
  skipped; when too many are skipped (a converged search on a lattice) a random valid unused
  point is proposed instead;
* ``tell`` buffers (solution, value) pairs -- the CMA candidate behind a point we proposed, the
  encoding of any other point (a random replacement, or a point told from outside, e.g. replayed
  by a resumed campaign) -- and passes every complete group of ``popsize`` pairs, in telling
  order, to ``cma``'s ``tell``; the distribution then moves and older untold candidates are
  dropped. ``cma`` accepts solutions it did not sample, so foreign points are ordinary members
  of a generation;
* a failed value (None) counts as the worst value observed so far;
* **re-evaluation of the incumbent** (option ``reevaluate``, default 3): with a noisy objective
  (some told error > 0) the best design so far by combined value (:meth:`Optimizer.combined`)
  is usually a lucky draw, and an elitist choice of it keeps the luck. So after every complete
  generation the incumbent is queued for one more evaluation (:meth:`Optimizer._reask`) until it
  has ``reevaluate`` observations; the replicate joins the generation being filled as a member
  with the design's *combined* value (cma accepts solutions it did not sample), so a lucky
  incumbent is re-ranked with its better-estimated value, and :meth:`Optimizer.recommend` (the
  best combined values) names the incumbent. ``reevaluate=1`` disables re-evaluations; with
  exact or unknown errors none happen.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from calopt.errors import CaloptInputError
from calopt.optimize.optimizers.base import Optimizer
from calopt.optimize.space import Space

__all__ = ["CMAES"]


class CMAES(Optimizer):
    """CMA-ES on the encoded space (module docstring). Options: ``sigma0`` (initial step size in
    the unit cube, default 0.3), ``popsize`` (default ``cma``'s 4 + 3 ln(dim)), ``reevaluate``
    (observations of the incumbent design to reach by re-evaluation with a noisy objective,
    default 3; 1 = never)."""

    name: ClassVar[str] = "cmaes"
    default_options: ClassVar[dict[str, Any]] = {"sigma0": 0.3, "popsize": None, "reevaluate": 3}

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> None:
        import cma

        super().__init__(space, seed=seed, n_objectives=n_objectives, **options)
        sigma0 = self._float_option("sigma0", 0.0, 1.0)
        self.reevaluate = self._int_option("reevaluate", 1)
        opts: dict[str, Any] = {"bounds": [0.0, 1.0], "seed": int(self.rng.integers(1, 2**31 - 1)), "verbose": -9}
        if self.options["popsize"] is not None:
            opts["popsize"] = self._int_option("popsize", 2)
        try:
            self.es = cma.CMAEvolutionStrategy(np.full(space.dim, 0.5), sigma0, opts)
        except Exception as e:  # pragma: no cover - cma's own argument checks
            raise CaloptInputError(f"optimiser 'cmaes': cma refused the settings ({e})") from None
        self.popsize = int(self.es.popsize)
        self._pool: list[np.ndarray] = []  # candidates of the current distribution not handed out
        self._solution: dict[str, np.ndarray] = {}  # key of a proposed point -> its CMA candidate
        self._buffer: list[tuple[np.ndarray, float | None]] = []
        self._asked_since_tell = False
        self._worst: float | None = None

    def _draw(self) -> np.ndarray:
        if not self._pool:
            self._pool = [np.asarray(x, dtype=float) for x in self.es.ask()]
            self._asked_since_tell = True
        return self._pool.pop(0)

    def _ask(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        keys: set[str] = set()
        skipped = 0
        while len(out) < n and skipped < 5 * self.popsize + 2 * n:
            x = self._draw()
            p = self.space.decode(x)[0]
            k = self.space.key(p)
            if k in keys or self.is_used(k) or not self.space.is_valid(p):
                skipped += 1
                continue
            out.append(p)
            keys.add(k)
            self._solution[k] = x
        if len(out) < n:
            out.extend(self._fresh_random(n - len(out), keys))
        return out

    def _tell(self, points: list[dict[str, Any]], values: list[tuple[float, ...] | None]) -> None:
        comb = self.combined() if any(self.told_count(p) > 1 for p in points) else {}
        for p, v in zip(points, values):
            k = self.space.key(p)
            x = self._solution.pop(k, None)
            if x is None:
                x = self.space.encode(p)[0]
            f = None if v is None else v[0]
            if self.told_count(p) > 1:  # a replicate: the design's combined value
                c = comb[k].value
                f = None if c is None else c[0]
            if f is not None:
                self._worst = f if self._worst is None else max(self._worst, f)
            self._buffer.append((x, f))
        while len(self._buffer) >= self.popsize:
            group, self._buffer = self._buffer[: self.popsize], self._buffer[self.popsize :]
            worst = 0.0 if self._worst is None else self._worst
            if not self._asked_since_tell:
                self.es.ask()  # cma needs an ask between two tells
            self.es.tell([x for x, _ in group], [worst if f is None else f for _, f in group])
            self._asked_since_tell = False
            self._pool = []
            self._reevaluate_incumbent()

    def _reevaluate_incumbent(self) -> None:
        """Queue the incumbent (best combined value) for re-evaluation after a generation, with a
        noisy objective, while it has fewer than ``reevaluate`` observations."""
        if self.reevaluate < 2 or not self._noisy():
            return
        ok = [c for c in self.combined().values() if c.value is not None]
        if ok:
            best = min(ok, key=lambda c: c.value[0])  # type: ignore[index]
            if best.n_told < self.reevaluate:
                self._reask([best.point])
