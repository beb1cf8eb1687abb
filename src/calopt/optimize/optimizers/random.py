"""Random search: valid points drawn uniformly (:meth:`Space.sample`); in a finite space without
replacement, so it ends (``ask`` returns ``[]``) once every valid point was proposed."""

from __future__ import annotations

from typing import Any, ClassVar

from calopt.optimize.optimizers.base import Optimizer

__all__ = ["RandomSearch"]


class RandomSearch(Optimizer):
    """Uniform random sampling of valid points; any number of objectives; no options."""

    name: ClassVar[str] = "random"
    supports_multi_objective: ClassVar[bool] = True
    default_options: ClassVar[dict[str, Any]] = {}

    def _ask(self, n: int) -> list[dict[str, Any]]:
        return self._fresh_random(n)
