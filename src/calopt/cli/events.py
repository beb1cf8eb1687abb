"""``calopt events generate``: bunch crossings (signal or minimum bias, with pile-up) at the ECAL face."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, print_json, progress_bar
from calopt.jobs import MAX_WORKERS

events_app = typer.Typer(help="Events: particles at the ECAL front face.", no_args_is_help=True, rich_markup_mode=None)


@events_app.command("generate")
def generate(
    process: str = typer.Option(..., "--process", help="minbias, b0-jpsipi0 or gun"),
    pileup: float = typer.Option(0.0, "--pileup", help="Mean number of pile-up collisions per crossing (mu)."),
    n: int = typer.Option(..., "--n", min=1, help="Number of crossings."),
    out: Path = typer.Option(..., "--out", help="Output calopt-events HDF5 file."),
    sigma_z: float = typer.Option(53.0, "--sigma-z", help="Luminous region length sigma_z [mm]."),
    sigma_t: float = typer.Option(178.0, "--sigma-t", help="Luminous region duration sigma_t [ps]."),
    gun_particle: str = typer.Option("gamma", "--gun-particle", help="Gun particle (process gun)."),
    gun_energy_range: tuple[float, float] = typer.Option((1.0, 100.0), "--gun-energy-range", help="LO HI [GeV]."),
    gun_log_uniform: bool = typer.Option(True, "--gun-log-uniform/--gun-uniform", help="Gun energy spectrum."),
    gun_region: str = typer.Option("all", "--gun-region", help="all, inner, middle or outer (lhcb-run3 regions)."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=MAX_WORKERS, help="Dask worker processes (1: run in this process)."
    ),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler."),
    chunk_size: int = typer.Option(500, "--chunk-size", min=1, help="Crossings per chunk written to OUT.parts/."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing calopt-events OUT."),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Generate crossings with Pythia 8 (or a gun); a killed run resumes with the same settings."""
    from calopt.generation.runner import EventSpec, check_output, generate_events

    spec = EventSpec(
        process=process, n=n, pileup=pileup, seed=seed, sigma_z_mm=sigma_z, sigma_t_ps=sigma_t,
        gun_particle=gun_particle, gun_energy_range=(float(gun_energy_range[0]), float(gun_energy_range[1])),
        gun_log_uniform=gun_log_uniform, gun_region=gun_region, chunk_size=chunk_size,
    )  # fmt: skip
    check_output(spec, out, overwrite)
    t0 = time.perf_counter()
    with progress_bar(f"events {process} (mu = {pileup:g})", n) as update:
        path = generate_events(spec, out, workers=workers, scheduler=scheduler, overwrite=overwrite,
                               progress=lambda done, total: update(done))  # fmt: skip
    from calopt.generation.events import read_events

    ev = read_events(path)
    summary = {
        "out": str(path),
        "process": process,
        "pileup": pileup,
        "n": len(ev),
        "particles_per_crossing": round(ev.n_particles / max(len(ev), 1), 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"wrote {len(ev)} crossings ({summary['particles_per_crossing']} particles each) to {path}")
