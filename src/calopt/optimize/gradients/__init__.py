"""Gradients of a module objective with respect to the module's parameters, by several
estimators behind one interface, each with its error and counted in cascade showers.

``estimate(objective, design, estimator, budget)`` returns a :class:`GradientEstimate`: the
objective +- error at the design, the gradient +- error per continuous parameter
(:meth:`ModuleSpec.continuous`), the cascade showers it used and diagnostics. Estimators
(:data:`ESTIMATORS`):

* ``fd``: central finite differences on the cascade with common random numbers; errors from a
  paired bootstrap over showers. The reference the others are checked against.
* ``spsa``: simultaneous-perturbation differences (Spall 1992) along random +-1 directions,
  averaged over directions; errors from their spread.
* ``pathwise``: autograd through the differentiable shower (:mod:`calopt.simulation.differentiable`).
* ``reweight``: a classifier's likelihood ratio p(x|theta)/p(x|theta0) on one cascade sample.
* ``lgso``: a local generative surrogate trained around the design (Shirobokov et al. 2020).

:func:`check` compares an estimate with ``fd`` on an independent cascade sample and says
whether they agree within errors (a chi-square over the parameters).

Layered modules keep their depth in radiation lengths when a thickness moves
(``hold_depth_x0``), so a gradient compares modules of equal depth, as physicists do.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from calopt.detector.module import LIMITS, ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients.objectives import OBJECTIVES, Objective, get_objective

__all__ = [
    "ESTIMATORS",
    "MIN_SHOWERS_PER_POINT",
    "OBJECTIVES",
    "GradientEstimate",
    "Objective",
    "central_difference",
    "check",
    "check_estimator",
    "estimate",
    "get_objective",
    "moved",
    "moved_all",
]

# Fewer showers than this per design point leave a width without meaning.
MIN_SHOWERS_PER_POINT = 20

# name -> "module:function"; each function(objective, design, parameters, budget, seed, **options)
ESTIMATORS: dict[str, str] = {
    "fd": "calopt.optimize.gradients.finite:fd",
    "spsa": "calopt.optimize.gradients.finite:spsa",
    "pathwise": "calopt.optimize.gradients.pathwise:pathwise",
    "reweight": "calopt.optimize.gradients.reweight:reweight",
    "lgso": "calopt.optimize.gradients.lgso:lgso",
}


@dataclass
class GradientEstimate:
    """What an estimator returns (units: the objective's per unit of each parameter)."""

    estimator: str
    objective: str
    module: str
    value: float
    value_err: float
    gradient: dict[str, float]
    gradient_err: dict[str, float]
    showers: int  # cascade showers used
    parameters: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def moved(design: ModuleSpec, name: str, value: float, hold_depth_x0: bool = True) -> ModuleSpec:
    """``design`` with parameter ``name`` at ``value``; a layered module keeps its depth in X0
    (the nearest whole number of layers) when ``hold_depth_x0``."""
    if design.structure == "layers" and hold_depth_x0:
        return design.replace(**{name: value}, depth_x0=design.technology().depth_X0)
    return design.replace(**{name: value})


def moved_all(design: ModuleSpec, values: dict[str, float], hold_depth_x0: bool = True) -> ModuleSpec:
    """``design`` with every parameter of ``values`` moved at once (a layered module keeps its
    depth in X0 when ``hold_depth_x0``)."""
    if design.structure == "layers" and hold_depth_x0:
        return design.replace(**values, depth_x0=design.technology().depth_X0)
    return design.replace(**values)


def step_of(design: ModuleSpec, name: str, rel_step: float) -> tuple[float, float]:
    """(low, high) values of a central difference of relative size ``rel_step`` in ``name``,
    kept inside the space's limits (one-sided at a limit)."""
    v = float(getattr(design, name))
    lo_lim, hi_lim = LIMITS[name]
    h = rel_step * abs(v)
    lo, hi = max(v - h, lo_lim), min(v + h, hi_lim)
    if design.structure == "fibres":  # the fibre must stay inside its pitch
        if name == "fibre_diameter_mm":
            hi = min(
                hi, 0.98 * design.fibre_pitch_mm * (2.0 / math.sqrt(math.pi) if design.fibre_shape == "round" else 1.0)
            )
        if name == "fibre_pitch_mm":
            lo = max(lo, design.fibre_side_mm / 0.98)
    if hi <= lo:
        raise CaloptInputError(f"{name} = {v:g} leaves no room for a difference inside the space's limits")
    return lo, hi


def central_difference(f: Callable[[ModuleSpec], float], design: ModuleSpec, name: str, rel_step: float,
                       hold_depth_x0: bool = True) -> float:  # fmt: skip
    """d f / d ``name`` of a function ``f`` of the parameters alone (cost, penalties), by a central
    difference of relative size ``rel_step`` (:func:`step_of`): a layered module held at its
    depth in X0 has a whole number of layers, so such a function is a staircase whose slope
    shows only over steps that span several layers."""
    lo, hi = step_of(design, name, rel_step)
    return (f(moved(design, name, hi, hold_depth_x0)) - f(moved(design, name, lo, hold_depth_x0))) / (hi - lo)


def check_estimator(name: str) -> None:
    """Refuse an unknown estimator name in one line."""
    if name not in ESTIMATORS:
        raise CaloptInputError(f"unknown estimator {name!r}; expected one of {', '.join(ESTIMATORS)}")


def estimate(
    objective: Objective | str,
    design: ModuleSpec,
    estimator: str,
    budget: int,
    *,
    parameters: tuple[str, ...] | None = None,
    seed: int = 0,
    **options: Any,
) -> GradientEstimate:
    """The objective and its gradient at ``design`` by ``estimator`` within ``budget`` cascade
    showers (module docstring)."""
    obj = get_objective(objective) if isinstance(objective, str) else objective
    fn = _estimator(estimator)
    params = tuple(parameters) if parameters is not None else design.continuous()
    unknown = [p for p in params if p not in design.continuous()]
    if unknown:
        raise CaloptInputError(f"parameter(s) {', '.join(unknown)} are not continuous parameters of this module; "
                               f"expected some of {', '.join(design.continuous())}")  # fmt: skip
    if not isinstance(budget, int) or budget <= 0:
        raise CaloptInputError(f"--budget {budget!r} must be a positive number of cascade showers")
    return fn(obj, design, params, budget, seed, **options)


def _estimator(name: str) -> Callable[..., GradientEstimate]:
    check_estimator(name)
    module, _, attr = ESTIMATORS[name].partition(":")
    try:
        fn: Callable[..., GradientEstimate] = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise CaloptInputError(f"estimator {name!r} is not part of this version of calopt") from None
    return fn


def check(result: GradientEstimate, objective: Objective, design: ModuleSpec, budget: int, seed: int,
          **options: Any) -> dict[str, Any]:  # fmt: skip
    """Compare ``result`` with ``fd`` on an independent cascade sample (``seed`` + 1000003):
    z-score per parameter, chi-square over them; they agree when its p-value is >= 0.01."""
    from scipy.stats import chi2

    ref = estimate(objective, design, "fd", budget, parameters=tuple(result.gradient), seed=seed + 1_000_003,
                   **{k: v for k, v in options.items() if k in ("rel_step", "hold_depth_x0")})  # fmt: skip
    z = {}
    for name, g in result.gradient.items():
        s = math.hypot(result.gradient_err[name], ref.gradient_err[name])
        z[name] = (g - ref.gradient[name]) / s if s > 0 else (0.0 if g == ref.gradient[name] else math.inf)
    chi = sum(v * v for v in z.values())
    p = float(chi2.sf(chi, len(z))) if math.isfinite(chi) else 0.0
    return {
        "reference": "fd",
        "reference_gradient": ref.gradient,
        "reference_gradient_err": ref.gradient_err,
        "reference_showers": ref.showers,
        "z": z,
        "chi2": chi,
        "p_value": p,
        "agree": bool(p >= 0.01),
    }
