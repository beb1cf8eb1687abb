"""GFlash backend: mixed species and internal chunks, energy scale, profiles, geometry, the command line,
tuning; the library backend's lookup. What every backend must do: test_backends.py."""

import numpy as np
import pytest

from calopt.detector.technologies import get_technology
from calopt.simulation.gflash import GFlashSimulator
from calopt.simulation.particles import Particles
from calopt.stats import robust_sigma

TECH = get_technology("lhcb-shashlik")


def gun(n, e_gev, pdg=22, theta_x=0.0, point=(0.0, 0.0)):
    d = np.tile([np.tan(theta_x), 0.0, 1.0], (n, 1))
    return Particles(np.full(n, pdg), np.full(n, e_gev * 1000.0), d, np.tile(point, (n, 1)))


def test_deterministic_and_independent_of_batching():
    sim = GFlashSimulator()
    rng = np.random.default_rng(0)
    p = Particles(np.array([22, 11, -11, 22, 22, 11]), rng.uniform(1000, 20000, 6),
                  np.tile([0.05, -0.1, 1.0], (6, 1)), rng.uniform(-10, 10, (6, 2)))  # fmt: skip
    a = sim.simulate(p, TECH, 7)
    b = sim.simulate(p, TECH, 7)
    np.testing.assert_array_equal(a.showers, b.showers)
    np.testing.assert_array_equal(a.times, b.times)
    c = sim.simulate(p, TECH, 8)
    assert not np.array_equal(a.showers, c.showers)
    # per-particle seeds: a chunk of the run is the same shower as in the whole run
    from calopt.simulation.base import shower_seeds

    seeds = shower_seeds(7, 0, 6)
    part = GFlashSimulator(chunk=2).simulate(p[2:5], TECH, 7, seeds=seeds[2:5])
    np.testing.assert_array_equal(part.showers, a.showers[2:5])
    assert a.attrs["generator"] == "gflash" and a.showers.shape == (6, 4, 30, 30)


def test_energy_scale_and_stochastic_term():
    e = 4.0
    sh = GFlashSimulator().simulate(gun(400, e), TECH, 1)
    r = sh.visible_energy / (e * 1000.0)
    # visible scale = nominal sampling fraction, less a small leakage (~1 %)
    assert r.mean() / TECH.sampling_fraction == pytest.approx(0.99, abs=0.02)
    # resolution: the technology's sampling term c/sqrt(E), within statistics and leakage
    assert robust_sigma(r) / np.median(r) == pytest.approx(TECH.sampling_term_estimate / np.sqrt(e), rel=0.25)


def test_longitudinal_profile_moves_deeper_with_energy():
    sim = GFlashSimulator()
    frac = {}
    for e in (2.0, 50.0):
        sh = sim.simulate(gun(100, e), TECH, 2)
        sec = sh.showers.sum(axis=(2, 3))
        frac[e] = (sec / sec.sum(axis=1, keepdims=True)).mean(axis=0)
    assert frac[50.0][0] < frac[2.0][0]
    assert frac[50.0][2] + frac[50.0][3] > frac[2.0][2] + frac[2.0][3]
    assert frac[50.0][3] > frac[2.0][3]


def test_photons_start_later_than_electrons():
    sim = GFlashSimulator()
    sec = {}
    for pdg in (22, 11):
        s = sim.simulate(gun(200, 10.0, pdg), TECH, 3).showers.sum(axis=(2, 3))
        sec[pdg] = (s / s.sum(axis=1, keepdims=True)).mean(axis=0)
    assert sec[22][0] < sec[11][0]


def test_geometry_entry_point_angle_and_time():
    sim = GFlashSimulator()
    pitch = TECH.fine_pitch
    sh = sim.simulate(gun(50, 10.0, point=(pitch, 0.0)), TECH, 4)
    img = sh.showers.sum(axis=(0, 1))
    xs = (np.arange(30) - 15 + 0.5) * pitch
    assert (img.sum(axis=0) @ xs) / img.sum() == pytest.approx(pitch, abs=3.0)
    tilted = sim.simulate(gun(50, 10.0, theta_x=0.2), TECH, 4)
    img = tilted.showers.sum(axis=(0, 1))
    cx = (img.sum(axis=0) @ xs) / img.sum()
    assert 0.2 * 60 < cx < 0.2 * 200  # tan(theta) x mean depth of the shower (~100-150 mm)
    # times: depth / c -- the deeper sections are later, a few tenths of a ns
    t = (sh.showers * sh.times).sum(axis=(0, 2, 3)) / sh.showers.sum(axis=(0, 2, 3))
    assert np.all(np.diff(t) > 0) and 0.05 < t[0] < t[-1] < 1.5


def test_simulate_cli_with_gflash(tmp_path, capsys):
    from calopt.cli.main import main
    from calopt.simulation.showers import read_showers

    out = tmp_path / "g.h5"
    args = ["simulate", "--technology", "spacal-w", "--particle", "e-", "--energy-range", "1", "5", "--n", "30",
            "--backend", "gflash", "--theta-max", "0.2", "--out", str(out), "--json"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    sh = read_showers(out)
    assert len(sh) == 30 and sh.attrs["generator"] == "gflash" and sh.showers.shape[1:] == (4, 36, 36)
    with pytest.raises(SystemExit) as exc:
        main([*args[:4], "pi+", *args[5:-2], str(tmp_path / "h.h5")])
    assert exc.value.code == 2
    assert "electromagnetic" in capsys.readouterr().err
    assert not (tmp_path / "h.h5").exists()


def test_library_backend(tmp_path):
    from calopt.simulation.library import LibrarySimulator

    sim = LibrarySimulator(energies=(0.5, 2.0), angles=(0.0, 0.2), n_per_point=2, folder=tmp_path)
    lib = sim.library(TECH, "em")
    i = int(lib.by_point[1, 0, 0, 0])  # a 2 GeV shower at normal incidence
    pitch = TECH.fine_pitch
    px, py = lib.points[i]
    p = Particles(np.array([22, 22, 22, 22]), np.array([2000.0, 1750.0, 2000.0, 2000.0]),
                  np.array([[0, 0, 1.0], [0, 0, 1.0], [-np.tan(0.2), 0, 1.0], [0, 0, 1.0]]),
                  np.array([[px, py], [px, py], [-px, py], [px + pitch, py]]))  # fmt: skip
    sh = sim.simulate(p, TECH, 0)
    ref = np.zeros((4, 30, 30))
    sl = slice(lib.o[i], lib.o[i + 1])
    ref[lib.s[sl], lib.a[sl], lib.b[sl]] = lib.e[sl]
    np.testing.assert_allclose(sh.showers[0], ref, rtol=1e-6)  # the library shower itself
    np.testing.assert_allclose(sh.showers[1], ref * 1750 / 2000, rtol=1e-6)  # rescaled
    # a negative angle: one of the 0.2 rad showers, mirrored in x (its energy is to the left)
    sums = [lib.e[lib.o[k] : lib.o[k + 1]].sum() for k in lib.by_point[1, 1, 0]]
    assert np.any(np.isclose(sh.visible_energy[2], sums, rtol=1e-6))
    xs = np.arange(30) - 14.5
    assert (sh.showers[2].sum(axis=(0, 1)) @ xs) < 0
    # shifted by one fine cell: the same deposits one column further (none lost at the edge here)
    np.testing.assert_allclose(sh.showers[3][:, :, 1:], ref[:, :, :-1], rtol=1e-6)
    assert sh.attrs["generator"] == "library"


def test_tuning_recovers_scale_and_stochastic_term():
    rng = np.random.default_rng(5)
    n = 600
    p = Particles(np.full(n, 22), 1000.0 * np.exp(rng.uniform(0, np.log(30), n)), np.tile([0, 0, 1.0], (n, 1)),
                  rng.uniform(-10, 10, (n, 2)))  # fmt: skip
    ref = GFlashSimulator(sampling_fraction=0.2, stochastic_term=0.07).simulate(p, TECH, 11)
    tuned = GFlashSimulator.tuned_to(ref, TECH, seed=12)
    assert tuned.sampling_fraction == pytest.approx(0.2, rel=0.01)
    assert tuned.stochastic_term == pytest.approx(0.07, rel=0.2)
