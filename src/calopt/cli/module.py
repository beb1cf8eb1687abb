"""``calopt module``: points of the module design space (calopt.detector.module)."""

from __future__ import annotations

from pathlib import Path

import typer

from calopt.cli._common import JSON_OPTION, SEED_OPTION, print_json

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


@module_app.command("gradient")
def gradient(
    spec: str = SPEC_ARGUMENT,
    objective: str = typer.Option(
        "energy_resolution",
        "--objective",
        help="energy_resolution | energy_resolution_ml | position_resolution | cost",
    ),
    energy: float = typer.Option(10.0, "--energy", help="Photon energy of the energy_resolution objective [GeV]."),
    estimator: str = typer.Option("fd", "--estimator", help="fd | spsa | pathwise | reweight | lgso"),
    budget: int = typer.Option(2000, "--budget", min=1, help="Cascade showers the estimate may use."),
    parameter: list[str] | None = typer.Option(
        None, "--parameter", help="A continuous parameter to differentiate against (repeat; default: all)."
    ),
    rel_step: float = typer.Option(
        0.15, "--step", min=1e-3, max=0.5, help="Relative step of finite differences (fd, spsa, and --check)."
    ),
    check_fd: bool = typer.Option(False, "--check", help="Compare with fd on an independent cascade sample."),
    check_budget: int | None = typer.Option(
        None, "--check-budget", min=1, help="Showers of the check (default: --budget)."
    ),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The objective +- error and its gradient +- error per module parameter, by one estimator."""
    from calopt.detector.module import load_module
    from calopt.jobs import check_seed
    from calopt.optimize.gradients import check, estimate, get_objective

    check_seed(seed)
    point = load_module(spec)
    obj = get_objective(objective, energy)
    params = tuple(parameter) if parameter else None
    result = estimate(obj, point, estimator, budget, parameters=params, seed=seed, rel_step=rel_step)
    doc = result.to_json()
    if check_fd:
        doc["check"] = check(result, obj, point, check_budget or budget, seed, rel_step=rel_step)
    if json_out:
        print_json(doc)
        return
    typer.echo(f"{point.name}: {obj.describe()} by {estimator}, {result.showers} cascade showers")
    typer.echo(f"  value   {result.value:.6g} +- {result.value_err:.2g}")
    for name, g in result.gradient.items():
        line = f"  d/d {name:24s} {g:+.4g} +- {result.gradient_err[name]:.2g}"
        if check_fd:
            c = doc["check"]
            ref, ref_err = c["reference_gradient"][name], c["reference_gradient_err"][name]
            line += f"   fd: {ref:+.4g} +- {ref_err:.2g} (z = {c['z'][name]:+.1f})"
        typer.echo(line)
    if check_fd:
        c = doc["check"]
        verdict = "agree" if c["agree"] else "DISAGREE"
        typer.echo(f"  check against fd: {verdict} within errors (chi2 = {c['chi2']:.2f}, p = {c['p_value']:.3f})")


def _weighted(items: list[str]) -> tuple[tuple[str, float], ...]:
    from calopt.errors import CaloptInputError

    out = []
    for item in items:
        name, _, w = item.partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise CaloptInputError(f"--objective {item!r}: expected NAME or NAME:WEIGHT with a number") from None
        out.append((name, weight))
    return tuple(out)


def _box(items: list[str]) -> dict[str, tuple[float, float]]:
    from calopt.errors import CaloptInputError

    box = {}
    for item in items:
        name, _, rng = item.partition("=")
        lo, _, hi = rng.partition(":")
        try:
            box[name] = (float(lo), float(hi))
        except ValueError:
            raise CaloptInputError(f"--box {item!r}: expected NAME=LO:HI with numbers") from None
    return box


@module_app.command("optimize")
def optimize_module(
    spec: str = SPEC_ARGUMENT,
    objective: list[str] = typer.Option(
        ["energy_resolution:100", "cost:0.5"], "--objective", help="NAME[:WEIGHT], repeated; minimised sum."
    ),
    energy: float = typer.Option(10.0, "--energy", help="Photon energy of the energy_resolution objective [GeV]."),
    box: list[str] = typer.Option(..., "--box", help="NAME=LO:HI, a continuous parameter and its range (repeat)."),
    estimator: str = typer.Option("fd", "--estimator", help="fd | spsa | pathwise | reweight | lgso"),
    method: str = typer.Option("trust-region", "--method", help="trust-region | adam"),
    budget: int = typer.Option(20000, "--budget", min=1, help="Cascade showers in all."),
    step_budget: int = typer.Option(2000, "--step-budget", min=1, help="Showers per gradient estimate."),
    check_budget: int = typer.Option(1000, "--check-budget", min=1, help="Showers per point of each step's check."),
    radius: float = typer.Option(
        0.1, "--radius", min=0.01, max=1.0, help="Initial trust radius (fraction of the box)."
    ),
    max_cost: float | None = typer.Option(None, "--max-cost", min=0.0, help="Cost constraint [kCHF per module]."),
    max_mass: float | None = typer.Option(None, "--max-mass", min=0.0, help="Mass constraint [kg per module]."),
    max_depth: float | None = typer.Option(None, "--max-depth", min=1.0, help="Depth constraint [mm]."),
    log: Path = typer.Option(..., "--log", help="JSON-lines log of the steps; an existing one is resumed."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the objective and parameters against the step."),
    seed: int = SEED_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Gradient-based design of a module: steps from estimated gradients, each accepted only when
    the cascade confirms the predicted improvement (calopt.optimize.gradients.descent)."""
    from calopt.detector.module import load_module
    from calopt.files import check_writable, output_lock
    from calopt.jobs import check_seed
    from calopt.optimize.gradients import check_estimator
    from calopt.optimize.gradients.descent import DescentSettings, Problem, answer, descend, plot_steps

    check_seed(seed)
    check_estimator(estimator)  # before the log is written
    problem = Problem(terms=_weighted(objective), box=_box(box), energy_gev=energy, max_depth_mm=max_depth,
                      max_mass_kg=max_mass, max_cost_kchf=max_cost)  # fmt: skip
    problem.objectives()  # unknown objective names fail here, before anything runs
    st = DescentSettings(estimator=estimator, method=method, budget=budget, step_budget=step_budget,
                         check_budget=check_budget, radius=radius, max_radius=max(0.4, radius), seed=seed)  # fmt: skip
    start = load_module(spec)
    check_writable(log)
    if plot is not None:
        check_writable(plot)
    with output_lock(log, "descent log"):
        steps = descend(problem, start, st, log=log)
    if not steps:
        from calopt.errors import CaloptInputError

        raise CaloptInputError(
            f"--budget {budget} does not cover one step ({step_budget} + 2 x {check_budget} showers)"
        )
    if plot is not None:
        plot_steps(steps, plot)
    final = answer(steps)
    doc = {"final": final, "steps": [s.__dict__ for s in steps], "showers": steps[-1].showers}
    if json_out:
        print_json(doc)
        return
    typer.echo(
        f"{'step':>4} "
        + " ".join(f"{p:>22s}" for p in problem.parameters)
        + "        J +- err     rho  accepted radius showers"
    )
    for s in steps:
        rho = f"{s.rho:6.2f}" if s.rho is not None else "     -"
        typer.echo(f"{s.index:4d} " + " ".join(f"{s.parameters[p]:22.4g}" for p in problem.parameters)
                   + f" {s.value:8.4g} +- {s.value_err:.2g} {rho} {'yes' if s.accepted else 'no ':>8s} {s.radius:6.3f} "
                   f"{s.showers:7d} {s.note}")  # fmt: skip
    typer.echo("final: " + ", ".join(f"{k} = {v:.4g}" for k, v in final.items()))
