"""``calopt report``: a self-contained HTML report of a campaign (figures inlined as PNG).

Sections: a summary per optimiser; best-so-far against evaluations; for a two-objective campaign
the front of the two objectives, every finished trial with the statistical error of each physics
metric as an error bar and the layouts of (up to six) Pareto-optimal designs drawn as thumbnails
beside the plot, each linked to its point; the Pareto fronts of each physics metric against
channels and cost, with error bars; the best layouts drawn; the trial table (metrics with their
errors); the settings and the command that reproduce the campaign.

A module campaign (:mod:`calopt.optimize.module_campaign`) gets its own sections: what is
minimised, the answer, the optimisers, best so far, each descent's objective and parameters
against the step (with its steps' gradients, predicted and measured decreases and rho), the
objective of every trial over the box, and the trials.

The errors are those ``evaluate`` stored with each trial (``<metric>_err``, the key named by the
metric registry's :attr:`~calopt.metrics.registry.Metric.error_key`); a trial without one gets no
error bar. :func:`pareto_data` and :func:`objective_front_data` return what the plots draw.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.design import Design
from calopt.errors import CaloptInputError
from calopt.files import atomic_path, check_output_file, describe_file
from calopt.metrics.registry import METRICS, get_metric, metric_names
from calopt.optimize.campaign import DB_NAME, SETTINGS_NAME, Campaign, campaign_answer, combined
from calopt.optimize.family import DesignFamily
from calopt.optimize.module_campaign import DESCENT, ModuleFamily, step_from_metrics
from calopt.optimize.pareto import pareto_front
from calopt.optimize.store import CampaignStore, Trial

__all__ = ["check_campaign_folder", "is_report", "objective_front_data", "pareto_data", "write_report"]

MAX_THUMBNAILS = 6
"""Most Pareto-optimal layouts drawn on the front of the two objectives."""

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _label(metric: str) -> str:
    m = get_metric(metric)
    return m.label() + (" (maximised)" if m.direction == "max" else " (minimised)")


def _best_so_far(campaign: Campaign, trials: list[Trial]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    m = campaign.objective.metrics[0]
    sign = 1.0 if campaign.is_module else get_metric(m).sign
    for k, oc in enumerate(campaign.optimizers):
        vals = [t.objectives[0] if t.objectives else math.inf for t in trials if t.optimizer_index == k]
        if not vals:
            continue
        best = np.minimum.accumulate(np.array(vals))
        shown = np.where(np.isfinite(best), sign * best, np.nan)
        ax.step(np.arange(1, len(vals) + 1), shown, where="post", color=COLOURS[k % len(COLOURS)],
                label=f"{oc.name} (seed {oc.seed})")  # fmt: skip
    ax.set_xlabel("evaluations")
    label = MODULE_LABEL if campaign.is_module else get_metric(m).label()
    ax.set_ylabel(f"best {label}" + (" incl. budget penalty" if campaign.objective.budget else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def _number(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def _metric_value(t: Trial, name: str) -> float:
    """Metric ``name`` of a trial (NaN if missing); channels and cost also from the trial row."""
    v = _number((t.metrics or {}).get(name))
    if math.isnan(v) and name in ("channels", "cost"):
        v = _number(t.channels if name == "channels" else t.cost)
    return v


def _metric_error(t: Trial, name: str) -> float:
    """The stored statistical error of metric ``name`` of a trial: NaN where there is none, 0 for
    an exact metric (channels, cost)."""
    key = METRICS[name].error_key
    return 0.0 if key is None else _number((t.metrics or {}).get(key))


def pareto_data(trials: list[Trial], metric: str) -> dict[str, Any] | None:
    """What the plots of physics ``metric`` against channels and cost draw (None with fewer than
    two finished trials that measured it): ``ids``, ``value``, ``error`` (NaN where a trial stored
    none), ``channels``, ``cost`` (arrays over those trials) and the Pareto-optimal trials of the
    metric against each, ``front_channels`` and ``front_cost`` (boolean masks)."""
    done = [t for t in trials if t.metrics is not None and not math.isnan(_metric_value(t, metric))]
    if len(done) < 2:
        return None
    value = np.array([_metric_value(t, metric) for t in done])
    channels = np.array([_metric_value(t, "channels") for t in done])
    cost = np.array([_metric_value(t, "cost") for t in done])
    sign = get_metric(metric).sign
    return {
        "ids": [t.id for t in done],
        "value": value,
        "error": np.array([_metric_error(t, metric) for t in done]),
        "channels": channels,
        "cost": cost,
        "front_channels": pareto_front(np.stack([channels, sign * value], axis=1)),
        "front_cost": pareto_front(np.stack([cost, sign * value], axis=1)),
    }


def _one_per_design(trials: list[Trial]) -> list[Trial]:
    """``trials`` in order, each design (``design_key``) only at its first trial."""
    seen: set[str] = set()
    out = []
    for t in trials:
        if t.design_key not in seen:
            seen.add(t.design_key)
            out.append(t)
    return out


def _errorbar(ax: Any, x: np.ndarray, y: np.ndarray, *, xerr: np.ndarray | None = None,
              yerr: np.ndarray | None = None, **kw: Any) -> None:  # fmt: skip
    """Points with error bars (a NaN error: no bar)."""

    def bars(e: np.ndarray | None) -> np.ndarray | None:
        return None if e is None or not np.isfinite(e).any() else np.nan_to_num(e, nan=0.0)

    ax.errorbar(x, y, xerr=bars(xerr), yerr=bars(yerr), **kw)


def _pareto_plots(trials: list[Trial]) -> str:
    import matplotlib.pyplot as plt

    out = []
    for metric in metric_names("physics"):
        data = pareto_data(trials, metric)
        if data is None:
            continue
        y, err = data["value"], data["error"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, col, name in ((axes[0], "channels", "readout channels"), (axes[1], "cost", "cost [kCHF]")):
            x, front = data[col], data[f"front_{col}"]
            _errorbar(ax, x, y, yerr=err, fmt="o", ms=4, color="0.6", ecolor="0.75", elinewidth=0.8, capsize=2,
                      label="trials (± stat. error)")  # fmt: skip
            order = np.argsort(x[front])
            _errorbar(ax, x[front][order], y[front][order], yerr=err[front][order], fmt="o-", ms=5, color="#d62728",
                      capsize=2, label="Pareto front")  # fmt: skip
            ax.set_xlabel(name)
            ax.set_ylabel(get_metric(metric).label())
            ax.grid(alpha=0.3)
            ax.legend()
        out.append(f"<h3>{html.escape(metric)}</h3>" + _png(fig))
    return "\n".join(out) or "<p>Not enough finished trials for a Pareto front.</p>"


def objective_front_data(campaign: Campaign, trials: list[Trial]) -> dict[str, Any] | None:
    """What the plot of a two-objective campaign's front draws (None for one objective or fewer
    than two trials with both objectives): ``x_metric`` and ``y_metric`` (a cost-kind objective on
    the x axis), over the trials with both objectives ``ids``, ``x``, ``y`` (the metrics, not the
    signed objectives), ``xerr``, ``yerr`` (the stored errors; 0 for channels and cost, NaN where a
    trial stored none), ``front`` (mask of the Pareto-optimal ones), and ``thumbnails``: the ids of
    the Pareto-optimal designs drawn (one per design, at most :data:`MAX_THUMBNAILS`, evenly spread
    along the front, by increasing x)."""
    metrics = list(campaign.objective.metrics)
    if len(metrics) != 2:
        return None
    if METRICS[metrics[0]].kind == "cost" and METRICS[metrics[1]].kind != "cost":
        metrics.reverse()
    ym, xm = metrics
    ok = [t for t in trials if t.objectives is not None]
    ok = [t for t in ok if not (math.isnan(_metric_value(t, xm)) or math.isnan(_metric_value(t, ym)))]
    if len(ok) < 2:
        return None
    x = np.array([_metric_value(t, xm) for t in ok])
    y = np.array([_metric_value(t, ym) for t in ok])
    front = pareto_front(np.array([t.objectives for t in ok], dtype=float))
    on_front = sorted((i for i in np.flatnonzero(front)), key=lambda i: (x[i], ok[i].id))
    unique = _one_per_design([ok[i] for i in on_front])
    if len(unique) > MAX_THUMBNAILS:
        unique = [unique[int(k)] for k in np.round(np.linspace(0, len(unique) - 1, MAX_THUMBNAILS))]
    return {
        "x_metric": xm,
        "y_metric": ym,
        "ids": [t.id for t in ok],
        "x": x,
        "y": y,
        "xerr": np.array([_metric_error(t, xm) for t in ok]),
        "yerr": np.array([_metric_error(t, ym) for t in ok]),
        "front": front,
        "thumbnails": [t.id for t in unique],
    }


def _thumbnail(ax: Any, design: Design, tid: int, extent: tuple[float, float]) -> None:
    """A trial's layout drawn small on ``ax``: the wall within ±``extent`` (x, y) [mm], without
    legend, axes or the module and cell boundaries."""
    from calopt.detector.plot import plot_design

    plot_design(design, ax=ax)
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    for drawn in ax.collections:  # module and cell boundaries would blacken a small picture
        drawn.set_linewidth(0.0)
    ax.set_xlim(-extent[0], extent[0])
    ax.set_ylim(-extent[1], extent[1])
    ax.set_title(f"trial {tid}", fontsize=8, color="#d62728", pad=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    for spine in ax.spines.values():
        spine.set_edgecolor("#d62728")


def _thumbnail_extent(campaign: Campaign, designs: list[Design]) -> tuple[float, float]:
    """Half-width and half-height [mm] that the thumbnails show, the same for all: the modules of
    the regions that have a parameter, in any of ``designs``, and one module around them (the
    whole wall when the last region, the rest, has one)."""
    wall = designs[0].wall
    varied = {p.name.split(".")[0] for p in _layout_family(campaign).params}
    x, y = wall.centres
    half_x = half_y = 0.0
    for d in designs:
        shown = np.isin(d.region_index, [k for k, r in enumerate(d.regions) if r.name in varied])
        if shown.any():
            half_x = max(half_x, float(np.abs(x[shown]).max()) + 1.5 * wall.pitch)
            half_y = max(half_y, float(np.abs(y[shown]).max()) + 1.5 * wall.pitch)
    if half_x == 0.0:
        return wall.half_width, wall.half_height
    return min(half_x, wall.half_width), min(half_y, wall.half_height)


def _objective_front(campaign: Campaign, trials: list[Trial]) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    data = objective_front_data(campaign, trials)
    if data is None:
        return "<p>Not enough trials with both objectives for a front.</p>"
    x, y, xerr, yerr, front = data["x"], data["y"], data["xerr"], data["yerr"], data["front"]
    xm, ym = data["x_metric"], data["y_metric"]
    fig, ax = plt.subplots(figsize=(11, 7.5))
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.08, top=0.7)  # the thumbnails: a row above the plot
    _errorbar(ax, x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4, color="0.6", ecolor="0.75", elinewidth=0.8, capsize=2,
              label="trials (± stat. error)")  # fmt: skip
    order = np.argsort(x[front])
    _errorbar(ax, x[front][order], y[front][order], xerr=xerr[front][order], yerr=yerr[front][order], fmt="o-",
              ms=6, color="#d62728", capsize=2, label="Pareto front")  # fmt: skip
    max_cost = _layout_family(campaign).max_cost
    if xm == "cost" and max_cost is not None and max_cost <= 1.1 * np.nanmax(x):
        ax.axvline(max_cost, color="0.3", ls="--", lw=1, label="max_cost")
    ax.set_xlabel(_label(xm))
    ax.set_ylabel(_label(ym))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    # thumbnails: MAX_THUMBNAILS slots of equal width across the top, all on the same scale
    by_id = {t.id: t for t in trials}
    ids = data["thumbnails"]
    designs = [_layout_family(campaign).design(by_id[i].params, f"trial {i}") for i in ids]
    extent = _thumbnail_extent(campaign, designs)
    slot = 1.0 / MAX_THUMBNAILS
    left = 0.5 - slot * len(ids) / 2
    w_in = 0.9 * slot * ax.get_position().width * fig.get_figwidth()
    h = w_in * (extent[1] / extent[0]) / (ax.get_position().height * fig.get_figheight())
    for k, (tid, d) in enumerate(zip(ids, designs)):
        inset = ax.inset_axes((left + (k + 0.05) * slot, 1.05, 0.9 * slot, h))
        _thumbnail(inset, d, tid, extent)
        i = data["ids"].index(tid)
        fig.add_artist(ConnectionPatch(xyA=(x[i], y[i]), coordsA=ax.transData, xyB=(0.5, 0.0),
                                       coordsB=inset.transAxes, color="#d62728", lw=0.6, alpha=0.7))  # fmt: skip
    note = (f"Thumbnails: the layouts of the Pareto-optimal designs (at most {MAX_THUMBNAILS}, spread along the "
            f"front), each linked to its point, all showing the central ±{extent[0]:.0f} × ±{extent[1]:.0f} mm "
            "(the regions with parameters); colours as in the best layouts below (one colour family per "
            "technology, darker for smaller cells). Error bars: the statistical errors stored with each "
            "evaluation.")  # fmt: skip
    return _png(fig) + f"<p>{html.escape(note)}</p>"


def _layouts(campaign: Campaign, best: list[Trial]) -> str:
    import matplotlib.pyplot as plt

    from calopt.detector.plot import plot_design

    parts = []
    for t in best:
        d = _layout_family(campaign).design(t.params, f"trial {t.id}")
        fig, ax = plt.subplots(figsize=(6, 5))
        plot_design(d, ax=ax)
        shown = ", ".join(f"{m} = {t.metrics[m]:.4g}" for m in campaign.objective.metrics
                          if t.metrics and isinstance(t.metrics.get(m), int | float))  # fmt: skip
        parts.append(
            f"<h3>trial {t.id} ({html.escape(t.optimizer)}): {html.escape(shown)}</h3>"
            + _png(fig)
            + f"<details><summary>design TOML</summary><pre>{html.escape(d.to_toml())}</pre></details>"
        )
    return "\n".join(parts)


def _table(campaign: Campaign, trials: list[Trial]) -> str:
    # the objectives first, then the rest of the registry's physics metrics
    metrics = list(dict.fromkeys([*campaign.objective.metrics, *metric_names("physics")]))
    metrics = [k for k in metrics if METRICS[k].kind == "physics"]
    head = ["id", "optimizer", "stage", "batch", "seed", "crossings", "status", "objectives (minimised)",
            *(METRICS[k].label() for k in metrics), "channels", "cost [kCHF]", "seconds", "parameters",
            "error"]  # fmt: skip
    rows = []
    for t in trials:
        m = t.metrics or {}
        status = t.status + (" (cached)" if t.cached else "")
        cells = [t.id, t.optimizer, t.stage, t.batch, t.seed, t.events or "", status,
                 _objectives(t.objectives, t.objective_errors)]  # fmt: skip
        cells += [_value(m, k) for k in metrics]
        cells += [t.channels if t.channels is not None else "", f"{t.cost:.0f}" if t.cost is not None else "",
                  f"{t.seconds:.1f}" if t.seconds is not None else "",
                  ", ".join(f"{k}={v}" for k, v in sorted(t.params.items())), t.error or ""]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
            + "</table>")  # fmt: skip


def _objectives(values: list[float] | None, errors: list[float | None] | None) -> str:
    """Objective values with their statistical errors ("" for a failed trial)."""
    if values is None:
        return ""
    errs = errors or [None] * len(values)
    return ", ".join(f"{v:.4g}" + ("" if e is None else f" ± {e:.2g}") for v, e in zip(values, errs))


def _answer(campaign: Campaign, trials: list[Trial]) -> str:
    """The campaign's answer (:func:`campaign_answer`) and the confirmation stage: each confirmed
    design's value in the search (its replicates combined) beside its confirmation."""
    best = campaign_answer(trials)
    if best is None:
        return "<p>No successful trial yet.</p>"
    how = (
        "the best design of the confirmation stage, measured again on an independent seed"
        if best["confirmed"]
        else f"the best search value ({best['replicates']} evaluation(s); without a confirmation stage it may be "
        "a lucky draw)"
    )
    text = (f"<p>Trial {best['trial']}: objectives {_objectives(best['objectives'], best['objective_errors'])}, "
            f"{html.escape(how)}; cost {best['cost']:.6g} kCHF, {best['channels']} channels; "
            f"{html.escape(', '.join(f'{k}={v}' for k, v in sorted(best['params'].items())))}.</p>")  # fmt: skip
    confirm = [t for t in trials if t.stage == "confirm"]
    if not confirm:
        return text
    search: dict[str, list[Trial]] = {}
    for t in trials:
        if t.stage == "search" and t.finished:
            search.setdefault(t.design_key, []).append(t)
    rows = []
    for t in confirm:
        sv, se = combined(search.get(t.design_key, []))
        params = html.escape(", ".join(f"{k}={v}" for k, v in sorted(t.params.items())))
        cells = [str(t.id), _objectives(sv, se), _objectives(t.objectives, t.objective_errors), str(t.events or ""),
                 html.escape(t.status), params]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    n_label = "showers" if campaign.is_module else "crossings"
    return text + ("<table><tr><th>trial</th><th>search value</th><th>confirmed value</th>"
                   f"<th>{n_label}</th>"
                   "<th>status</th><th>parameters</th></tr>" + "".join(rows) + "</table>")  # fmt: skip


def _value(doc: dict[str, Any], name: str) -> str:
    """A metric of a stored evaluation with its error where it has one ("" if missing)."""
    v = doc.get(name)
    if not isinstance(v, int | float):
        return ""
    key = METRICS[name].error_key
    err = doc.get(key) if key else None
    return f"{v:.4g}" + (f" ± {err:.2g}" if isinstance(err, int | float) else "")


def _summary(campaign: Campaign, trials: list[Trial]) -> tuple[str, list[Trial]]:
    ok = [t for t in trials if t.objectives is not None]
    overall = min((t.objectives[0] for t in ok), default=None)  # type: ignore[index]
    rows = []
    best_trials = []
    for k, oc in enumerate(campaign.optimizers):
        mine = [t for t in trials if t.optimizer_index == k]
        good = [t for t in mine if t.objectives is not None]
        best = min(good, key=lambda t: t.objectives[0]) if good else None  # type: ignore[index]
        reach = next((i + 1 for i, t in enumerate(mine) if t.objectives is not None and overall is not None
                      and t.objectives[0] <= overall + 0.01 * abs(overall)), None)  # fmt: skip
        if best is not None:
            best_trials.append(best)
        rows.append(
            f"<tr><td>{html.escape(oc.name)}</td><td>{oc.seed}</td><td>{len(mine)} / {oc.evaluations}</td>"
            f"<td>{sum(t.status == 'failed' for t in mine)}</td>"
            f"<td>{'' if best is None else f'{best.objectives[0]:.4g} (trial {best.id})'}</td>"  # type: ignore[index]
            f"<td>{'' if reach is None else reach}</td></tr>"
        )
    table = ("<table><tr><th>optimizer</th><th>seed</th><th>evaluations</th><th>failed</th><th>best objective</th>"
             "<th>evaluations to within 1 % of the campaign's best</th></tr>" + "".join(rows) + "</table>")  # fmt: skip
    # the best designs: each optimiser's best, and for two objectives the Pareto set (at most 6)
    if campaign.objective.n_objectives == 2 and ok:
        vals = np.array([t.objectives for t in ok])
        front = [t for t, f in zip(ok, pareto_front(vals)) if f]
        best_trials = sorted(front, key=lambda t: t.objectives[0])[:6]  # type: ignore[index]
    return table, _one_per_design(best_trials)


def _layout_family(campaign: Campaign) -> DesignFamily:
    """The design family of a layout campaign (the layout sections are not drawn for modules)."""
    assert isinstance(campaign.family, DesignFamily)
    return campaign.family


MODULE_LABEL = "J (module objective)"


def _module_report(campaign: Campaign, trials: list[Trial], summary: str, meta: dict[str, Any],
                   toml_text: str) -> list[str]:  # fmt: skip
    """The parts of the report of a module campaign (:mod:`calopt.optimize.module_campaign`):
    what is minimised, the answer, the optimisers, best so far, each descent's objective and
    parameters against the step, the objective over the box, the trials, how to reproduce."""
    from calopt import __version__

    fam = campaign.family
    assert isinstance(fam, ModuleFamily)
    p = fam.problem
    finished = [t for t in trials if t.finished]
    terms = " + ".join(f"{w:g} × {name}" for name, w in p.terms)
    limits = ", ".join(f"{k} ≤ {v:g}" for k, v in (("depth [mm]", p.max_depth_mm), ("mass [kg]", p.max_mass_kg),
                                                  ("cost [kCHF]", p.max_cost_kchf)) if v is not None)  # fmt: skip
    box = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in p.box.items())
    return [
        f'<html><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR} {__version__}">'
        f"<title>calopt campaign {html.escape(campaign.name)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Campaign {html.escape(campaign.name)} (module design)</h1><p>{html.escape(campaign.description)}</p>",
        f"<p>{len(finished)} finished trials of {len(trials)} ({sum(t.status == 'failed' for t in trials)} failed). "
        f"Start: {html.escape(fam.start.name)}, {html.escape(fam.start.summary())}. Minimised: J = "
        f"{html.escape(terms)} at {p.energy_gev:g} GeV"
        + (f" + penalties for {html.escape(limits)}" if limits else "")
        + f", over {html.escape(box)}"
        + (" (layered: depth held in X0)" if p.hold_depth_x0 and fam.start.structure == "layers" else "")
        + f". Each point measured on {fam.showers} cascade showers, seed {fam.seed}. Created {meta['created']} "
        f"with calopt {meta['calopt_version']}.</p>",
        "<h2>Answer</h2>" + _answer(campaign, trials),
        "<h2>Optimisers</h2>" + summary,
        "<h2>Best so far</h2>" + (_best_so_far(campaign, trials) if finished else "<p>No finished trial yet.</p>"),
        "<h2>Descent: objective and parameters against the step</h2>" + _descents(campaign, trials),
        "<h2>The objective over the box</h2>" + _module_map(campaign, trials),
        "<h2>Trials</h2>" + _module_table(trials),
        f"<h2>Reproduce</h2><p>Run <code>calopt optimize {SETTINGS_NAME}</code> with the settings below (they are "
        f"also in the campaign folder); settings digest {meta['digest']}.</p><pre>{html.escape(toml_text)}</pre>",
        "</body></html>",
    ]


def _descents(campaign: Campaign, trials: list[Trial]) -> str:
    from calopt.optimize.gradients.descent import answer, steps_figure

    out = []
    for k, oc in enumerate(campaign.optimizers):
        if oc.name != DESCENT:
            continue
        steps = [step_from_metrics(t.metrics or {}) for t in trials if t.optimizer_index == k and t.status == "done"]
        if not steps:
            out.append(f"<p>{html.escape(oc.name)} (entry {k + 1}): no finished step yet.</p>")
            continue
        est = oc.options.get("estimator", "fd")
        final = ", ".join(f"{name} = {v:.4g}" for name, v in answer(steps).items())
        rows = []
        for st in steps:
            grad = ", ".join(f"{g:+.3g} ± {st.gradient_err[n]:.2g}" for n, g in st.gradient.items())
            point = ", ".join(f"{v:.4g}" for v in st.parameters.values())
            cells = [st.index, point, f"{st.value:.4g} ± {st.value_err:.2g}", grad,
                     "" if st.predicted is None else f"{st.predicted:.3g}",
                     "" if st.actual is None else f"{st.actual:.3g} ± {st.actual_err:.2g}",
                     "" if st.rho is None else f"{st.rho:.2f}", "yes" if st.accepted else "no", f"{st.radius:.3g}",
                     st.showers, st.note]  # fmt: skip
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        head = ["step", ", ".join(steps[0].parameters), "J ± err", "gradient ± err (per unit)", "predicted decrease",
                "measured decrease", "rho", "accepted", "radius", "showers (cumulative)", "note"]  # fmt: skip
        out.append(f"<h3>{html.escape(oc.name)} (entry {k + 1}, estimator {html.escape(str(est))})</h3>"
                   + _png(steps_figure(steps)) + f"<p>Answer of this descent: {html.escape(final)}.</p>"
                   + "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
                   + "</table>")  # fmt: skip
    return "\n".join(out) or "<p>No descent in this campaign.</p>"


def _module_map(campaign: Campaign, trials: list[Trial]) -> str:
    """Every finished trial's J in the box: coloured points over two parameters (the descents'
    paths drawn), or J against each parameter."""
    import matplotlib.pyplot as plt

    fam = campaign.family
    assert isinstance(fam, ModuleFamily)
    names = list(fam.problem.box)
    ok = [t for t in trials if t.objectives is not None and t.stage == "search"]
    if not ok:
        return "<p>No finished trial yet.</p>"
    values = np.array([t.objectives[0] for t in ok])  # type: ignore[index]
    if len(names) == 2:
        fig, ax = plt.subplots(figsize=(6.5, 5))
        x = np.array([t.params[names[0]] for t in ok])
        y = np.array([t.params[names[1]] for t in ok])
        sc = ax.scatter(x, y, c=values, cmap="viridis", s=30, edgecolors="k", linewidths=0.3)
        fig.colorbar(sc, ax=ax, label=MODULE_LABEL)
        for k, oc in enumerate(campaign.optimizers):
            path = [t for t in ok if t.optimizer_index == k]
            if oc.name == DESCENT and path:
                ax.plot([t.params[names[0]] for t in path], [t.params[names[1]] for t in path], "-",
                        color=COLOURS[k % len(COLOURS)], label=f"{oc.name} (entry {k + 1})")  # fmt: skip
        (lo0, hi0), (lo1, hi1) = fam.problem.box.values()
        ax.set_xlim(lo0, hi0)
        ax.set_ylim(lo1, hi1)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if any(oc.name == DESCENT for oc in campaign.optimizers):
            ax.legend(loc="best", fontsize=8)
    else:
        fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
        for ax, name in zip(axes[0], names):
            ax.plot([t.params[name] for t in ok], values, "o", ms=4)
            ax.set_xlabel(name)
            ax.set_ylabel(MODULE_LABEL)
    return _png(fig)


def _module_table(trials: list[Trial]) -> str:
    head = ["id", "optimizer", "stage", "step/batch", "seed", "showers", "status", "J (minimised)",
            "energy resolution", "cost [kCHF/module]", "depth [X0]", "seconds", "parameters", "error"]  # fmt: skip
    rows = []
    for t in trials:
        m = t.metrics or {}
        er = m.get("energy_resolution")
        ere = m.get("energy_resolution_err")
        cells = [t.id, t.optimizer, t.stage, t.batch, t.seed, t.events or "", t.status,
                 _objectives(t.objectives, t.objective_errors),
                 "" if not isinstance(er, int | float) else f"{er:.4g}" + (
                     f" ± {ere:.2g}" if isinstance(ere, int | float) else ""),
                 f"{t.cost:.3g}" if t.cost is not None else "",
                 f"{m['depth_x0']:.3g}" if isinstance(m.get("depth_x0"), int | float) else "",
                 f"{t.seconds:.1f}" if t.seconds is not None else "",
                 ", ".join(f"{k}={v:.4g}" for k, v in sorted(t.params.items())), t.error or ""]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
            + "</table>")  # fmt: skip


CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}pre{background:#f6f6f6;padding:8px;
font-size:12px;overflow:auto}img{max-width:100%}"""


GENERATOR = "calopt"
"""The ``<meta name="generator">`` of a report: what marks an HTML page as one, so that ``--out``
replaces an old report but no other file (:func:`is_report`)."""


REPORT_NAME = "report.html"  # a campaign's report in its folder


def check_report_output(path: Path) -> None:
    """Refuse, without touching it, a report output that cannot be written or that is another
    file than a calopt report (an earlier report is replaced)."""
    check_output_file(path, "calopt report (HTML page)", is_report, overwrite=None, what="--out")


def is_report(path: Path) -> bool:
    """True if ``path`` is an HTML page written by :func:`write_report` (this calopt's, with its
    generator tag, or an earlier one's, whose title starts with "calopt campaign")."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024).decode("utf-8", errors="replace")
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}' in head or (
        head.startswith("<html><head>") and "<title>calopt campaign " in head)  # fmt: skip


def check_campaign_folder(folder: Path) -> Path:
    """The database of the campaign folder ``folder`` (checked when it is opened,
    :class:`CampaignStore`); or one line saying what ``folder`` is instead and that a campaign
    folder was expected."""
    if not folder.exists():
        raise CaloptInputError(f"campaign folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise CaloptInputError(f"{str(folder)!r} is {describe_file(folder)}, expected a campaign folder "
                               f"(holding {DB_NAME})")  # fmt: skip
    db = folder / DB_NAME
    if not db.is_file():
        raise CaloptInputError(f"{str(folder)!r} is not a campaign folder: no {DB_NAME} in it")
    return db


def write_report(folder: str | Path, out: str | Path | None = None, style: str | None = None) -> Path:
    """Write ``report.html`` for the campaign in ``folder`` (or to ``out``), its figures in the
    plot ``style`` (:mod:`calopt.plotting`); returns its path.

    Everything is checked before anything is written: the campaign folder and its database
    (read only: a report never changes a campaign), and the output, which may replace an earlier
    report but no other file (:func:`~calopt.files.check_output_file`, :func:`is_report`)."""
    folder = Path(folder)
    db = check_campaign_folder(folder)
    path = Path(out) if out is not None else folder / REPORT_NAME
    if path.suffix.lower() not in (".html", ".htm"):
        found = f" is {describe_file(path)};" if path.exists() else ":"
        raise CaloptInputError(f"--out {str(path)!r}{found} the report is an .html file")
    check_report_output(path)
    with CampaignStore(db, read_only=True) as store:
        settings = store.get_meta("settings")
        if settings is None:
            raise CaloptInputError(f"campaign database {str(db)!r} holds no campaign settings (a campaign that "
                                   "never started?); nothing to report")  # fmt: skip
        meta = {k: store.get_meta(k) for k in ("created", "calopt_version", "digest")}
        trials = store.trials()
    from calopt.plotting import plot_style

    campaign = Campaign.from_dict(json.loads(settings), str(db))
    toml_file = folder / SETTINGS_NAME
    toml_text = toml_file.read_text() if toml_file.is_file() else settings
    with plot_style(style):
        summary, best = _summary(campaign, trials)
        if campaign.is_module:
            parts = _module_report(campaign, trials, summary, meta, toml_text)
        else:
            parts = _layout_report(campaign, trials, summary, best, meta, toml_text)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts))
    return path


def _layout_report(campaign: Campaign, trials: list[Trial], summary: str, best: list[Trial], meta: dict[str, Any],
                   toml_text: str) -> list[str]:  # fmt: skip
    """The parts of the report of a layout campaign (module docstring)."""
    from calopt import __version__

    finished = [t for t in trials if t.finished]
    front = ""
    if campaign.objective.n_objectives == 2:
        front = "<h2>Front of the two objectives</h2>" + _objective_front(campaign, trials)
    return [
        f'<html><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR} {__version__}">'
        f"<title>calopt campaign {html.escape(campaign.name)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Campaign {html.escape(campaign.name)}</h1><p>{html.escape(campaign.description)}</p>",
        f"<p>{len(finished)} finished trials of {len(trials)} ({sum(t.status == 'failed' for t in trials)} failed); "
        f"objective: {', '.join(_label(m) for m in campaign.objective.metrics)}"
        + (
            f", soft budget {campaign.objective.budget:g} kCHF (penalty {campaign.objective.penalty:g} per "
            "(10 % overrun)²)"
            if campaign.objective.budget
            else ""
        )
        + f"; evaluations at pile-up μ = {campaign.evaluate.pileup:g} with {campaign.evaluate.events} crossings, "
        f"seed {campaign.evaluate.seed}. Created {meta['created']} with calopt {meta['calopt_version']}.</p>",
        "<h2>Answer</h2>" + _answer(campaign, trials),
        "<h2>Optimisers</h2>" + summary,
        "<h2>Best so far</h2>" + (_best_so_far(campaign, trials) if finished else "<p>No finished trial yet.</p>"),
        front,
        "<h2>Physics against channels and cost</h2>" + _pareto_plots(trials),
        "<h2>Best layouts</h2>" + (_layouts(campaign, best) if best else "<p>No successful trial yet.</p>"),
        "<h2>Trials</h2>" + _table(campaign, trials),
        f"<h2>Reproduce</h2><p>Run <code>calopt optimize {SETTINGS_NAME}</code> with the settings below (they are "
        "also in the campaign folder); the same settings give the same trials with any "
        f"number of workers (settings digest {meta['digest']}).</p>"
        f"<pre>{html.escape(toml_text)}</pre>",
        "</body></html>",
    ]
