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

    [objective]
    metrics = ["pi0_mass_width_mev"]   # one metric, or two for a Pareto front
    budget = 25000             # optional soft budget [kCHF] (single objective):
    penalty = 2.0              #   + penalty * (overrun / 10 %)^2 in the metric's units

    [[optimizers]]             # run one after another; they share finished evaluations
    name = "bo"
    evaluations = 20
    batch = 2                  # points asked together and evaluated in parallel
    seed = 0
    options = { n_initial = 6 }

    [space]                    # calopt.optimize.family
    ...

Every table is validated (unknown keys, types, ranges, the rules between keys) by the models of
:mod:`calopt.optimize.schema`; a mistake is one line naming the file, the table and the key.

Objectives are minimised: metrics that are better when larger (``significance``,
``pi0_efficiency``; the directions are the metric registry's, :mod:`calopt.metrics.registry`)
enter with a minus sign. A hard budget is ``max_cost`` in ``[space]``
(designs above it are never proposed).

Determinism: optimisers ask in batches of a fixed size and are told the whole batch in asking
order, so the sequence of designs does not depend on the number of workers or on which
evaluation finishes first. ``--resume`` replays the finished batches into fresh optimisers
(asking again and checking that the same designs come out), re-evaluates the trials that were
pending when the campaign stopped, and goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.design import read_toml
from calopt.errors import CaloptInputError
from calopt.files import atomic_path, make_output_folder, output_lock
from calopt.metrics.registry import get_metric, why_unmeasured
from calopt.optimize.family import DesignFamily
from calopt.optimize.optimizers import get_optimizer
from calopt.optimize.schema import CampaignTable, EvaluateTable, ObjectiveTable, OptimizerTable, parse
from calopt.optimize.store import CampaignStore, Trial

__all__ = ["Campaign", "EvaluateConfig", "Objective", "OptimizerConfig", "evaluate_design", "load_campaign",
           "run_campaign"]  # fmt: skip

DB_NAME = "campaign.sqlite"
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

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[evaluate]") -> EvaluateConfig:
        return cls(**parse(EvaluateTable, doc, where).model_dump())

    def settings(self) -> Any:
        from calopt.pipeline import QUICK_READOUT, QUICK_TRAINING, EvaluateSettings

        st = EvaluateSettings(pileup=self.pileup, n_events=self.events, seed=self.seed, n_resolution=self.n_resolution,
                              method=self.method)  # fmt: skip
        if self.quick:
            st = replace(st, readout=QUICK_READOUT, training=QUICK_TRAINING)
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

    def values(self, result: dict[str, Any]) -> tuple[list[float] | None, str | None]:
        """The minimised objective values of an evaluation, or None and why it failed."""
        out = []
        for name in self.metrics:
            m = get_metric(name)
            v = result.get(name)
            if v is None or not math.isfinite(float(v)):
                return None, f"{name} {why_unmeasured(m, result)}"
            out.append(m.sign * float(v))
        if self.budget is not None:
            overrun = max(0.0, float(result["cost"]) / self.budget - 1.0)
            out[0] += self.penalty * (overrun / 0.1) ** 2
        return out, None


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
class Campaign:
    name: str
    family: DesignFamily
    objective: Objective
    evaluate: EvaluateConfig
    optimizers: tuple[OptimizerConfig, ...]
    description: str = ""

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "campaign") -> Campaign:
        """The campaign of a parsed campaign file (or of its stored settings, :meth:`to_dict`); a
        one-line :class:`CaloptInputError` starting with ``source`` and the table if it is not valid
        (the models of :mod:`calopt.optimize.schema`, then the optimisers' own checks)."""
        t = parse(CampaignTable, doc, source)
        objective = Objective.from_dict(t.objective, f"{source}: [objective]")
        optimizers = tuple(OptimizerConfig.from_dict(o, f"{source}: [[optimizers]] {k + 1}")
                           for k, o in enumerate(t.optimizers))  # fmt: skip
        family = DesignFamily.from_dict(t.space, f"{source}: [space]")
        evaluate = EvaluateConfig.from_dict(t.evaluate, f"{source}: [evaluate]")
        campaign = cls(t.name, family, objective, evaluate, optimizers, t.description)
        try:
            campaign.evaluate.settings().validate()  # e.g. an unknown fastsim backend
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "evaluate": asdict(self.evaluate),
            "objective": {k: v for k, v in asdict(self.objective).items() if v is not None}
            | {"metrics": list(self.objective.metrics)},
            "optimizers": [asdict(o) for o in self.optimizers],
            "space": self.family.to_dict(),
        }

    def digest(self) -> str:
        """Hash of everything that determines the trials (not the description)."""
        d = self.to_dict()
        d.pop("description")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


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
    return Campaign.from_dict(doc, str(path))


def evaluate_design(design_doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one design (runs on a Dask worker or in this process); the ``evaluate`` result."""
    from calopt.detector.design import design_from_dict
    from calopt.pipeline import evaluate

    design = design_from_dict(design_doc, "trial design")
    result = evaluate(design, EvaluateConfig(**config).settings()).to_json()
    # keep the database small: drop the per-photon arrays, keep the numbers and histograms

    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, float) and not math.isfinite(o):
            return None
        return o

    return clean(result)


Progress = Callable[[str], None]


@dataclass
class _Runner:
    campaign: Campaign
    store: CampaignStore
    submit: Callable[[list[tuple[int, dict[str, Any]]]], None]
    progress: Progress

    def run(self) -> None:
        space = self.campaign.family.space
        for k, oc in enumerate(self.campaign.optimizers):
            opt = get_optimizer(oc.name, space, seed=oc.seed, n_objectives=self.campaign.objective.n_objectives,
                                **oc.options)  # fmt: skip
            done = self._replay(k, oc, opt)
            batch = max((t.batch for t in self.store.trials(k, metrics=False)), default=-1) + 1
            while done < oc.evaluations:
                points = opt.ask(min(oc.batch, oc.evaluations - done))
                if not points:
                    self.progress(f"{oc.name}: the space is exhausted after {done} evaluations")
                    break
                ids = self.store.add_batch(oc.name, k, batch, [(space.key(p), p) for p in points],
                                           self.campaign.evaluate.seed)  # fmt: skip
                values = self._evaluate(self.store.trials(k, batch=batch, metrics=False))
                opt.tell(points, [values[i] for i in ids])
                done += len(points)
                batch += 1
                self.progress(self._status(k, oc, done))

    def _replay(self, k: int, oc: OptimizerConfig, opt: Any) -> int:
        """Tell the optimiser the batches already in the database (evaluating pending trials)."""
        space = self.campaign.family.space
        trials = self.store.trials(k, metrics=False)
        batches: dict[int, list[Trial]] = {}
        for t in trials:
            batches.setdefault(t.batch, []).append(t)
        done = 0
        for b in sorted(batches):
            rows = batches[b]
            asked = opt.ask(len(rows))
            if [space.key(p) for p in asked] != [t.design_key for t in rows]:
                warnings.warn(f"{oc.name}: batch {b} replayed differently from the database (another calopt "
                              "version?); the stored designs are used", stacklevel=2)  # fmt: skip
            if any(not t.finished for t in rows):
                self.progress(f"{oc.name}: resuming batch {b}")
            values = self._evaluate(rows)
            opt.tell([t.params for t in rows], [values[t.id] for t in rows])
            done += len(rows)
        if done:
            self.progress(f"{oc.name}: {done} evaluations replayed from the database")
        return done

    def _evaluate(self, rows: list[Trial]) -> dict[int, list[float] | None]:
        """Objective values of a batch; evaluates the unfinished rows (reusing a finished trial of
        the same design when there is one) and stores each result as soon as it arrives."""
        todo = []
        for t in rows:
            if t.finished:
                continue
            prior = self.store.finished_result(t.design_key)
            if prior is not None:
                self.store.finish(t.id, status=prior.status, objectives=prior.objectives, metrics=prior.metrics,
                                  cost=prior.cost, channels=prior.channels, seconds=0.0, error=prior.error,
                                  cached=True)  # fmt: skip
            else:
                todo.append(t)
        if todo:
            for t in todo:
                self.store.start(t.id)
            self.submit([(t.id, self.campaign.family.design_dict(t.params, f"trial-{t.id}")) for t in todo])
        return {t.id: t.objectives for t in self.store.trials(ids=[t.id for t in rows], metrics=False)}

    def record(self, trial_id: int, result: dict[str, Any] | None, error: str | None, seconds: float) -> None:
        if result is None:
            self.store.finish(trial_id, status="failed", objectives=None, metrics=None, cost=None, channels=None,
                              seconds=seconds, error=error)  # fmt: skip
            self.progress(f"trial {trial_id} failed: {error}")
            return
        values, why = self.campaign.objective.values(result)
        self.store.finish(trial_id, status="done" if values is not None else "failed", objectives=values,
                          metrics=result, cost=float(result["cost"]), channels=int(result["channels"]),
                          seconds=seconds, error=why)  # fmt: skip
        shown = ", ".join(f"{m} {result.get(m)!s:.6}" for m in self.campaign.objective.metrics)
        self.progress(f"trial {trial_id}: {shown}" + (f" (failed: {why})" if why else "") + f" [{seconds:.0f} s]")

    def _status(self, k: int, oc: OptimizerConfig, done: int) -> str:
        ok = [t.objectives for t in self.store.trials(k, metrics=False) if t.objectives is not None]
        best = min((o[0] for o in ok), default=None)
        return f"{oc.name}: {done}/{oc.evaluations} evaluations" + (f", best {best:.4g}" if best is not None else "")


Evaluator = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def run_campaign(campaign: Campaign, out: str | Path, *, workers: int = 1, scheduler: str | None = None,
                 resume: bool = False, progress: Progress | None = None,
                 evaluator: Evaluator = evaluate_design) -> Path:  # fmt: skip
    """Run (or resume) a campaign in folder ``out``; returns the database path.

    ``evaluator(design_document, evaluate_config) -> metrics`` evaluates one design (default:
    :func:`evaluate_design`); it must be importable by the Dask workers."""
    out = Path(out)
    db_path = out / DB_NAME
    say = progress or (lambda msg: None)
    if workers < 1:
        raise CaloptInputError(f"--workers must be at least 1, got {workers}")
    make_output_folder(out)
    # one run per campaign: a second one (e.g. two --resume) would evaluate the same trials twice
    with output_lock(db_path, "campaign"):
        return _run_locked(campaign, out, db_path, workers, scheduler, resume, say, evaluator)


def _run_locked(campaign: Campaign, out: Path, db_path: Path, workers: int, scheduler: str | None, resume: bool,
                say: Progress, evaluator: Evaluator) -> Path:  # fmt: skip
    """:func:`run_campaign` under the campaign's lock."""
    if db_path.exists() and not resume:
        raise CaloptInputError(f"{db_path} exists: continue it with --resume, or choose another output folder")
    digest = campaign.digest()
    if db_path.exists():
        with CampaignStore(db_path, read_only=True) as st:
            old = st.get_meta("digest")
        if old is not None and old != digest:
            raise CaloptInputError(f"{db_path} belongs to a campaign with other settings; --resume needs the same "
                                   "campaign file (or choose another output folder)")  # fmt: skip
    # parallel evaluations share the caches of shower libraries, regressors and events: the first
    # evaluation that needs one builds it under a file lock while the others wait for it
    client = _client(workers, scheduler) if (workers > 1 or scheduler) else None
    from calopt import __version__

    with CampaignStore(db_path) as store:
        if store.get_meta("digest") is None:
            store.set_meta(digest=digest, settings=json.dumps(campaign.to_dict()), calopt_version=__version__,
                           created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), name=campaign.name)  # fmt: skip
        # the settings as read (not the user's file, which may sit in this folder with its comments)
        with atomic_path(out / SETTINGS_NAME) as tmp:
            Path(tmp).write_text(_to_toml(campaign))
        config = asdict(campaign.evaluate)
        runner = _Runner(campaign, store, lambda jobs: None, say)

        def submit_local(jobs: list[tuple[int, dict[str, Any]]]) -> None:
            for tid, doc in jobs:
                t0 = time.perf_counter()
                try:
                    result, error = evaluator(doc, config), None
                except CaloptInputError as exc:
                    result, error = None, str(exc)
                except Exception as exc:  # a failed evaluation is recorded, the campaign goes on
                    result, error = None, f"{type(exc).__name__}: {exc}"
                    warnings.warn(f"trial {tid} failed:\n{traceback.format_exc()}", stacklevel=2)
                runner.record(tid, result, error, time.perf_counter() - t0)

        def submit_dask(jobs: list[tuple[int, dict[str, Any]]]) -> None:
            from distributed import as_completed

            assert client is not None
            futures = {client.submit(_timed, evaluator, doc, config, key=f"calopt-trial-{tid}-{time.time_ns()}",
                                     retries=1, pure=False): tid for tid, doc in jobs}  # fmt: skip
            for fut in as_completed(futures):
                tid = futures[fut]
                try:
                    result, seconds = fut.result()
                    runner.record(tid, result, None, seconds)
                except Exception as exc:  # the evaluation raised, or its worker died twice
                    runner.record(tid, None, f"{type(exc).__name__}: {exc}", 0.0)

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
