"""``calopt technologies``: the module technologies and their derived properties."""

from __future__ import annotations

import typer

from calopt.cli._common import JSON_OPTION, print_json


def technologies(json_out: bool = JSON_OPTION) -> None:
    """List the module technologies with depth (X0, lambda_I), Moliere radius and sampling fraction."""
    from calopt.detector.technologies import TECHNOLOGIES

    techs = list(TECHNOLOGIES.values())
    props = [t.properties() for t in techs]
    if json_out:
        print_json({"technologies": props})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="calopt module technologies")
    for col in (
        "name",
        "structure",
        "depth [mm]",
        "X0",
        "lambda_I",
        "X0_eff [mm]",
        "R_M [mm]",
        "f_mip",
        "f_em",
        "cells [mm]",
        "pitch [mm]",
    ):
        table.add_column(col)
    for t, p in zip(techs, props):
        table.add_row(
            str(p["name"]),
            str(p["structure"]),
            f"{p['depth_mm']:.1f}",
            f"{p['depth_X0']:.1f}",
            f"{p['depth_lambda_I']:.2f}",
            f"{p['X0_eff_mm']:.1f}",
            f"{p['moliere_radius_mm']:.1f}",
            f"{p['mip_sampling_fraction']:.3f}",
            f"{p['sampling_fraction']:.3f}",
            "/".join(f"{c:g}" for c in t.cell_sizes),
            f"{p['fine_pitch_mm']:g}",
        )
    console = Console()
    if not console.is_terminal:  # pipes and files: do not squeeze the table to 80 columns
        console = Console(width=160)
    console.print(table)
    for p in props:
        typer.echo(f"{p['name']}: {p['sources']}")
        tr = TECHNOLOGIES[str(p["name"])]
        a, b = tr.time_resolution
        typer.echo(f"  timing: sigma_t = {a:g} ps/sqrt(E/GeV) (+) {b:g} ps; {tr.time_sources}")
