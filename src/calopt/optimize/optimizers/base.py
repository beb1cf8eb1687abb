"""The ask/tell contract of every optimiser.

An :class:`Optimizer` proposes points of a :class:`~calopt.optimize.space.Space` with
:meth:`~Optimizer.ask` and learns their objective values with :meth:`~Optimizer.tell`:

* every objective is **minimised**; a value is a float (one objective) or a tuple of
  ``n_objectives`` floats; ``None`` (or any non-finite number) marks a failed evaluation, which
  an optimiser ignores or replaces by a bad value -- it never fails on it;
* ``tell`` accepts points that were never asked (a resumed campaign replays its finished
  trials into a fresh optimiser, in the order they were asked) and any order or grouping of the
  asked points;
* ``ask(n)`` may return fewer than n points, and ``[]`` only when there is nothing left to
  propose (an exhausted finite space);
* in a finite space no point is proposed twice: never one already told or pending (asked and
  not yet told), compared by :meth:`Space.key`; in any space no proposal repeats a told or pending
  point exactly;
* the same seed and the same sequence of calls give the same points;
* ``tell(points, values, errors)`` may give, per point, the 1-sigma statistical error of each
  objective (every objective calopt optimises is a Monte-Carlo estimate); ``None`` means unknown.
  Noise-aware optimisers use them (``bo``/``mobo`` fit their GPs with the observed noise; ``cmaes``
  and ``lgso`` re-evaluate only when some error is > 0);
* the same design may be told more than once (a *replicate*: another evaluation with another
  seed), whether or not it was asked again; every observation is kept (``told_points``,
  ``told_values``, ``told_errors``) and :meth:`Optimizer.combined` gives one value and error per
  design;
* **re-evaluations**: an optimiser whose method calls for evaluating a told design again (an
  elitist method otherwise keeps the luckiest draw of a noisy objective) queues it with
  :meth:`Optimizer._reask`; ``ask`` returns the queued re-evaluations first, before new proposals,
  exempt from the rule above (a re-evaluation is asked only while it is not pending). The caller
  recognises one by :meth:`Optimizer.told_count` > 0 and must evaluate it with another seed;
* :meth:`Optimizer.recommend` gives the designs the optimiser believes best (to be confirmed by
  re-evaluation): by default the best combined values.

Subclasses implement :meth:`Optimizer._ask` (and optionally :meth:`Optimizer._tell` and
:meth:`Optimizer.recommend`); the base class validates arguments, keeps the told history and the
pending points, and removes invalid or repeated proposals.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from calopt.errors import CaloptInputError
from calopt.optimize.space import MAX_ENUMERATION, Space

__all__ = ["Combined", "Optimizer", "Value", "combine"]

Value = float | tuple[float, ...] | None
"""What :meth:`Optimizer.tell` takes per point."""

Obs = tuple[float, ...] | None
"""One observation's values (or errors) per objective, or None (failed, or unknown)."""


def combine(values: Sequence[Obs], errors: Sequence[Obs] | None = None) -> tuple[Obs, Obs]:
    """Combined value and 1-sigma error, per objective, of several observations of one design.

    Failed observations (value None) are left out; no successful one gives ``(None, None)``. Per
    objective: when every error is known and > 0, the inverse-variance weighted mean
    sum(w y) / sum(w), w = 1/err^2, with error 1/sqrt(sum w) (the optimal combination of
    independent Gaussian measurements); otherwise the plain mean with the standard error of the
    mean std/sqrt(n) (n >= 2), or the one known error (n = 1), or None (unknown). Errors of
    several objectives are all known or the whole error is None.
    """
    errs: list[Obs] = [None] * len(values) if errors is None else list(errors)
    if len(errs) != len(values):
        raise CaloptInputError(f"combine: {len(values)} values but {len(errs)} errors")
    ok = [(v, e) for v, e in zip(values, errs) if v is not None]
    if not ok:
        return None, None
    Y = np.array([v for v, _ in ok], dtype=float)
    n, m = Y.shape
    known = all(e is not None for _, e in ok)
    E = np.array([e for _, e in ok], dtype=float) if known else None
    value: list[float] = []
    error: list[float] | None = []
    for j in range(m):
        if E is not None and np.all(E[:, j] > 0):
            w = 1.0 / E[:, j] ** 2
            value.append(float(np.sum(w * Y[:, j]) / np.sum(w)))
            error.append(float(1.0 / math.sqrt(np.sum(w))))  # type: ignore[union-attr]
            continue
        value.append(float(np.mean(Y[:, j])))
        if n >= 2:
            error.append(float(np.std(Y[:, j], ddof=1) / math.sqrt(n)))  # type: ignore[union-attr]
        elif E is not None:
            error.append(float(E[0, j]))  # type: ignore[union-attr]
        else:
            error = None
    return tuple(value), None if error is None else tuple(error)


@dataclass(frozen=True)
class Combined:
    """All observations of one design combined (:func:`combine`): ``value`` and ``error`` per
    objective (None when every observation failed / when unknown), ``n`` successful observations
    out of ``n_told``."""

    point: dict[str, Any]
    value: Obs
    error: Obs
    n: int
    n_told: int


class Optimizer(ABC):
    """Base class of the ask/tell optimisers (module docstring). ``options`` must be keys of the
    class's ``default_options``; the resolved ones are in ``self.options``.

    Attributes kept for subclasses: ``space``, ``seed``, ``n_objectives``, ``rng`` (the
    optimiser's own :class:`numpy.random.Generator`), ``told_points``, ``told_values`` and
    ``told_errors`` (every told observation, replicates included, in telling order: the point,
    python-native; its value as a tuple of floats or None; its errors as a tuple of floats or None
    when unknown).
    """

    name: ClassVar[str] = ""
    supports_multi_objective: ClassVar[bool] = False
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> None:
        if not isinstance(space, Space):
            raise CaloptInputError(f"optimiser {self.name!r} needs a Space, got {type(space).__name__}")
        if not isinstance(n_objectives, int) or isinstance(n_objectives, bool) or n_objectives < 1:
            raise CaloptInputError(f"n_objectives must be a positive integer, got {n_objectives!r}")
        if n_objectives > 1 and not self.supports_multi_objective:
            raise CaloptInputError(f"optimiser {self.name!r} is single-objective; got n_objectives={n_objectives}")
        if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
            raise CaloptInputError(f"seed must be an integer, got {seed!r}")
        for opt in options:
            if opt not in self.default_options:
                accepted = ", ".join(sorted(self.default_options)) or "none"
                raise CaloptInputError(f"unknown option {opt!r} for optimiser {self.name!r} (accepted: {accepted})")
        self.space = space
        self.seed = int(seed)
        self.n_objectives = n_objectives
        self.options: dict[str, Any] = {**self.default_options, **options}
        self.rng = np.random.default_rng(self.seed)
        self.told_points: list[dict[str, Any]] = []
        self.told_values: list[tuple[float, ...] | None] = []
        self.told_errors: list[tuple[float, ...] | None] = []
        self._told_keys: set[str] = set()
        self._told_count: dict[str, int] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._reasks: list[dict[str, Any]] = []  # re-evaluations queued by _reask, not yet asked

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, n_objectives={self.n_objectives}, options={self.options})"

    # -- option checks for subclasses --------------------------------------------------------------
    def _int_option(self, name: str, minimum: int) -> int:
        v = self.options[name]
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < minimum:
            raise CaloptInputError(f"optimiser {self.name!r}: option {name!r} must be an integer >= {minimum}, "
                                   f"got {v!r}")  # fmt: skip
        return int(v)

    def _float_option(self, name: str, low: float, high: float = math.inf) -> float:
        v = self.options[name]
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not low < v <= high:
            raise CaloptInputError(f"optimiser {self.name!r}: option {name!r} must be a number in ({low:g}, {high:g}], "
                                   f"got {v!r}")  # fmt: skip
        return float(v)

    # -- the contract ------------------------------------------------------------------------------
    @property
    def pending(self) -> list[dict[str, Any]]:
        """Points asked and not yet told, in asking order."""
        return [dict(p) for p in self._pending.values()]

    def is_used(self, key: str) -> bool:
        """True when the point with this :meth:`Space.key` was told or is pending."""
        return key in self._told_keys or key in self._pending

    def told_count(self, point: dict[str, Any]) -> int:
        """How many times this design was told (0: a new design; more: an asked point is a
        re-evaluation, to be evaluated with another seed)."""
        return self._told_count.get(self.space.key(point), 0)

    def ask(self, n: int) -> list[dict[str, Any]]:
        """Up to ``n`` valid points to evaluate (fewer, or ``[]`` when nothing is left): first the
        queued re-evaluations (:meth:`_reask`), then new points."""
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0:
            raise CaloptInputError(f"ask: n must be a non-negative integer, got {n!r}")
        if n == 0:
            return []
        out = self._take_reasks(int(n))
        if len(out) < n:
            for raw in self._ask(int(n) - len(out)):
                if len(out) == n or not self.space.is_valid(raw):
                    continue
                point = self.space.native(raw)
                key = self.space.key(point)
                if self.is_used(key):
                    continue
                self._pending[key] = point
                out.append(dict(point))
            out += self._take_reasks(int(n) - len(out))  # queued while proposing
        return out

    def _take_reasks(self, n: int) -> list[dict[str, Any]]:
        """Up to n queued re-evaluations that are not pending (those stay queued), made pending."""
        out: list[dict[str, Any]] = []
        keep: list[dict[str, Any]] = []
        for p in self._reasks:
            key = self.space.key(p)
            if len(out) < n and key not in self._pending:
                self._pending[key] = p
                out.append(dict(p))
            else:
                keep.append(p)
        self._reasks = keep
        return out

    def _reask(self, points: Sequence[dict[str, Any]]) -> None:
        """Queue told designs for re-evaluation: the next ``ask`` returns them first (each while
        it is not pending), although they were told before. For subclasses whose method calls
        for a replicate; points not yet told are ignored (propose those with ``_ask``)."""
        queued = {self.space.key(p) for p in self._reasks}
        for p in points:
            point = self.space.native(p)
            key = self.space.key(point)
            if key in self._told_keys and key not in queued:
                self._reasks.append(point)
                queued.add(key)

    def tell(self, points: Sequence[dict[str, Any]], values: Sequence[Any],
             errors: Sequence[Any] | None = None) -> None:  # fmt: skip
        """Objective values of evaluated points (asked or not, any order; a design told before is
        a replicate); ``None`` = failed. ``errors``: None, or per point None (unknown) or the
        1-sigma statistical error of each objective (finite, >= 0)."""
        if len(points) != len(values):
            raise CaloptInputError(f"tell: {len(points)} points but {len(values)} values")
        if errors is not None and (isinstance(errors, str | bytes) or len(errors) != len(points)):
            got = repr(errors) if isinstance(errors, str | bytes) else len(errors)
            raise CaloptInputError(f"tell: {len(points)} points but {got} errors")
        vals = [self._value(v) for v in values]
        errs = [None] * len(vals) if errors is None else [self._error(e, i) for i, e in enumerate(errors)]
        pts = []
        for p in points:
            self.space.check(p)
            pts.append(self.space.native(p))
        for p, v, e in zip(pts, vals, errs):
            key = self.space.key(p)
            self._pending.pop(key, None)
            self._told_keys.add(key)
            self._told_count[key] = self._told_count.get(key, 0) + 1
            self.told_points.append(p)
            self.told_values.append(v)
            self.told_errors.append(e)
        self._tell(pts, vals)

    def _error(self, e: Any, i: int) -> tuple[float, ...] | None:
        if e is None:
            return None
        if isinstance(e, np.ndarray):
            e = e.tolist()
        seq = list(e) if isinstance(e, Sequence) and not isinstance(e, str | bytes) else [e]
        if len(seq) != self.n_objectives:
            raise CaloptInputError(f"tell: error of point {i}: expected {self.n_objectives} objective error(s), "
                                   f"got {e!r}")  # fmt: skip
        out = []
        for x in seq:
            if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
                raise CaloptInputError(f"tell: error of point {i} must be a number >= 0, got {x!r}")
            if not (math.isfinite(x) and x >= 0):
                raise CaloptInputError(f"tell: error of point {i} must be a finite number >= 0, got {x!r}")
            out.append(float(x))
        return tuple(out)

    def _value(self, v: Any) -> tuple[float, ...] | None:
        if v is None:
            return None
        if isinstance(v, str | bytes):
            raise CaloptInputError(f"tell: a value must be a number or a tuple of numbers, got {v!r}")
        if isinstance(v, np.ndarray):
            v = v.tolist()
        seq = list(v) if isinstance(v, Sequence) else [v]
        if len(seq) != self.n_objectives:
            raise CaloptInputError(f"tell: expected {self.n_objectives} objective value(s), got {v!r}")
        try:
            out = tuple(float(x) for x in seq)
        except (TypeError, ValueError):
            raise CaloptInputError(f"tell: a value must be a number or a tuple of numbers, got {v!r}") from None
        return out if all(math.isfinite(x) for x in out) else None

    @abstractmethod
    def _ask(self, n: int) -> list[dict[str, Any]]:
        """Propose up to n points; the base class drops invalid, used or repeated ones."""

    def _tell(self, points: list[dict[str, Any]], values: list[tuple[float, ...] | None]) -> None:  # noqa: B027
        """Learn from newly told points (already appended to ``told_points``); default: nothing."""

    # -- combined observations and the recommendation ------------------------------------------------
    def combined(self) -> dict[str, Combined]:
        """Per distinct told design (by :meth:`Space.key`, in order of first telling), its
        observations combined by :func:`combine`: what an optimiser that needs one value per design
        uses, and the default recommendation."""
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(self.told_points):
            groups.setdefault(self.space.key(p), []).append(i)
        out: dict[str, Combined] = {}
        for key, idx in groups.items():
            vals = [self.told_values[i] for i in idx]
            value, error = combine(vals, [self.told_errors[i] for i in idx])
            n_ok = sum(v is not None for v in vals)
            out[key] = Combined(dict(self.told_points[idx[0]]), value, error, n_ok, len(idx))
        return out

    def recommend(self, k: int = 1) -> list[dict[str, Any]]:
        """Up to ``k`` told designs believed best, best first, to be confirmed by re-evaluation.
        Default: by combined value (:meth:`combined`); with several objectives, designs on the
        Pareto front of the combined values (k of them spread along the first objective when the
        front is larger). Designs whose every evaluation failed are never recommended."""
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise CaloptInputError(f"recommend: k must be a positive integer, got {k!r}")
        comb = [c for c in self.combined().values() if c.value is not None]
        if not comb:
            return []
        return [dict(comb[i].point) for i in self._best_rows(np.array([c.value for c in comb]), int(k))]

    def _best_rows(self, V: np.ndarray, k: int) -> list[int]:
        """Indices of the k best rows of V (n, m), minimised: the k smallest for one objective
        (stable order); the Pareto front of several, by the first objective, thinned to k evenly
        spaced members when larger."""
        if V.shape[1] == 1:
            return [int(i) for i in np.argsort(V[:, 0], kind="stable")[:k]]
        from calopt.optimize.pareto import pareto_front

        idx = np.flatnonzero(pareto_front(V))
        idx = idx[np.argsort(V[idx, 0], kind="stable")]
        if len(idx) > k:
            idx = idx[np.unique(np.round(np.linspace(0, len(idx) - 1, k)).astype(int))]
        return [int(i) for i in idx]

    def _noisy(self) -> bool:
        """True when some told error is > 0: the objective is measured noisy, which is what
        triggers the re-evaluations of ``cmaes`` and ``lgso``."""
        return any(e is not None and any(x > 0 for x in e) for e in self.told_errors)

    # -- helpers for subclasses --------------------------------------------------------------------
    def _enumerable(self) -> bool:
        return self.space.is_finite and self.space.n_combinations <= MAX_ENUMERATION

    def _n_remaining(self) -> int | None:
        """Valid points never told nor pending (None when it cannot be counted)."""
        if not self._enumerable():
            return None
        return self.space.size - len(self._told_keys) - len(self._pending)

    def _remaining(self) -> list[dict[str, Any]]:
        """Unused valid points of an enumerable finite space, in enumeration order."""
        return [p for p in self.space._enumerated() if not self.is_used(self.space.key(p))]

    def _fresh_random(self, n: int, exclude: set[str] | None = None) -> list[dict[str, Any]]:
        """Up to n distinct valid points drawn uniformly among those not used (nor in ``exclude``)."""
        exclude = set() if exclude is None else exclude
        out: list[dict[str, Any]] = []
        keys: set[str] = set()
        remaining = self._n_remaining()
        if remaining is not None:
            n = min(n, remaining - len(exclude))
        if n <= 0:
            return []
        for _ in range(20):
            for p in self.space.sample(self.rng, max(2 * n, 16)):
                k = self.space.key(p)
                if not (self.is_used(k) or k in exclude or k in keys):
                    out.append(p)
                    keys.add(k)
                    if len(out) == n:
                        return out
            if remaining is not None and remaining < 4 * n:
                break  # mostly used: pick among the remaining points directly
        if remaining is not None:
            rest = [p for p in self._remaining() if (k := self.space.key(p)) not in exclude and k not in keys]
            idx = self.rng.permutation(len(rest))[: n - len(out)]
            out.extend(rest[int(i)] for i in idx)
        return out

    def _training_data(self) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Told points with their values (n, n_objectives); failed ones get the worst observed
        value of each objective. Empty when nothing succeeded."""
        ok = [v for v in self.told_values if v is not None]
        if not ok:
            return [], np.zeros((0, self.n_objectives))
        worst = np.max(np.array(ok), axis=0)
        Y = np.array([v if v is not None else worst for v in self.told_values], dtype=float)
        return list(self.told_points), Y.reshape(len(self.told_points), self.n_objectives)

    def _training_variance(self) -> np.ndarray | None:
        """Observed noise variances (n, n_objectives), error^2, parallel to :meth:`_training_data`
        (replicates as separate rows); a failed evaluation gets the largest observed variance of
        each objective. None when some successful observation has no known error, or nothing
        succeeded."""
        ok = [(v, e) for v, e in zip(self.told_values, self.told_errors) if v is not None]
        if not ok or any(e is None for _, e in ok):
            return None
        largest = np.max(np.array([e for _, e in ok], dtype=float) ** 2, axis=0)
        rows = [largest if v is None or e is None else np.array(e, dtype=float) ** 2
                for v, e in zip(self.told_values, self.told_errors)]  # fmt: skip
        return np.array(rows, dtype=float).reshape(len(self.told_points), self.n_objectives)
