"""Finite-difference estimators on the cascade: ``fd`` (central differences, one parameter at
a time) and ``spsa`` (simultaneous perturbation, Spall, IEEE TAC 37 (1992) 332). Both use common
random numbers: every design point is simulated with the same seed, so the showers' random
numbers are shared and much of the noise cancels in the differences."""

from __future__ import annotations

from typing import Any

import numpy as np

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import (
    MIN_SHOWERS_PER_POINT,
    GradientEstimate,
    central_difference,
    moved,
    moved_all,
    step_of,
)
from calopt.optimize.gradients.objectives import Objective
from calopt.optimize.gradients.samples import CascadeSample, cascade_sample

__all__ = ["design_points", "exact_gradient", "fd", "paired_values", "showers_per_point", "spsa"]

N_BOOTSTRAP = 200


def showers_per_point(budget: int, points: int, estimator: str) -> int:
    """The showers per design point of an estimator that simulates ``points`` design points
    within ``budget``; a budget that leaves fewer than MIN_SHOWERS_PER_POINT is refused."""
    n = budget // points
    if n < MIN_SHOWERS_PER_POINT:
        raise CaloptInputError(f"--budget {budget} is too small for {estimator}: it needs {points} design points of at "
                               f"least {MIN_SHOWERS_PER_POINT} showers, a budget of {points * MIN_SHOWERS_PER_POINT} "
                               f"or more")  # fmt: skip
    return n


def design_points(estimator: str, n_params: int, *, directions: int = 8, designs: int | None = None) -> int:
    """The design points whose cascade samples an estimator takes for ``n_params`` parameters
    (each gets budget / points showers): fd and reweight the centre and two per parameter; spsa
    the centre and two per direction, the directions rounded up to whole Hadamard matrices;
    lgso ``designs`` (default max(8, 4 P)); pathwise the centre (its gradient comes from the model)."""
    if estimator in ("fd", "reweight"):
        return 2 * n_params + 1
    if estimator == "spsa":
        h = len(_hadamard(n_params + 1))
        return 2 * (-(-directions // h) * h) + 1
    if estimator == "lgso":
        return max(8, 4 * n_params) if designs is None else designs
    return 1


def paired_values(obj: Objective, samples: list[CascadeSample], n: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + N_BOOTSTRAP, len(samples)): the objective on each sample, then on paired bootstrap
    resamples (the same shower indices in every sample: their random numbers are shared)."""
    out = np.empty((1 + N_BOOTSTRAP, len(samples)))
    out[0] = [obj.of_sample(s) for s in samples]
    for b in range(N_BOOTSTRAP):
        idx = rng.integers(0, n, n)
        out[1 + b] = [obj.of_sample(s, idx) for s in samples]
    return out


def exact_gradient(obj: Objective, design: ModuleSpec, params: tuple[str, ...], estimator: str, rel_step: float,
                   hold_depth_x0: bool) -> GradientEstimate:  # fmt: skip
    """An exact objective: central differences of the parameters alone (no showers, no error),
    with the same relative step as the shower objectives (:func:`central_difference`)."""
    grad = {name: central_difference(obj.exact, design, name, rel_step, hold_depth_x0) for name in params}
    return GradientEstimate(estimator, obj.name, design.name, obj.exact(design), 0.0, grad, dict.fromkeys(grad, 0.0),
                            0, design.parameters(), {"exact": True})  # fmt: skip


def fd(obj: Objective, design: ModuleSpec, params: tuple[str, ...], budget: int, seed: int, *,
       rel_step: float = 0.15, hold_depth_x0: bool = True, **_: Any) -> GradientEstimate:  # fmt: skip
    """Central differences of relative step ``rel_step`` per parameter, the value at the design
    itself, all with ``seed``: budget / (2 P + 1) showers per point."""
    if obj.beam is None:
        return exact_gradient(obj, design, params, "fd", rel_step, hold_depth_x0)
    n = showers_per_point(budget, design_points("fd", len(params)), "fd")
    points, steps = [design], {}
    for name in params:
        lo, hi = step_of(design, name, rel_step)
        steps[name] = (lo, hi)
        points += [moved(design, name, lo, hold_depth_x0), moved(design, name, hi, hold_depth_x0)]
    samples = [cascade_sample(p, obj.beam, n, seed) for p in points]
    vals = paired_values(obj, samples, n, np.random.default_rng([seed, 0xFD]))
    grads = {name: (vals[:, 2 + 2 * i] - vals[:, 1 + 2 * i]) / (steps[name][1] - steps[name][0])
             for i, name in enumerate(params)}  # fmt: skip
    return GradientEstimate(
        "fd", obj.name, design.name,
        value=float(vals[0, 0]), value_err=float(vals[1:, 0].std(ddof=1)),
        gradient={k: float(g[0]) for k, g in grads.items()},
        gradient_err={k: float(g[1:].std(ddof=1)) for k, g in grads.items()},
        showers=n * len(points), parameters=design.parameters(),
        diagnostics={"showers_per_point": n, "steps": {k: list(v) for k, v in steps.items()},
                     "values_at_steps": {name: [float(vals[0, 1 + 2 * i]), float(vals[0, 2 + 2 * i])]
                                         for i, name in enumerate(params)}},
    )  # fmt: skip


def spsa(obj: Objective, design: ModuleSpec, params: tuple[str, ...], budget: int, seed: int, *, rel_step: float = 0.15,
         directions: int = 8, hold_depth_x0: bool = True, **_: Any) -> GradientEstimate:  # fmt: skip
    """``directions`` +-1 perturbations of all parameters at once (each by ``rel_step`` of its
    value), two points each plus the design: budget / (2 K + 1) showers per point. The gradient
    is the mean over directions of (f+ - f-) / (2 c_i Delta_i); its error the spread of the
    directions' estimates over sqrt(K) (conservative: it holds the cross-talk that cancels in the
    mean). The perturbations are the rows of a Hadamard matrix, each with a random sign
    (deterministic perturbations, Bhatnagar et al., ACM TOMACS 13 (2003) 180): their columns are
    orthogonal, so the cross-talk sum_j g_j c_j Delta_j / (c_i Delta_i) of every other parameter
    cancels exactly in the mean, where random signs leave a bias of the order of 1/sqrt(K) that
    is the same at every design with the same seed. K is rounded up to a multiple of the
    matrix size. The two points of a direction share their random numbers (seed + k + 1);
    directions do not."""
    if obj.beam is None:
        return exact_gradient(obj, design, params, "spsa", rel_step, hold_depth_x0)
    if directions < 2:
        raise CaloptInputError(f"spsa needs at least 2 directions for an error, got {directions}")
    hadamard = _hadamard(len(params) + 1)[:, 1 : len(params) + 1]
    n = showers_per_point(budget, design_points("spsa", len(params), directions=directions), "spsa")
    directions = -(-directions // len(hadamard)) * len(hadamard)
    rng = np.random.default_rng([seed, 0x5B5A])
    centre = cascade_sample(design, obj.beam, n, seed)
    v0 = obj.of_sample(centre)
    boot = [obj.of_sample(centre, rng.integers(0, n, n)) for _ in range(N_BOOTSTRAP)]
    per_dir = []
    steps = {name: step_of(design, name, rel_step) for name in params}
    for k in range(directions):
        delta = hadamard[k % len(hadamard)] * rng.choice([-1.0, 1.0])
        hi_vals = {name: (steps[name][1] if d > 0 else steps[name][0]) for name, d in zip(params, delta)}
        lo_vals = {name: (steps[name][0] if d > 0 else steps[name][1]) for name, d in zip(params, delta)}
        plus, minus = moved_all(design, hi_vals, hold_depth_x0), moved_all(design, lo_vals, hold_depth_x0)
        s = seed + k + 1
        df = obj.of_sample(cascade_sample(plus, obj.beam, n, s)) - obj.of_sample(cascade_sample(minus, obj.beam, n, s))
        per_dir.append([df / (hi_vals[name] - lo_vals[name]) for name in params])
    g = np.asarray(per_dir)
    return GradientEstimate(
        "spsa", obj.name, design.name,
        value=float(v0), value_err=float(np.std(boot, ddof=1)),
        gradient={name: float(g[:, i].mean()) for i, name in enumerate(params)},
        gradient_err={name: float(g[:, i].std(ddof=1) / np.sqrt(directions)) for i, name in enumerate(params)},
        showers=n * (2 * directions + 1), parameters=design.parameters(),
        diagnostics={"showers_per_point": n, "directions": directions},
    )  # fmt: skip


def _hadamard(m: int) -> np.ndarray:
    """Sylvester's Hadamard matrix of the smallest power-of-two size >= m (entries +-1, rows
    and columns orthogonal)."""
    h = np.ones((1, 1))
    while len(h) < m:
        h = np.block([[h, h], [h, -h]])
    return h
