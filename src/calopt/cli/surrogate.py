"""``calopt surrogate``: generative fast simulation -- train and sample surrogates
(:mod:`calopt.cli.surrogate_train`), and evaluate any fast simulation against the cascade."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, print_json, progress_bar
from calopt.cli.surrogate_train import calibrate, sample, train
from calopt.errors import CaloptInputError

surrogate_app = typer.Typer(
    help="Generative fast simulation: train, calibrate, sample, evaluate against the cascade MC.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
surrogate_app.command("train")(train)
surrogate_app.command("calibrate")(calibrate)
surrogate_app.command("sample")(sample)

GENERATE_CHUNK = 100
PROTOCOLS = ("calochallenge",)
MIN_SHOWERS = 10


def _take(sh: Any, n: int | None) -> Any:
    from calopt.simulation.showers import Showers

    if n is None or n >= len(sh):
        return sh
    return Showers(
        showers=sh.showers[:n],
        times=None if sh.times is None else sh.times[:n],
        incident_energies=sh.incident_energies[:n],
        momenta=sh.momenta[:n],
        points=sh.points[:n],
        pdg=sh.pdg[:n],
        attrs=sh.attrs,
    )


def _read(paths: Path | list[Path], what: str, n: int | None) -> Any:
    """The showers of one file, or of several of one technology joined in the order given."""
    from calopt.simulation.showers import concatenate, read_showers

    paths = [paths] if isinstance(paths, Path) else list(paths)
    parts = [read_showers(p, diagnostics=False) for p in paths]
    for p, sh in zip(paths[1:], parts[1:]):
        _same_technology(sh, parts[0], what, str(p))
    sh = _take(parts[0] if len(parts) == 1 else concatenate(parts), n)
    if len(sh) < MIN_SHOWERS:
        name = ", ".join(str(p) for p in paths)
        raise CaloptInputError(f"{what} {name!r} holds {len(sh)} showers; at least {MIN_SHOWERS} are needed")
    return sh


def _same_technology(sh: Any, ref: Any, what: str, path: str) -> None:
    if str(sh.attrs["technology"]) != str(ref.attrs["technology"]) or sh.showers.shape[1:] != ref.showers.shape[1:]:
        raise CaloptInputError(
            f"{what} {path!r} is of technology {sh.attrs['technology']!r} with grid {list(sh.showers.shape[1:])}; "
            f"the reference is {ref.attrs['technology']!r} with grid {list(ref.showers.shape[1:])}"
        )


def _generate(model: str, ref: Any, seed: int, quiet: bool) -> tuple[Any, float]:
    """Simulate the reference's particles with backend ``model``; per-shower seeds as in
    ``calopt simulate``, so the result does not depend on the chunking."""
    from calopt.detector.technologies import get_technology
    from calopt.simulation.base import get_simulator, shower_seeds
    from calopt.simulation.showers import concatenate

    sim = get_simulator(model)
    tech = get_technology(str(ref.attrs["technology"]))
    particles = ref.particles()
    sim.check_particles(particles.pdg)
    n = len(particles)
    parts = []
    t0 = time.perf_counter()
    with progress_bar(f"simulate with {model}", n, enabled=not quiet) as update:
        for start in range(0, n, GENERATE_CHUNK):
            stop = min(start + GENERATE_CHUNK, n)
            parts.append(sim.simulate(particles[start:stop], tech, seed, seeds=shower_seeds(seed, start, stop - start)))
            update(stop)
    return concatenate(parts), time.perf_counter() - t0


@surrogate_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Backend (gflash, library, cascade, ...) or a calopt-showers file."),
    reference: list[Path] = typer.Option(
        ..., "--reference", help="Cascade reference sample (calopt-showers file; repeat to join several)."
    ),
    floor: list[Path] | None = typer.Option(
        None, "--floor", help="A second, independent reference sample: the floor (repeat to join several)."
    ),
    n: int | None = typer.Option(None, "--n", min=1, help="Use the first N showers of each sample (default: all)."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for the feature and average-shower plots."),
    protocol: str | None = typer.Option(
        None, "--protocol", help="Also the classifier test of another protocol: calochallenge."
    ),
    cc_epochs: int = typer.Option(50, "--cc-epochs", min=1, max=10000, help="calochallenge: epochs (official 50)."),
    cc_trainings: int = typer.Option(
        5, "--cc-trainings", min=1, max=1000, help="calochallenge: independent trainings for mean and std."
    ),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Compare a fast simulation with the cascade reference: features, separation powers,
    classifier AUCs, FPD/KPD, response and resolution per energy bin; with --protocol
    calochallenge also the CaloChallenge's low-level classifier AUC (mean and std)."""
    from calopt.files import make_output_folder
    from calopt.simulation.showers import is_shower_file
    from calopt.simulation.surrogates.quality import assess, plot_average_showers, plot_features

    if protocol is not None and protocol not in PROTOCOLS:
        raise CaloptInputError(f"--protocol {protocol!r} is not known; expected one of {', '.join(PROTOCOLS)}")
    if plots is not None:
        make_output_folder(plots, "--plots")
    ref = _read(reference, "reference", n)
    floor_sh = None
    if floor:
        floor_sh = _read(floor, "floor sample", n)
        _same_technology(floor_sh, ref, "floor sample", ", ".join(str(f) for f in floor))
    t_total = time.perf_counter()
    if Path(model).is_file() and is_shower_file(model):
        model_sh = _read(Path(model), "model sample", n)
        _same_technology(model_sh, ref, "model sample", model)
        gen_s = None
        source = "file"
    else:
        model_sh, gen_s = _generate(model, ref, seed, quiet=False)
        source = "backend"
    t0 = time.perf_counter()
    res = assess(model_sh, ref, floor_sh, seed)
    eval_s = time.perf_counter() - t0
    cc, cc_s = None, None
    if protocol == "calochallenge":
        from calopt.simulation.surrogates.calochallenge_protocol import ProtocolSettings, calochallenge_auc

        t0 = time.perf_counter()
        settings = ProtocolSettings(epochs=cc_epochs, trainings=cc_trainings)
        total = cc_trainings * cc_epochs
        with progress_bar("CaloChallenge classifier, epochs", total * (2 if floor_sh is not None else 1)) as update:
            cc = calochallenge_auc(model_sh, ref, seed, settings, progress=lambda done, _: update(done))
            if floor_sh is not None:
                cc["floor"] = calochallenge_auc(floor_sh, ref, seed, settings,
                                                progress=lambda done, _: update(total + done))  # fmt: skip
        cc_s = time.perf_counter() - t0
    if plots is not None:
        label = Path(model).stem if source == "file" else model
        plot_features(model_sh, ref, plots / "features.png", floor_sh, label=label)
        plot_average_showers(model_sh, ref, plots / "average_showers.png", label=label)
    out = {
        "model": model,
        "model_source": source,
        "reference": ", ".join(str(r) for r in reference),
        "floor_file": ", ".join(str(f) for f in floor) if floor else None,
        "technology": str(ref.attrs["technology"]),
        "seed": seed,
        **res,
        **({"calochallenge": cc} if cc is not None else {}),
        "timing": {
            "generate_s": gen_s,
            "ms_per_shower": None if gen_s is None else 1000.0 * gen_s / len(model_sh),
            "evaluate_s": eval_s,
            **({"calochallenge_s": cc_s} if cc is not None else {}),
            "total_s": time.perf_counter() - t_total,
        },
        "plots": None if plots is None else [str(plots / "features.png"), str(plots / "average_showers.png")],
    }
    if json_out:
        print_json(out)
    else:
        _print_summary(out)


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _print_summary(out: dict[str, Any]) -> None:
    fl = out.get("floor")
    typer.echo(f"{out['model']} vs {out['reference']} ({out['technology']}, {out['n_reference']} showers)")
    typer.echo(f"{'metric':<22}{'model':>12}{'floor':>12}")
    rows = [
        ("AUC high-level", out["auc_features"], fl and fl["auc_features"]),
        ("AUC cells", out.get("auc_cells"), fl and fl.get("auc_cells")),
        ("FPD", out["fpd"]["value"], fl and fl["fpd"]["value"]),
        ("KPD", out["kpd"]["value"], fl and fl["kpd"]["value"]),
    ]
    for name, a, b in rows:
        typer.echo(f"{name:<22}{_fmt(a, '.4f'):>12}{_fmt(b, '.4f'):>12}")
    typer.echo("AUC of one feature with the conditions (worst):")
    for k, v in sorted(out["auc_per_feature"].items(), key=lambda kv: -kv[1])[:5]:
        fv = fl["auc_per_feature"][k] if fl else None
        typer.echo(f"  {k:<20}{_fmt(v, '.4f'):>12}{_fmt(fv, '.4f'):>12}")
    typer.echo("separation power (worst):")
    for k, v in out["worst_separation_power"]:
        fv = fl["features"][k]["separation_power"] if fl else None
        typer.echo(f"  {k:<20}{_fmt(v, '.4f'):>12}{_fmt(fv, '.4f'):>12}")
    typer.echo(f"{'E [GeV]':<14}{'resp ratio':>12}{'res model':>11}{'res ref':>10}{'res ratio':>11}")
    for b in out["energy_bins"]:
        typer.echo(
            f"{b['e_lo_gev']:5.1f}-{b['e_hi_gev']:<7.1f}{_fmt(b['response_ratio']):>12}"
            f"{_fmt(b['resolution_model'], '.4f'):>11}{_fmt(b['resolution_reference'], '.4f'):>10}"
            f"{_fmt(b['resolution_ratio']):>11}"
        )
    cc = out.get("calochallenge")
    if cc is not None:
        ccf = cc.get("floor")
        typer.echo(f"CaloChallenge classifier ({cc['trainings']} trainings of {cc['epochs']} epochs"
                   f"{'' if cc['official'] else ', not the official settings'}):")  # fmt: skip
        floor_text = f"   floor {ccf['auc_mean']:.4f} +- {ccf['auc_std']:.4f}" if ccf else ""
        typer.echo(f"  AUC {cc['auc_mean']:.4f} +- {cc['auc_std']:.4f}{floor_text}")
    t = out["timing"]
    if t["ms_per_shower"] is not None:
        typer.echo(f"generation: {t['ms_per_shower']:.2f} ms per shower; evaluation {t['evaluate_s']:.1f} s")
