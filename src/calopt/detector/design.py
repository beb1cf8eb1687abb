"""Designs: which technology, cell size, longitudinal split and timing each module of the
wall gets.

A design is a list of regions, from the centre outwards. Each region has a shape; a module
belongs to the first region whose shape contains its centre. Shapes (all mirrored over the
x and y axes, coordinates in mm from the beam axis):

* ``rectangle``: |x| < half_x and |y| < half_y;
* ``gamma``: the border functions of the LHCb ECAL optimisation studies (seed talk 000:
  "borders between regions described by incomplete gamma functions", 3 parameters per
  border): |y| < height * Q(k, |x| / scale), Q the regularised upper incomplete gamma
  function, so the border starts at ``height`` on the y axis and falls off with x; large k
  gives a rectangle-like, small k a diamond-like region;
* ``rest``: every module not yet assigned (only as the last region).

Designs are read from and written to TOML (validated by pydantic; unknown keys are errors).
Invalid designs are refused with a one-line message: an unknown technology, a cell size the
technology does not allow (cells must tile a 121.2 mm module), regions that are not nested
(a shape that does not contain the previous one overlaps it), an empty region, or modules
left in no region. Every number has a range (docs/formats.md), checked when the file is read:
NaN and infinities are never numbers, and the wall is at most :data:`MAX_MODULES_PER_SIDE`
modules a side, so that no design allocates more than a few MB per module array.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from calopt.detector.technologies import TECHNOLOGIES, get_technology
from calopt.detector.wall import LHCB_WALL, EcalWall
from calopt.errors import CaloptInputError, format_validation_error

__all__ = [
    "BUILTIN_DESIGNS",
    "MAX_COST_KCHF",
    "MAX_LENGTH_MM",
    "MAX_MODULES_PER_SIDE",
    "MAX_TIMING_PS",
    "CostOverride",
    "Design",
    "DesignSpec",
    "GammaShape",
    "RectangleShape",
    "RegionSpec",
    "RestShape",
    "homogeneous_design",
    "load_design",
    "read_toml",
]


# The ranges of a design's numbers. Generous for any calorimeter, tight enough that nothing
# derived from them overflows or exhausts memory:
MAX_MODULES_PER_SIDE = 1000
"""Module columns or rows of a wall: 10^6 slots (121 m a side with LHCb modules, the LHCb wall has
64 x 52) keep the per-module arrays of a design at a few MB; 10^9 a side would allocate until
the system kills the process."""
MAX_PITCH_MM = 1000.0
"""Module size [mm] (LHCb: 121.2)."""
MAX_LENGTH_MM = 1.0e6
"""A region border (rectangle half sizes, gamma height and scale) [mm]: 1 km, beyond any wall."""
MAX_GAMMA_K = 1000.0
"""Shape parameter k of a gamma border: above ~100 the border is already a rectangle."""
MIN_TIMING_PS, MAX_TIMING_PS = 1.0, 10_000.0
"""A timing tier's constant term [ps]: a tier costs b_published / b times the timing unit cost, so
b -> 0 has no finite cost; above 10 ns (less than a 25 ns bunch spacing) a cell time selects nothing."""
MAX_COST_KCHF = 1.0e6
"""A unit cost override [kCHF] (a module, a channel): 1 GCHF."""


class _Strict(BaseModel):
    """A design table: unknown keys are errors, and NaN or an infinity is never a number (every
    number has a finite range)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RectangleShape(_Strict):
    type: Literal["rectangle"]
    half_x: float = Field(gt=0, le=MAX_LENGTH_MM, description="half width [mm]")
    half_y: float = Field(gt=0, le=MAX_LENGTH_MM, description="half height [mm]")

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.abs(x) < self.half_x) & (np.abs(y) < self.half_y)


class GammaShape(_Strict):
    type: Literal["gamma"]
    height: float = Field(gt=0, le=MAX_LENGTH_MM, description="border height on the y axis [mm]")
    k: float = Field(gt=0, le=MAX_GAMMA_K, description="shape parameter of the incomplete gamma function")
    scale: float = Field(gt=0, le=MAX_LENGTH_MM, description="x scale [mm]")

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        from scipy.special import gammaincc

        return np.abs(y) < self.height * gammaincc(self.k, np.abs(x) / self.scale)


class RestShape(_Strict):
    type: Literal["rest"]

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.ones(np.shape(x), dtype=bool)


Shape = Annotated[RectangleShape | GammaShape | RestShape, Field(discriminator="type")]


TIMING_OPTIONS = ("none", "published")


def timing_option(value: object) -> bool | float:
    """A region's timing option, normalised: False (``false`` or ``"none"``: no timing), True
    (``true`` or ``"published"``: the technology's published sigma_t = a/sqrt(E) (+) b), or a
    number in [MIN_TIMING_PS, MAX_TIMING_PS]: a timing tier, the constant term b [ps] of the
    cell's electronics (the technology's a is kept: it is the module's photo-statistics).
    Anything else (NaN, an infinity, a number out of range) is an error naming the value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in TIMING_OPTIONS:
            return value == "published"
        options = ", ".join(map(repr, TIMING_OPTIONS))
        raise ValueError(f"unknown timing option {value!r}; expected true, false, {options} or a tier in ps > 0")
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        if not MIN_TIMING_PS <= value <= MAX_TIMING_PS:
            raise ValueError(f"timing {value!r}: a timing tier is a constant term in [{MIN_TIMING_PS:g}, "
                             f"{MAX_TIMING_PS:g}] ps")  # fmt: skip
        return float(value)
    raise ValueError(f"timing {value!r}: a timing tier is a constant term in ps > 0 (or true, false, 'none', "
                     "'published')")  # fmt: skip


class RegionSpec(_Strict):
    name: str
    technology: str
    cell_size: float = Field(gt=0, le=MAX_PITCH_MM, description="cell size [mm], at most the module pitch")
    split: bool = False
    timing: Annotated[bool | float | str, BeforeValidator(timing_option)] = Field(
        default=False, description="false / 'none', true / 'published', or a constant term [ps]")  # fmt: skip
    shape: Shape

    @property
    def has_timing(self) -> bool:
        return self.timing is not False

    def time_constant_ps(self) -> float:
        """The constant term b [ps] of the region's cell time resolution (0 without timing)."""
        if self.timing is False:
            return 0.0
        return get_technology(self.technology).time_resolution[1] if self.timing is True else float(self.timing)


class CostOverride(_Strict):
    """Unit costs [kCHF] replacing a technology's defaults."""

    module: float | None = Field(default=None, ge=0, le=MAX_COST_KCHF)
    channel: float | None = Field(default=None, ge=0, le=MAX_COST_KCHF)
    timing_per_channel: float | None = Field(default=None, ge=0, le=MAX_COST_KCHF)


class WallSpec(_Strict):
    """The wall (:class:`~calopt.detector.wall.EcalWall`): ``nx`` x ``ny`` slots of ``pitch`` mm
    around a ``hole_x`` x ``hole_y`` beam hole, each side at most :data:`MAX_MODULES_PER_SIDE`."""

    nx: int = Field(default=64, ge=1, le=MAX_MODULES_PER_SIDE, description="module columns")
    ny: int = Field(default=52, ge=1, le=MAX_MODULES_PER_SIDE, description="module rows")
    pitch: float = Field(default=121.2, gt=0, le=MAX_PITCH_MM, description="module size [mm]")
    hole_x: int = Field(default=4, ge=0, le=MAX_MODULES_PER_SIDE, description="beam hole width [modules]")
    hole_y: int = Field(default=4, ge=0, le=MAX_MODULES_PER_SIDE, description="beam hole height [modules]")


class DesignSpec(_Strict):
    name: str
    description: str = ""
    wall: WallSpec = WallSpec()
    regions: list[RegionSpec] = Field(min_length=1)
    cost: dict[str, CostOverride] = {}

    @model_validator(mode="after")
    def _cells_fit_modules(self) -> DesignSpec:
        """A cell is a part of a module: its size is at most the pitch (a larger one would be
        read as zero cells a module, a module without channels)."""
        for k, r in enumerate(self.regions):
            if r.cell_size > self.wall.pitch:
                raise ValueError(f"regions.{k}.cell_size: {r.cell_size:g} mm is larger than the module pitch "
                                 f"{self.wall.pitch:g} mm")  # fmt: skip
        return self


@dataclass(frozen=True)
class Design:
    """A validated design on a wall: per-module region indices and region settings."""

    spec: DesignSpec
    wall: EcalWall = field(default=LHCB_WALL)
    region_index: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "region_index", _assign(self.spec, self.wall))

    @classmethod
    def from_spec(cls, spec: DesignSpec) -> Design:
        w = spec.wall
        return cls(spec, EcalWall(nx=w.nx, ny=w.ny, pitch=w.pitch, hole_x=w.hole_x, hole_y=w.hole_y))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def regions(self) -> list[RegionSpec]:
        return self.spec.regions

    def _per_module(self, values: list[Any], fill: Any, dtype: Any) -> np.ndarray:
        table = np.array([*values, fill], dtype=dtype)
        return table[self.region_index]  # index -1 (hole) picks the fill value

    @cached_property
    def cell_size(self) -> np.ndarray:
        """(ny, nx) cell size [mm], 0 in the hole."""
        return self._per_module([r.cell_size for r in self.regions], 0.0, float)

    @cached_property
    def cells_per_side(self) -> np.ndarray:
        """(ny, nx) number of cells along one side of each module, 0 in the hole."""
        with np.errstate(divide="ignore"):
            n = np.where(
                self.cell_size > 0, np.rint(self.wall.pitch / np.where(self.cell_size > 0, self.cell_size, 1)), 0
            )
        return n.astype(np.int64)

    @cached_property
    def split(self) -> np.ndarray:
        return self._per_module([r.split for r in self.regions], False, bool)

    @cached_property
    def timing(self) -> np.ndarray:
        """(ny, nx) whether each module's cells measure time."""
        return self._per_module([r.has_timing for r in self.regions], False, bool)

    @cached_property
    def time_constant_ps(self) -> np.ndarray:
        """(ny, nx) constant term b [ps] of each module's cell time resolution (0 without timing)."""
        return self._per_module([r.time_constant_ps() for r in self.regions], 0.0, float)

    @cached_property
    def technology(self) -> np.ndarray:
        """(ny, nx) technology name per module ('' in the hole)."""
        return self._per_module([r.technology for r in self.regions], "", object)

    @cached_property
    def channels_per_module(self) -> np.ndarray:
        """(ny, nx) readout channels: cells, twice with a longitudinal split."""
        return self.cells_per_side**2 * np.where(self.split, 2, 1)

    @property
    def n_channels(self) -> int:
        return int(self.channels_per_module.sum())

    def module_counts(self) -> dict[str, dict[str, int]]:
        """{technology: {cell size [mm] as text: modules}}."""
        mask = self.region_index >= 0
        counts = Counter(zip(self.technology[mask], self.cell_size[mask]))
        out: dict[str, dict[str, int]] = {}
        for (tech, cell), n in sorted(counts.items()):
            out.setdefault(str(tech), {})[f"{cell:g}"] = int(n)
        return out

    def region_summary(self) -> list[dict[str, Any]]:
        rows = []
        for k, r in enumerate(self.regions):
            mask = self.region_index == k
            rows.append(
                {
                    "name": r.name,
                    "technology": r.technology,
                    "cell_size_mm": r.cell_size,
                    "split": r.split,
                    "timing": r.timing,
                    "modules": int(mask.sum()),
                    "channels": int(self.channels_per_module[mask].sum()),
                }
            )
        return rows

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.spec.model_dump(mode="json", exclude_defaults=False))

    def summary(self) -> dict[str, Any]:
        """What ``calopt layout show --json`` prints."""
        from calopt.detector.cost import cost_breakdown

        cost = cost_breakdown(self)
        return {
            "design": self.name,
            "description": self.spec.description,
            "modules": self.module_counts(),
            "modules_total": int((self.region_index >= 0).sum()),
            "channels": self.n_channels,
            "cost": cost["total"],
            "cost_breakdown": cost,
            "regions": self.region_summary(),
        }


def _assign(spec: DesignSpec, wall: EcalWall) -> np.ndarray:
    x, y = wall.centres
    live = ~wall.hole
    index = np.full(x.shape, -1, dtype=np.int64)
    previous: np.ndarray | None = None
    for k, r in enumerate(spec.regions):
        tech = get_technology(r.technology)
        if not tech.allows_cell_size(r.cell_size):
            raise CaloptInputError(
                f"region {r.name!r}: cell size {r.cell_size:g} mm is not allowed for {r.technology} "
                f"(allowed: {', '.join(f'{c:g}' for c in tech.cell_sizes)})"
            )
        if abs(wall.pitch / r.cell_size - round(wall.pitch / r.cell_size)) > 1e-6:
            raise CaloptInputError(
                f"region {r.name!r}: {r.cell_size:g} mm cells do not tile a {wall.pitch:g} mm module"
            )
        if isinstance(r.shape, RestShape) and k != len(spec.regions) - 1:
            raise CaloptInputError(f"region {r.name!r}: a 'rest' region must be the last one")
        inside = r.shape.contains(x, y) & live
        if previous is not None and np.any(previous & ~inside):
            raise CaloptInputError(
                f"region {r.name!r} does not contain region {spec.regions[k - 1].name!r}: regions overlap; they must "
                "be nested from the centre outwards"
            )
        new = inside & (index < 0)
        if not new.any():
            raise CaloptInputError(f"region {r.name!r} is empty: it holds no module outside the previous regions")
        index[new] = k
        previous = inside
    left = int((live & (index < 0)).sum())
    if left:
        raise CaloptInputError(f"{left} modules are in no region; end the design with a region of shape type 'rest'")
    return index


BUILTIN_DESIGNS = ("lhcb-run3", "upgrade2-like")


def design_from_dict(doc: dict[str, Any], source: str = "design") -> Design:
    try:
        spec = DesignSpec.model_validate(doc)
    except ValidationError as exc:
        raise CaloptInputError(format_validation_error(exc, source)) from None
    for r in spec.regions:
        if r.technology not in TECHNOLOGIES:
            get_technology(r.technology)
    for t in spec.cost:
        if t not in TECHNOLOGIES:
            raise CaloptInputError(f"{source}: cost override for unknown technology {t!r}")
    return Design.from_spec(spec)


def homogeneous_design(technology: str, cell_size: float) -> Design:
    """A wall made of one module type."""
    return design_from_dict(
        {
            "name": f"all-{technology}-{cell_size:g}",
            "regions": [{"name": "all", "technology": technology, "cell_size": cell_size, "shape": {"type": "rest"}}],
        }
    )


def read_toml(path: Path, expected: str) -> dict[str, Any]:
    """The table of the TOML file ``path``, read as an ``expected`` file (e.g. "design TOML"), or a
    one-line :class:`CaloptInputError` naming the file: what it is when it is not text (an HDF5
    file, a database: :func:`calopt.files.describe_file`), or the TOML error and its position."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        from calopt.files import describe_file

        raise CaloptInputError(f"{str(path)!r} is {describe_file(path)}, expected a {expected} file") from None
    except OSError as exc:
        raise CaloptInputError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaloptInputError(f"{path}: not valid TOML ({exc})") from None


def load_design(name_or_path: str | Path) -> Design:
    """A built-in design by name, or a TOML design file (a campaign file is refused as one)."""
    source = str(name_or_path)
    if source in BUILTIN_DESIGNS:
        text = resources.files("calopt.detector").joinpath(f"designs/{name_or_path}.toml").read_text()
        return design_from_dict(tomllib.loads(text), source)
    path = Path(name_or_path)
    if not path.is_file():
        raise CaloptInputError(
            f"unknown design {source!r}: not a built-in design ({', '.join(BUILTIN_DESIGNS)}) nor a TOML file"
        )
    doc = read_toml(path, "design TOML")
    if "regions" not in doc and ("space" in doc or "optimizers" in doc):
        raise CaloptInputError(f"{source!r} looks like a campaign file ([space], [[optimizers]]), expected a design "
                               "file ([[regions]]); run a campaign with calopt optimize")  # fmt: skip
    return design_from_dict(doc, source)
