"""Exhaustive search: every valid point of a finite space, in :meth:`Space.enumerate` order or,
with ``shuffle=True``, in an order shuffled with the seed. Points already told (a resumed
campaign) are skipped."""

from __future__ import annotations

from typing import Any, ClassVar

from calopt.errors import CaloptInputError
from calopt.optimize.optimizers.base import Optimizer
from calopt.optimize.space import MAX_ENUMERATION, Space

__all__ = ["Exhaustive"]


class Exhaustive(Optimizer):
    """Walks the enumeration of a finite space; any number of objectives. Option ``shuffle``
    (default False)."""

    name: ClassVar[str] = "exhaustive"
    supports_multi_objective: ClassVar[bool] = True
    default_options: ClassVar[dict[str, Any]] = {"shuffle": False}

    def __init__(self, space: Space, *, seed: int = 0, n_objectives: int = 1, **options: Any) -> None:
        super().__init__(space, seed=seed, n_objectives=n_objectives, **options)
        if not space.is_finite:
            raise CaloptInputError("optimiser 'exhaustive' needs a finite space (no real parameters)")
        if not isinstance(self.options["shuffle"], bool):
            raise CaloptInputError(f"optimiser 'exhaustive': option 'shuffle' must be true or false, "
                                   f"got {self.options['shuffle']!r}")  # fmt: skip
        if space.n_combinations > MAX_ENUMERATION:  # counted, not listed
            raise CaloptInputError(f"optimiser 'exhaustive' lists every point, and the space has "
                                   f"{space.n_combinations} combinations, more than the {MAX_ENUMERATION} it can list; "
                                   "search it with random, bo or cmaes")  # fmt: skip
        self._order = space.enumerate()
        if self.options["shuffle"]:
            self._order = [self._order[int(i)] for i in self.rng.permutation(len(self._order))]
        self._cursor = 0

    def _ask(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n and self._cursor < len(self._order):
            p = self._order[self._cursor]
            self._cursor += 1
            if not self.is_used(self.space.key(p)):
                out.append(p)
        return out
