"""``calopt demo``: the whole cycle on small built-in settings, in a few minutes.

1. simulate 10 GeV photons in a Shashlik module with the cascade Monte Carlo and with the
   shipped generative surrogate, and print their response, resolution and speed: each backend
   is timed after a warm-up run (numba compilation, loading the network), so the figures are
   the per-shower cost of a long run, and the surrogate's speed-up is printed;
2. evaluate the current LHCb ECAL (``lhcb-run3``) with small shower libraries and regressors
   (built once, then cached): resolutions, the pi0 and B peaks, channels and cost, with plots.
   These are smoke-test figures (three showers per library point): they are labelled so, with
   the command that gives the full-settings ones;
3. run a short Bayesian-optimisation campaign over the borders and inner cell size of a Shashlik
   wall (``calopt/optimize/campaigns/demo.toml``), two evaluations at a time;
4. write the campaign's HTML report and print where it is.

Started again on the same folder, it reuses what is finished (the campaign resumes).
"""

from __future__ import annotations

import sys
import time
import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from calopt.cli._common import SEED_OPTION, dumps_json
from calopt.jobs import MAX_WORKERS

WARM_UP_SHOWERS = 5
"""Showers of each backend's untimed warm-up run."""


def demo(
    out: Path = typer.Option(Path("calopt-demo"), "--out", help="Folder for everything the demo writes."),
    workers: int = typer.Option(
        2, "--workers", min=1, max=MAX_WORKERS, help="Dask worker processes for the campaign (1: in this process)."
    ),
    seed: int = SEED_OPTION,
) -> None:
    """Simulate, evaluate the LHCb ECAL, optimise a layout and write the report (a few minutes)."""
    from calopt.files import make_output_folder

    make_output_folder(out)
    t_start = time.perf_counter()

    def step(k: int, msg: str) -> None:
        print(f"\n[{k}/4] {msg}  ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)

    # 1. showers
    step(1, "simulating 100 photons of 10 GeV in lhcb-shashlik: cascade Monte Carlo and the shipped surrogate")
    import numpy as np

    from calopt.simulation.runner import RunSpec, run_simulation
    from calopt.simulation.showers import read_showers
    from calopt.stats import robust_sigma

    def summary(label: str, sh: Any, seconds: float, path: Path) -> None:
        response = sh.visible_energy / 10_000.0
        resolution = robust_sigma(response) / np.median(response)
        print(f"      {label:<26} visible energy / E = {response.mean():.4f}, resolution {resolution:.2%}, "
              f"{1000 * seconds / len(sh):.2f} ms per shower after warm-up -> {path}", file=sys.stderr)  # fmt: skip

    per_shower = {}
    for backend in ("cascade", "surrogate"):
        spec = RunSpec(technology="lhcb-shashlik", particle="gamma", n=100, seed=seed, energy=10.0, backend=backend)
        shower_file = out / f"showers-gamma-10GeV-{backend}.h5"
        warm_up = out / f".warm-up-{backend}.h5"  # compilation and model loading, not timed
        run_simulation(replace(spec, n=WARM_UP_SHOWERS), warm_up, overwrite=True)
        warm_up.unlink()
        t0 = time.perf_counter()
        run_simulation(spec, shower_file, overwrite=True)
        per_shower[backend] = (time.perf_counter() - t0) / spec.n
        label = "cascade MC" if backend == "cascade" else "shipped surrogate (flow)"
        summary(label, read_showers(shower_file), per_shower[backend] * spec.n, shower_file)
    print(f"      the surrogate is {per_shower['cascade'] / per_shower['surrogate']:.1f} x faster than the cascade "
          "here (100 showers of 10 GeV after warm-up, one process)", file=sys.stderr)  # fmt: skip

    # 2. evaluate lhcb-run3
    step(2, "evaluating lhcb-run3 (small shower libraries and regressors: built once, then cached)")

    from calopt.detector.design import load_design
    from calopt.metrics.plots import plot_evaluation
    from calopt.metrics.registry import METRICS, format_value
    from calopt.pipeline import QUICK_READOUT, QUICK_TRAINING, EvaluateSettings, evaluate

    eval_dir = out / "evaluate-lhcb-run3"
    eval_dir.mkdir(exist_ok=True)
    st = replace(EvaluateSettings(n_events=500, seed=seed + 1, n_resolution=1000), readout=QUICK_READOUT,
                 training=QUICK_TRAINING)  # fmt: skip
    design = load_design("lhcb-run3")
    result = evaluate(design, st, progress=lambda m: print(f"      {m}", file=sys.stderr, flush=True))
    doc = result.to_json()
    (eval_dir / "evaluate.json").write_text(dumps_json(doc, indent=1))
    from calopt.validation.cascade import PUBLISHED

    plot_evaluation(doc, eval_dir, {r.technology: PUBLISHED[r.technology] for r in design.regions
                                    if r.technology in PUBLISHED})  # fmt: skip
    print("      SMOKE-TEST FIGURES (quick settings: 3 showers per library point, small training samples); they "
          "check that the chain runs, not what lhcb-run3 measures. Full settings: calopt evaluate lhcb-run3 "
          "(minutes to build its libraries once)", file=sys.stderr)  # fmt: skip
    for m in METRICS.values():
        print(f"      {m.label():>38}: {format_value(m, doc)}  [smoke test]", file=sys.stderr)

    # 3. campaign
    step(3, f"optimising the layout with Bayesian optimisation ({workers} worker{'s' if workers > 1 else ''})")
    from calopt.optimize.campaign import DB_NAME, Campaign, run_campaign

    campaign_doc = tomllib.loads(resources.files("calopt.optimize").joinpath("campaigns/demo.toml").read_text())
    campaign = Campaign.from_dict(campaign_doc, "demo campaign")
    folder = out / "campaign"
    run_campaign(campaign, folder, workers=workers, resume=(folder / DB_NAME).exists(),
                 progress=lambda m: print(f"      {m}", file=sys.stderr, flush=True))  # fmt: skip

    # 4. report
    step(4, "writing the report")
    from calopt.report.html import write_report

    path = write_report(folder)
    print(f"\ndone in {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    typer.echo(f"report: {path.resolve()}")
