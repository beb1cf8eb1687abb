"""``calopt timing``: time resolution from simulated waveforms (issue #22)."""

from __future__ import annotations

from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, dumps_json, print_json

timing_app = typer.Typer(help="Time reconstruction from waveforms: CFD, XGBoost and a torch MLP.",
                         no_args_is_help=True)  # fmt: skip


@timing_app.command("study")
def study(
    technology: str = typer.Option(..., "--technology", help="Module technology (calopt technologies)."),
    sampling_rate: list[float] = typer.Option(
        [0.4, 1.0, 2.5, 5.0, 10.0], "--sampling-rate", help="Digitiser rate [GS/s], (0, 50]; repeat for several."
    ),
    energies: list[float] = typer.Option(
        [1.0, 5.0, 20.0], "--energies", help="Photon beam energy [GeV], [0.1, 500]; repeat for several."
    ),
    n: int = typer.Option(2000, "--n", help="Events per energy, half to train and half to measure (100 to 10^6)."),
    showers: int = typer.Option(
        100, "--showers", help="Cascade showers per energy, reused with fresh photo-statistics."
    ),
    second_signal: bool = typer.Option(
        False, "--second-signal", help="Also the two-pulse study (pile-up in the cell)."
    ),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for the figures."),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """sigma_t per estimator (cfd, xgb, nn), sampling rate and energy, and its a/sqrt(E) (+) b fits."""
    from calopt.files import make_output_folder
    from calopt.readout.waveform_timing import TimingStudy, run_timing_study

    st = TimingStudy(technology, tuple(sampling_rate), tuple(energies), n, showers, seed, second_signal)
    st.validate()  # before anything is written
    if plots is not None:
        make_output_folder(plots, "--plots")
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("timing study") as status:
        doc = run_timing_study(st, progress=lambda s: status.update(f"timing study: {s}"))
    if plots is not None:
        from calopt.files import atomic_path
        from calopt.readout.timing_plots import plot_timing_study

        plot_timing_study(doc, plots)
        with atomic_path(plots / "timing.json") as tmp:
            Path(tmp).write_text(dumps_json(doc, indent=1))
    if json_out:
        print_json(doc)
        return
    typer.echo(f"{'rate [GS/s]':>11} {'E [GeV]':>8} {'estimator':>9} {'sigma_t [ps]':>16}")
    for r in doc["results"]:
        typer.echo(f"{r['sampling_rate_gsps']:>11g} {r['energy_gev']:>8g} {r['estimator']:>9} "
                   f"{r['sigma_ps']:>9.1f} +- {r['sigma_ps_err']:.1f}")  # fmt: skip
    for f in doc["fits"]:
        if f["valid"]:
            typer.echo(f"fit {f['sampling_rate_gsps']:g} GS/s {f['estimator']}: a = {f['a_ps']:.1f} ps sqrt(GeV), "
                       f"b = {f['b_ps']:.1f} ps")  # fmt: skip
    for t in doc.get("two_signal", []):
        typer.echo(f"two signals {t['sampling_rate_gsps']:g} GS/s: classifier AUC {t['classifier_auc']:.3f}, "
                   f"single-pulse sigma_t {t['single_sigma_ps']:.1f} ps")  # fmt: skip
