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
    timing = false            # a scalar: fixed; a timing option: false, true or a tier [ps]
                              # (e.g. [false, 50.0, 20.0, 10.0]: calopt.detector.design)

Every setting is either a fixed value, a list of distinct choices (categorical), or, for the
borders, a range table ``{min = A, max = B}`` with A < B (integers give an integer parameter,
any float a real one; add ``log = true`` for a log scale); the tables are validated by the
models of :mod:`calopt.optimize.schema`. Border settings are in modules: ``half_x``/``half_y`` for a
rectangle, and for a ``gamma`` border (the incomplete-gamma border functions of the LHCb ECAL
optimisation, seed talk 000: |y| < height Q(k, |x| / scale)) ``height`` and ``scale`` in
modules and the dimensionless ``k``.

Parameters are named ``REGION.SETTING``. A point is valid when its design is (nested,
non-empty regions; a cell size the technology allows) and within the cost and channel limits;
the check builds the design, so no invalid design ever reaches an evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from calopt.detector.design import Design, WallSpec, design_from_dict
from calopt.errors import CaloptInputError
from calopt.optimize.schema import BORDERS, FamilyTable, RegionTable, parse
from calopt.optimize.space import Categorical, Integer, Param, Real, Space

__all__ = ["DesignFamily"]

COMMON = ("technology", "cell_size", "split", "timing")
IN_MODULES = {"half_x", "half_y", "height", "scale"}


def _param(name: str, spec: Any) -> Param | None:
    """The parameter for a validated setting (:class:`~calopt.optimize.schema.RegionTable`), or
    None when the setting is fixed (a value, or a list of one choice)."""
    if isinstance(spec, dict):
        lo, hi, log = spec["min"], spec["max"], spec.get("log", False)
        if isinstance(lo, int) and isinstance(hi, int) and not log:
            return Integer(name, lo, hi)
        return Real(name, lo, hi, log=log)
    if isinstance(spec, list) and len(spec) > 1:
        return Categorical(name, tuple(spec))
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
    max_channels: float | None = None
    wall: WallSpec = field(default_factory=WallSpec)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "[space]") -> DesignFamily:
        """The family of a ``[space]`` table; a one-line :class:`CaloptInputError` naming the
        table or region if it is not valid (:mod:`calopt.optimize.schema`). The family keeps the
        region tables as written: they are its :meth:`to_dict` and enter the campaign digest."""
        table = parse(FamilyTable, doc, source)
        names: set[str] = set()
        for k, r in enumerate(table.regions):
            label = repr(r["name"]) if isinstance(r.get("name"), str) and r["name"] else str(k + 1)
            region = parse(RegionTable, r, f"{source}: region {label}")
            if region.name in names:
                raise CaloptInputError(f"{source}: two regions are named {region.name!r}")
            names.add(region.name)
            if (region.shape == "rest") != (k == len(table.regions) - 1):
                raise CaloptInputError(f"{source}: the last region, and only it, must have shape 'rest' "
                                       f"(region {region.name!r} has {region.shape!r})")  # fmt: skip
        fam = cls(tuple(dict(r) for r in table.regions), table.max_cost, table.max_channels)
        fam.space  # builds the parameters: refuses an empty space here  # noqa: B018
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
            for setting in (*BORDERS[r["shape"]], *COMMON):
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
            for s in BORDERS[r["shape"]]:
                v = float(value(s))
                shape[s] = v * pitch if s in IN_MODULES else v
            regions.append(
                {
                    "name": r["name"],
                    "technology": value("technology"),
                    "cell_size": float(value("cell_size")),
                    "split": bool(value("split") or False),
                    "timing": value("timing") if value("timing") is not None else False,
                    "shape": shape,
                }
            )
        return {"name": name, "description": "a design of an optimisation campaign", "regions": regions}

    def technologies(self) -> list[str]:
        """Every technology a region of the family may take (fixed or among its choices)."""
        out: list[str] = []
        for r in self.regions:
            t = r["technology"]
            out += [x for x in (t if isinstance(t, list) else [t]) if x not in out]
        return out

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
