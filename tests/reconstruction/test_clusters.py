"""Clustering on hand-made hits (exact expectations) and on simulated photons."""

import numpy as np
import pytest

from calopt.detector.design import load_design
from calopt.readout import CellMap
from calopt.readout.readout import CellHits
from calopt.reconstruction import ClusterSettings, cluster_cells


@pytest.fixture(scope="module")
def cells():
    return CellMap(load_design("lhcb-run3"))


def _hits(cells, points_energies):
    ch = [int(cells.channel(np.array([x]), np.array([y]), np.array([True]))[0]) for x, y, _ in points_energies]
    e = np.array([e for _, _, e in points_energies], dtype=float)
    order = np.argsort(ch)
    return CellHits(np.array(ch)[order], e[order], np.full(len(ch), np.nan), e[order])


def test_single_cluster_3x3(cells):
    s = 60.6  # middle region
    x0, y0 = 1515.0 + s / 2, 909.0 + s / 2
    pts = [(x0, y0, 5000.0), (x0 + s, y0, 1000.0), (x0 - s, y0, 500.0), (x0, y0 + s, 300.0), (x0 + s, y0 + s, 200.0),
           (x0 + 3 * s, y0, 40.0)]  # fmt: skip
    cl = cluster_cells(_hits(cells, pts), cells, 12490.0)
    assert len(cl) == 1  # the isolated 40 MeV cell is below the seed threshold
    assert cl.energy[0] == pytest.approx(7000.0)
    ct = cells.cell_table
    assert ct["x"][cl.seed[0]] == pytest.approx(x0) and ct["y"][cl.seed[0]] == pytest.approx(y0)
    assert cl.x[0] == pytest.approx((5000 * x0 + 1000 * (x0 + s) + 500 * (x0 - s) + 300 * x0 + 200 * (x0 + s)) / 7000)
    assert cl.n_cells[0] == 5


def test_shared_cell_is_split_by_cluster_energy(cells):
    s = 60.6
    x0, y0 = 1515.0 + s / 2, 909.0 + s / 2
    # two seeds two cells apart share the cell between them
    pts = [(x0, y0, 3000.0), (x0 + 2 * s, y0, 1000.0), (x0 + s, y0, 400.0)]
    cl = cluster_cells(_hits(cells, pts), cells, 12490.0, ClusterSettings(sharing_iterations=10))
    assert len(cl) == 2
    assert cl.energy.sum() == pytest.approx(4400.0)  # energy is shared, not double counted
    # fixed point: f = E1 / (E1 + E2) with E1 = 3000 + 400 f, E2 = 1000 + 400 (1 - f)
    f = np.linspace(0, 1, 100001)
    f_star = f[np.argmin(np.abs(f - (3000 + 400 * f) / (4400.0)))]
    assert cl.energy.max() == pytest.approx(3000 + 400 * f_star, abs=0.1)


def test_cluster_across_cell_sizes(cells):
    # a seed at the inner/middle border: its touching cells include both 40.4 and 60.6 mm cells
    x_in = 969.6 - 20.2  # last inner column
    pts = [(x_in, 0.0 + 20.2 + 242.4, 4000.0), (x_in + 30.3 + 20.2, 20.2 + 242.4, 800.0)]
    cl = cluster_cells(_hits(cells, pts), cells, 12490.0)
    assert len(cl) == 1 and cl.energy[0] == pytest.approx(4800.0)
    sizes = cells.cell_table["size"][cl.members]
    assert set(np.round(sizes, 1)) == {40.4, 60.6}
