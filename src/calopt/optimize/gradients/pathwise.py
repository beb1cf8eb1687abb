"""The ``pathwise`` estimator: autograd through the differentiable shower
(:mod:`calopt.simulation.differentiable`) with its randomness reparametrised (fixed base
noise), so that d objective / d theta is the derivative of a deterministic function.

The objective is reconstructed from the model's cells as the cascade objective is from the
cascade's: the calibrated 3 x 3-cell sum around the hit cell, photo-statistics included (linear
in the cells, so differentiable as it stands), or, for ``energy_resolution_ml`` and
``position_resolution``, the design-conditioned regressor
(:mod:`calopt.optimize.gradients.reconstruction`), whose design input is a function of the
leaves, so the derivative also follows how the best reconstruction changes with the design.
A layered module keeps its depth in X0: its number of layers is the real-valued function
depth_X0 x X0(theta) / period(theta) of the thicknesses (:func:`model_values`), so the
derivative sees the module grow or shrink as the cascade's whole layers do on average.

The model is tuned to the cascade but not equal to it (``studies/differentiable_residuals.py``:
sigma/E within 11-14 % r.m.s., worse where rear leakage fluctuates). The cascade therefore sets
the scale: ``budget`` cascade showers at the design measure the objective (value +- bootstrap
error), and the model's gradient is multiplied by cascade value / model value, a local
correction of the model's level that keeps its direction and relative sizes. The gradient's
error is the spread of the gradients of ``batches`` independent batches of model showers over
sqrt(batches), combined with the relative error of the correction and a systematic
``model_systematic`` (15 %) of the gradient: the model's sigma/E differs from the cascade's by
11-14 % r.m.s. across designs (the residual study), and a derivative is no better known than
the function. The bias left is the model's: ``check`` against ``fd`` measures it (Aehle et al.,
arXiv:2405.07944, found pathwise derivatives through showers biased by discontinuities; a
smooth parametric model has none, so its bias is that of its physics).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import MIN_SHOWERS_PER_POINT, GradientEstimate
from calopt.optimize.gradients.objectives import Objective
from calopt.optimize.gradients.samples import cascade_sample

__all__ = ["model_objective", "model_values", "pathwise"]

N_BOOTSTRAP = 200


def model_objective(obj: Objective, design: ModuleSpec, params: tuple[str, ...], n: int, seed: int,
                    hold_depth_x0: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """The objective of ``n`` model showers at ``design`` as a torch scalar, and the leaf
    tensors of ``params`` it depends on."""
    from calopt.optimize.gradients.objectives import RECONSTRUCTED
    from calopt.simulation.differentiable import BaseNoise, DifferentiableShower

    if obj.name not in ("energy_resolution", *RECONSTRUCTED) or obj.beam is None:
        raise CaloptInputError(f"pathwise: objective {obj.name!r} has no differentiable model")
    ds = DifferentiableShower(design)
    leaves = ds.parameters(requires_grad=False)
    for p in params:
        leaves[p] = leaves[p].clone().requires_grad_(True)
    values = model_values(ds, design, dict(leaves), hold_depth_x0)
    tilt = math.tan(math.radians(obj.beam.tilt(design)))
    out = ds(values, obj.beam.energy_gev * 1000.0, BaseNoise.draw(n, 5, seed), slopes=(tilt, tilt))
    cells = out.cells[:, 1:4, 1:4]
    if obj.name in RECONSTRUCTED:  # the regressor, conditioned on the design's (differentiable) values
        reco = obj.reconstructor(design)
        energy, pos = reco(cells, reco.features({**design.parameters(), **values}))
        return obj.of_reconstructed(energy, pos, out.impact_mm), {p: leaves[p] for p in params}
    e = cells.sum(dim=(1, 2))
    return e.std() / e.mean(), {p: leaves[p] for p in params}


def model_values(ds: Any, design: ModuleSpec, values: dict[str, Any], hold_depth_x0: bool) -> dict[str, Any]:
    """The model's parameter ``values`` (tensors or floats) of ``design``, a layered module held
    at its depth in X0 given the real-valued number of layers depth_X0 x X0 / period."""
    from calopt.simulation.differentiable import module_properties

    if design.structure == "layers" and hold_depth_x0:
        one = module_properties(ds.materials, {**ds.defaults, **values, "n_layers": 1.0})
        values = {**values, "n_layers": design.technology().depth_X0 * one["x0_mm"] / one["period_mm"]}
    return values


def pathwise(obj: Objective, design: ModuleSpec, params: tuple[str, ...], budget: int, seed: int, *,
             model_showers: int = 4000, batches: int = 8, hold_depth_x0: bool = True,
             model_systematic: float = 0.15, rel_step: float = 0.15, **_: Any) -> GradientEstimate:  # fmt: skip
    """Gradient by autograd through the differentiable shower (``model_showers`` in
    ``batches``), scaled to the cascade's value measured with ``budget`` cascade showers."""
    if obj.beam is None:  # an exact objective, differentiated as every estimator does
        from calopt.optimize.gradients.finite import exact_gradient

        return exact_gradient(obj, design, params, "pathwise", rel_step, hold_depth_x0)
    if budget < MIN_SHOWERS_PER_POINT:
        raise CaloptInputError(f"--budget {budget} is too small for pathwise: it needs at least "
                               f"{MIN_SHOWERS_PER_POINT} cascade showers for the value at the design")  # fmt: skip
    if batches < 2 or model_showers < batches * 100:
        raise CaloptInputError(f"pathwise needs at least 2 batches of 100 model showers, got {batches} x "
                               f"{model_showers // max(batches, 1)}")  # fmt: skip
    sample = cascade_sample(design, obj.beam, budget, seed)
    value = obj.of_sample(sample)
    rng = np.random.default_rng([seed, 0x9A7])
    value_err = float(np.std([obj.of_sample(sample, rng.integers(0, budget, budget)) for _ in range(N_BOOTSTRAP)],
                             ddof=1))  # fmt: skip
    per = model_showers // batches
    model_values, grads = [], []
    for b in range(batches):
        f, leaves = model_objective(obj, design, params, per, seed * 1000 + b, hold_depth_x0)
        g = torch.autograd.grad(f, [leaves[p] for p in params])
        model_values.append(float(f.detach()))
        grads.append([float(x) for x in g])
    g_arr = np.asarray(grads)
    model_value = float(np.mean(model_values))
    scale = value / model_value
    rel_scale_err = math.hypot(
        value_err / value, float(np.std(model_values, ddof=1)) / math.sqrt(batches) / model_value
    )
    mean = g_arr.mean(axis=0)
    err = g_arr.std(axis=0, ddof=1) / math.sqrt(batches)
    return GradientEstimate(
        "pathwise", obj.name, design.name, value=value, value_err=value_err,
        gradient={p: float(scale * mean[i]) for i, p in enumerate(params)},
        gradient_err={p: float(abs(scale) * math.hypot(err[i], abs(mean[i]) * rel_scale_err,
                                                       abs(mean[i]) * model_systematic))
                      for i, p in enumerate(params)},
        showers=budget, parameters=design.parameters(),
        diagnostics={"model_value": model_value, "model_systematic": model_systematic,
                     "model_showers": per * batches, "batches": batches, "cascade_over_model": scale,
                     "model_gradient": {p: float(mean[i]) for i, p in enumerate(params)}},
    )  # fmt: skip
