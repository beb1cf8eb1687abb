"""``calopt validate``: compare the cascade Monte Carlo with published numbers."""

from __future__ import annotations

from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, dumps_json, print_json


def validate(
    technology: list[str] = typer.Option(
        ["lhcb-shashlik"], "--technology", help="Technology to validate (repeat for several)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Few energies and showers (a smoke test, minutes)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for validation.json and plots."),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Linearity, resolution, shower maximum, lateral containment and pion response."""
    from dataclasses import replace

    from calopt.detector.technologies import get_technology
    from calopt.files import make_output_folder
    from calopt.validation.cascade import ValidationSettings, validate_technology
    from calopt.validation.report import plot_validation, summary_lines

    for name in technology:
        get_technology(name)
    if out is not None:
        make_output_folder(out)
    settings = replace(ValidationSettings.quick() if quick else ValidationSettings(), seed=seed)
    from rich.console import Console

    console = Console(stderr=True)
    results = {}
    with console.status("validating") as status:
        for name in technology:
            results[name] = validate_technology(name, settings, progress=lambda msg: status.update(msg))
    doc = {"settings": settings.__dict__, "results": results}
    if out is not None:
        (out / "validation.json").write_text(dumps_json(doc, indent=1))
        for name, res in results.items():
            plot_validation(res, out / f"{name}.png")
    if json_out:
        print_json(doc)
    else:
        for res in results.values():
            for line in summary_lines(res):
                typer.echo(line)
