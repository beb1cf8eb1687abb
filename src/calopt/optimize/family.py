"""Design spaces over the ECAL wall: nested regions whose borders, technology, cell size,
longitudinal split and timing are parameters.

A :class:`DesignFamily` is read from the ``[space]`` table of a campaign file::

    [space]
    max_cost = 30000          # optional: designs above this cost [kCHF] are invalid
    max_channels = 12000      # optional: likewise for readout channels

    [[space.regions]]         # from the centre outwards; the last region has shape "rest"
    name = "inner"
    shape = "rectangle"       # rectangle | gamma | rest
    half_x = {min = 4, max = 10}      # borders in modules (121.2 mm); integer range
    half_y = {min = 3, max = 8}
    technology = ["lhcb-shashlik", "spacal-pb"]   # a list: a categorical choice
    cell_size = [20.2, 30.3, 40.4]                # mm
    split = [false, true]     # a boolean choice
    timing = false            # a scalar: fixed

Every setting is either a fixed value, a list of choices (categorical), or a range table
``{min = A, max = B}`` (integers give an integer parameter, any float a real one; add
``log = true`` for a log scale). Border settings are in modules: ``half_x``/``half_y`` for a
rectangle, and for a ``gamma`` border (the incomplete-gamma border functions of the LHCb ECAL
optimisation, seed talk 000: |y| < height Q(k, |x| / scale)) ``height`` and ``scale`` in
modules and the dimensionless ``k``.

Parameters are named ``REGION.SETTING``. A point is valid when its design is (nested,
non-empty regions; a cell size the technology allows) and within the cost and channel limits;
the check builds the design, so no invalid design ever reaches an evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from calopt.detector.design import Design, WallSpec, design_from_dict
from calopt.detector.technologies import get_technology
from calopt.errors import CaloptInputError
from calopt.optimize.space import Categorical, Integer, Param, Real, Space

__all__ = ["DesignFamily"]

SETTINGS = {
    "rectangle": ("half_x", "half_y"),
    "gamma": ("height", "k", "scale"),
    "rest": (),
}
COMMON = ("technology", "cell_size", "split", "timing")
IN_MODULES = {"half_x", "half_y", "height", "scale"}


KINDS = {"technology": str, "cell_size": float, "split": bool, "timing": bool, "half_x": float, "half_y": float,
         "height": float, "k": float, "scale": float}  # fmt: skip


def _check_value(name: str, setting: str, v: Any) -> None:
    """Refuse a fixed value or choice of the wrong type, or an unknown technology / bad number."""
    kind = KINDS[setting]
    if kind is bool:
        ok = isinstance(v, bool)
    elif kind is str:
        ok = isinstance(v, str)
    else:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    if not ok:
        expected = {bool: "true or false", str: "a name", float: "a positive number"}[kind]
        raise CaloptInputError(f"{name}: expected {expected}, got {v!r}")
    if setting == "technology":
        get_technology(v)  # an unknown technology: a clear message naming it


def _param(name: str, spec: Any) -> Param | None:
    """The parameter for a setting, or None when the setting is fixed."""
    setting = name.split(".", 1)[1]
    if isinstance(spec, dict):
        for key in ("min", "max"):
            if key in spec:
                _check_value(name, setting, spec[key])
        if not isinstance(spec.get("log", False), bool):
            raise CaloptInputError(f"{name}: log must be true or false, got {spec['log']!r}")
        unknown = set(spec) - {"min", "max", "log"}
        if unknown or not {"min", "max"} <= set(spec):
            raise CaloptInputError(f"{name}: a range is a table {{min = A, max = B[, log = true]}}, got {spec!r}")
        lo, hi = spec["min"], spec["max"]
        if isinstance(lo, int) and isinstance(hi, int) and not spec.get("log", False):
            return Integer(name, lo, hi)
        return Real(name, lo, hi, log=bool(spec.get("log", False)))
    if isinstance(spec, list):
        if len(spec) == 0:
            raise CaloptInputError(f"{name}: an empty list of choices")
        for v in spec:
            _check_value(name, setting, v)
        if len(spec) == 1:
            return None
        return Categorical(name, tuple(spec))
    _check_value(name, setting, spec)
    return None


def _fixed(spec: Any) -> Any:
    return spec[0] if isinstance(spec, list) else spec


@dataclass(frozen=True, eq=False)
class DesignFamily:
    """Nested regions with parametrised settings (module docstring) and the :class:`Space` of
    their parameters. Compared and hashed by identity (its validity checks are cached per
    family)."""

    regions: tuple[dict[str, Any], ...]
    max_cost: float | None = None
    max_channels: int | None = None
    wall: WallSpec = field(default_factory=WallSpec)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "[space]") -> DesignFamily:
        unknown = set(doc) - {"regions", "max_cost", "max_channels"}
        if unknown:
            raise CaloptInputError(f"{source}: unknown key {sorted(unknown)[0]!r}")
        regions = doc.get("regions")
        if not isinstance(regions, list) or not regions:
            raise CaloptInputError(f"{source}: give at least one [[space.regions]]")
        names = set()
        for k, r in enumerate(regions):
            if not isinstance(r, dict):
                raise CaloptInputError(f"{source}: region {k + 1} is not a table")
            name = r.get("name")
            if not isinstance(name, str) or not name:
                raise CaloptInputError(f"{source}: region {k + 1} needs a name")
            if name in names:
                raise CaloptInputError(f"{source}: two regions are named {name!r}")
            names.add(name)
            shape = r.get("shape")
            if not isinstance(shape, str) or shape not in SETTINGS:
                raise CaloptInputError(f"{source}: region {name!r}: unknown shape {shape!r}; expected rectangle, gamma "
                                       "or rest")  # fmt: skip
            if (shape == "rest") != (k == len(regions) - 1):
                raise CaloptInputError(f"{source}: the last region, and only it, must have shape 'rest' "
                                       f"(region {name!r} has {shape!r})")  # fmt: skip
            allowed = {"name", "shape", *SETTINGS[shape], *COMMON}
            bad = set(r) - allowed
            if bad:
                raise CaloptInputError(f"{source}: region {name!r}: unknown key {sorted(bad)[0]!r} for a {shape} "
                                       f"(expected {', '.join(sorted(allowed))})")  # fmt: skip
            missing = {*SETTINGS[shape], "technology", "cell_size"} - set(r)
            if missing:
                raise CaloptInputError(f"{source}: region {name!r}: missing {sorted(missing)[0]!r}")
        for key in ("max_cost", "max_channels"):
            v = doc.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                                  or v <= 0):  # fmt: skip
                raise CaloptInputError(f"{source}: {key} must be a positive number, got {v!r}")
        fam = cls(tuple(dict(r) for r in regions), doc.get("max_cost"), doc.get("max_channels"))
        fam.params  # type checks of every setting  # noqa: B018
        for r in regions:
            techs = r["technology"] if isinstance(r["technology"], list) else [r["technology"]]
            cells = r["cell_size"] if isinstance(r["cell_size"], list) else [r["cell_size"]]
            if isinstance(r["technology"], dict) or isinstance(r["cell_size"], dict):
                raise CaloptInputError(f"{source}: region {r['name']!r}: technology and cell_size are a value or a "
                                       "list of choices, not a range")  # fmt: skip
            for c in cells:
                if not any(any(abs(c - a) < 1e-6 for a in get_technology(t).cell_sizes) for t in techs):
                    raise CaloptInputError(f"{source}: region {r['name']!r}: cell size {c:g} mm is allowed for none "
                                           f"of {', '.join(techs)}")  # fmt: skip
        fam.space  # builds the parameters: refuses bad ranges and an empty space here  # noqa: B018
        return fam

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"regions": [dict(r) for r in self.regions]}
        if self.max_cost is not None:
            d["max_cost"] = self.max_cost
        if self.max_channels is not None:
            d["max_channels"] = self.max_channels
        return d

    @property
    def params(self) -> list[Param]:
        out = []
        for r in self.regions:
            for setting in (*SETTINGS[r["shape"]], *COMMON):
                if setting in r:
                    p = _param(f"{r['name']}.{setting}", r[setting])
                    if p is not None:
                        out.append(p)
        return out

    @property
    def space(self) -> Space:
        space = _SPACES.get(self)
        if space is None:
            params = self.params
            if not params:
                raise CaloptInputError("[space]: every setting is fixed; give at least one list or range to optimise")
            try:
                space = Space(params, constraint=self.is_valid)
            except CaloptInputError as exc:
                if "no point" not in str(exc):
                    raise
                raise CaloptInputError("[space]: the design space has no valid design (check the ranges, cell sizes "
                                       "and limits)") from None
            _SPACES[self] = space
        return space

    def design_dict(self, point: dict[str, Any], name: str = "trial") -> dict[str, Any]:
        """The design document (as in a design TOML file) of a point."""
        pitch = self.wall.pitch
        regions = []
        for r in self.regions:

            def value(setting: str, r: dict[str, Any] = r) -> Any:
                key = f"{r['name']}.{setting}"
                return point[key] if key in point else _fixed(r.get(setting))

            shape: dict[str, Any] = {"type": r["shape"]}
            for s in SETTINGS[r["shape"]]:
                v = float(value(s))
                shape[s] = v * pitch if s in IN_MODULES else v
            regions.append(
                {
                    "name": r["name"],
                    "technology": value("technology"),
                    "cell_size": float(value("cell_size")),
                    "split": bool(value("split") or False),
                    "timing": bool(value("timing") or False),
                    "shape": shape,
                }
            )
        return {"name": name, "description": "a design of an optimisation campaign", "regions": regions}

    def design(self, point: dict[str, Any], name: str = "trial") -> Design:
        return design_from_dict(self.design_dict(point, name), f"design {name!r}")

    def is_valid(self, point: dict[str, Any]) -> bool:
        return _valid(self, tuple(sorted(point.items(), key=lambda kv: kv[0])))


_SPACES: dict[DesignFamily, Space] = {}


@lru_cache(maxsize=65536)
def _valid(family: DesignFamily, items: tuple[tuple[str, Any], ...]) -> bool:
    try:
        d = family.design(dict(items))
    except CaloptInputError:
        return False
    if family.max_channels is not None and d.n_channels > family.max_channels:
        return False
    if family.max_cost is not None:
        from calopt.detector.cost import cost_breakdown

        if cost_breakdown(d)["total"] > family.max_cost:
            return False
    return True
