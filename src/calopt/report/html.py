"""``calopt report``: a self-contained HTML report of a campaign (figures inlined as PNG).

Sections: a summary per optimiser; best-so-far against evaluations; the Pareto fronts of the
physics metrics against channels and cost; the best layouts drawn; the trial table; the
settings and the command that reproduce the campaign.
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

from calopt.errors import CaloptInputError
from calopt.files import atomic_path, check_writable
from calopt.metrics.registry import METRICS, get_metric, metric_names
from calopt.optimize.campaign import DB_NAME, SETTINGS_NAME, Campaign
from calopt.optimize.pareto import pareto_front
from calopt.optimize.store import CampaignStore, Trial

__all__ = ["write_report"]

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
    sign = get_metric(m).sign
    for k, oc in enumerate(campaign.optimizers):
        vals = [t.objectives[0] if t.objectives else math.inf for t in trials if t.optimizer_index == k]
        if not vals:
            continue
        best = np.minimum.accumulate(np.array(vals))
        shown = np.where(np.isfinite(best), sign * best, np.nan)
        ax.step(np.arange(1, len(vals) + 1), shown, where="post", color=COLOURS[k % len(COLOURS)],
                label=f"{oc.name} (seed {oc.seed})")  # fmt: skip
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best {get_metric(m).label()}" + (" incl. budget penalty" if campaign.objective.budget else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def _pareto_plots(trials: list[Trial]) -> str:
    import matplotlib.pyplot as plt

    done = [t for t in trials if t.metrics is not None]
    out = []
    for metric in metric_names("physics"):
        pts = [(t.metrics[metric], t.channels, t.cost) for t in done if t.metrics and t.metrics.get(metric) is not None]
        if len(pts) < 2:
            continue
        a = np.array(pts, dtype=float)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        sign = get_metric(metric).sign
        for ax, col, name in ((axes[0], 1, "readout channels"), (axes[1], 2, "cost [kCHF]")):
            front = pareto_front(np.stack([a[:, col], sign * a[:, 0]], axis=1))
            ax.scatter(a[:, col], a[:, 0], s=14, color="0.6", label="trials")
            order = np.argsort(a[front, col])
            ax.plot(a[front, col][order], a[front, 0][order], "o-", color="#d62728", label="Pareto front")
            ax.set_xlabel(name)
            ax.set_ylabel(get_metric(metric).label())
            ax.grid(alpha=0.3)
            ax.legend()
        out.append(f"<h3>{html.escape(metric)}</h3>" + _png(fig))
    return "\n".join(out) or "<p>Not enough finished trials for a Pareto front.</p>"


def _layouts(campaign: Campaign, best: list[Trial]) -> str:
    import matplotlib.pyplot as plt

    from calopt.detector.plot import plot_design

    parts = []
    for t in best:
        d = campaign.family.design(t.params, f"trial {t.id}")
        fig, ax = plt.subplots(figsize=(6, 5))
        plot_design(d, ax=ax)
        shown = ", ".join(f"{m} = {t.metrics[m]:.4g}" for m in campaign.objective.metrics
                          if t.metrics and isinstance(t.metrics.get(m), int | float))  # fmt: skip
        parts.append(f"<h3>trial {t.id} ({html.escape(t.optimizer)}): {html.escape(shown)}</h3>" + _png(fig)
                     + f"<details><summary>design TOML</summary><pre>{html.escape(d.to_toml())}</pre></details>")
    return "\n".join(parts)


def _table(campaign: Campaign, trials: list[Trial]) -> str:
    # the objectives first, then the rest of the registry's physics metrics
    metrics = list(dict.fromkeys([*campaign.objective.metrics, *metric_names("physics")]))
    metrics = [k for k in metrics if METRICS[k].kind == "physics"]
    head = ["id", "optimizer", "batch", "status", *(METRICS[k].label() for k in metrics), "channels", "cost [kCHF]",
            "seconds", "parameters", "error"]  # fmt: skip
    rows = []
    for t in trials:
        m = t.metrics or {}
        cells = [t.id, t.optimizer, t.batch, t.status + (" (cached)" if t.cached else "")]
        cells += [_value(m, k) for k in metrics]
        cells += [t.channels if t.channels is not None else "", f"{t.cost:.0f}" if t.cost is not None else "",
                  f"{t.seconds:.1f}" if t.seconds is not None else "",
                  ", ".join(f"{k}={v}" for k, v in sorted(t.params.items())), t.error or ""]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
            + "</table>")  # fmt: skip


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
    seen: set[str] = set()
    unique = [t for t in best_trials if not (t.design_key in seen or seen.add(t.design_key))]  # type: ignore[func-returns-value]
    return table, unique


CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}pre{background:#f6f6f6;padding:8px;
font-size:12px;overflow:auto}img{max-width:100%}"""


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for the campaign in ``folder`` (or to ``out``); returns its path."""
    folder = Path(folder)
    path = Path(out) if out is not None else folder / "report.html"
    if path.suffix.lower() not in (".html", ".htm"):
        raise CaloptInputError(f"--out {str(path)!r}: the report is an .html file")
    check_writable(path)
    db = folder / DB_NAME
    if not db.is_file():
        raise CaloptInputError(f"{str(folder)!r} is not a campaign folder: no {DB_NAME} in it")
    import matplotlib

    matplotlib.use("Agg")
    with CampaignStore(db) as store:
        settings = store.get_meta("settings")
        if settings is None:
            raise CaloptInputError(f"{db}: the campaign settings are missing")
        meta = {k: store.get_meta(k) for k in ("created", "calopt_version", "digest")}
        trials = store.trials()
    campaign = Campaign.from_dict(json.loads(settings), str(db))
    summary, best = _summary(campaign, trials)
    toml_file = folder / SETTINGS_NAME
    toml_text = toml_file.read_text() if toml_file.is_file() else settings
    finished = [t for t in trials if t.finished]
    parts = [
        f"<html><head><meta charset='utf-8'><title>calopt campaign {html.escape(campaign.name)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Campaign {html.escape(campaign.name)}</h1><p>{html.escape(campaign.description)}</p>",
        f"<p>{len(finished)} finished trials of {len(trials)} ({sum(t.status == 'failed' for t in trials)} failed); "
        f"objective: {', '.join(_label(m) for m in campaign.objective.metrics)}"
        + (f", soft budget {campaign.objective.budget:g} kCHF (penalty {campaign.objective.penalty:g} per "
           "(10 % overrun)²)" if campaign.objective.budget else "")
        + f"; evaluations at pile-up μ = {campaign.evaluate.pileup:g} with {campaign.evaluate.events} crossings, "
        f"seed {campaign.evaluate.seed}. Created {meta['created']} with calopt {meta['calopt_version']}.</p>",
        "<h2>Optimisers</h2>" + summary,
        "<h2>Best so far</h2>" + (_best_so_far(campaign, trials) if finished else "<p>No finished trial yet.</p>"),
        "<h2>Physics against channels and cost</h2>" + _pareto_plots(trials),
        "<h2>Best layouts</h2>" + (_layouts(campaign, best) if best else "<p>No successful trial yet.</p>"),
        "<h2>Trials</h2>" + _table(campaign, trials),
        f"<h2>Reproduce</h2><p>Run <code>calopt optimize {SETTINGS_NAME}</code> with the settings below (they are "
        "also in the campaign folder); the same settings give the same trials with any "
        f"number of workers (settings digest {meta['digest']}).</p>"
        f"<pre>{html.escape(toml_text)}</pre>",
        "</body></html>",
    ]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts))
    return path
