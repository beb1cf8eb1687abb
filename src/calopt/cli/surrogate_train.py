"""``calopt surrogate train``, ``calibrate`` and ``sample``: generative surrogates of the
cascade (see :mod:`calopt.simulation.surrogates`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, print_json, progress_bar
from calopt.errors import CaloptInputError

# the most training steps a command takes: ~10^2 times the defaults, days on a CPU
MAX_STEPS = 1_000_000


def train(
    model: str = typer.Option(..., "--model", help="wgan | flow | adagan"),
    data: list[Path] = typer.Option(..., "--data", help="Training calopt-showers file(s): --data A.h5 [B.h5 ...]."),
    more_data: list[Path] | None = typer.Argument(None, help="More training files (after --data).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output checkpoint (.pt)."),
    steps: int = typer.Option(2000, "--steps", min=1, max=MAX_STEPS, help="Generator steps (flow: gradient steps)."),
    components: int = typer.Option(3, "--components", min=1, max=20, help="adagan: number of GANs in the ensemble."),
    transforms: int = typer.Option(
        4, "--transforms", min=1, max=32, help="flow: number of coupling (spline) transforms."
    ),
    regressor_steps: int = typer.Option(
        1500,
        "--regressor-steps",
        min=0,
        max=MAX_STEPS,
        help="wgan/adagan: training steps of the auxiliary condition regressor.",
    ),
    energy_range: tuple[float, float] | None = typer.Option(
        None, "--energy-range", help="Declared training range LO HI [GeV] (default: the range of the data)."
    ),
    theta_max: float | None = typer.Option(None, "--theta-max", help="Declared maximum angle [rad]."),
    crop: int = typer.Option(
        20, "--crop", min=1, max=1000, help="Central crop of the fine grid that is modelled (cells per side)."
    ),
    align: bool = typer.Option(
        True, "--align/--no-align", help="Model every section in whole cells around the particle's line."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing OUT, and discard an OUT.partial of other settings."
    ),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Train a surrogate on cascade showers and save a calopt-surrogate checkpoint. The training
    state is kept in OUT.partial: a killed run resumes when started again with the same
    settings, and gives the same checkpoint as an uninterrupted one."""
    import math

    from calopt.simulation.particles import MAX_ENERGY_GEV
    from calopt.simulation.surrogates.registry import get_type
    from calopt.simulation.surrogates.training import check_checkpoint_output, train_surrogate

    get_type(model)
    if energy_range is not None and not 0 < energy_range[0] < energy_range[1] <= MAX_ENERGY_GEV:
        raise CaloptInputError(f"--energy-range needs 0 < LO < HI <= {MAX_ENERGY_GEV:g} (GeV), got "
                               f"{energy_range[0]} {energy_range[1]}")  # fmt: skip
    if theta_max is not None and not 0 <= theta_max < math.pi / 2:
        raise CaloptInputError(f"--theta-max must be in [0, pi/2) rad, got {theta_max}")
    files = [*data, *(more_data or [])]
    for f in files:
        if not f.is_file():
            raise CaloptInputError(f"training file {str(f)!r} does not exist")
    check_checkpoint_output(out, overwrite)
    t0 = time.perf_counter()
    settings: dict[str, int] = {"reg_steps": regressor_steps}
    if model == "adagan":
        settings["components"] = components
    if model == "flow":
        settings["transforms"] = transforms
    with ExitStack() as stack:
        bar: list[Callable[[int], None]] = []

        def progress(done: int, total: int) -> None:
            if not bar:  # opened when the training starts: a refusal before stays one line
                bar.append(stack.enter_context(progress_bar(f"train {model}", total)))
            bar[0](done)

        ck = train_surrogate(
            model,
            files,
            out,
            steps=steps,
            seed=seed,
            progress=progress,
            crop=crop,
            energy_range_gev=tuple(energy_range) if energy_range else None,  # type: ignore[arg-type]
            theta_max=theta_max,
            align=align,
            settings=settings,
            overwrite=overwrite,
            log=lambda msg: typer.echo(msg, err=True),
        )
    dt = time.perf_counter() - t0
    summary = {
        "out": str(out),
        "model": model,
        "technology": ck["technology"],
        "n_train": ck["training"]["n_train"],
        "steps": steps,
        "seed": seed,
        "seconds": round(dt, 3),
    }
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"trained {model} on {summary['n_train']} showers in {dt:.1f} s; wrote {out}")


def calibrate(
    model: str = typer.Argument(..., help="Checkpoint file, or 'surrogate' for the shipped default."),
    data: list[Path] = typer.Option(..., "--data", help="Cascade calopt-showers file(s): --data A.h5 [B.h5 ...]."),
    more_data: list[Path] | None = typer.Argument(None, help="More files (after --data).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output checkpoint (.pt)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Measure a trained surrogate's response calibration and hit model again on other cascade
    showers (e.g. more than it was trained on) and save the recalibrated checkpoint to OUT; the
    networks are not changed. The showers must cover every species of the model."""
    from calopt.simulation.surrogates.simulator import DEFAULT_MODEL
    from calopt.simulation.surrogates.training import calibrate_surrogate

    if model != "surrogate" and not Path(model).is_file():
        raise CaloptInputError(f"surrogate checkpoint {model!r} does not exist")
    files = [*data, *(more_data or [])]
    for f in files:
        if not f.is_file():
            raise CaloptInputError(f"calibration file {str(f)!r} does not exist")
    t0 = time.perf_counter()
    ck = calibrate_surrogate(DEFAULT_MODEL if model == "surrogate" else model, files, out, overwrite=overwrite)
    dt = time.perf_counter() - t0
    summary = {"out": str(out), "model_type": ck["model_type"], "n_calibration": ck["training"]["calibration"]["n"],
               "seconds": round(dt, 3)}  # fmt: skip
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"calibrated {ck['model_type']} on {summary['n_calibration']} showers in {dt:.1f} s; wrote {out}")


def sample(
    model: str = typer.Argument(..., help="Checkpoint file, or 'surrogate' for the shipped default."),
    particle: str = typer.Option(..., "--particle", help="gamma, e-, ... (species the model was trained on)"),
    n: int = typer.Option(..., "--n", min=1, help="Number of showers."),
    out: Path = typer.Option(..., "--out", help="Output calopt-showers HDF5 file."),
    energy: float | None = typer.Option(None, "--energy", help="Fixed total energy [GeV]."),
    energy_range: tuple[float, float] | None = typer.Option(None, "--energy-range", help="LO HI [GeV]."),
    log_uniform: bool = typer.Option(False, "--log-uniform", help="Energies uniform in log E within the range."),
    theta_max: float = typer.Option(0.0, "--theta-max", help="Maximum angle to the module axis [rad]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Generate showers with a surrogate (particle gun as in `calopt simulate`, whose run it is:
    the same seed gives the same showers as `calopt simulate --backend MODEL`)."""
    from calopt.simulation.runner import RunSpec, check_output, run_simulation
    from calopt.simulation.showers import read_showers
    from calopt.simulation.surrogates.simulator import load_surrogate

    if model != "surrogate" and not Path(model).is_file():
        raise CaloptInputError(f"surrogate checkpoint {model!r} does not exist")
    sim = load_surrogate(None if model == "surrogate" else model)
    spec = RunSpec(
        technology=sim.technology,
        particle=particle,
        n=n,
        seed=seed,
        energy=energy,
        energy_range=tuple(energy_range) if energy_range else None,  # type: ignore[arg-type]
        log_uniform=log_uniform,
        theta_max=theta_max,
        backend=model,
        chunk_size=10000,
    )
    check_output(spec, out, overwrite)
    t0 = time.perf_counter()
    with progress_bar(f"sample {particle} with {sim.model_type.name}", n, enabled=n > spec.chunk_size) as update:
        run_simulation(spec, out, overwrite=overwrite, progress=lambda done, total: update(done))
    showers = read_showers(out, diagnostics=False)
    dt = time.perf_counter() - t0
    evis = showers.visible_energy / showers.incident_energies[:, 0]
    summary = {
        "out": str(out),
        "n": n,
        "technology": sim.technology,
        "particle": particle,
        "model_type": sim.model_type.name,
        "mean_evis_over_e": round(float(evis.mean()), 5),
        "seconds": round(dt, 3),
    }
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"wrote {n} {sim.model_type.name} showers to {out} in {dt:.2f} s (mean E_vis/E {evis.mean():.4f})")
