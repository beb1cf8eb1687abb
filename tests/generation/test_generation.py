"""Event generation: propagation, guns, Pythia signal and pile-up, the events file."""

import numpy as np
import pytest

from calopt.errors import CaloptInputError, FileFormatError
from calopt.generation import FLAG, EventSpec, generate_events, read_events
from calopt.generation.propagation import LHCB_DIPOLE, propagate_to_ecal


def test_neutral_straight_line():
    p = np.array([[100.0, -50.0, 10000.0]])
    x, y, t, p_face, ok = propagate_to_ecal(p, np.zeros(1), np.zeros(1), np.array([[0.0, 0.0, 10.0, 0.1]]))
    assert ok[0]
    assert x[0] == pytest.approx(100.0 / 10000.0 * (12490.0 - 10.0))
    assert y[0] == pytest.approx(-50.0 / 10000.0 * (12490.0 - 10.0))
    path = np.sqrt(x[0] ** 2 + y[0] ** 2 + (12480.0) ** 2)
    assert t[0] == pytest.approx(0.1 + path / 299.792458)
    np.testing.assert_allclose(p_face, p)


def test_dipole_kick():
    # a 10 GeV/c track along z: deflected in x by the 1.2 GeV/c kick, opposite for opposite charges
    p = np.array([[0.0, 0.0, 10000.0]] * 2)
    x, y, _, p_face, ok = propagate_to_ecal(p, np.array([1, -1]), np.full(2, 139.57), np.zeros((2, 4)))
    assert ok.all() and y == pytest.approx([0.0, 0.0])
    kick = LHCB_DIPOLE.kick
    assert p_face[0, 0] == pytest.approx(kick) and p_face[1, 0] == pytest.approx(-kick)
    assert x[0] == pytest.approx(kick / np.sqrt(10000.0**2 - kick**2) * (12490.0 - 5300.0))
    np.testing.assert_allclose(np.linalg.norm(p_face, axis=1), 10000.0)  # |p| is kept
    # a 1 GeV/c track is swept out (the kick exceeds its momentum)
    _, _, _, _, ok = propagate_to_ecal(np.array([[0.0, 0.0, 1000.0]]), np.array([1]), np.array([139.57]),
                                       np.zeros((1, 4)))  # fmt: skip
    assert not ok[0]


def test_gun_events_and_luminous_region(tmp_path):
    spec = EventSpec(process="gun", n=400, seed=3, gun_particle="gamma", gun_energy_range=(2.0, 50.0),
                     gun_region="inner", chunk_size=150)  # fmt: skip
    out = generate_events(spec, tmp_path / "g.h5")
    ev = read_events(out)
    assert len(ev) == 400 and ev.n_particles == 400  # neutral: every photon hits its region
    x, y = ev.particles["entry"][:, 0], ev.particles["entry"][:, 1]
    assert np.all((np.abs(x) < 969.6 + 100) & (np.abs(y) < 727.2 + 100))
    assert not np.any((np.abs(x) < 242.4) & (np.abs(y) < 242.4))  # beam hole
    e = ev.particles["energy"] / 1000.0
    assert e.min() >= 2.0 and e.max() <= 50.0
    z, t = ev.pv_position[:, 0], ev.pv_position[:, 1]
    assert z.std() == pytest.approx(53.0, rel=0.15) and t.std() == pytest.approx(0.178, rel=0.15)
    assert abs(np.corrcoef(z, t)[0, 1]) < 0.15  # uncorrelated
    # same seed, other chunking: the same crossings
    again = read_events(generate_events(EventSpec(**{**spec.__dict__, "chunk_size": 150}), tmp_path / "h.h5"))
    np.testing.assert_array_equal(again.particles["entry"], ev.particles["entry"])


def test_signal_with_pileup(tmp_path):
    spec = EventSpec(process="b0-jpsipi0", n=12, pileup=5.0, seed=2, chunk_size=12)
    ev = read_events(generate_events(spec, tmp_path / "s.h5"))
    assert len(ev) == 12 and set(ev.truth) >= {"b", "pi0", "gamma1", "gamma2", "mu_plus", "mu_minus"}
    flags = ev.particles["flags"]
    idx = ev.event_index()
    for i in range(len(ev)):
        mine = idx == i
        assert ((flags[mine] & FLAG.SIGNAL_PI0_PHOTON) > 0).sum() == 2
        assert ((flags[mine] & FLAG.SIGNAL_MUON) > 0).sum() == 2
        pv = ev.particles["pv"][mine]
        assert pv.max() <= ev.n_pileup[i]
    # the B mass from the truth four-momenta, and the pi0 photons add up to the pi0
    b = ev.truth["b"]
    assert np.sqrt(b[:, 3] ** 2 - (b[:, :3] ** 2).sum(axis=1)) == pytest.approx(5279.7, abs=1.0)
    np.testing.assert_allclose(ev.truth["gamma1"] + ev.truth["gamma2"], ev.truth["pi0"], rtol=1e-4, atol=0.5)
    assert ev.n_pileup.mean() == pytest.approx(5.0, abs=2.0)
    assert ev.attrs["signal_candidates_tried"] >= 12


def test_minbias_multiplicity(tmp_path):
    ev = read_events(generate_events(EventSpec(process="minbias", n=100, seed=1), tmp_path / "m.h5"))
    photons = (ev.particles["pdg"] == 22).sum() / len(ev)
    # physics-reference §4: 18.7 photons per inelastic event in 2 < eta < 5; the wall outside
    # the beam hole sees most of them
    assert 8.0 < photons < 25.0
    assert np.all(ev.particles["flags"] & FLAG.REACHES_ECAL)


def test_bad_input(tmp_path):
    with pytest.raises(CaloptInputError, match="unknown process"):
        EventSpec(process="ttbar", n=1).validate()
    with pytest.raises(CaloptInputError, match="--pileup"):
        EventSpec(process="minbias", n=1, pileup=-2).validate()
    with pytest.raises(CaloptInputError, match="--gun-region"):
        EventSpec(process="gun", n=1, gun_region="centre").validate()
    junk = tmp_path / "j.h5"
    junk.write_text("x")
    with pytest.raises(FileFormatError):
        read_events(junk)
