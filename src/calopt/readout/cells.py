"""Readout channels of a design: every cell of every module, twice with a longitudinal split.

Channel ``base[j, i] + (iy * n + ix) * parts + part`` is cell (iy, ix) of module (j, i), with
``n`` cells per module side and ``parts`` = 2 (front, back) for split modules, else 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from calopt.detector.design import Design

__all__ = ["CellMap"]


@dataclass(frozen=True)
class CellMap:
    design: Design

    @cached_property
    def parts(self) -> np.ndarray:
        """(ny, nx) longitudinal parts per module (0 in the hole)."""
        return np.where(self.design.region_index >= 0, np.where(self.design.split, 2, 1), 0)

    @cached_property
    def base(self) -> np.ndarray:
        """(ny, nx) first channel of each module."""
        counts = (self.design.cells_per_side**2 * self.parts).ravel()
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).reshape(self.parts.shape)

    @property
    def n_channels(self) -> int:
        return self.design.n_channels

    def channel(self, x: np.ndarray, y: np.ndarray, front: np.ndarray) -> np.ndarray:
        """Channel of points (x, y) [mm] on the wall; ``front``: the deposit is in the front
        part (used for split modules). -1 outside the wall or in the beam hole."""
        wall = self.design.wall
        i, j, ok = wall.slot_of(x, y)
        ic, jc = np.clip(i, 0, wall.nx - 1), np.clip(j, 0, wall.ny - 1)
        n = self.design.cells_per_side[jc, ic]
        ok &= n > 0
        size = wall.pitch / np.maximum(n, 1)
        left = (ic - wall.nx / 2.0) * wall.pitch
        bottom = (jc - wall.ny / 2.0) * wall.pitch
        ix = np.clip(np.floor((x - left) / size).astype(np.int64), 0, np.maximum(n - 1, 0))
        iy = np.clip(np.floor((y - bottom) / size).astype(np.int64), 0, np.maximum(n - 1, 0))
        parts = self.parts[jc, ic]
        part = np.where(parts == 2, np.where(front, 0, 1), 0)
        ch = self.base[jc, ic] + (iy * n + ix) * parts + part
        return np.where(ok, ch, -1)

    @cached_property
    def table(self) -> dict[str, np.ndarray]:
        """Per channel: x, y centre [mm], size [mm], part (0 whole, 1 front, 2 back), timing,
        ``time_b`` the constant term of its time resolution [ps] (0 without timing), technology
        index (into ``technologies``), module row and column."""
        d = self.design
        wall = d.wall
        techs = self.technologies
        keys = ("x", "y", "size", "part", "timing", "time_b", "tech", "row", "col")
        out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for j, i in zip(*np.nonzero(d.region_index >= 0)):
            n = int(d.cells_per_side[j, i])
            parts = int(self.parts[j, i])
            size = wall.pitch / n
            iy, ix, pp = np.meshgrid(np.arange(n), np.arange(n), np.arange(parts), indexing="ij")
            left = (i - wall.nx / 2.0) * wall.pitch
            bottom = (j - wall.ny / 2.0) * wall.pitch
            m = n * n * parts
            out["x"].append((left + (ix + 0.5) * size).ravel())
            out["y"].append((bottom + (iy + 0.5) * size).ravel())
            out["size"].append(np.full(m, size))
            out["part"].append((pp + 1).ravel() if parts == 2 else np.zeros(m, dtype=np.int64))
            out["timing"].append(np.full(m, bool(d.timing[j, i])))
            out["time_b"].append(np.full(m, float(d.time_constant_ps[j, i])))
            out["tech"].append(np.full(m, techs.index(str(d.technology[j, i]))))
            out["row"].append(np.full(m, j))
            out["col"].append(np.full(m, i))
        return {k: np.concatenate(v) for k, v in out.items()}

    @cached_property
    def physical(self) -> np.ndarray:
        """(n_channels,) index of the physical cell of each channel (front and back of a split
        cell share it)."""
        return np.cumsum(self.table["part"] != 2) - 1

    @cached_property
    def n_cells(self) -> int:
        return int(self.physical[-1]) + 1

    @cached_property
    def cell_table(self) -> dict[str, np.ndarray]:
        """Per physical cell: x, y, size, timing, time_b, tech, row, col (from its first channel)."""
        first = np.nonzero(self.table["part"] != 2)[0]
        return {k: v[first] for k, v in self.table.items() if k != "part"}

    @cached_property
    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR (offsets, indices) of the physical cells touching each cell (sides or corners),
        across modules and cell sizes."""
        from scipy.spatial import cKDTree

        t = self.cell_table
        xy = np.stack([t["x"], t["y"]], axis=1)
        size = t["size"]
        tree = cKDTree(xy)
        reach = (size + size.max()) / 2.0 * np.sqrt(2.0) * 1.001
        offsets = [0]
        idx: list[np.ndarray] = []
        for c, cand in enumerate(tree.query_ball_point(xy, reach)):
            cand = np.asarray(cand)
            lim = (size[c] + size[cand]) / 2.0 * 1.001
            ok = (np.abs(xy[cand, 0] - xy[c, 0]) <= lim) & (np.abs(xy[cand, 1] - xy[c, 1]) <= lim) & (cand != c)
            idx.append(np.sort(cand[ok]))
            offsets.append(offsets[-1] + int(ok.sum()))
        return np.asarray(offsets), np.concatenate(idx)

    @cached_property
    def technologies(self) -> list[str]:
        return sorted({r.technology for r in self.design.regions})
