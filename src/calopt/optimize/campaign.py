"""Optimisation campaigns: a design space, an objective, evaluation settings and one or more
optimisers, run in parallel on Dask with every trial kept in the campaign database.

A campaign file (TOML)::

    name = "quick"
    description = "..."

    [evaluate]                 # settings of every `evaluate` (calopt.pipeline)
    pileup = 0
    events = 300
    n_resolution = 600
    quick = true               # small shower libraries and regressor training samples
    seed = 1                   # the same for every design: common random numbers
    replicates = 1             # evaluations of each asked design, with seeds seed, seed + 1, ...

    [objective]
    metrics = ["pi0_mass_width_mev"]   # one metric, or two for a Pareto front
    budget = 25000             # optional soft budget [kCHF] (single objective):
    penalty = 2.0              #   + penalty * (overrun / 10 %)^2 in the metric's units

    [confirm]                  # optional: at the end, re-evaluate the top_k designs (by the
    top_k = 3                  #   posterior mean of a noise-aware GP of all trials) with
    factor = 4                 #   factor x the crossings; the best confirmed one is the answer

    [[optimizers]]             # run one after another; they share finished evaluations
    name = "bo"
    evaluations = 20
    batch = 2                  # points asked together and evaluated in parallel
    seed = 0
    options = { n_initial = 6 }

    [space]                    # calopt.optimize.family
    ...

A module campaign has a ``[module]`` table instead of ``[space]``, ``[evaluate]`` and
``[objective]`` and may use the gradient-based ``descent`` (:mod:`calopt.optimize.module_campaign`).

Every table is validated (unknown keys, types, ranges, the rules between keys) by the models of
:mod:`calopt.optimize.schema`; a mistake is one line naming the file, the table and the key.

Objectives are minimised: metrics that are better when larger (``significance``,
``pi0_efficiency``; the directions are the metric registry's, :mod:`calopt.metrics.registry`)
enter with a minus sign. A hard budget is ``max_cost`` in ``[space]``
(designs above it are never proposed).

Noise: every objective is a Monte-Carlo estimate. Each trial stores its objectives' statistical
errors (``objective_errors``, from the metrics' ``<metric>_err``); the optimisers are told the
values with their errors, a design's replicates combined (inverse-variance weighted mean). With
``[confirm]``, the campaign's answer is the best design of the confirmation stage (rows with
``stage = 'confirm'``), measured on an independent seed with more crossings, so not the luckiest
draw of the search.

Resume safety: the database keeps the calopt version and the versions of the cached stages
(:func:`code_versions`); ``--resume`` with other code is refused, or, with
``--allow-version-change``, goes on and records the change (``version_changes``).

Determinism: optimisers ask in batches of a fixed size and are told the whole batch in asking
order, so the sequence of designs does not depend on the number of workers or on which
evaluation finishes first. ``--resume`` replays the finished batches into fresh optimisers
(asking again and checking that the same designs come out), re-evaluates the trials that were
pending when the campaign stopped, and goes on. On a Dask cluster a killed worker costs a re-run
of its evaluation (the scheduler's retry), but a lost scheduler stops the campaign with a
one-line error (:func:`calopt.jobs.scheduler_gone`): its unfinished trials stay pending, not
failed, since their designs did not fail, and ``--resume`` evaluates them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from calopt.arrays import finite_json
from calopt.detector.design import read_toml
from calopt.errors import CaloptInputError
from calopt.files import atomic_path, make_output_folder, output_lock
from calopt.jobs import scheduler_gone
from calopt.metrics.registry import get_metric, why_unmeasured
from calopt.optimize.family import DesignFamily
from calopt.optimize.module_campaign import (
    DESCENT,
    MAX_SHOWERS,
    ModuleFamily,
    ModuleObjective,
    evaluate_module,
    step_from_metrics,
)
from calopt.optimize.optimizers import get_optimizer
from calopt.optimize.schema import (
    MAX_EVENTS,
    CampaignTable,
    ConfirmTable,
    EvaluateTable,
    ObjectiveTable,
    OptimizerTable,
    parse,
)
from calopt.optimize.store import CampaignStore, Trial

__all__ = ["Campaign", "ConfirmConfig", "EvaluateConfig", "Objective", "OptimizerConfig", "campaign_answer",
           "code_versions", "combined", "evaluate_design", "load_campaign", "run_campaign"]  # fmt: skip

DB_NAME = "campaign.sqlite"
CONFIRM_SEED_OFFSET = 2**40
"""The confirmation evaluates on seed ``[evaluate] seed`` + this: a seed no search evaluation uses
(replicates and re-evaluations take the seeds right after ``seed``), so its values are
independent of the draws that made the designs look good."""
SETTINGS_NAME = "campaign-settings.toml"


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``[evaluate]`` table: the settings of every design evaluation."""

    pileup: float = 0.0
    events: int = 300
    n_resolution: int = 600
    quick: bool = True
    seed: int = 1
    method: str = "xgb"
    fastsim: str | None = None
    replicates: int = 1
    timing_model: str = "catalogue"
    waveform_sampling_gsps: float = 5.0

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[evaluate]") -> EvaluateConfig:
        return cls(**parse(EvaluateTable, doc, where).model_dump())

    def with_run(self, seed: int, events: int) -> dict[str, Any]:
        """The settings of one evaluation (a trial's seed and crossings), as sent to a worker."""
        return asdict(replace(self, seed=seed, events=events))

    def settings(self) -> Any:
        from calopt.pipeline import QUICK_READOUT, QUICK_TRAINING, EvaluateSettings

        st = EvaluateSettings(pileup=self.pileup, n_events=self.events, seed=self.seed, n_resolution=self.n_resolution,
                              method=self.method)  # fmt: skip
        if self.quick:
            st = replace(st, readout=QUICK_READOUT, training=QUICK_TRAINING)
        if self.timing_model != "catalogue":
            st = replace(st, readout=replace(st.readout, timing_model=self.timing_model,
                                             waveform_sampling_gsps=self.waveform_sampling_gsps))  # fmt: skip
        return replace(st, readout=replace(st.readout, fastsim=self.fastsim)) if self.fastsim else st


@dataclass(frozen=True)
class Objective:
    """The ``[objective]`` table: what is minimised (module docstring)."""

    metrics: tuple[str, ...] = ("pi0_mass_width_mev",)
    budget: float | None = None
    penalty: float = 0.0

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[objective]") -> Objective:
        t = parse(ObjectiveTable, doc, where)
        return cls(tuple(t.metrics), t.budget, t.penalty)

    @property
    def n_objectives(self) -> int:
        return len(self.metrics)

    def values(self, result: dict[str, Any]) -> tuple[list[float] | None, list[float | None] | None, str | None]:
        """The minimised objective values of an evaluation and their statistical errors (the
        metrics' ``<metric>_err``; None where unknown, 0 for an exact metric), or None, None and
        why it failed. The soft-budget penalty depends on the cost alone, which is exact."""
        out, errors = [], []
        for name in self.metrics:
            m = get_metric(name)
            v = result.get(name)
            if v is None or not math.isfinite(float(v)):
                return None, None, f"{name} {why_unmeasured(m, result)}"
            out.append(m.sign * float(v))
            e = result.get(m.error_key) if m.error_key is not None else 0.0
            errors.append(float(e) if isinstance(e, int | float) and math.isfinite(e) and e >= 0 else None)
        if self.budget is not None:
            overrun = max(0.0, float(result["cost"]) / self.budget - 1.0)
            out[0] += self.penalty * (overrun / 0.1) ** 2
        return out, errors, None


@dataclass(frozen=True)
class OptimizerConfig:
    """One ``[[optimizers]]`` entry."""

    name: str
    evaluations: int
    batch: int = 1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[[optimizers]]") -> OptimizerConfig:
        """The entry; its options are checked when the optimiser is made (:meth:`Campaign.from_dict`)."""
        t = parse(OptimizerTable, doc, where)
        return cls(name=t.name, evaluations=t.evaluations, batch=t.batch, seed=t.seed, options=dict(t.options))


@dataclass(frozen=True)
class ConfirmConfig:
    """The ``[confirm]`` table: the ``top_k`` best designs are re-evaluated at the end with
    ``factor`` times the crossings."""

    top_k: int
    factor: float

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[confirm]") -> ConfirmConfig:
        t = parse(ConfirmTable, doc, where)
        return cls(t.top_k, float(t.factor))

    def events(self, events: int) -> int:
        """Crossings of a confirmation, for ``events`` crossings per search evaluation."""
        return math.ceil(self.factor * events - 1e-9)


@dataclass(frozen=True)
class Campaign:
    """A campaign: over layouts of the wall (``family`` a :class:`DesignFamily`, the ``[space]``,
    ``[evaluate]`` and ``[objective]`` tables) or over the module design space (a
    :class:`~calopt.optimize.module_campaign.ModuleFamily`, the ``[module]`` table; its
    ``evaluate`` holds the showers per point as ``events``, its seed and replicates)."""

    name: str
    family: DesignFamily | ModuleFamily
    objective: Objective | ModuleObjective
    evaluate: EvaluateConfig
    optimizers: tuple[OptimizerConfig, ...]
    description: str = ""
    confirm: ConfirmConfig | None = None

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "campaign") -> Campaign:
        """The campaign of a parsed campaign file (or of its stored settings, :meth:`to_dict`); a
        one-line :class:`CaloptInputError` starting with ``source`` and the table if it is not valid
        (the models of :mod:`calopt.optimize.schema`, then the optimisers' own checks)."""
        t = parse(CampaignTable, doc, source)
        optimizers = tuple(OptimizerConfig.from_dict(o, f"{source}: [[optimizers]] {k + 1}")
                           for k, o in enumerate(t.optimizers))  # fmt: skip
        confirm = None if t.confirm is None else ConfirmConfig.from_dict(t.confirm, f"{source}: [confirm]")
        if t.module is not None:
            return cls._module(t, optimizers, confirm, source)
        assert t.space is not None  # CampaignTable: one of the two
        objective = Objective.from_dict(t.objective, f"{source}: [objective]")
        family = DesignFamily.from_dict(t.space, f"{source}: [space]")
        evaluate = EvaluateConfig.from_dict(t.evaluate, f"{source}: [evaluate]")
        if confirm is not None and confirm.events(evaluate.events) > MAX_EVENTS:
            raise CaloptInputError(f"{source}: [confirm]: factor {confirm.factor:g} x events {evaluate.events} = "
                                   f"{confirm.events(evaluate.events)} crossings; at most {MAX_EVENTS}")  # fmt: skip
        for k, o in enumerate(optimizers):
            if o.name == DESCENT:
                raise CaloptInputError(f"{source}: [[optimizers]] {k + 1}: {DESCENT} designs a module; it needs a "
                                       "module campaign ([module] instead of [space])")  # fmt: skip
        campaign = cls(t.name, family, objective, evaluate, optimizers, t.description, confirm)
        try:
            campaign.evaluate.settings().validate()  # e.g. an unknown fastsim backend
            if evaluate.timing_model == "waveform":  # a table entry for every technology of the space
                from calopt.readout.waveform_timing import waveform_time_resolution

                for tech in family.technologies():
                    waveform_time_resolution(tech, evaluate.waveform_sampling_gsps)
        except CaloptInputError as exc:
            raise CaloptInputError(f"{source}: [evaluate]: {exc}") from None
        space = family.space
        try:  # one valid design, sampled: a space is never listed here, whatever its size
            space.sample(np.random.default_rng(0), 1)
        except CaloptInputError:
            raise CaloptInputError(f"{source}: the design space has no valid design (check the ranges, cell sizes "
                                   "and limits)") from None  # fmt: skip
        for k, o in enumerate(optimizers):  # constructing them checks names, options and objectives
            try:
                get_optimizer(o.name, space, seed=o.seed, n_objectives=objective.n_objectives, **o.options)
            except CaloptInputError as exc:
                raise CaloptInputError(f"{source}: [[optimizers]] {k + 1}: {exc}") from None
        return campaign

    @classmethod
    def _module(cls, t: CampaignTable, optimizers: tuple[OptimizerConfig, ...], confirm: ConfirmConfig | None,
                source: str) -> Campaign:  # fmt: skip
        """A module campaign (:mod:`calopt.optimize.module_campaign`) of a validated campaign table."""
        assert t.module is not None
        family = ModuleFamily.from_dict(t.module, f"{source}: [module]")
        evaluate = EvaluateConfig(events=family.showers, seed=family.seed, replicates=family.replicates)
        if confirm is not None and confirm.events(family.showers) > MAX_SHOWERS:
            raise CaloptInputError(f"{source}: [confirm]: factor {confirm.factor:g} x showers {family.showers} = "
                                   f"{confirm.events(family.showers)} showers; at most {MAX_SHOWERS}")  # fmt: skip
        for k, o in enumerate(optimizers):
            where = f"{source}: [[optimizers]] {k + 1}"
            try:
                if o.name == DESCENT:
                    if o.batch != 1:
                        raise CaloptInputError(f"{DESCENT} takes one step at a time: batch must be 1, got {o.batch}")
                    family.descent_settings(o.options, o.seed, o.evaluations)
                else:
                    get_optimizer(o.name, family.space, seed=o.seed, n_objectives=1, **o.options)
            except CaloptInputError as exc:
                raise CaloptInputError(f"{where}: {exc}") from None
        return cls(t.name, family, ModuleObjective(), evaluate, optimizers, t.description, confirm)

    @property
    def is_module(self) -> bool:
        """True for a campaign over the module design space."""
        return isinstance(self.family, ModuleFamily)

    def to_dict(self) -> dict[str, Any]:
        if isinstance(self.family, ModuleFamily):
            return {"name": self.name, "description": self.description, "module": self.family.to_dict(),
                    "optimizers": [asdict(o) for o in self.optimizers]} | (
                {} if self.confirm is None else {"confirm": asdict(self.confirm)})  # fmt: skip
        return {
            "name": self.name,
            "description": self.description,
            "evaluate": asdict(self.evaluate),
            "objective": {k: v for k, v in asdict(self.objective).items() if v is not None}
            | {"metrics": list(self.objective.metrics)},
            "optimizers": [asdict(o) for o in self.optimizers],
            "space": self.family.to_dict(),
        } | ({} if self.confirm is None else {"confirm": asdict(self.confirm)})

    def digest(self) -> str:
        """Hash of everything that determines the trials (not the description; settings left at
        a default added later, e.g. one replicate, are left out so that older campaigns keep
        their digest)."""
        d = self.to_dict()
        d.pop("description")
        if "evaluate" in d:
            for key, default in (("replicates", 1), ("timing_model", "catalogue"), ("waveform_sampling_gsps", 5.0)):
                if d["evaluate"].get(key) == default:
                    d["evaluate"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def code_versions() -> dict[str, Any]:
    """The versions of the code that make a trial's result: calopt's and those of the cached
    stages (they enter the cache keys). A campaign resumed with other ones would mix results of
    two codes."""
    from calopt import __version__
    from calopt.generation.runner import EVENTS_VERSION
    from calopt.readout.readout import READOUT_VERSION
    from calopt.reconstruction.regression import RECONSTRUCTION_VERSION
    from calopt.simulation.cascade.simulator import CASCADE_VERSION
    from calopt.simulation.library import LIBRARY_VERSION

    return {"calopt": __version__, "cascade": CASCADE_VERSION, "library": LIBRARY_VERSION, "events": EVENTS_VERSION,
            "readout": READOUT_VERSION, "reconstruction": RECONSTRUCTION_VERSION}  # fmt: skip


def load_campaign(path: str | Path) -> Campaign:
    """The campaign of a campaign TOML file; a one-line :class:`CaloptInputError` naming the file
    if it is missing, not TOML (what it is instead, or the error's position), a design file, or
    not a valid campaign."""
    p = Path(path)
    if not p.is_file():
        raise CaloptInputError(f"campaign file {str(path)!r} not found")
    doc = read_toml(p, "campaign TOML")
    if "regions" in doc and "space" not in doc and "optimizers" not in doc:
        raise CaloptInputError(f"{str(path)!r} looks like a design file ([[regions]]), expected a campaign file "
                               "([space], [[optimizers]]); evaluate a design with calopt evaluate")  # fmt: skip
    module = doc.get("module")
    if isinstance(module, dict) and isinstance(module.get("start"), str) and module["start"].endswith(".toml"):
        # a module spec file, relative to the campaign file; the stored settings hold the module itself
        where = Path(module["start"]) if Path(module["start"]).is_absolute() else p.parent / module["start"]
        from calopt.detector.module import load_module

        try:
            spec = load_module(str(where))
        except CaloptInputError as exc:
            raise CaloptInputError(f"{str(path)!r}: [module] start: {exc}") from None
        doc = {**doc, "module": {**module, "start": {f.name: getattr(spec, f.name) for f in fields(spec)}}}
    return Campaign.from_dict(doc, str(path))


def evaluate_design(design_doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one design (runs on a Dask worker or in this process); the ``evaluate`` result."""
    from calopt.detector.design import design_from_dict
    from calopt.pipeline import evaluate

    design = design_from_dict(design_doc, "trial design")
    # as stored: plain numbers, non-finite ones as null
    return finite_json(evaluate(design, EvaluateConfig(**config).settings()).to_json())


Progress = Callable[[str], None]


Job = tuple[int, dict[str, Any], dict[str, Any]]
"""One evaluation to run: (trial id, design document, evaluate settings of the trial)."""


@dataclass
class _Runner:
    campaign: Campaign
    store: CampaignStore
    submit: Callable[[list[Job]], None]
    progress: Progress
    after_batch: Callable[[], None] = lambda: None  # e.g. rewrite the report

    def run(self) -> None:
        space = self.campaign.family.space
        ev = self.campaign.evaluate
        for k, oc in enumerate(self.campaign.optimizers):
            if oc.name == DESCENT:
                self._descend(k, oc)
                continue
            opt = get_optimizer(oc.name, space, seed=oc.seed, n_objectives=self.campaign.objective.n_objectives,
                                **oc.options)  # fmt: skip
            done = self._replay(k, oc, opt)
            batch = max((t.batch for t in self.store.trials(k, metrics=False)), default=-1) + 1
            while done < oc.evaluations:
                points = opt.ask(min(oc.batch, oc.evaluations - done))
                if not points:
                    self.progress(f"{oc.name}: the space is exhausted after {done} evaluations")
                    break
                # a design asked again (a re-evaluation) gets the seeds after those of its earlier rounds
                seeds = [ev.seed + opt.told_count(p) * ev.replicates for p in points]
                self.store.add_batch(oc.name, k, batch, [(space.key(p), p) for p in points], seeds,
                                     events=ev.events, replicates=ev.replicates)  # fmt: skip
                values, errors = self._evaluate_batch(self.store.trials(k, batch=batch, metrics=False))
                opt.tell(points, values, errors)
                done += len(points)
                batch += 1
                self.progress(self._status(k, oc, done))
                self.after_batch()
        if self.campaign.confirm is not None:
            self._confirm(self.campaign.confirm)

    def _replay(self, k: int, oc: OptimizerConfig, opt: Any) -> int:
        """Tell the optimiser the batches already in the database (evaluating pending trials)."""
        space = self.campaign.family.space
        batches: dict[int, list[Trial]] = {}
        for t in self.store.trials(k, metrics=False):
            batches.setdefault(t.batch, []).append(t)
        done = 0
        for b in sorted(batches):
            rows = batches[b]
            designs = [t for t in rows if t.replicate == 0]
            asked = opt.ask(len(designs))
            if [space.key(p) for p in asked] != [t.design_key for t in designs]:
                warnings.warn(f"{oc.name}: batch {b} replayed differently from the database (another calopt "
                              "version?); the stored designs are used", stacklevel=2)  # fmt: skip
            if any(not t.finished for t in rows):
                self.progress(f"{oc.name}: resuming batch {b}")
            values, errors = self._evaluate_batch(rows)
            opt.tell([t.params for t in designs], values, errors)
            done += len(designs)
        if done:
            self.progress(f"{oc.name}: {done} evaluations replayed from the database")
        return done

    def _evaluate_batch(self, rows: list[Trial]) -> tuple[list[list[float] | None], list[list[float | None] | None]]:
        """Evaluate a batch's unfinished rows; per asked design (in asking order), the values
        and errors of its replicates combined (:func:`combined`)."""
        finished = {t.id: t for t in self._evaluate(rows)}
        per_design: dict[int, list[Trial]] = {}
        for t in rows:
            per_design.setdefault(t.position - t.replicate, []).append(finished[t.id])
        out = [combined(per_design[pos]) for pos in sorted(per_design)]
        return [v for v, _ in out], [e for _, e in out]

    def _evaluate(self, rows: list[Trial]) -> list[Trial]:
        """Evaluate the unfinished rows (reusing a finished trial of the same design, seed and
        crossings when there is one), storing each result as soon as it arrives; the rows, finished."""
        todo = []
        for t in rows:
            if t.finished:
                continue
            events = t.events if t.events is not None else self.campaign.evaluate.events
            prior = self.store.finished_result(t.design_key, t.seed, events)
            if prior is not None and prior.optimizer != DESCENT:  # a descent step is not a point's evaluation
                self.store.finish(t.id, status=prior.status, objectives=prior.objectives, metrics=prior.metrics,
                                  cost=prior.cost, channels=prior.channels, seconds=0.0, error=prior.error,
                                  cached=True, objective_errors=prior.objective_errors)  # fmt: skip
            else:
                todo.append(t)
        if todo:
            for t in todo:
                self.store.start(t.id)
            ev = self.campaign.evaluate
            design = self.campaign.family.design_dict
            self.submit([(t.id, design(t.params, f"trial-{t.id}"), ev.with_run(t.seed, t.events or ev.events))
                         for t in todo])  # fmt: skip
        return self.store.trials(ids=[t.id for t in rows], metrics=False)

    def _descend(self, k: int, oc: OptimizerConfig) -> None:
        """A ``descent`` entry of a module campaign: one trial per step, each step one job; the
        finished steps in the database are read back and an unfinished one is run again (a
        step is a function of the steps before it, :func:`~calopt.optimize.gradients.descent.take_step`)."""
        from calopt.optimize.gradients.descent import state_after, stop_reason

        family = self.campaign.family
        assert isinstance(family, ModuleFamily)
        st = family.descent_settings(oc.options, oc.seed, oc.evaluations)
        steps, pending = [], None
        for t in self.store.trials(k):
            if t.status == "failed":
                self.progress(f"{DESCENT}: step {t.batch} failed ({t.error}); the descent stops there")
                return
            if t.status == "pending":
                pending = t
                break
            steps.append(step_from_metrics(t.metrics or {}))
        if steps:
            self.progress(f"{DESCENT}: {len(steps)} steps read from the database")
        while len(steps) < oc.evaluations:
            why = stop_reason(family.problem, st, steps)
            if why is not None:
                self.progress(f"{DESCENT}: stops after {len(steps)} steps: {why}")
                break
            state = state_after(family.problem, family.start, st, steps)
            if pending is None:
                key = family.space.key(state.parameters)
                self.store.add_batch(oc.name, k, len(steps), [(key, state.parameters)], st.seed + 7919 * state.index,
                                     events=st.step_budget)  # fmt: skip
                pending = self.store.trials(k, batch=len(steps), metrics=False)[0]
            else:
                self.progress(f"{DESCENT}: resuming step {pending.batch}")
            self.store.start(pending.id)
            doc = {"kind": "step", "family": family.to_dict(), "settings": asdict(st), "state": asdict(state)}
            self.submit([(pending.id, doc, {"seed": pending.seed, "events": st.step_budget})])
            done = self.store.trials(ids=[pending.id])[0]
            pending = None
            if done.status != "done":
                self.progress(f"{DESCENT}: step {done.batch} failed ({done.error}); the descent stops there")
                break
            step = step_from_metrics(done.metrics or {})
            steps.append(step)
            rho = "-" if step.rho is None else f"{step.rho:.2f}"
            self.progress(f"{DESCENT}: step {step.index}, J {step.value:.4g} +- {step.value_err:.2g}, rho {rho}, "
                          f"{'accepted' if step.accepted else 'rejected'}, radius {step.radius:.3g}, "
                          f"{step.showers} showers")  # fmt: skip
            self.after_batch()

    def _confirm(self, conf: ConfirmConfig) -> None:
        """The confirmation stage: the ``top_k`` designs by the posterior mean of a noise-aware
        GP of every finished search trial, re-evaluated with ``factor`` x the crossings on a seed
        no search evaluation used; resumed from its rows when they exist."""
        k = len(self.campaign.optimizers)
        rows = self.store.trials(k, metrics=False, stage="confirm")
        if not rows:
            points = self._recommend(conf.top_k)
            if not points:
                self.progress("confirm: no finished trial to confirm")
                return
            space = self.campaign.family.space
            ev = self.campaign.evaluate
            self.store.add_batch("confirm", k, 0, [(space.key(p), p) for p in points], ev.seed + CONFIRM_SEED_OFFSET,
                                 events=conf.events(ev.events), stage="confirm")  # fmt: skip
            rows = self.store.trials(k, metrics=False, stage="confirm")
            self.progress(f"confirm: re-evaluating {len(rows)} designs with {conf.events(ev.events)} crossings")
        self._evaluate(rows)
        best = best_confirmed(self.store.trials(k, metrics=False, stage="confirm"))
        if best is not None:
            err = best.objective_errors[0] if best.objective_errors else None
            shown = f"{best.objectives[0]:.4g}" + (f" +- {err:.2g}" if err is not None else "")  # type: ignore[index]
            self.progress(f"confirm: best design trial {best.id}, objective {shown}")

    def _recommend(self, n: int) -> list[dict[str, Any]]:
        """The n designs with the best posterior mean of a noise-aware GP (``bo``, or ``mobo``
        for two objectives: its posterior Pareto set) of every finished search trial."""
        space = self.campaign.family.space
        n_obj = self.campaign.objective.n_objectives
        by_design: dict[str, list[Trial]] = {}
        for t in self.store.trials(metrics=False, stage="search"):
            if t.finished:
                by_design.setdefault(t.design_key, []).append(t)
        if not by_design:
            return []
        opt = get_optimizer("mobo" if n_obj > 1 else "bo", space, seed=0, n_objectives=n_obj)
        groups = list(by_design.values())
        values, errors = zip(*(combined(g) for g in groups))
        opt.tell([g[0].params for g in groups], list(values), list(errors))
        return list(opt.recommend(n))

    def record(self, trial_id: int, result: dict[str, Any] | None, error: str | None, seconds: float) -> None:
        if result is None:
            self.store.finish(trial_id, status="failed", objectives=None, metrics=None, cost=None, channels=None,
                              seconds=seconds, error=error)  # fmt: skip
            self.progress(f"trial {trial_id} failed: {error}")
            return
        values, errors, why = self.campaign.objective.values(result)
        self.store.finish(trial_id, status="done" if values is not None else "failed", objectives=values,
                          metrics=result, cost=float(result["cost"]), channels=int(result["channels"]),
                          seconds=seconds, error=why, objective_errors=errors)  # fmt: skip
        shown = ", ".join(f"{m} {result.get(m)!s:.6}" for m in self.campaign.objective.metrics)
        self.progress(f"trial {trial_id}: {shown}" + (f" (failed: {why})" if why else "") + f" [{seconds:.0f} s]")

    def _status(self, k: int, oc: OptimizerConfig, done: int) -> str:
        ok = [t.objectives for t in self.store.trials(k, metrics=False) if t.objectives is not None]
        best = min((o[0] for o in ok), default=None)
        return f"{oc.name}: {done}/{oc.evaluations} evaluations" + (f", best {best:.4g}" if best is not None else "")


def combined(rows: list[Trial]) -> tuple[list[float] | None, list[float | None] | None]:
    """The objectives of one design and their errors from its finished rows (replicates, earlier
    re-evaluations), combined over the rows that succeeded
    (:func:`calopt.optimize.optimizers.base.combine`: inverse-variance weighted where every error
    is known); None when none succeeded, errors None when unknown."""
    from calopt.optimize.optimizers.base import combine

    values = [None if t.objectives is None else tuple(t.objectives) for t in rows]
    errors = [None if not t.objective_errors or None in t.objective_errors else tuple(t.objective_errors)
              for t in rows]  # fmt: skip
    v, e = combine(values, errors)  # type: ignore[arg-type]
    return (None if v is None else list(v)), (None if e is None else [float(x) for x in e])


def best_confirmed(rows: list[Trial]) -> Trial | None:
    """The campaign's answer: the confirmation row with the best (smallest) first objective."""
    ok = [t for t in rows if t.objectives is not None]
    return min(ok, key=lambda t: t.objectives[0]) if ok else None  # type: ignore[index]


def campaign_answer(trials: list[Trial]) -> dict[str, Any] | None:
    """The campaign's answer, from all its trials: the best confirmed design (``confirmed``
    true) when there is a confirmation stage, else the search design with the best first
    objective, its replicates combined. None when no trial succeeded."""
    confirm = [t for t in trials if t.stage == "confirm"]
    best = best_confirmed(confirm)
    if best is not None:
        values, errors = best.objectives, best.objective_errors
        rows = [best]
    else:
        by_design: dict[str, list[Trial]] = {}
        for t in trials:
            if t.stage == "search" and t.objectives is not None:
                by_design.setdefault(t.design_key, []).append(t)
        if not by_design:
            return None
        scored = [(combined(g), g) for g in by_design.values()]
        (values, errors), rows = min(scored, key=lambda x: x[0][0][0])  # type: ignore[index]
    first = rows[0]
    return {"trial": first.id, "confirmed": best is not None, "objectives": values, "objective_errors": errors,
            "replicates": len(rows), "params": first.params, "cost": first.cost,
            "channels": first.channels}  # fmt: skip


Evaluator = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def run_campaign(campaign: Campaign, out: str | Path, *, workers: int = 1, scheduler: str | None = None,
                 resume: bool = False, progress: Progress | None = None, evaluator: Evaluator | None = None,
                 allow_version_change: bool = False,
                 after_batch: Callable[[], None] | None = None) -> Path:  # fmt: skip
    """Run (or resume) a campaign in folder ``out``; returns the database path.

    ``evaluator(design_document, evaluate_config) -> metrics`` evaluates one design (default:
    :func:`evaluate_design`, or :func:`~calopt.optimize.module_campaign.evaluate_module` for a
    module campaign); it must be importable by the Dask workers. ``after_batch()`` runs after every
    finished batch (and descent step), with the database up to date: ``calopt optimize`` rewrites
    the report there. Resuming a campaign
    started by other code (:func:`code_versions`) is refused unless ``allow_version_change``,
    which records the change in the database (``version_changes``)."""
    out = Path(out)
    db_path = out / DB_NAME
    say = progress or (lambda msg: None)
    if workers < 1:
        raise CaloptInputError(f"--workers must be at least 1, got {workers}")
    make_output_folder(out)
    if evaluator is None:
        evaluator = evaluate_module if campaign.is_module else evaluate_design
    # one run per campaign: a second one (e.g. two --resume) would evaluate the same trials twice
    with output_lock(db_path, "campaign"):
        return _run_locked(campaign, out, db_path, workers, scheduler, resume, say, evaluator, allow_version_change,
                           after_batch or (lambda: None))  # fmt: skip


def _check_code(db_path: Path, old: dict[str, Any], allow: bool) -> bool:
    """True if the campaign in ``db_path`` (made by code ``old``) may go on with this code:
    the same versions (of those recorded: a database from before stage versions were kept has
    the calopt version alone), or ``allow`` (then the change is to be recorded); else a one-line
    error."""
    new = code_versions()
    changed = ", ".join(f"{k} {old[k]} -> {v}" for k, v in new.items() if k in old and old[k] != v)
    if not changed:
        return False
    if not allow:
        raise CaloptInputError(f"{db_path} was made by other code ({changed}); resuming would mix results of "
                               "two codes: choose another output folder, or accept it with --allow-version-change")
    return True


def _run_locked(campaign: Campaign, out: Path, db_path: Path, workers: int, scheduler: str | None, resume: bool,
                say: Progress, evaluator: Evaluator, allow_version_change: bool,
                after_batch: Callable[[], None]) -> Path:  # fmt: skip
    """:func:`run_campaign` under the campaign's lock."""
    if db_path.exists() and not resume:
        raise CaloptInputError(f"{db_path} exists: continue it with --resume, or choose another output folder")
    digest = campaign.digest()
    version_change = False
    if db_path.exists():
        with CampaignStore(db_path, read_only=True) as st:
            old = st.get_meta("digest")
            old_code = st.get_meta("code_versions")
            old_version = st.get_meta("calopt_version")
        if old is not None and old != digest:
            raise CaloptInputError(f"{db_path} belongs to a campaign with other settings; --resume needs the same "
                                   "campaign file (or choose another output folder)")  # fmt: skip
        if old is not None:
            recorded = json.loads(old_code) if old_code else {"calopt": old_version}
            version_change = _check_code(db_path, recorded, allow_version_change)
    # parallel evaluations share the caches of shower libraries, regressors and events: the first
    # evaluation that needs one builds it under a file lock while the others wait for it
    client = _client(workers, scheduler) if (workers > 1 or scheduler) else None
    from calopt import __version__

    with CampaignStore(db_path) as store:
        code = json.dumps(code_versions(), sort_keys=True)
        if store.get_meta("digest") is None:
            store.set_meta(digest=digest, settings=json.dumps(campaign.to_dict()), calopt_version=__version__,
                           created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), name=campaign.name,
                           code_versions=code)  # fmt: skip
        elif version_change:  # accepted with --allow-version-change: recorded, trials made before stay
            changes = json.loads(store.get_meta("version_changes") or "[]")
            changes.append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from": store.get_meta("code_versions")
                            or store.get_meta("calopt_version"), "to": code})  # fmt: skip
            store.set_meta(version_changes=json.dumps(changes), code_versions=code, calopt_version=__version__)
        store.fill_events(campaign.evaluate.events)
        # the settings as read (not the user's file, which may sit in this folder with its comments)
        with atomic_path(out / SETTINGS_NAME) as tmp:
            Path(tmp).write_text(_to_toml(campaign))
        runner = _Runner(campaign, store, lambda jobs: None, say, after_batch)

        def submit_local(jobs: list[Job]) -> None:
            for tid, doc, config in jobs:
                t0 = time.perf_counter()
                try:
                    result, error = evaluator(doc, config), None
                except CaloptInputError as exc:
                    result, error = None, str(exc)
                except Exception as exc:  # a failed evaluation is recorded, the campaign goes on
                    result, error = None, f"{type(exc).__name__}: {exc}"
                    warnings.warn(f"trial {tid} failed:\n{traceback.format_exc()}", stacklevel=2)
                runner.record(tid, result, error, time.perf_counter() - t0)

        def submit_dask(jobs: list[Job]) -> None:
            from distributed import as_completed

            assert client is not None
            futures = {client.submit(_timed, evaluator, doc, config, key=f"calopt-trial-{tid}-{time.time_ns()}",
                                     retries=1, pure=False): tid for tid, doc, config in jobs}  # fmt: skip
            left = len(futures)
            for fut in as_completed(futures):
                tid = futures[fut]
                try:
                    result, seconds = fut.result()
                except Exception as exc:  # the evaluation raised, its worker died twice, or the scheduler is gone
                    gone = scheduler_gone(fut, scheduler, f"{left} trials unfinished",
                                          "they stay pending, and calopt optimize --resume evaluates them")  # fmt: skip
                    if gone is not None:  # not the design's failure: the trials must not be recorded as failed
                        raise gone from None
                    runner.record(tid, None, f"{type(exc).__name__}: {exc}", 0.0)
                else:
                    runner.record(tid, result, None, seconds)
                left -= 1

        runner.submit = submit_dask if client is not None else submit_local
        try:
            runner.run()
        finally:
            if client is not None:
                cluster = getattr(client, "_calopt_cluster", None)
                client.close()
                if cluster is not None:
                    cluster.close()
    return db_path


def _timed(evaluator: Evaluator, doc: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    result = evaluator(doc, config)
    return result, time.perf_counter() - t0


def _client(workers: int, scheduler: str | None) -> Any:
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # no worker chatter between the progress lines
    # nor the client's log of a lost scheduler (after its reconnection timeout, when the scheduler
    # died between two batches): the campaign stops with its own one-line error (scheduler_gone)
    logging.getLogger("distributed.client").setLevel(logging.CRITICAL)

    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise CaloptInputError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    client._calopt_cluster = cluster  # type: ignore[attr-defined]
    return client


def _to_toml(campaign: Campaign) -> str:
    import tomli_w

    def drop_none(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: drop_none(v) for k, v in o.items() if v is not None}
        if isinstance(o, list):
            return [drop_none(v) for v in o]
        return o

    return tomli_w.dumps(drop_none(campaign.to_dict()))
