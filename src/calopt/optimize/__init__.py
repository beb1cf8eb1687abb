"""Design optimisation: a parameter :class:`Space`, ask/tell optimisers chosen by name
(:func:`get_optimizer`, :data:`OPTIMIZERS`), and Pareto-front helpers. All objectives are
minimised."""

from __future__ import annotations

from calopt.optimize.optimizers import OPTIMIZERS, Optimizer, Value, get_optimizer
from calopt.optimize.pareto import hypervolume_2d, pareto_front
from calopt.optimize.space import Boolean, Categorical, Integer, Param, Real, Space

__all__ = [
    "OPTIMIZERS",
    "Boolean",
    "Categorical",
    "Integer",
    "Optimizer",
    "Param",
    "Real",
    "Space",
    "Value",
    "get_optimizer",
    "hypervolume_2d",
    "pareto_front",
]
