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
* the same seed and the same sequence of calls give the same points.

Subclasses implement :meth:`Optimizer._ask` (and optionally :meth:`Optimizer._tell`); the base
class validates arguments, keeps the told history and the pending points, and removes invalid or
repeated proposals.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from calopt.errors import CaloptInputError
from calopt.optimize.space import MAX_ENUMERATION, Space

__all__ = ["Optimizer", "Value"]

Value = float | tuple[float, ...] | None
"""What :meth:`Optimizer.tell` takes per point."""


class Optimizer(ABC):
    """Base class of the ask/tell optimisers (module docstring). ``options`` must be keys of the
    class's ``default_options``; the resolved ones are in ``self.options``.

    Attributes kept for subclasses: ``space``, ``seed``, ``n_objectives``, ``rng`` (the
    optimiser's own :class:`numpy.random.Generator`), ``told_points`` and ``told_values`` (every
    told point, python-native, and its value as a tuple of floats or None, in telling order).
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
        self._told_keys: set[str] = set()
        self._pending: dict[str, dict[str, Any]] = {}

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

    def ask(self, n: int) -> list[dict[str, Any]]:
        """Up to ``n`` new valid points to evaluate (fewer, or ``[]`` when nothing is left)."""
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0:
            raise CaloptInputError(f"ask: n must be a non-negative integer, got {n!r}")
        if n == 0:
            return []
        out: list[dict[str, Any]] = []
        for raw in self._ask(int(n)):
            if len(out) == n or not self.space.is_valid(raw):
                continue
            point = self.space.native(raw)
            key = self.space.key(point)
            if self.is_used(key):
                continue
            self._pending[key] = point
            out.append(dict(point))
        return out

    def tell(self, points: Sequence[dict[str, Any]], values: Sequence[Any]) -> None:
        """Objective values of evaluated points (asked or not, any order); ``None`` = failed."""
        if len(points) != len(values):
            raise CaloptInputError(f"tell: {len(points)} points but {len(values)} values")
        vals = [self._value(v) for v in values]
        pts = []
        for p in points:
            self.space.check(p)
            pts.append(self.space.native(p))
        for p, v in zip(pts, vals):
            key = self.space.key(p)
            self._pending.pop(key, None)
            self._told_keys.add(key)
            self.told_points.append(p)
            self.told_values.append(v)
        self._tell(pts, vals)

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
