"""Campaigns over the module design space (:mod:`calopt.detector.module`): the gradient-based
descent (:mod:`calopt.optimize.gradients.descent`) and the black-box optimisers side by side,
in the same campaign database, resumed and reported like layout campaigns.

A module campaign has a ``[module]`` table where a layout campaign has ``[space]``,
``[evaluate]`` and ``[objective]``::

    name = "shashlik-module"

    [module]
    start = "lhcb-shashlik"            # a built-in technology (NAME or NAME:CELL_MM), or a table
                                       #   of module parameters as in a module spec TOML
    energy_gev = 2.0                   # photon energy of the energy_resolution objective
    objective = { energy_resolution = 100.0, cost = 0.0 }   # minimised: sum of weight x objective
    max_cost_kchf = 6.0                # optional constraints, as penalties (descent.penalty)
    showers = 1000                     # cascade showers per evaluation of a point
    seed = 0                           # the same for every point: common random numbers
    [module.box]                       # the continuous parameters varied, and their ranges
    absorber_thickness_mm = [1.0, 4.0]
    active_thickness_mm = [1.5, 7.5]

    [[optimizers]]
    name = "descent"                   # trust-region or Adam steps, each checked on the cascade
    evaluations = 12                   # steps at most
    options = { estimator = "pathwise", step_budget = 1000, check_budget = 1000 }

    [[optimizers]]
    name = "bo"
    evaluations = 20

The objective of a point is J = sum of weight x objective (:mod:`calopt.optimize.gradients.objectives`,
``energy_resolution`` measured on ``showers`` cascade showers with a bootstrap error, ``cost``
exact) + the constraints' penalty (:func:`~calopt.optimize.gradients.descent.penalty`), as the
descent minimises it. A black-box optimiser's trial is one point; a descent's trial is one step
(the point where the gradient was estimated, its value and error; the gradient, the proposal,
rho and the radius are in the trial's metrics), so the report plots the objective and the
parameters against the step. A layered module keeps its depth in X0 (``hold_depth_x0``).

Descent options (:class:`~calopt.optimize.gradients.descent.DescentSettings`): ``estimator``,
``method``, ``budget`` (cascade showers in all; default: ``evaluations`` steps' worth),
``step_budget``, ``check_budget``, ``radius``, ``max_radius``, ``min_radius``, ``eta``,
``rel_step``, ``learning_rate``. Steps are sequential (``batch`` 1); each runs as one job, on a
Dask worker when the campaign has them, and ``--resume`` reads finished steps back and repeats
an unfinished one exactly (its seeds follow from the step index).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from pydantic import Field, StrictBool, StrictInt, StrictStr

from calopt.detector.module import ModuleSpec, load_module
from calopt.errors import CaloptInputError
from calopt.optimize.schema import MAX_EVALUATE_SEED, MAX_REPLICATES, Number, _Table, parse
from calopt.optimize.space import Real, Space

__all__ = ["DESCENT", "MODULE_METRIC", "DescentOptions", "ModuleFamily", "ModuleObjective", "evaluate_module",
           "step_from_metrics"]  # fmt: skip

DESCENT = "descent"
"""The name of the gradient-based optimiser in ``[[optimizers]]`` (module campaigns only)."""
MODULE_METRIC = "module_objective"
"""The key of a module trial's objective J in its metrics (its error: ``module_objective_err``)."""
MAX_SHOWERS = 100_000
"""Cascade showers per evaluation of a point: ~0.1 s each at 10 GeV, so 10^5 is hours."""


class ModuleTable(_Table):
    start: StrictStr | dict[str, Any]
    box: dict[str, list[Number]] = Field(min_length=1)
    objective: dict[str, Number] = Field({"energy_resolution": 100.0}, min_length=1)
    energy_gev: Number = Field(10.0, gt=0)
    showers: StrictInt = Field(1000, ge=20, le=MAX_SHOWERS, description="cascade showers per evaluation")
    seed: StrictInt = Field(0, ge=0, le=MAX_EVALUATE_SEED)
    replicates: StrictInt = Field(1, ge=1, le=MAX_REPLICATES)
    hold_depth_x0: StrictBool = True
    max_cost_kchf: Number | None = Field(None, gt=0)
    max_mass_kg: Number | None = Field(None, gt=0)
    max_depth_mm: Number | None = Field(None, gt=0)


@dataclass(frozen=True, eq=False)
class ModuleFamily:
    """The ``[module]`` table: a start point, the box of its continuous parameters, what is
    minimised there and how a point is measured (module docstring). It offers what the campaign
    runner asks of a design family: a :class:`Space`, the job document of a point, its settings."""

    start: ModuleSpec
    problem: Any  # calopt.optimize.gradients.descent.Problem
    showers: int = 1000
    seed: int = 0
    replicates: int = 1

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[module]") -> ModuleFamily:
        from calopt.optimize.gradients.descent import Problem

        t = parse(ModuleTable, doc, where)
        try:
            start = load_module(t.start) if isinstance(t.start, str) else ModuleSpec.from_dict(t.start, "start")
            box: dict[str, tuple[float, float]] = {}
            for name, rng in t.box.items():
                if len(rng) != 2:
                    raise CaloptInputError(f"box {name} = {rng!r}: expected [low, high]")
                box[name] = (float(rng[0]), float(rng[1]))
            problem = Problem(terms=tuple((k, float(w)) for k, w in t.objective.items()), box=box,
                              energy_gev=float(t.energy_gev), max_depth_mm=t.max_depth_mm, max_mass_kg=t.max_mass_kg,
                              max_cost_kchf=t.max_cost_kchf, hold_depth_x0=t.hold_depth_x0)  # fmt: skip
            problem.objectives()  # unknown objective names, an energy out of range
            from calopt.optimize.gradients.descent import check_start

            check_start(problem, start)
        except CaloptInputError as exc:
            raise CaloptInputError(f"{where}: {exc}") from None
        return cls(start, problem, t.showers, t.seed, t.replicates)

    def to_dict(self) -> dict[str, Any]:
        p = self.problem
        d: dict[str, Any] = {
            "start": {f.name: getattr(self.start, f.name) for f in fields(self.start)},
            "box": {k: list(v) for k, v in p.box.items()},
            "objective": dict(p.terms),
            "energy_gev": p.energy_gev,
            "showers": self.showers,
            "seed": self.seed,
            "replicates": self.replicates,
            "hold_depth_x0": p.hold_depth_x0,
        }
        for key, v in (("max_cost_kchf", p.max_cost_kchf), ("max_mass_kg", p.max_mass_kg),
                       ("max_depth_mm", p.max_depth_mm)):  # fmt: skip
            if v is not None:
                d[key] = v
        return d

    @property
    def space(self) -> Space:
        """The box as a :class:`Space`; a point is valid when its module is (e.g. not deeper than
        the ECAL, fibres inside their pitch)."""
        return Space([Real(k, lo, hi) for k, (lo, hi) in self.problem.box.items()], constraint=self.is_valid)

    def point(self, params: dict[str, Any]) -> ModuleSpec:
        """The module at ``params`` (a CaloptInputError when it is not a valid module)."""
        from calopt.optimize.gradients import moved_all

        return moved_all(self.start, {k: float(v) for k, v in params.items()}, self.problem.hold_depth_x0)

    def is_valid(self, params: dict[str, Any]) -> bool:
        try:
            self.point(params)
        except CaloptInputError:
            return False
        return True

    def design_dict(self, params: dict[str, Any], name: str = "trial") -> dict[str, Any]:
        """The job document of a point (:func:`evaluate_module`)."""
        return {"kind": "point", "name": name, "family": self.to_dict(), "parameters": dict(params)}

    def descent_settings(self, options: dict[str, Any], seed: int, evaluations: int) -> Any:
        """The :class:`DescentSettings` of a ``descent`` entry (options checked by
        :class:`DescentOptions`); ``budget`` defaults to ``evaluations`` steps' worth of showers."""
        from calopt.optimize.gradients import MIN_SHOWERS_PER_POINT, check_estimator
        from calopt.optimize.gradients.descent import DescentSettings, step_showers
        from calopt.optimize.gradients.finite import design_points

        given = parse(DescentOptions, options, "descent options").model_dump(exclude_none=True)
        check_estimator(given.get("estimator", DescentSettings.estimator))
        budget = given.pop("budget", None)
        st = DescentSettings(**given, seed=seed)
        # what the first step would refuse, refused now: a campaign must not start to fail at step 0
        with_showers = [o.name for o, _ in self.problem.objectives() if o.beam is not None]
        if st.estimator in ("reweight", "lgso"):
            from calopt.optimize.gradients.reweight import WEIGHTED_OBJECTIVES

            bad = [n for n in with_showers if n not in WEIGHTED_OBJECTIVES]
            if bad:
                raise CaloptInputError(f"descent: estimator {st.estimator} cannot take the objective {bad[0]!r}; "
                                       f"it models {', '.join(WEIGHTED_OBJECTIVES)}")  # fmt: skip
        need = MIN_SHOWERS_PER_POINT * design_points(st.estimator, len(self.problem.parameters))
        if with_showers and st.step_budget < need:
            raise CaloptInputError(f"descent: step_budget {st.step_budget} is too small for {st.estimator} with "
                                   f"{len(self.problem.parameters)} parameters: it needs {need} or more")  # fmt: skip
        return replace(st, budget=int(budget if budget is not None else evaluations * step_showers(self.problem, st)))


class DescentOptions(_Table):
    """The options of a ``descent`` entry (:class:`~calopt.optimize.gradients.descent.DescentSettings`)."""

    estimator: StrictStr | None = None
    method: StrictStr | None = None
    budget: StrictInt | None = Field(None, gt=0, le=10**9)
    step_budget: StrictInt | None = Field(None, ge=20, le=MAX_SHOWERS)
    check_budget: StrictInt | None = Field(None, ge=20, le=MAX_SHOWERS)
    radius: Number | None = Field(None, gt=0, le=1)
    max_radius: Number | None = Field(None, gt=0, le=1)
    min_radius: Number | None = Field(None, gt=0, le=1)
    eta: Number | None = Field(None, ge=0, lt=1)
    rel_step: Number | None = Field(None, ge=1e-3, le=0.5)
    learning_rate: Number | None = Field(None, gt=0, le=10)


@dataclass(frozen=True)
class ModuleObjective:
    """The objective of a module campaign: J of each trial (module docstring), minimised."""

    metrics: tuple[str, ...] = (MODULE_METRIC,)
    budget: float | None = None
    penalty: float = 0.0

    @property
    def n_objectives(self) -> int:
        return 1

    def values(self, result: dict[str, Any]) -> tuple[list[float] | None, list[float | None] | None, str | None]:
        v = result.get(MODULE_METRIC)
        if not isinstance(v, int | float) or not math.isfinite(v):
            return None, None, f"{MODULE_METRIC} not measured"
        e = result.get(MODULE_METRIC + "_err")
        err = float(e) if isinstance(e, int | float) and math.isfinite(e) and e >= 0 else None
        return [float(v)], [err], None


def _module_result(family: ModuleFamily, spec: ModuleSpec) -> dict[str, Any]:
    """The exact properties a trial keeps of its module (cost and channels per module)."""
    props = spec.properties()
    keep = ("name", "x0_mm", "moliere_radius_mm", "sampling_fraction", "depth_mm", "depth_x0", "mass_kg",
            "cost_kchf_per_module", "channels_per_module")  # fmt: skip
    return {k: props[k] for k in keep} | {"cost": props["cost_kchf_per_module"],
                                          "channels": props["channels_per_module"]}  # fmt: skip


def evaluate_module(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A module campaign's job (runs on a Dask worker or in this process): ``kind`` ``point``,
    J of one point on ``config["events"]`` cascade showers of seed ``config["seed"]``; ``step``,
    one descent step (:func:`~calopt.optimize.gradients.descent.take_step`)."""
    from calopt.optimize.gradients.descent import DescentSettings, State, penalty, take_step
    from calopt.optimize.gradients.finite import paired_values
    from calopt.optimize.gradients.samples import cascade_sample

    family = ModuleFamily.from_dict(doc["family"], "trial module")
    problem = family.problem
    if doc.get("kind") == "step":
        step = take_step(problem, family.start, DescentSettings(**doc["settings"]), State(**doc["state"]))
        spec = family.point(step.parameters)
        return asdict(step) | _module_result(family, spec) | {
            MODULE_METRIC: step.value, MODULE_METRIC + "_err": step.value_err, "kind": "step"}  # fmt: skip
    spec = family.point(doc["parameters"])
    n, seed = int(config["events"]), int(config["seed"])
    value, boots = 0.0, np.zeros(1)
    out: dict[str, Any] = {"kind": "point", "showers": 0}
    for obj, w in problem.objectives():
        if obj.beam is None:
            v = obj.exact(spec)
            out[obj.name] = v
            value += w * v
            continue
        vals = paired_values(obj, [cascade_sample(spec, obj.beam, n, seed)], n, np.random.default_rng([seed, 0x30D]))
        out[obj.name], out[obj.name + "_err"] = float(vals[0, 0]), float(vals[1:, 0].std(ddof=1))
        value += w * vals[0, 0]
        boots = boots + w * vals[1:, 0]
        out["showers"] += n
    pen = penalty(problem, spec)
    out |= {MODULE_METRIC: float(value + pen), MODULE_METRIC + "_err": float(boots.std(ddof=1)) if boots.size > 1
            else 0.0, "penalty": pen, "parameters": {k: float(v) for k, v in doc["parameters"].items()}}  # fmt: skip
    return out | _module_result(family, spec)


def step_from_metrics(metrics: dict[str, Any]) -> Any:
    """The descent :class:`Step` stored in a step trial's metrics."""
    from calopt.optimize.gradients.descent import Step

    return Step(**{f.name: metrics[f.name] for f in fields(Step) if f.name in metrics})
