"""Toy problems with known optima, for testing and benchmarking the optimisers.

* :func:`mixed_finite`: a finite space of 2 categoricals x 2 integers x a boolean with a
  constraint (666 valid points) shaped like a design choice (absorber, readout, layers,
  thickness, timing layer), one unique minimum;
* :func:`noisy_quadratic`: a shifted, scaled quadratic in 3 real dimensions with Gaussian noise;
* :func:`branin`: the Branin function on its usual domain (three global minima, 0.397887);
* :func:`zdt1`: the two-objective ZDT1 problem in 2 dimensions (front f2 = 1 - sqrt(f1), y = 0).

Each returns a :class:`ToyProblem`; ``evaluate(point, rng)`` gives the (noisy) value, ``truth(point)``
the noise-free one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calopt.optimize.pareto import hypervolume_2d
from calopt.optimize.space import Boolean, Categorical, Integer, Real, Space

__all__ = ["ToyProblem", "branin", "mixed_finite", "noisy_quadratic", "zdt1"]


@dataclass
class ToyProblem:
    """A test problem: its ``space``, noise-free objective ``truth`` (a float, or a tuple for
    several objectives), Gaussian ``noise`` standard deviation, the optimum value ``best`` (for
    several objectives: the hypervolume of the true front w.r.t. ``ref``) and an optimal point."""

    name: str
    space: Space
    truth: Callable[[dict[str, Any]], Any]
    best: float
    best_point: dict[str, Any] | None = None
    noise: float = 0.0
    n_objectives: int = 1
    ref: tuple[float, ...] = field(default_factory=tuple)

    def evaluate(self, point: dict[str, Any], rng: np.random.Generator) -> Any:
        """The objective with noise."""
        v = self.truth(point)
        if self.noise == 0:
            return v
        if self.n_objectives == 1:
            return float(v + self.noise * rng.standard_normal())
        return tuple(float(x + self.noise * rng.standard_normal()) for x in v)


_ABSORBER = {"lead": 0.5, "tungsten": 0.0, "iron": 1.0}
_READOUT = {"fibre": 0.4, "sipm": 0.1, "pmt": 0.3}


def _mixed_truth(p: dict[str, Any]) -> float:
    timing = (-0.2 if p["readout"] == "sipm" else 0.1) if p["timing"] else 0.0
    return (_ABSORBER[p["absorber"]] + _READOUT[p["readout"]] + 0.08 * (p["layers"] - 5) ** 2
            + 0.15 * (p["thickness"] - 2) ** 2 + timing)  # fmt: skip


def mixed_finite() -> ToyProblem:
    """666 valid points; minimum -0.1 at tungsten, sipm, 5 layers, thickness 2, timing on (the
    timing layer helps only with the sipm readout: an interaction)."""
    space = Space([Categorical("absorber", tuple(_ABSORBER)), Categorical("readout", tuple(_READOUT)),
                   Integer("layers", 1, 8), Integer("thickness", 0, 4), Boolean("timing")],
                  constraint=lambda p: p["layers"] * (p["thickness"] + 1) <= 30)  # fmt: skip
    best = {"absorber": "tungsten", "readout": "sipm", "layers": 5, "thickness": 2, "timing": True}
    return ToyProblem("mixed_finite", space, _mixed_truth, -0.1, best)


_QUAD_CENTRE = {"a": 0.3, "b": -1.2, "c": 2.5}
_QUAD_SCALE = {"a": 1.0, "b": 2.0, "c": 4.0}


def noisy_quadratic(noise: float = 0.01) -> ToyProblem:
    """sum(((x - c) / w)^2) on [-2, 2] x [-3, 3] x [0, 8]; minimum 0 at c = (0.3, -1.2, 2.5)."""
    space = Space([Real("a", -2.0, 2.0), Real("b", -3.0, 3.0), Real("c", 0.0, 8.0)])

    def truth(p: dict[str, Any]) -> float:
        return float(sum(((p[k] - _QUAD_CENTRE[k]) / _QUAD_SCALE[k]) ** 2 for k in _QUAD_CENTRE))

    return ToyProblem("noisy_quadratic", space, truth, 0.0, dict(_QUAD_CENTRE), noise=noise)


def branin() -> ToyProblem:
    """Branin on [-5, 10] x [0, 15]; minimum 0.397887 at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)."""
    space = Space([Real("x1", -5.0, 10.0), Real("x2", 0.0, 15.0)])

    def truth(p: dict[str, Any]) -> float:
        x1, x2 = p["x1"], p["x2"]
        b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
        return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)

    return ToyProblem("branin", space, truth, 0.397887, {"x1": math.pi, "x2": 2.275})


def zdt1() -> ToyProblem:
    """f1 = x, f2 = g (1 - sqrt(x / g)), g = 1 + 9 y, on [0, 1]^2; the Pareto front is y = 0,
    f2 = 1 - sqrt(f1). ``best`` is its hypervolume w.r.t. ``ref`` = (1.1, 1.1): 0.1 + 2/3 + 0.11."""
    space = Space([Real("x", 0.0, 1.0), Real("y", 0.0, 1.0)])

    def truth(p: dict[str, Any]) -> tuple[float, float]:
        g = 1 + 9 * p["y"]
        return float(p["x"]), float(g * (1 - math.sqrt(p["x"] / g)))

    ref = (1.1, 1.1)
    f1 = np.linspace(0, 1, 100_001)
    hv = hypervolume_2d(np.stack([f1, 1 - np.sqrt(f1)], axis=1), ref)
    return ToyProblem("zdt1", space, truth, hv, None, n_objectives=2, ref=ref)
