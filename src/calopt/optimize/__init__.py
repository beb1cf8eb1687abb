"""Design optimisation: a parameter :class:`Space`, ask/tell optimisers chosen by name
(:func:`get_optimizer`, :data:`OPTIMIZERS`), and Pareto-front helpers. All objectives are
minimised; a failed evaluation is told as ``None``.

Example::

    space = Space([Categorical("absorber", ("lead", "tungsten")), Integer("layers", 10, 60),
                   Real("thickness_mm", 0.5, 4.0), Boolean("timing")],
                  constraint=lambda p: p["layers"] * p["thickness_mm"] <= 150)
    opt = get_optimizer("bo", space, seed=1)
    while budget_left():
        points = opt.ask(4)          # [] when a finite space is exhausted
        opt.tell(points, [evaluate(p) for p in points])

The contract every optimiser keeps is in :mod:`calopt.optimize.optimizers.base`; toy problems
with known optima are in :mod:`calopt.optimize.toy_problems`.
"""

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
