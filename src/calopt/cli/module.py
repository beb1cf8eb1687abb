"""``calopt module``: points of the module design space (calopt.detector.module)."""

from __future__ import annotations

import typer

from calopt.cli._common import JSON_OPTION, print_json

module_app = typer.Typer(help="The module design space: show a point, estimate gradients.", no_args_is_help=True)

SPEC_ARGUMENT = typer.Argument(..., help="A built-in technology (NAME or NAME:CELL_MM) or a TOML module spec.")


@module_app.command("show")
def show(spec: str = SPEC_ARGUMENT, json_out: bool = JSON_OPTION) -> None:
    """The parameters and derived properties (X0, Moliere radius, sampling fraction, depth,
    mass, cost) of a module."""
    from calopt.detector.module import load_module

    props = load_module(spec).properties()
    if json_out:
        print_json(props)
        return
    typer.echo(f"{props['name']}: {props['summary']}" + ("  (built-in)" if props["builtin"] else ""))
    rows = [
        ("X0", f"{props['x0_mm']:.2f} mm"),
        ("Moliere radius", f"{props['moliere_radius_mm']:.2f} mm"),
        ("lambda_I", f"{props['lambda_i_mm']:.1f} mm"),
        ("sampling fraction (EM, MIP)", f"{props['sampling_fraction']:.4f}, {props['mip_sampling_fraction']:.4f}"),
        ("sampling term estimate", f"{100 * props['sampling_term_estimate']:.1f} %/sqrt(E/GeV)"),
        ("depth", f"{props['depth_mm']:.1f} mm = {props['depth_x0']:.2f} X0 = {props['depth_lambda_i']:.2f} lambda_I"),
        ("mass per module", f"{props['mass_kg']:.1f} kg"),
        ("cost per module", f"{props['cost_kchf_per_module']:.2f} kCHF (assumption)"),
        ("channels per module", str(props["channels_per_module"])),
    ]
    for k, v in rows:
        typer.echo(f"  {k:30s} {v}")
