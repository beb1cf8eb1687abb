"""The parameter space that an optimiser searches.

A *point* is a ``dict`` from parameter name to value (python-native: ``float`` for a
:class:`Real`, ``int`` for an :class:`Integer`, the choice itself for a :class:`Categorical`).
A :class:`Space` is an ordered list of parameters plus an optional constraint, a predicate on
points; a point is *valid* when every value is in its parameter's domain and the constraint
holds.

Optimisers work in the *encoded* unit cube [0, 1]^dim (:meth:`Space.encode`, :meth:`Space.decode`):

* a :class:`Real` takes one column, linear in the value or, with ``log=True``, in its logarithm;
* an :class:`Integer` in [low, high] takes one column, (v - low + 0.5) / (high - low + 1): the
  centre of the v-th of high - low + 1 equal bins, so decoding floors x * (high - low + 1);
* a :class:`Categorical` with k choices takes k one-hot columns; decoding takes the argmax.

:meth:`Space.key` is the canonical string of a point (the same in every process), used to
recognise repeated points and as a database key.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.errors import CaloptInputError

__all__ = ["MAX_ENUMERATION", "Boolean", "Categorical", "Integer", "Param", "Real", "Space"]

MAX_ENUMERATION = 1_000_000
"""Largest number of combinations (before the constraint) that :meth:`Space.enumerate` walks.
Larger spaces are never listed: their size is counted (:attr:`Space.n_combinations`, a product of
the parameters' numbers of values) and their points are sampled; an integer range of 10^9 values
is then as cheap as one of 10."""

_SAMPLE_BATCH = 256
_SAMPLE_MAX_DRAWS = 100_000


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise CaloptInputError(f"parameter name must be a non-empty string, got {name!r}")


@dataclass(frozen=True)
class Real:
    """A real parameter in [low, high]; ``log=True`` searches log(value) uniformly (needs low > 0)."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        for what in ("low", "high"):
            v = getattr(self, what)
            if not _is_number(v) or not math.isfinite(v):
                raise CaloptInputError(f"parameter {self.name!r}: {what} must be a finite number, got {v!r}")
            object.__setattr__(self, what, float(v))
        if self.low >= self.high:
            raise CaloptInputError(f"parameter {self.name!r}: low {self.low:g} must be below high {self.high:g}")
        if self.log and self.low <= 0:
            raise CaloptInputError(f"parameter {self.name!r}: log scale needs low > 0, got low {self.low:g}")

    @property
    def width(self) -> int:
        """Encoded columns."""
        return 1

    def contains(self, v: object) -> bool:
        return _is_number(v) and self.low <= float(v) <= self.high  # type: ignore[arg-type]

    def native(self, v: Any) -> float:
        return float(v)

    def encode(self, v: Any) -> list[float]:
        if self.log:
            return [(math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))]
        return [(float(v) - self.low) / (self.high - self.low)]

    def decode(self, x: np.ndarray) -> float:
        u = float(np.clip(x[0], 0.0, 1.0))
        if u >= 1.0:
            return self.high
        v = self.low * (self.high / self.low) ** u if self.log else self.low + u * (self.high - self.low)
        return min(max(v, self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "real", "name": self.name, "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Integer:
    """An integer parameter in [low, high], both included."""

    name: str
    low: int
    high: int

    def __post_init__(self) -> None:
        _check_name(self.name)
        for what in ("low", "high"):
            v = getattr(self, what)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_):
                raise CaloptInputError(f"parameter {self.name!r}: {what} must be an integer, got {v!r}")
            object.__setattr__(self, what, int(v))
        if self.low >= self.high:
            raise CaloptInputError(f"parameter {self.name!r}: low {self.low} must be below high {self.high}")

    @property
    def width(self) -> int:
        return 1

    @property
    def n_values(self) -> int:
        return self.high - self.low + 1

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def contains(self, v: object) -> bool:
        if not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_):
            return False
        return self.low <= int(v) <= self.high

    def native(self, v: Any) -> int:
        return int(v)

    def encode(self, v: Any) -> list[float]:
        return [(int(v) - self.low + 0.5) / self.n_values]

    def decode(self, x: np.ndarray) -> int:
        k = math.floor(float(np.clip(x[0], 0.0, 1.0)) * self.n_values)
        return self.low + min(max(k, 0), self.n_values - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "integer", "name": self.name, "low": self.low, "high": self.high}


def _choice_id(v: object) -> tuple[str, Any] | None:
    """Identity of a choice value: bools only equal bools, strings only strings, numbers compare
    by value (1 == 1.0); None for anything else."""
    if isinstance(v, bool | np.bool_):
        return ("b", bool(v))
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, int | float | np.integer | np.floating):
        return ("n", float(v))
    return None


@dataclass(frozen=True)
class Categorical:
    """A parameter taking one of ``choices`` (str, int, float or bool), with no order among them."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        _check_name(self.name)
        if isinstance(self.choices, str) or not isinstance(self.choices, Sequence):
            raise CaloptInputError(f"parameter {self.name!r}: choices must be a sequence, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise CaloptInputError(f"parameter {self.name!r}: empty choices")
        native: list[Any] = []
        for c in choices:
            if isinstance(c, bool | np.bool_):
                native.append(bool(c))
            elif isinstance(c, str):
                native.append(c)
            elif isinstance(c, int | np.integer):
                native.append(int(c))
            elif isinstance(c, float | np.floating) and math.isfinite(c):
                native.append(float(c))
            else:
                raise CaloptInputError(f"parameter {self.name!r}: choice {c!r} is not a str, int, finite float or bool")
        ids: dict[tuple[str, Any] | None, int] = {}
        for i, c in enumerate(native):
            if _choice_id(c) in ids:
                raise CaloptInputError(f"parameter {self.name!r}: duplicate choice {c!r}")
            ids[_choice_id(c)] = i
        object.__setattr__(self, "choices", tuple(native))
        object.__setattr__(self, "_ids", ids)

    @property
    def width(self) -> int:
        return len(self.choices)

    @property
    def n_values(self) -> int:
        return len(self.choices)

    def values(self) -> list[Any]:
        return list(self.choices)

    def index(self, v: object) -> int:
        """Index of ``v`` among the choices, -1 if absent."""
        try:
            return self._ids.get(_choice_id(v), -1)  # type: ignore[attr-defined]
        except TypeError:  # unhashable
            return -1

    def contains(self, v: object) -> bool:
        return self.index(v) >= 0

    def native(self, v: Any) -> Any:
        i = self.index(v)
        return self.choices[i] if i >= 0 else v

    def encode(self, v: Any) -> list[float]:
        out = [0.0] * len(self.choices)
        out[self.index(v)] = 1.0
        return out

    def decode(self, x: np.ndarray) -> Any:
        return self.choices[int(np.argmax(x))]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "name": self.name, "choices": list(self.choices)}


def Boolean(name: str) -> Categorical:
    """A yes/no parameter: ``Categorical(name, (False, True))``."""
    return Categorical(name, (False, True))


Param = Real | Integer | Categorical


def _param_from_dict(d: dict[str, Any]) -> Param:
    try:
        kind = d["type"]
        if kind == "real":
            return Real(d["name"], d["low"], d["high"], bool(d.get("log", False)))
        if kind == "integer":
            return Integer(d["name"], d["low"], d["high"])
        if kind == "categorical":
            return Categorical(d["name"], tuple(d["choices"]))
    except (KeyError, TypeError) as e:
        raise CaloptInputError(f"bad parameter description {d!r}: missing or bad {e}") from None
    raise CaloptInputError(f"bad parameter description {d!r}: unknown type {kind!r}")


class Space:
    """An ordered set of parameters with an optional ``constraint`` (a predicate on points).

    Raises :class:`CaloptInputError` for no parameters, duplicate names, or a finite space with
    no valid point.
    """

    def __init__(self, params: Sequence[Param], constraint: Callable[[dict[str, Any]], bool] | None = None) -> None:
        params = tuple(params)
        if not params:
            raise CaloptInputError("empty parameter space: no parameters")
        seen: set[str] = set()
        for p in params:
            if not isinstance(p, Real | Integer | Categorical):
                raise CaloptInputError(f"not a parameter: {p!r}")
            if p.name in seen:
                raise CaloptInputError(f"duplicate parameter name {p.name!r}")
            seen.add(p.name)
        self.params: tuple[Param, ...] = params
        self.constraint = constraint
        self._slices: list[slice] = []
        start = 0
        for p in params:
            self._slices.append(slice(start, start + p.width))
            start += p.width
        self._dim = start
        self._points: list[dict[str, Any]] | None = None
        if self.is_finite and self.n_combinations <= MAX_ENUMERATION and self.constraint is not None:
            if not any(self._satisfies(pt) for pt in self._product()):
                raise CaloptInputError("the parameter space has no point that satisfies the constraint")

    # -- description -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        """Number of encoded columns."""
        return self._dim

    @property
    def slices(self) -> list[slice]:
        """Encoded columns of each parameter, in order."""
        return list(self._slices)

    @property
    def is_finite(self) -> bool:
        """True when there is no :class:`Real` parameter."""
        return not any(isinstance(p, Real) for p in self.params)

    @property
    def n_combinations(self) -> int:
        """Number of combinations before the constraint (finite spaces only), counted without
        listing any parameter's values."""
        if not self.is_finite:
            raise CaloptInputError("the parameter space is not finite (it has real parameters)")
        n = 1
        for p in self.params:
            n *= p.n_values  # type: ignore[union-attr]
        return n

    @property
    def size(self) -> int:
        """Number of valid points of a finite space: :attr:`n_combinations` without a constraint;
        with one, the points must be enumerated (a space too large for that is refused)."""
        return self.n_combinations if self.constraint is None else len(self._enumerated())

    def __repr__(self) -> str:
        extra = ", constrained" if self.constraint is not None else ""
        return f"Space({list(self.params)!r}{extra})"

    def __len__(self) -> int:
        return len(self.params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible description. The constraint, a function, is not stored: only whether
        there is one (``from_dict`` takes it again)."""
        return {"params": [p.to_dict() for p in self.params], "constrained": self.constraint is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any], constraint: Callable[[dict[str, Any]], bool] | None = None) -> Space:
        """Inverse of :meth:`to_dict`; ``constraint`` must be given again if there was one."""
        if not isinstance(d, dict) or not isinstance(d.get("params"), list):
            raise CaloptInputError("bad parameter-space description: expected a dict with a list 'params'")
        return cls([_param_from_dict(p) for p in d["params"]], constraint)

    # -- validity ----------------------------------------------------------------------------------
    def _satisfies(self, point: dict[str, Any]) -> bool:
        return self.constraint is None or bool(self.constraint(point))

    def _problem(self, point: object) -> str | None:
        """Why ``point`` is not valid, or None."""
        if not isinstance(point, dict):
            return f"a point must be a dict, got {point!r}"
        missing = [n for n in self.names if n not in point]
        if missing:
            return f"point {point!r} lacks parameter {missing[0]!r}"
        unknown = [k for k in point if k not in self.names]
        if unknown:
            return f"point {point!r} has unknown parameter {unknown[0]!r}"
        for p in self.params:
            v = point[p.name]
            if not p.contains(v):
                if isinstance(p, Real):
                    dom = f"a number in [{p.low:g}, {p.high:g}]"
                elif isinstance(p, Integer):
                    dom = f"an integer in [{p.low}, {p.high}]"
                else:
                    dom = f"one of {list(p.choices)!r}"
                return f"parameter {p.name!r}: value {v!r} is not {dom}"
        if not self._satisfies(self.native(point)):
            return f"point {self.key(point)} violates the constraint"
        return None

    def is_valid(self, point: object) -> bool:
        """True when ``point`` has exactly the space's parameters, each in its domain, and
        satisfies the constraint."""
        return self._problem(point) is None

    def check(self, point: object) -> None:
        """Raise :class:`CaloptInputError` naming the first bad value of ``point``."""
        why = self._problem(point)
        if why is not None:
            raise CaloptInputError(why)

    # -- enumeration and sampling ------------------------------------------------------------------
    def _product(self) -> Any:
        names = self.names
        for combo in itertools.product(*(p.values() for p in self.params)):  # type: ignore[union-attr]
            yield dict(zip(names, combo))

    def _enumerated(self) -> list[dict[str, Any]]:
        if self._points is None:
            if self.n_combinations > MAX_ENUMERATION:
                raise CaloptInputError(f"the parameter space has {self.n_combinations} combinations, more than the "
                                       f"{MAX_ENUMERATION} that can be enumerated one by one")  # fmt: skip
            self._points = [pt for pt in self._product() if self._satisfies(pt)]
            if not self._points:
                raise CaloptInputError("the parameter space has no point that satisfies the constraint")
        return self._points

    def enumerate(self) -> list[dict[str, Any]]:
        """Every valid point of a finite space, in lexicographic order of the parameters (first
        parameter slowest, values in declared order)."""
        return [dict(pt) for pt in self._enumerated()]

    def _raw_sample(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        """n points uniform in the encoded cube (log-uniform for log reals), no constraint."""
        cols: list[list[Any]] = []
        for p in self.params:
            if isinstance(p, Real):
                u = rng.uniform(0.0, 1.0, n)
                if p.log:
                    v = p.low * (p.high / p.low) ** u
                else:
                    v = p.low + u * (p.high - p.low)
                cols.append([float(x) for x in np.clip(v, p.low, p.high)])
            elif isinstance(p, Integer):
                cols.append([int(v) for v in rng.integers(p.low, p.high + 1, n)])
            else:
                cols.append([p.choices[int(i)] for i in rng.integers(0, len(p.choices), n)])
        names = self.names
        return [{name: col[i] for name, col in zip(names, cols)} for i in range(n)]

    def sample(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        """n valid points drawn independently, uniformly (uniform in the encoded coordinates: log
        reals are log-uniform; a finite space gives each valid point the same probability), by
        rejection of points that violate the constraint."""
        if n <= 0:
            return []
        if self.constraint is None:
            return self._raw_sample(rng, n)
        out: list[dict[str, Any]] = []
        draws = 0
        max_draws = _SAMPLE_MAX_DRAWS + 100 * n
        while len(out) < n and draws < max_draws:
            batch = max(_SAMPLE_BATCH, 2 * (n - len(out)))
            # the constraint (which may build a design) is checked only until n points are found
            valid = (pt for pt in self._raw_sample(rng, batch) if self._satisfies(pt))
            out.extend(itertools.islice(valid, n - len(out)))
            draws += batch
        if len(out) >= n:
            return out[:n]
        if self.is_finite and self.n_combinations <= MAX_ENUMERATION:
            pts = self._enumerated()
            return [dict(pts[int(i)]) for i in rng.integers(0, len(pts), n)]
        raise CaloptInputError(f"could not sample {n} points satisfying the constraint: found {len(out)} "
                               f"in {draws} random draws")  # fmt: skip

    # -- encoding ----------------------------------------------------------------------------------
    def native(self, point: dict[str, Any]) -> dict[str, Any]:
        """The point with python-native values (numpy scalars converted, choices as declared)."""
        return {p.name: p.native(point[p.name]) for p in self.params}

    def encode(self, points: Sequence[dict[str, Any]] | dict[str, Any]) -> np.ndarray:
        """Points to an array (n, dim) in [0, 1]; a single dict gives (1, dim). Raises
        :class:`CaloptInputError` for a value outside its domain."""
        if isinstance(points, dict):
            points = [points]
        X = np.zeros((len(points), self._dim))
        for i, pt in enumerate(points):
            if not isinstance(pt, dict):
                raise CaloptInputError(f"a point must be a dict, got {pt!r}")
            for p, sl in zip(self.params, self._slices):
                if p.name not in pt:
                    raise CaloptInputError(f"point {pt!r} lacks parameter {p.name!r}")
                if not p.contains(pt[p.name]):
                    raise CaloptInputError(f"parameter {p.name!r}: value {pt[p.name]!r} is outside its domain")
                X[i, sl] = p.encode(pt[p.name])
        return X

    def decode(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Rows of (n, dim) (or one row of (dim,)) to points: clip to [0, 1], floor integer bins,
        argmax of one-hot blocks. The result is in every parameter's domain but need not satisfy
        the constraint."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != self._dim:
            raise CaloptInputError(f"expected encoded points with {self._dim} columns, got shape {X.shape}")
        X = np.nan_to_num(X, nan=0.5)
        return [{p.name: p.decode(x[sl]) for p, sl in zip(self.params, self._slices)} for x in X]

    def key(self, point: dict[str, Any]) -> str:
        """Canonical string of a point: JSON with sorted names, reals rounded to 12 significant
        digits, integers as integers, choices as declared. Equal in every process for equal points."""
        vals: dict[str, Any] = {}
        for p in self.params:
            if p.name not in point:
                raise CaloptInputError(f"point {point!r} lacks parameter {p.name!r}")
            v = point[p.name]
            if isinstance(p, Real):
                f = float(v)
                vals[p.name] = float(f"{f:.12g}") + 0.0 if math.isfinite(f) else repr(f)
            elif isinstance(p, Integer) and _is_number(v) and float(v).is_integer():
                vals[p.name] = int(v)
            else:
                vals[p.name] = p.native(v) if not isinstance(v, np.generic) else p.native(v.item())
        return json.dumps(vals, sort_keys=True, separators=(",", ":"))
