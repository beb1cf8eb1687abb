"""``calopt layout show``: modules, channels and cost of a design, and its picture."""

from __future__ import annotations

from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, print_json

layout_app = typer.Typer(help="ECAL wall layouts (designs).", no_args_is_help=True, rich_markup_mode=None)


@layout_app.command("show")
def show(
    design: str = typer.Argument(..., help="Built-in design name (lhcb-run3, upgrade2-like) or a TOML file."),
    png: Path | None = typer.Option(None, "--png", help="Draw the wall into this PNG file."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print modules per technology and cell size, channels and cost; optionally draw the wall."""
    from calopt.detector.design import load_design
    from calopt.errors import CaloptInputError
    from calopt.files import check_output_file, describe_file

    d = load_design(design)
    if png is not None:
        if png.suffix.lower() != ".png":
            raise CaloptInputError(f"--png {str(png)!r}: expected a file name ending in .png")
        # an existing picture is replaced; any other file under a .png name is refused
        check_output_file(png, "PNG picture", lambda p: describe_file(p) == "a PNG picture", None, "--png")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from calopt.detector.plot import plot_design

        ax = plot_design(d)
        ax.figure.savefig(png, dpi=130, bbox_inches="tight")
        plt.close(ax.figure)
    summary = d.summary()
    if json_out:
        print_json(summary)
        return
    typer.echo(f"{summary['design']}: {summary['description']}")
    for r in summary["regions"]:
        flags = ("split " if r["split"] else "") + (_timing_label(r["timing"]))
        typer.echo(
            f"  {r['name']:<12} {r['technology']:<14} {r['cell_size_mm']:>7g} mm  {r['modules']:>5} modules "
            f"{r['channels']:>6} channels  {flags}"
        )
    typer.echo(
        f"  total: {summary['modules_total']} modules, {summary['channels']} channels, cost {summary['cost']:.1f} kCHF"
    )
    if png is not None:
        typer.echo(f"  picture: {png}")


def _timing_label(timing: bool | float) -> str:
    """``timing`` (published resolution), ``timing b=20ps`` (a tier) or nothing."""
    if timing is False:
        return ""
    return "timing" if timing is True else f"timing b={timing:g}ps"
