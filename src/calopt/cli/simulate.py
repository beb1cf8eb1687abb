"""``calopt simulate``: particle guns into one technology, written as a calopt-showers file."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, print_json, progress_bar
from calopt.jobs import MAX_WORKERS


def simulate(
    technology: str | None = typer.Option(None, "--technology", help="Technology name (see `calopt technologies`)."),
    module: str | None = typer.Option(
        None, "--module", help="A module-space point: technology name or TOML spec (`calopt module show`)."
    ),
    particle: str = typer.Option(..., "--particle", help="gamma, e-, e+, pi+, pi-, p, n, mu-, mu+"),
    n: int = typer.Option(..., "--n", min=1, help="Number of showers."),
    out: Path = typer.Option(..., "--out", help="Output calopt-showers HDF5 file."),
    energy: float | None = typer.Option(None, "--energy", help="Fixed total energy [GeV]."),
    energy_range: tuple[float, float] | None = typer.Option(None, "--energy-range", help="LO HI [GeV]."),
    log_uniform: bool = typer.Option(False, "--log-uniform", help="Energies uniform in log E within the range."),
    theta_max: float = typer.Option(0.0, "--theta-max", help="Maximum angle to the module axis [rad]."),
    backend: str = typer.Option("cascade", "--backend", help="cascade|gflash|library|surrogate|PATH"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=MAX_WORKERS, help="Dask worker processes (1: run in this process)."
    ),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler."),
    chunk_size: int = typer.Option(100, "--chunk-size", min=1, help="Showers per chunk written to OUT.parts/."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing calopt-showers OUT."),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Simulate showers; a killed run resumes when started again with the same settings."""
    from calopt.errors import CaloptInputError
    from calopt.simulation.runner import RunSpec, check_output, run_simulation

    if (technology is None) == (module is None):
        raise CaloptInputError("give exactly one of --technology NAME or --module SPEC")
    module_json = None
    if module is not None:
        from calopt.detector.module import load_module

        point = load_module(module)
        technology = point.name
        module_json = None if point.is_builtin() else point.to_json()
    assert technology is not None
    spec = RunSpec(
        technology=technology,
        module=module_json,
        particle=particle,
        n=n,
        seed=seed,
        energy=energy,
        energy_range=tuple(energy_range) if energy_range else None,  # type: ignore[arg-type]
        log_uniform=log_uniform,
        theta_max=theta_max,
        backend=backend,
        chunk_size=chunk_size,
    )
    check_output(spec, out, overwrite)
    t0 = time.perf_counter()
    with progress_bar(f"simulate {particle} in {technology}", n, enabled=True) as update:
        path = run_simulation(
            spec,
            out,
            workers=workers,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=lambda done, total: update(done),
        )
    dt = time.perf_counter() - t0
    summary = {"out": str(path), "n": n, "technology": technology, "particle": particle, "seconds": round(dt, 3)}
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"wrote {n} showers to {path} in {dt:.1f} s")
