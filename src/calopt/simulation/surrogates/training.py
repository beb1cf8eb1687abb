"""Training of the generative surrogates, reproducible from the seed, and their post-training
calibrations.

The model types train themselves (:mod:`calopt.simulation.surrogates.registry`: the WGAN-GP and
AdaGAN recipes in :mod:`.gan`, the flow in :mod:`.flow`); this module prepares the data, runs
them as resumable phases, and writes the checkpoint.

Every model type gets two calibrations after training, measured on the model's own showers
against the training showers and stored in the checkpoint: ``response_calibration`` (median and
robust width of ln(E_vis/E) per ln E bin, :mod:`calopt.simulation.surrogates.calibration`;
``calibrate_response``) and ``hit_model`` (tail cells whose mean energy is below
``hit_max_mev`` become discrete deposits, :mod:`calopt.simulation.surrogates.hits`; 0 switches
it off). :func:`calibrate_surrogate` (``calopt surrogate calibrate``) measures them again on
other showers, e.g. a larger sample than the networks were trained on: the widths the response
calibration copies are uncertain by ~3 % with ~1000 showers per ln E bin.

Every model is trained on the aligned showers of :func:`~calopt.simulation.surrogates.dataset.
load_training_set` (``align``, the default; the networks get the sub-cell offsets of the axis
as more conditions) unless ``align=False``.

Data order and noise come from a ``torch.Generator`` seeded with ``seed``: the same seed, data
and thread count give the same checkpoint bit for bit. :func:`train_surrogate` is resumable
(:mod:`calopt.simulation.surrogates.resume`): every phase and every 500 of its steps, the
training state is saved to ``OUT.partial``; a killed training started again with the same
settings and data goes on from there, and gives the same checkpoint bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calopt import __version__
from calopt.errors import CaloptInputError
from calopt.simulation.surrogates.calibration import MIN_SPECIES_SHOWERS
from calopt.simulation.surrogates.checkpoint import save_checkpoint
from calopt.simulation.surrogates.dataset import DEFAULT_CROP, TrainingSet, load_training_set
from calopt.simulation.surrogates.registry import get_type
from calopt.simulation.surrogates.resume import SAVE_EVERY, TrainingState, data_identity, job_key, partial_path
from calopt.simulation.surrogates.types import TrainingData

__all__ = ["DEFAULTS", "MIN_CALIBRATION_SHOWERS", "calibrate_surrogate", "train_on_set", "train_surrogate"]

DEFAULTS: dict[str, Any] = {
    "batch": 128,
    "nz": 32,
    "g_hidden": [256, 512, 512],
    "c_hidden": [256, 256],
    "r_hidden": [256, 128],
    "n_critic": 5,
    "lambda_gp": 10.0,
    "lambda_reg": 5.0,
    "lr_g": 1e-4,
    "lr_c": 1e-4,
    "reg_steps": 1500,
    "n_pca": 64,
    "res_bins": 8,
    "profile": True,
    "calibrate_residual": True,
    "hit_max_mev": 10.0,
    "calibrate_response": True,
    "smooth_response": True,
    "transforms": 4,
    "flow_hidden": [128, 128],
    "flow_batch": 256,
    "lr_flow": 1e-3,
    "components": 3,
    "disc_steps": 600,
    "disc_input": "features",
    "warm_start": True,
}

# per species and ln E bin of calibrate_surrogate's showers: no fewer than calibrate_response
# needs before it pools the species
MIN_CALIBRATION_SHOWERS = MIN_SPECIES_SHOWERS

Progress = Callable[[int, int], None]


def train_on_set(
    model_type: str,
    ds: TrainingSet,
    *,
    steps: int,
    seed: int = 0,
    progress: Progress | None = None,
    settings: dict[str, Any] | None = None,
    training_state: TrainingState | None = None,
) -> dict[str, Any]:
    """Train a model on a loaded :class:`TrainingSet`; returns the checkpoint dictionary.
    ``training_state`` saves the training as it goes and resumes a saved one (default:
    neither)."""
    import torch

    kind = get_type(model_type)
    if steps <= 0:
        raise CaloptInputError(f"--steps must be positive, got {steps}")
    s = {**DEFAULTS, **(settings or {})}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise CaloptInputError(f"unknown training settings: {sorted(unknown)}")
    if not s["hit_max_mev"] >= 0:
        raise CaloptInputError(f"hit_max_mev must be >= 0 (0: no hit model), got {s['hit_max_mev']}")
    if s["disc_input"] not in ("features", "full"):
        raise CaloptInputError(f"disc_input must be 'features' or 'full', got {s['disc_input']!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    d = TrainingData(ds, gen)
    run = training_state or TrainingState()
    run.begin(gen, kind.work(steps, s), progress)
    t0 = time.perf_counter()
    trained = kind.train(run, d, steps, s)
    ck: dict[str, Any] = {
        "model_type": model_type,
        "technology": ds.technology,
        "calopt_version": __version__,
        "conditions": ds.space.to_dict(),
        "representation": ds.meta(),
        "normalisation": {"r_mean": d.r_mean, "r_std": d.r_std, "lnevis_mean": d.v_mean, "lnevis_std": d.v_std},
        "time_model": {
            "a": torch.from_numpy(ds.time_a),
            "b": torch.from_numpy(ds.time_b),
            "sigma": torch.from_numpy(ds.time_sigma),
            "lne": torch.from_numpy(ds.time_lne),
        },
        "architecture": {"n_cond": d.c.shape[1], "n_out": d.g.shape[1], **trained.arch},
        "training": {
            "steps": int(steps),
            "seed": int(seed),
            "settings": s,
            "files": list(ds.files),
            "n_train": len(ds),
            "seconds": round(time.perf_counter() - t0, 2),
            "torch_threads": torch.get_num_threads(),
            "torch_version": str(torch.__version__),
            "summary": trained.summary,
        },
        "state": trained.net.state_dict(),
        **trained.extra,
    }
    ck.update(_calibrations(ck, ds, s))
    return ck


def _calibrations(ck: dict[str, Any], ds: TrainingSet, s: dict[str, Any]) -> dict[str, Any]:
    """The post-training calibrations, measured on the model's showers for the conditions of
    ``ds`` (the showers of a fixed run seed) against the showers of ``ds`` (the training
    showers, or those given to :func:`calibrate_surrogate`): the response
    (:mod:`calopt.simulation.surrogates.calibration`, if ``calibrate_response``) and then the
    hit model (:mod:`calopt.simulation.surrogates.hits`, if ``hit_max_mev`` > 0 and the
    training sample has enough tail deposits for it)."""
    import torch

    from calopt.simulation.base import shower_seeds
    from calopt.simulation.surrogates.calibration import apply_response, calibrate_response
    from calopt.simulation.surrogates.hits import calibrate_hits
    from calopt.simulation.surrogates.noise import shower_rngs
    from calopt.simulation.surrogates.simulator import SurrogateSimulator

    out: dict[str, Any] = {}
    sample = SurrogateSimulator(ck).generate(ds.model_cond, shower_rngs(shower_seeds(0x4341_4C49, 0, len(ds))))
    norm = ck["normalisation"]
    r_gen = sample.r.astype(np.float64) * norm["r_std"] + norm["r_mean"]
    n_sp = len(ds.space.pdgs)
    rows = ds.space.species_rows(ds.cond)
    n_bins = max(int(s["res_bins"]), 1)
    le = ds.cond[:, 0].astype(np.float64)
    if s["calibrate_response"]:
        cal = calibrate_response(r_gen, ds.r, le, rows, n_sp, n_bins=n_bins, smooth=bool(s["smooth_response"]))
        r_gen = apply_response(r_gen, le, rows, cal)
        out["response_calibration"] = {k: torch.from_numpy(v) for k, v in cal.items()}
    if s["hit_max_mev"] > 0:
        gen_cells = sample.fractions.astype(np.float64) * (np.exp(r_gen) * ds.energies)[:, None]
        real_cells = ds.g.astype(np.float64) ** 2 * (np.exp(ds.r) * ds.energies)[:, None]
        try:
            hm = calibrate_hits(gen_cells, real_cells, le, rows, n_sp, n_bins=n_bins, max_mev=float(s["hit_max_mev"]))
            out["hit_model"] = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in hm.items()}
        except ValueError:  # too few tail deposits (tiny samples): no hit model
            pass
    return out


def _is_checkpoint(path: Path) -> bool:
    """True if ``path`` is a calopt-surrogate checkpoint (of any format version)."""
    import torch

    from calopt.simulation.surrogates.checkpoint import FORMAT

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # anything torch cannot read back safely is not a checkpoint of ours
        return False
    return isinstance(ck, dict) and ck.get("format") == FORMAT


def check_checkpoint_output(out: Path, overwrite: bool) -> None:
    """Refuse, without touching it, a checkpoint output that cannot be written, an existing
    file that is not a calopt-surrogate checkpoint (even with ``overwrite``: a campaign
    database or a shower file is never replaced), or an existing checkpoint without
    ``overwrite``."""
    from calopt.files import check_output_file

    check_output_file(out, "calopt-surrogate checkpoint", _is_checkpoint, overwrite)


def train_surrogate(
    model_type: str,
    train_files: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    steps: int = 2000,
    seed: int = 0,
    progress: Progress | None = None,
    crop: int = DEFAULT_CROP,
    energy_range_gev: tuple[float, float] | None = None,
    theta_max: float | None = None,
    align: bool = True,
    settings: dict[str, Any] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    save_every: int = SAVE_EVERY,
) -> dict[str, Any]:
    """Train ``model_type`` (``wgan``, ``flow`` or ``adagan``) on calopt-showers files and save
    the checkpoint atomically to ``out``. ``steps`` counts generator steps (flow: gradient
    steps); ``progress(done, total)`` is called with units of work. Returns the checkpoint.

    The training state is saved to ``out.partial`` at the start of every phase and every
    ``save_every`` of its steps, and removed once the checkpoint is written. A training
    started with the settings and data of ``out.partial`` resumes from it (``log`` is told
    where); one with other settings is refused, unless ``overwrite``, which discards it."""
    from calopt.files import output_lock

    out = Path(out)
    check_checkpoint_output(out, overwrite)
    get_type(model_type)
    job = {
        "model_type": model_type,
        "steps": steps,
        "seed": seed,
        "crop": crop,
        "energy_range_gev": [float(e) for e in energy_range_gev] if energy_range_gev else None,
        "theta_max": None if theta_max is None else float(theta_max),
        "align": bool(align),
        "settings": {**DEFAULTS, **(settings or {})},
        "files": data_identity(train_files),
        "calopt_version": __version__,
    }
    with output_lock(out):
        state = TrainingState.open(partial_path(out), job_key(job), overwrite=overwrite, every=save_every)
        if state.resumes_at is not None and log is not None:
            log(f"resuming the training saved in {str(state.path)!r} at {state.resumes_at}")
        ds = load_training_set(
            train_files, crop=crop, energy_range_gev=energy_range_gev, theta_max=theta_max, align=align
        )
        ck = train_on_set(
            model_type, ds, steps=steps, seed=seed, progress=progress, settings=settings, training_state=state
        )
        save_checkpoint(out, ck)
        state.remove()
    return ck


def calibrate_surrogate(
    model: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Measure the post-training calibrations of the checkpoint ``model`` (response, hit
    model) again on the cascade showers of ``files`` and save the recalibrated checkpoint
    atomically to ``out``; the networks are unchanged. The showers must be of the model's
    technology, grid and training range, and hold every species of the model with at least
    MIN_CALIBRATION_SHOWERS per ln E bin (``res_bins`` bins), so that no species is calibrated
    on another's showers. Returns the checkpoint."""
    from calopt.simulation.surrogates.calibration import ln_e_bins
    from calopt.simulation.surrogates.checkpoint import load_checkpoint
    from calopt.simulation.surrogates.conditions import ConditionSpace, species_name

    out = Path(out)
    check_checkpoint_output(out, overwrite)
    ck = load_checkpoint(model)
    rep = ck["representation"]
    space = ConditionSpace.from_dict(ck["conditions"])
    depths = rep.get("axis_depths_mm")
    ds = load_training_set(files, crop=int(rep["crop"]), space=space,
                           depths=None if depths is None else np.asarray(depths, dtype=np.float64))  # fmt: skip
    if ds.technology != ck["technology"] or ds.grid != int(rep["grid"]) or ds.sections != int(rep["sections"]):
        raise CaloptInputError(
            f"calibration showers are of {ds.technology!r} ({ds.sections} x {ds.grid} x {ds.grid}); the model "
            f"{str(model)!r} is of {ck['technology']!r} ({rep['sections']} x {rep['grid']} x {rep['grid']})"
        )
    s = {**DEFAULTS, **ck["training"]["settings"]}
    n_bins = max(int(s["res_bins"]), 1)
    which, _ = ln_e_bins(ds.cond[:, 0].astype(np.float64), n_bins)
    rows = space.species_rows(ds.cond)
    for p, pdg in enumerate(space.pdgs):
        fewest = min(int(((rows == p) & (which == b)).sum()) for b in range(n_bins))
        if fewest < MIN_CALIBRATION_SHOWERS:
            name = species_name(pdg)
            raise CaloptInputError(
                f"calibration showers hold {fewest} {name} in one of the {n_bins} ln E bins; the model's species "
                f"{name} needs at least {MIN_CALIBRATION_SHOWERS} in every bin"
            )
    from calopt.simulation.surrogates.simulator import SurrogateSimulator

    state = SurrogateSimulator(ck).net.state_dict()  # in this version's layout
    ck = {k: v for k, v in ck.items() if k not in ("format", "format_version", "response_calibration", "hit_model")}
    ck["state"] = state
    ck["training"] = {
        **ck["training"],
        "calibration": {"files": list(ds.files), "n": len(ds), "calopt_version": __version__},
    }
    ck.update(_calibrations(ck, ds, s))
    save_checkpoint(out, ck)
    return ck
