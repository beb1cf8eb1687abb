"""``calopt showers export | import | plot``: calopt-showers files as CaloChallenge files and
back (:mod:`calopt.simulation.calochallenge`; docs/formats.md, "CaloChallenge files"), and
their shower images (:mod:`calopt.simulation.plots`)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, print_json

showers_app = typer.Typer(
    help="Shower files: export to and import from CaloChallenge files, and draw their shower images.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FORMATS = ("calochallenge",)


@showers_app.command("export")
def export(
    path: Path = typer.Argument(..., help="calopt-showers HDF5 file."),
    fmt: str = typer.Option(..., "--format", help="Output format: calochallenge."),
    out: Path = typer.Option(..., "--out", help="Output HDF5 file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CaloChallenge OUT."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write a calopt-showers file as a CaloChallenge file: incident_energies (N, 1) and showers
    (N, voxels) in MeV, with the description of calopt's Cartesian grid."""
    from calopt.errors import CaloptInputError
    from calopt.files import check_output_file, output_lock
    from calopt.simulation.calochallenge import export_calochallenge, is_calochallenge_file, summary
    from calopt.simulation.showers import read_showers

    if fmt not in FORMATS:
        raise CaloptInputError(f"--format {fmt!r} is not known; expected one of {', '.join(FORMATS)}")
    check_output_file(out, "CaloChallenge file", is_calochallenge_file, overwrite, "--out")
    t0 = time.perf_counter()
    sh = read_showers(path, diagnostics=False)
    with output_lock(out, "--out"):
        export_calochallenge(sh, out)
    res = {"out": str(out), "format": fmt, **summary(sh), "seconds": round(time.perf_counter() - t0, 3)}
    if json_out:
        print_json(res)
    else:
        typer.echo(f"wrote {res['n']} showers of {res['voxels']} voxels to {out}")


@showers_app.command("import")
def import_(
    path: Path = typer.Argument(..., help="CaloChallenge HDF5 file (incident_energies, showers)."),
    out: Path = typer.Option(..., "--out", help="Output calopt-showers HDF5 file."),
    like: Path | None = typer.Option(
        None, "--like", help="calopt-showers file of the grid (and, with the same energies, the particles)."
    ),
    particle: str | None = typer.Option(
        None, "--particle", help="Species when the file does not say: gamma, e-, ... (along the axis)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing calopt-showers OUT."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Read a CaloChallenge file into a calopt-showers file (for example the samples of a
    CaloChallenge model trained on an export), which every calopt command then reads."""
    from calopt.files import check_output_file, output_lock
    from calopt.simulation.calochallenge import import_calochallenge, summary
    from calopt.simulation.particles import species
    from calopt.simulation.showers import is_shower_file, write_showers

    if particle is not None:
        species(particle)
    check_output_file(out, "calopt-showers file", is_shower_file, overwrite, "--out")
    t0 = time.perf_counter()
    sh = import_calochallenge(path, like=like, particle=particle)
    with output_lock(out, "--out"):
        write_showers(out, sh)
    res = {"out": str(out), **summary(sh), "seconds": round(time.perf_counter() - t0, 3)}
    if json_out:
        print_json(res)
    else:
        typer.echo(f"wrote {res['n']} showers of {res['technology']} ({'x'.join(map(str, res['grid']))}) to {out}")


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


@showers_app.command("plot")
def plot(
    path: Path = typer.Argument(..., help="calopt-showers HDF5 file."),
    out: Path = typer.Option(..., "--out", help="PNG file (an earlier PNG is replaced, no other file)."),
    plot_style: str | None = typer.Option(None, "--plot-style", help="hep (default), lhcb or matplotlib."),
) -> None:
    """The mean shower and single showers, linear (the core) and log (the whole window), and
    the mean energy per longitudinal section."""
    from calopt.files import check_output_file
    from calopt.plotting import check_style
    from calopt.simulation.plots import plot_shower_images
    from calopt.simulation.showers import read_showers

    check_style(plot_style)
    check_output_file(out, "PNG image", _is_png, None, "--out")
    sh = read_showers(path, diagnostics=False)
    typer.echo(str(plot_shower_images(sh, out, plot_style)))
