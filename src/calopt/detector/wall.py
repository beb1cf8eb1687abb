"""The ECAL wall: a grid of square module slots around a beam hole.

The LHCb wall (physics-reference §1, [V] LHCb calorimeter geometry page): 121.2 mm modules,
outer edges at x = +-3878.4 mm (32 modules per half) and y = +-3151.2 mm (26 per half), i.e.
7.757 x 6.302 m, and a beam hole of 4 x 4 modules (+-242.4 mm): 3312 modules.
Coordinates are in mm in the wall plane, centred on the beam axis; module (row j, column i)
has its centre at ``x = (i - (nx - 1) / 2) * pitch``, ``y = (j - (ny - 1) / 2) * pitch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from calopt.detector.technologies import MODULE_SIZE_MM
from calopt.errors import CaloptInputError

__all__ = ["ECAL_FRONT_Z_MM", "LHCB_WALL", "EcalWall"]

ECAL_FRONT_Z_MM = 12490.0  # LHCb ECAL front face, physics-reference §1 [V]


@dataclass(frozen=True)
class EcalWall:
    """``nx`` x ``ny`` module slots of ``pitch`` mm; the central ``hole_x`` x ``hole_y`` slots are
    the beam hole. ``z_front`` is the distance of the front face from the interaction point."""

    nx: int = 64
    ny: int = 52
    pitch: float = MODULE_SIZE_MM
    hole_x: int = 4
    hole_y: int = 4
    z_front: float = ECAL_FRONT_Z_MM

    def __post_init__(self) -> None:
        if self.nx <= 0 or self.ny <= 0 or self.pitch <= 0:
            raise CaloptInputError(f"wall: need positive nx, ny and pitch, got {self.nx}, {self.ny}, {self.pitch}")
        if (self.nx - self.hole_x) % 2 or (self.ny - self.hole_y) % 2 or self.hole_x < 0 or self.hole_y < 0:
            raise CaloptInputError("wall: the beam hole must be centred (nx - hole_x and ny - hole_y even)")
        if self.hole_x >= self.nx or self.hole_y >= self.ny:
            raise CaloptInputError("wall: the beam hole is larger than the wall")

    @property
    def half_width(self) -> float:
        return 0.5 * self.nx * self.pitch

    @property
    def half_height(self) -> float:
        return 0.5 * self.ny * self.pitch

    @cached_property
    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the module centres [mm], each (ny, nx)."""
        x = (np.arange(self.nx) - (self.nx - 1) / 2.0) * self.pitch
        y = (np.arange(self.ny) - (self.ny - 1) / 2.0) * self.pitch
        return np.meshgrid(x, y)

    @cached_property
    def hole(self) -> np.ndarray:
        """(ny, nx) bool: slots of the beam hole."""
        x, y = self.centres
        return (np.abs(x) < 0.5 * self.hole_x * self.pitch) & (np.abs(y) < 0.5 * self.hole_y * self.pitch)

    @property
    def n_modules(self) -> int:
        return int((~self.hole).sum())

    def slot_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column, row and an inside-the-wall-and-not-in-the-hole flag of points (x, y) [mm]."""
        i = np.floor(np.asarray(x) / self.pitch + self.nx / 2.0).astype(np.int64)
        j = np.floor(np.asarray(y) / self.pitch + self.ny / 2.0).astype(np.int64)
        ok = (i >= 0) & (i < self.nx) & (j >= 0) & (j < self.ny)
        ic = np.clip(i, 0, self.nx - 1)
        jc = np.clip(j, 0, self.ny - 1)
        ok &= ~self.hole[jc, ic]
        return i, j, ok


LHCB_WALL = EcalWall()
