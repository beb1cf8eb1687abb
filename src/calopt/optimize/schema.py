"""The tables of a campaign file, as pydantic models: what each key may hold.

Every table refuses unknown keys, and numbers are strict: a string, a boolean, NaN or infinity
is never taken for a number, nor a boolean or a float for an integer. Each table is validated on
its own (:func:`parse`), so that an error names its table (``[objective]``,
``[[optimizers]] 2``, ``region 'inner'``) and not a path into the whole file; the top-level
model therefore keeps the sub-tables as plain tables.

Numbers that the campaign stores as written (a budget, cost and channel limits) stay integers
when written as integers: the campaign digest hashes them.

A region setting (:mod:`calopt.optimize.family`) is a fixed value, a non-empty list of distinct
choices, or, for the border settings, a range table ``{min, max, log}``. The TOML type picks the
form (a table is a range, an array a list of choices, anything else a fixed value), so an error
is about that form only, e.g. ``half_x.range.max: Field required``.

Every number has a finite range (docs/formats.md), checked here, so that no campaign starts that
cannot run: the limits of the evaluation (pile-up, crossings, photons, seeds) are those of the
code that uses them, and those of the borders are the design's (:mod:`calopt.detector.design`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from calopt.detector.design import MAX_GAMMA_K, MAX_MODULES_PER_SIDE, timing_option
from calopt.detector.technologies import get_technology
from calopt.errors import CaloptInputError, format_validation_error
from calopt.generation.runner import MAX_PILEUP
from calopt.jobs import MAX_SEED
from calopt.metrics.registry import METRICS
from calopt.optimize.optimizers import OPTIMIZERS
from calopt.pipeline import MAX_RESOLUTION_PHOTONS, MIN_RESOLUTION_PHOTONS

__all__ = ["BORDERS", "CampaignTable", "EvaluateTable", "FamilyTable", "ObjectiveTable", "OptimizerTable",
           "RegionTable", "parse"]  # fmt: skip

BORDERS = {"rectangle": ("half_x", "half_y"), "gamma": ("height", "k", "scale"), "rest": ()}
"""The border settings of each region shape."""
_ALL_BORDERS = tuple(dict.fromkeys(s for settings in BORDERS.values() for s in settings))
BORDER_MAX = {"half_x": MAX_MODULES_PER_SIDE, "half_y": MAX_MODULES_PER_SIDE, "height": MAX_MODULES_PER_SIDE,
              "scale": MAX_MODULES_PER_SIDE, "k": MAX_GAMMA_K}  # fmt: skip
"""The largest value of each border setting (in modules, k dimensionless), as in a design file."""

# the limits of the other numbers
MAX_EVENTS = 100_000
"""Signal crossings per evaluation: they are held in memory, 2 x 4 kB each at mu = 0 and 2 x 420 kB
at mu = 200 (``EvaluateSettings.validate`` refuses what this machine cannot hold), and every design
of the campaign is evaluated on them; 10^5 measure the pi0 width to well below a percent."""
MAX_EVALUATIONS = 100_000
"""Evaluations of one optimiser: each takes minutes, 10^5 are years of CPU."""
MAX_BATCH = 1024
"""Points asked together, evaluated in parallel (one per Dask worker)."""
MAX_KCHF = 1.0e9
"""A cost [kCHF] (budget, max_cost): 10^12 CHF."""
MAX_CHANNELS = 1.0e9
"""max_channels: far beyond the ~10^8 channels of a maximal wall."""
MAX_PENALTY = 1.0e6
"""The soft budget's penalty per (10 % overrun)^2, in the metric's units."""
MAX_REPLICATES = 100
"""Evaluations of one design with seeds seed, seed + 1, ...: 100 cut its error tenfold."""
MAX_CONFIRM = 100
"""Designs re-evaluated at the end, and the factor on their crossings."""
MAX_EVALUATE_SEED = 2**62
"""The ``[evaluate]`` seed: the seeds after it (replicates, re-evaluations, the confirmation at
seed + 2^40) must stay 64-bit integers."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], doc: Any, where: str) -> M:
    """``doc`` validated as ``model``, or a one-line :class:`CaloptInputError` starting with ``where``."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise CaloptInputError(format_validation_error(exc, where, model)) from None


def _as_written(v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    out = handler(v)  # a finite float (an integer passes), within the field's bounds
    return v if isinstance(v, int) else out


Number = Annotated[float, WrapValidator(_as_written)]
"""A finite number, kept an integer when written as one."""
Positive = Annotated[float, Field(gt=0)]


# -- the campaign file -------------------------------------------------------------------------------
class CampaignTable(_Table):
    name: StrictStr = Field(min_length=1)
    description: StrictStr = ""
    evaluate: dict[str, Any] = {}
    objective: dict[str, Any] = {}
    optimizers: list[dict[str, Any]] = Field(min_length=1)
    space: dict[str, Any] | None = None
    module: dict[str, Any] | None = None  # a module campaign (calopt.optimize.module_campaign)
    confirm: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CampaignTable:
        if (self.space is None) == (self.module is None):
            raise ValueError("give [space] (a layout campaign) or [module] (a module campaign), not both or neither")
        if self.module is not None and (self.evaluate or self.objective):
            table = "[evaluate]" if self.evaluate else "[objective]"
            raise ValueError(f"a module campaign sets its evaluation and objective in [module]; remove {table}")
        return self


class EvaluateTable(_Table):
    pileup: float = Field(0.0, ge=0, le=MAX_PILEUP, description="mean pile-up, at most the generation's")
    events: StrictInt = Field(300, gt=0, le=MAX_EVENTS, description="signal crossings per evaluation")
    n_resolution: StrictInt = Field(600, ge=MIN_RESOLUTION_PHOTONS, le=MAX_RESOLUTION_PHOTONS)
    quick: StrictBool = True
    seed: StrictInt = Field(1, ge=0, le=MAX_SEED, description="stored as a 64-bit signed integer")
    method: Literal["xgb", "parametric"] = "xgb"
    fastsim: StrictStr | None = Field(None, description="a fast-simulation backend name or checkpoint path")
    replicates: StrictInt = Field(1, ge=1, le=MAX_REPLICATES, description="evaluations of each asked design")
    timing_model: Literal["catalogue", "waveform"] = "catalogue"
    waveform_sampling_gsps: Number = Field(5.0, gt=0, description="digitiser rate of the waveform timing table")

    @model_validator(mode="after")
    def _seeds_fit(self) -> EvaluateTable:
        if self.seed > MAX_EVALUATE_SEED:
            raise ValueError(f"seed {self.seed}: replicates, re-evaluations and the confirmation use seeds after it, "
                             "so it must be at most 2^62")  # fmt: skip
        return self


class ConfirmTable(_Table):
    """The final re-evaluation of the ``top_k`` best designs (by the surrogate's posterior mean)
    with ``factor`` times the crossings."""

    top_k: StrictInt = Field(ge=1, le=MAX_CONFIRM, description="designs re-evaluated")
    factor: Number = Field(ge=1, le=MAX_CONFIRM, description="crossings of a confirmation / [evaluate] events")


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    return name


class ObjectiveTable(_Table):
    metrics: list[Annotated[StrictStr, AfterValidator(_known_metric)]] = Field(["pi0_mass_width_mev"], min_length=1,
                                                                               max_length=2)  # fmt: skip
    budget: Number | None = Field(None, gt=0, le=MAX_KCHF, description="soft budget [kCHF]")
    penalty: float = Field(0.0, ge=0, le=MAX_PENALTY)

    @field_validator("metrics", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"the metrics {v!r} repeat")
        return v

    @model_validator(mode="after")
    def _soft_budget(self) -> ObjectiveTable:
        if self.budget is not None and len(self.metrics) > 1:
            raise ValueError("a soft budget applies to a single metric; for a Pareto front put the cost among the "
                             "metrics or set max_cost in [space]")  # fmt: skip
        if (self.budget is None) != (self.penalty == 0.0):
            raise ValueError(f"give both budget and penalty (> 0) for a soft budget, or neither (got budget "
                             f"{self.budget}, penalty {self.penalty:g})")  # fmt: skip
        return self


GRADIENT_OPTIMIZERS = ("descent",)
"""Optimisers that take gradients rather than ask and tell (module campaigns only)."""


def _known_optimizer(name: str) -> str:
    if name not in OPTIMIZERS and name not in GRADIENT_OPTIMIZERS:
        known = sorted([*OPTIMIZERS, *GRADIENT_OPTIMIZERS])
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(known)}")
    return name


class OptimizerTable(_Table):
    name: Annotated[StrictStr, AfterValidator(_known_optimizer)]
    evaluations: StrictInt = Field(ge=1, le=MAX_EVALUATIONS)
    batch: StrictInt = Field(1, ge=1, le=MAX_BATCH, description="points asked together and evaluated in parallel")
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED, description="stored as a 64-bit signed integer")
    options: dict[str, Any] = {}  # checked by the optimiser itself


# -- [space] ------------------------------------------------------------------------------------------
class FamilyTable(_Table):
    regions: list[dict[str, Any]] = Field(min_length=1)
    max_cost: Number | None = Field(None, gt=0, le=MAX_KCHF, description="designs above this cost [kCHF] are invalid")
    max_channels: Number | None = Field(None, gt=0, le=MAX_CHANNELS, description="likewise for readout channels")


def _form(v: Any) -> str:
    return "range" if isinstance(v, dict) else "choices" if isinstance(v, list) else "fixed"


def _distinct_choices(v: list[Any]) -> list[Any]:
    if len(set(v)) != len(v):
        raise ValueError(f"the choices {v!r} repeat")
    return v


def _known_technology(name: str) -> str:
    get_technology(name)  # an unknown one raises CaloptInputError, a ValueError: a validation error naming it
    return name


class Range(_Table):
    """``{min = A, max = B, log = false}``, A < B: two integers without ``log`` give an integer
    parameter, anything else a real one."""

    min: Annotated[Number, Field(gt=0)]
    max: Annotated[Number, Field(gt=0)]
    log: StrictBool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min >= self.max:
            raise ValueError(f"min {self.min:g} must be below max {self.max:g}")
        return self


_FORMS = Discriminator(_form, custom_error_type="setting_form",
                       custom_error_message="expected a value or a list of choices (not a range)")  # fmt: skip
_RANGED = Discriminator(_form)
_Choices = Field(min_length=1)
_Distinct = AfterValidator(_distinct_choices)
TechnologyName = Annotated[StrictStr, AfterValidator(_known_technology)]

Technologies = Annotated[
    Annotated[TechnologyName, Tag("fixed")] | Annotated[list[TechnologyName], _Choices, _Distinct, Tag("choices")],
    _FORMS,
]
CellSizes = Annotated[
    Annotated[Positive, Tag("fixed")] | Annotated[list[Positive], _Choices, _Distinct, Tag("choices")], _FORMS
]
Flags = Annotated[
    Annotated[StrictBool, Tag("fixed")] | Annotated[list[StrictBool], _Choices, _Distinct, Tag("choices")], _FORMS
]
# a region's timing: false / "none", true / "published" or a tier (constant term [ps] > 0), as
# in a design file (calopt.detector.design.timing_option), or a list of such choices
TimingOption = Annotated[StrictBool | float, BeforeValidator(timing_option)]
Timings = Annotated[
    Annotated[TimingOption, Tag("fixed")] | Annotated[list[TimingOption], _Choices, _Distinct, Tag("choices")],
    _FORMS,
]
Border = Annotated[
    Annotated[Positive, Tag("fixed")]
    | Annotated[list[Positive], _Choices, _Distinct, Tag("choices")]
    | Annotated[Range, Tag("range")],
    _RANGED,
]


def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


class RegionTable(_Table):
    """A ``[[space.regions]]`` entry: a shape with its border settings, and the module settings."""

    name: StrictStr = Field(min_length=1)
    shape: Literal["rectangle", "gamma", "rest"]
    technology: Technologies
    cell_size: CellSizes = Field(description="mm")
    split: Flags = False
    timing: Timings = False
    # the borders: which ones a region needs depends on its shape (None: not given)
    half_x: Border | None = Field(None, description="modules")
    half_y: Border | None = Field(None, description="modules")
    height: Border | None = Field(None, description="modules")
    k: Border | None = Field(None, description="dimensionless")
    scale: Border | None = Field(None, description="modules")

    @model_validator(mode="after")
    def _shape_settings(self) -> RegionTable:
        own = BORDERS[self.shape]
        given = [s for s in _ALL_BORDERS if getattr(self, s) is not None]
        for s in given:
            if s not in own:
                raise ValueError(f"unknown key {s!r} for a {self.shape} region (its borders: "
                                 f"{', '.join(own) or 'none'})")  # fmt: skip
        missing = [s for s in own if s not in given]
        if missing:
            raise ValueError(f"a {self.shape} region needs {', '.join(missing)}")
        for s in own:  # the largest value of each form: a fixed one, a choice, a range's max
            v = getattr(self, s)
            top = v.max if isinstance(v, Range) else max(_listed(v))
            if top > BORDER_MAX[s]:
                raise ValueError(f"{s}: {top:g} is above the largest border, {BORDER_MAX[s]:g}")
        return self

    @model_validator(mode="after")
    def _cell_sizes(self) -> RegionTable:
        techs = _listed(self.technology)
        for c in _listed(self.cell_size):
            if not any(get_technology(t).allows_cell_size(c) for t in techs):
                raise ValueError(f"cell size {c:g} mm is allowed for none of {', '.join(techs)}")
        return self
