"""``calopt optimize`` and ``calopt report``: design optimisation campaigns."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, print_json
from calopt.jobs import MAX_WORKERS


def optimize(
    campaign_file: Path = typer.Argument(..., help="Campaign TOML file (see examples/quick-campaign.toml)."),
    out: Path | None = typer.Option(None, "--out", help="Campaign folder (default: ./NAME from the campaign file)."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=MAX_WORKERS, help="Dask worker processes (1: evaluate in this process)."
    ),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler."),
    resume: bool = typer.Option(False, "--resume", help="Continue the campaign in its folder."),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Write report.html after every batch (atomically) and at the end."
    ),
    plot_style: str | None = typer.Option(None, "--plot-style", help="hep (default), lhcb or matplotlib."),
    allow_version_change: bool = typer.Option(
        False, "--allow-version-change", help="With --resume: go on although calopt changed (recorded in the database)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run a design optimisation campaign; every trial is stored in CAMPAIGN/campaign.sqlite."""
    from calopt.errors import CaloptInputError
    from calopt.files import make_output_folder
    from calopt.optimize.campaign import campaign_answer, load_campaign, run_campaign
    from calopt.optimize.store import CampaignStore

    if scheduler is not None and not scheduler.strip():
        raise CaloptInputError("--scheduler needs an address (host:port), got an empty string")
    if scheduler is not None and workers != 1:
        raise CaloptInputError("give --workers or --scheduler, not both")
    campaign = load_campaign(campaign_file)
    folder = make_output_folder(out if out is not None else Path(campaign.name))
    if report:  # refused now rather than after the campaign: a report.html that is not a report
        from calopt.plotting import check_style
        from calopt.report.html import REPORT_NAME, check_report_output

        check_report_output(folder / REPORT_NAME)
        check_style(plot_style)

    def say(msg: str) -> None:
        print(f"[{campaign.name}] {msg}", file=sys.stderr, flush=True)

    def live_report() -> None:  # the report follows the campaign (calopt report --serve shows it)
        from calopt.report.html import write_report

        try:
            write_report(folder, style=plot_style)
        except Exception as exc:  # a report that fails must not stop the campaign; the final one will say why
            say(f"report not updated: {type(exc).__name__}: {exc}")

    db = run_campaign(campaign, folder, workers=workers, scheduler=scheduler, resume=resume, progress=say,
                      allow_version_change=allow_version_change,
                      after_batch=live_report if report else None)  # fmt: skip
    path = None
    if report:
        from calopt.report.html import write_report

        path = write_report(folder, style=plot_style)
    with CampaignStore(db, read_only=True) as store:
        trials = store.trials()
    best = campaign_answer(trials)
    summary = {
        "campaign": campaign.name,
        "folder": str(folder),
        "database": str(db),
        "report": str(path) if path else None,
        "trials": len(trials),
        "failed": sum(t.status == "failed" for t in trials),
        "best": best,
    }
    if json_out:
        print_json(summary)
        return
    typer.echo(f"{len(trials)} trials ({summary['failed']} failed) in {db}")
    if best is not None:
        shown = ", ".join(f"{v:.4g}" + ("" if e is None else f" +- {e:.2g}")
                          for v, e in zip(best["objectives"], best["objective_errors"] or [None] * 9))  # fmt: skip
        how = "confirmed" if best["confirmed"] else f"{best['replicates']} evaluation(s)"
        typer.echo(f"best: trial {best['trial']}, objectives {shown} ({how}), cost {best['cost']:.6g} kCHF, "
                   f"{best['channels']} channels")  # fmt: skip
    if path:
        typer.echo(f"report: {path}")


def report(
    campaign_dir: Path = typer.Argument(..., help="Campaign folder (holding campaign.sqlite)."),
    out: Path | None = typer.Option(None, "--out", help="HTML file (default: CAMPAIGN_DIR/report.html)."),
    plot_style: str | None = typer.Option(None, "--plot-style", help="hep (default), lhcb or matplotlib."),
    serve: bool = typer.Option(
        False, "--serve", help="Serve the report on 127.0.0.1, rewritten as the campaign goes on, until Ctrl-C."
    ),
    port: int = typer.Option(8765, "--port", help="With --serve: the port (0: any free one)."),
    refresh: int = typer.Option(10, "--refresh", help="With --serve: seconds between the browser's reloads."),
) -> None:
    """Write a self-contained HTML report of a campaign (or serve it while the campaign runs)."""
    from calopt.errors import CaloptInputError
    from calopt.report.html import write_report

    if serve:
        if out is not None:
            raise CaloptInputError("--serve serves CAMPAIGN_DIR/report.html; give --out or --serve, not both")
        from calopt.report.serve import serve_report

        serve_report(campaign_dir, port, refresh, plot_style, lambda msg: typer.echo(msg, err=True))
        return
    typer.echo(str(write_report(campaign_dir, out, plot_style)))
