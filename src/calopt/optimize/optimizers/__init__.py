"""Ask/tell optimisers, chosen by name (:func:`get_optimizer`); the contract is in
:mod:`calopt.optimize.optimizers.base`.

========== ======================================================== =================
name       method                                                   objectives
========== ======================================================== =================
random     uniform valid points (finite spaces: without replacement) any
exhaustive every valid point of a finite space, enumeration order    any
bo         GP + qLogExpectedImprovement (BoTorch)                   1
mobo       GPs + qLogNoisyExpectedHypervolumeImprovement (BoTorch)  >= 2
cmaes      CMA-ES (``cma``) in the encoded unit cube                1
lgso       local generative surrogate optimisation (L-GSO)          1
========== ======================================================== =================
"""

from __future__ import annotations

from typing import Any

from calopt.errors import CaloptInputError
from calopt.optimize.optimizers.base import Optimizer, Value
from calopt.optimize.optimizers.bo import BayesianOptimization
from calopt.optimize.optimizers.cmaes import CMAES
from calopt.optimize.optimizers.exhaustive import Exhaustive
from calopt.optimize.optimizers.lgso import LGSO
from calopt.optimize.optimizers.mobo import MultiObjectiveBO
from calopt.optimize.optimizers.random import RandomSearch
from calopt.optimize.space import Space

__all__ = [
    "CMAES",
    "LGSO",
    "OPTIMIZERS",
    "BayesianOptimization",
    "Exhaustive",
    "MultiObjectiveBO",
    "Optimizer",
    "RandomSearch",
    "Value",
    "get_optimizer",
]

OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (RandomSearch, Exhaustive, BayesianOptimization, MultiObjectiveBO, CMAES, LGSO)
}
"""Optimiser classes by name."""


def get_optimizer(name: str, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> Optimizer:
    """A new optimiser of the registered ``name`` (:data:`OPTIMIZERS`) on ``space``."""
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise CaloptInputError(f"unknown optimiser {name!r} (known: {', '.join(OPTIMIZERS)})")
    return cls(space, seed=seed, n_objectives=n_objectives, **options)
