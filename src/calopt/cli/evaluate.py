"""``calopt evaluate``: the physics metrics and cost of a design."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, dumps_json, print_json


def evaluate(
    design: str = typer.Argument(..., help="Built-in design name or TOML file."),
    pileup: float = typer.Option(
        0.0, "--pileup", help="Mean number of pile-up collisions per crossing (Upgrade II reference: 40; at most 200)."
    ),
    events: int = typer.Option(1000, "--events", min=1, help="Number of B0 -> J/psi pi0 signal crossings."),
    method: str = typer.Option("xgb", "--method", help="Photon reconstruction: xgb or parametric."),
    n_resolution: int = typer.Option(2000, "--n-resolution", help="Single photons for the resolutions (100 to 10^6)."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for mass-peak and resolution plots."),
    plot_style: str | None = typer.Option(
        None, "--plot-style", help="hep (default, or $CALOPT_PLOT_STYLE), lhcb or matplotlib."
    ),
    fastsim: str | None = typer.Option(
        None,
        "--fastsim",
        help="EM showers of the libraries from gflash, surrogate or a surrogate checkpoint instead of the cascade MC.",
    ),
    pileup_aware: bool = typer.Option(
        True,
        "--pileup-aware-regressors/--no-pileup-aware-regressors",
        help="At --pileup > 0, reconstruct the crossings' photons with regressors trained with pile-up at that mu.",
    ),
    timing_model: str = typer.Option(
        "catalogue",
        "--timing-model",
        help="Cell time resolution: catalogue (the technologies' published a/sqrt(E) (+) b) or waveform (a, b "
        "fitted to the waveform study, calopt timing study).",
    ),
    waveform_sampling: float = typer.Option(
        5.0, "--waveform-sampling", help="With --timing-model waveform: the digitiser rate [GS/s] of the table."
    ),
    quick: bool = typer.Option(False, "--quick", help="Small shower libraries and training samples (smoke test)."),
    precision: float | None = typer.Option(
        None,
        "--precision",
        help="Evaluate as many of the --events crossings as a relative error P (0 < P < 1) on the objective "
        "needs (a pilot of at most 500 crossings predicts how many).",
    ),
    objective: str | None = typer.Option(
        None, "--objective", help="The registry metric --precision aims at (default significance)."
    ),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Resolutions, pi0 and B mass widths, efficiency, significance, channels and cost."""
    from rich.console import Console

    from calopt.detector.design import load_design
    from calopt.errors import CaloptInputError
    from calopt.files import make_output_folder
    from calopt.pipeline import QUICK_READOUT, QUICK_TRAINING, EvaluateSettings, check_precision, evaluate_to_precision
    from calopt.pipeline import evaluate as run_evaluate

    target = objective or "significance"
    if precision is not None:
        check_precision(precision, target)
    elif objective is not None:
        raise CaloptInputError("--objective names what --precision aims at: give --precision too")
    d = load_design(design)
    st = EvaluateSettings(pileup=pileup, n_events=events, seed=seed, method=method, n_resolution=n_resolution,
                          pileup_aware_regressors=pileup_aware)  # fmt: skip
    if quick:
        st = replace(st, readout=QUICK_READOUT, training=QUICK_TRAINING)
    if fastsim is not None:
        st = replace(st, readout=replace(st.readout, fastsim=fastsim))
    if timing_model != "catalogue" or waveform_sampling != 5.0:
        from calopt.readout.waveform_timing import check_waveform_timing

        readout = replace(st.readout, timing_model=timing_model, waveform_sampling_gsps=waveform_sampling)
        st = replace(st, readout=readout)
        check_waveform_timing(st.readout, d)
    st.validate()
    if plots is not None:
        from calopt.plotting import check_style

        check_style(plot_style)
        make_output_folder(plots, "--plots")
    console = Console(stderr=True)
    with console.status("evaluating") as status:
        if precision is not None:
            result = evaluate_to_precision(d, st, precision, target, progress=lambda msg: status.update(msg))
        else:
            result = run_evaluate(d, st, progress=lambda msg: status.update(msg))
    doc = result.to_json()
    if result.precision is not None and result.precision["note"]:
        typer.echo(f"calopt: {result.precision['note']}", err=True)
    if plots is not None:
        from calopt.metrics.plots import plot_evaluation

        (plots / "evaluate.json").write_text(dumps_json(doc, indent=1))
        from calopt.validation.cascade import PUBLISHED

        published = {r.technology: PUBLISHED[r.technology] for r in d.regions if r.technology in PUBLISHED}
        plot_evaluation(doc, plots, published, plot_style)
    if json_out:
        print_json(doc)
        return
    from calopt.metrics.registry import METRICS, format_value

    for m in METRICS.values():
        typer.echo(f"{m.label():>38}: {format_value(m, doc)}")
