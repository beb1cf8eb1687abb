"""Readout: channel map, shower library, energy conservation, reproducibility."""

import numpy as np
import pytest

from calopt.detector.design import load_design
from calopt.detector.technologies import get_technology
from calopt.readout import CellMap, Readout, ReadoutSettings
from calopt.simulation.library import LibrarySpec, get_library

TINY = {"library_energies": (1.0, 8.0), "library_angles": (0.0, 0.2), "library_n_per_point": 2}
# no response effects at all: deposits read out exactly
IDEAL = {"noise_mev": 0.0, "coherent_noise_mev": 0.0, "threshold_mev": 0.0, "photostatistics": False,
         "gain_spread": 0.0, "light_collection": False, "spillover": False, **TINY}  # fmt: skip


def test_channel_map_lhcb_run3():
    cm = CellMap(load_design("lhcb-run3"))
    assert cm.n_channels == 6064 and len(cm.table["x"]) == 6064
    # every channel's centre maps back to itself
    ch = cm.channel(cm.table["x"], cm.table["y"], np.ones(6064, dtype=bool))
    np.testing.assert_array_equal(ch, np.arange(6064))
    assert cm.channel(np.array([0.0, 1e5]), np.array([0.0, 0.0]), np.ones(2, dtype=bool)).tolist() == [-1, -1]


def test_channel_map_split_modules():
    cm = CellMap(load_design("upgrade2-like"))
    t = cm.table
    front = cm.channel(t["x"], t["y"], t["part"] != 2)
    np.testing.assert_array_equal(front, np.arange(cm.n_channels))
    assert set(np.unique(t["part"])) == {0, 1, 2}


def test_library_lookup_and_calibration():
    lib = get_library(LibrarySpec("lhcb-shashlik", "em", (1.0, 8.0), (0.0, 0.2), 2))
    assert lib.calibration == pytest.approx(get_technology("lhcb-shashlik").sampling_fraction, rel=0.15)
    idx, scale, fx, fy = lib.lookup(np.array([1.2, 7.0]), np.array([0.0, -0.19]), np.array([0.01, 0.2]),
                                    np.zeros(2), np.zeros(2))  # fmt: skip
    assert lib.grid_e[idx].tolist() == [0, 1]
    assert scale == pytest.approx([1.2, 7.0 / 8.0])
    assert fx.tolist() == [False, True] and fy.tolist() == [False, False]
    assert lib.grid_a[idx[1]].tolist() == [1, 1]


def test_fastsim_libraries():
    """EM libraries can come from a fast simulation (here GFlash): another cache entry, filled by
    that generator, with its own calibration; hadron libraries stay cascade-only."""
    from calopt.errors import CaloptInputError
    from calopt.simulation.library import build_library

    spec = LibrarySpec("lhcb-shashlik", "em", (1.0, 8.0), (0.0, 0.2), 2, generator="gflash")
    assert spec.key() != LibrarySpec("lhcb-shashlik", "em", (1.0, 8.0), (0.0, 0.2), 2).key()
    lib = get_library(spec)
    assert lib.spec.generator == "gflash"
    assert lib.calibration == pytest.approx(get_technology("lhcb-shashlik").sampling_fraction, rel=0.1)
    ro = Readout(load_design("lhcb-run3"), ReadoutSettings(**TINY, fastsim="gflash"))
    assert ro.library("lhcb-shashlik", "em").spec.generator == "gflash"
    assert ro.library("lhcb-shashlik", "hadron").spec.generator == "cascade"
    with pytest.raises(CaloptInputError, match="cascade MC only"):
        build_library(LibrarySpec("lhcb-shashlik", "hadron", generator="gflash"), None)  # type: ignore[arg-type]


def _photon(x, y, e_mev):
    d = np.array([x, y, 12490.0])
    d /= np.linalg.norm(d)
    return (np.array([22]), np.array([e_mev]), (d * e_mev)[None, :], np.array([[x, y, 41.7]]))


def test_energy_conservation_without_noise():
    st = ReadoutSettings(**IDEAL)
    ro = Readout(load_design("lhcb-run3"), st)
    pdg, e, p, entry = _photon(1500.0, 900.0, 8000.0)  # middle region, far from borders
    hits = ro.read(pdg, e, p, entry, np.random.default_rng(0))
    lib = ro.library("lhcb-shashlik", "em")
    off = entry[0, :2] - np.round(entry[0, :2] / lib.pitch) * lib.pitch
    idx, scale, _, _ = lib.lookup(np.array([8.0]), np.array([p[0, 0] / p[0, 2]]), np.array([p[0, 1] / p[0, 2]]),
                                  off[:1], off[1:])  # fmt: skip
    # every fine cell of the placed shower lands in a channel: nothing lost, nothing added
    expected = lib.e[lib.o[idx[0]] : lib.o[idx[0] + 1]].sum() * scale[0] / lib.calibration
    assert ro.deposits(pdg, e, p, entry)[1].sum() == pytest.approx(expected, rel=1e-12)
    assert hits.energy.sum() == pytest.approx(expected, rel=1e-6)
    assert hits.true_energy.sum() == pytest.approx(expected, rel=1e-6)
    # the photon's energy is found (up to leakage) in the 3 x 3 cells around the hit
    assert 0.85 * 8000 < hits.energy.sum() < 1.05 * 8000


def test_split_readout_sums_to_unsplit():
    st = ReadoutSettings(**IDEAL)
    pdg, e, p, entry = _photon(700.0, 0.0, 8000.0)  # spacal-pb region of upgrade2-like
    split = Readout(load_design("upgrade2-like"), st).read(pdg, e, p, entry, np.random.default_rng(0))
    cm = CellMap(load_design("upgrade2-like"))
    parts = cm.table["part"][split.channel]
    assert set(np.unique(parts)) == {1, 2}
    front = split.energy[parts == 1].sum()
    back = split.energy[parts == 2].sum()
    assert front > 0 and back > 0 and front + back == pytest.approx(split.energy.sum())


def test_noise_threshold_and_reproducibility():
    st = ReadoutSettings(**TINY)
    ro = Readout(load_design("lhcb-run3"), st)
    args = _photon(-2500.0, 1500.0, 20000.0)
    a = ro.read(*args, np.random.default_rng(5))
    b = ro.read(*args, np.random.default_rng(5))
    np.testing.assert_array_equal(a.channel, b.channel)
    np.testing.assert_array_equal(a.energy, b.energy)
    assert np.all(a.energy > st.threshold_mev)
    # noise-only channels: ~ (1 - Phi(3)) * 6064 ~ 8 per crossing
    empty = [len(ro.read(np.zeros(0, dtype=int), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)),
                         np.random.default_rng(s)).channel) for s in range(20)]  # fmt: skip
    assert 3 < np.mean(empty) < 15
    # no timing in lhcb-run3
    assert np.all(np.isnan(a.time))


def test_timing_resolution_applied():
    st = ReadoutSettings(noise_mev=0.0, threshold_mev=0.0, photostatistics=False, **TINY)
    ro = Readout(load_design("upgrade2-like"), st)
    pdg, e, p, entry = _photon(400.0, 0.0, 8000.0)  # spacal-w, timing on
    times = [ro.read(pdg, e, p, entry, np.random.default_rng(s)) for s in range(30)]
    seed_t = np.array([h.time[np.argmax(h.energy)] for h in times])
    # sigma_t = 72 ps/sqrt(E) (+) 15 ps for the seed cell (several GeV): tens of ps
    assert 0.015 < seed_t.std() < 0.06
    assert abs(seed_t.mean() - 41.7) < 1.0


def test_read_crossing_uses_only_particles_reaching_the_ecal(tmp_path):
    from calopt.generation import EventSpec, generate_events, read_events

    ev = read_events(generate_events(EventSpec(process="gun", n=5, seed=1, gun_particle="e-",
                                               gun_energy_range=(0.5, 0.6)), tmp_path / "g.h5"))  # fmt: skip
    ro = Readout(load_design("lhcb-run3"), ReadoutSettings(noise_mev=0.0, threshold_mev=0.0, **TINY))
    for i in range(len(ev)):
        hits = ro.read_crossing(ev, i, np.random.default_rng(i))
        reaching = (ev.crossing(i)["flags"] & 8) > 0
        assert (len(hits.channel) > 0) == bool(reaching.any())


def test_cell_times_are_calibrated_to_the_arrival_on_the_face():
    st = ReadoutSettings(noise_mev=0.0, threshold_mev=0.0, photostatistics=False, **TINY)
    ro = Readout(load_design("upgrade2-like"), st)
    pdg, e, p, entry = _photon(700.0, 0.0, 8000.0)
    hits = ro.read(pdg, e, p, entry, np.random.default_rng(0))
    phys = ro.cells.physical[hits.channel]
    seed = phys[np.argmax(hits.energy)]
    mine = phys == seed  # front and back of the seed cell
    t_seed = (hits.energy[mine] * hits.time[mine]).sum() / hits.energy[mine].sum()
    # within a few sigma_t (tens of ps) of the arrival time, not delayed by the shower's depth
    assert abs(t_seed - 41.7) < 0.1
