"""4D reconstruction: cells out of time with the signal vertex are kept out of the clusters."""

import numpy as np
import pytest

from calopt.detector.design import load_design
from calopt.readout import CellMap
from calopt.readout.readout import CellHits
from calopt.reconstruction.candidates import expected_time
from calopt.reconstruction.timing import CellTimeWindow


def _window(design: str = "upgrade2-like") -> tuple[CellMap, CellTimeWindow]:
    cells = CellMap(load_design(design))
    n_tech = len(cells.technologies)
    # every technology a = 72 ps sqrt(GeV) = 0.072 ns sqrt(GeV); offsets 0.1 ns (a calibrated delay)
    return cells, CellTimeWindow.for_cells(cells, np.full(n_tech, 0.072), np.full(n_tech, 0.1), 12620.0)


def test_cells_out_of_time_are_removed_and_cells_without_time_kept():
    cells, w = _window()
    t = cells.table
    timed = np.nonzero(t["timing"])[0][:4]
    untimed = np.nonzero(~t["timing"])[0][:2]
    ch = np.sort(np.concatenate([timed, untimed]))
    z_pv, t_pv = 20.0, 0.05
    expected = expected_time(t["x"][ch], t["y"][ch], 12620.0, z_pv, t_pv) + 0.1
    energy = np.full(len(ch), 10000.0)  # 10 GeV: sigma = 72/sqrt(10) (+) b ~ 27 ps
    offsets = np.where(np.isin(ch, timed[:2]), 0.0, 0.5)  # two in time, two 500 ps late
    time = np.where(t["timing"][ch], expected + offsets, np.nan).astype(np.float32)
    hits = CellHits(ch, energy.astype(np.float32), time, energy.astype(np.float32))
    keep = w.in_time(hits, z_pv, t_pv)
    assert keep.tolist() == [c in timed[:2] or c in untimed for c in ch]
    sel = w.select(hits, z_pv, t_pv)
    assert sorted(sel.channel.tolist()) == sorted([*timed[:2].tolist(), *untimed.tolist()])


@pytest.mark.parametrize(("energy_mev", "kept"), [(10000.0, False), (50.0, True)])
def test_the_window_widens_at_low_energy(energy_mev, kept):
    """A 150 ps offset is 5.5 sigma for a 10 GeV cell (sigma ~ 27 ps) but 0.5 sigma at 50 MeV
    (72 / sqrt(0.05) ~ 320 ps)."""
    cells, w = _window()
    ch = np.array([int(np.nonzero(cells.table["timing"])[0][0])])
    t = cells.table
    time = expected_time(t["x"][ch], t["y"][ch], 12620.0, 0.0, 0.0) + 0.1 + 0.150
    hits = CellHits(ch, np.array([energy_mev], np.float32), time.astype(np.float32), np.array([energy_mev], np.float32))
    assert w.in_time(hits, 0.0, 0.0)[0] == kept


def test_a_design_without_timing_keeps_every_cell():
    _, w = _window("lhcb-run3")
    ch = np.arange(5)
    hits = CellHits(ch, np.full(5, 100.0, np.float32), np.full(5, np.nan, np.float32), np.full(5, 100.0, np.float32))
    assert w.select(hits, 0.0, 0.0) is hits
