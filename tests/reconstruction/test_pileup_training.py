"""Pile-up-aware photon regressors: training photons overlaid with minimum-bias pile-up (and the
per-channel offset subtraction of evaluate), cache keys, determinism, bad settings."""

from dataclasses import asdict, replace

import numpy as np
import pytest

from calopt.detector.design import homogeneous_design
from calopt.errors import CaloptInputError
from calopt.readout import Readout, ReadoutSettings
from calopt.reconstruction.pileup import pileup_density
from calopt.reconstruction.regression import (
    TrainingSettings,
    get_reconstruction,
    photon_sample,
    training_pileup,
)

SETTINGS = ReadoutSettings(library_energies=(1.0, 5.0, 25.0), library_angles=(0.0, 0.2), library_n_per_point=2)
TRAIN = TrainingSettings(n_train=120, seed=4, energy_range=(2.0, 20.0), pileup=20.0, pileup_crossings=8)


@pytest.fixture
def pileup():
    """Readout of a homogeneous wall of small cells (where pile-up is densest per cell), a few
    pile-up crossings at mu = 20 and their per-channel mean."""
    ro = Readout(homogeneous_design("lhcb-shashlik", 40.4), SETTINGS)
    events = training_pileup(TRAIN)
    return ro, events, pileup_density(ro, events, TRAIN.seed, pileup_only=True)


def test_pileup_crossings_leave_the_gun_photon_out(pileup):
    _, events, _ = pileup
    assert len(events) == 8 and events.n_pileup.mean() == pytest.approx(20.0, abs=6.0)
    ro = Readout(homogeneous_design("lhcb-shashlik", 40.4), SETTINGS)
    with_gun = pileup_density(ro, events, 0, pileup_only=False).sum()
    assert pileup_density(ro, events, 0, pileup_only=True).sum() < with_gun


def test_pileup_adds_energy_to_the_outer_cells(pileup):
    ro, events, rho = pileup
    clean = photon_sample(ro, 150, seed=5, energy_range=(2.0, 20.0))
    raw = photon_sample(ro, 150, seed=5, energy_range=(2.0, 20.0), pileup=events)  # no offset subtraction
    sub = photon_sample(ro, 150, seed=5, energy_range=(2.0, 20.0), pileup=events, rho=rho)
    ring2 = [np.abs(s.features.X[:, 1:26].reshape(-1, 5, 5)[:, [0, 4], :]).sum(axis=(1, 2)) for s in (clean, raw, sub)]
    # the outer 5x5 cells (2 of the 4 edges, in fractions of the cluster energy) collect pile-up
    assert np.mean(ring2[1]) > 1.5 * np.mean(ring2[0])
    # after subtracting the mean offsets, the outer cells still fluctuate more than without pile-up
    assert np.std(sub.features.X[:, 1:26].reshape(-1, 5, 5)[:, [0, 4], :].sum(axis=(1, 2))) > 1.2 * np.std(
        clean.features.X[:, 1:26].reshape(-1, 5, 5)[:, [0, 4], :].sum(axis=(1, 2))
    )
    # and the raw cluster energy is biased up without the subtraction, not with it
    assert np.median(raw.features.energy / raw.energy) > np.median(sub.features.energy / sub.energy)


def test_pileup_sample_is_deterministic(pileup):
    ro, events, rho = pileup
    a = photon_sample(ro, 40, seed=7, pileup=events, rho=rho, overlay=0.5)
    b = photon_sample(ro, 40, seed=7, pileup=events, rho=rho, overlay=0.5)
    np.testing.assert_array_equal(a.features.X, b.features.X)
    np.testing.assert_array_equal(a.energy, b.energy)
    c = photon_sample(ro, 40, seed=8, pileup=events, rho=rho, overlay=0.5)
    assert not np.array_equal(a.energy, c.energy)


def test_cache_key_unchanged_without_pileup():
    # the pile-up fields enter the key only when used: caches of pile-up-free regressors stay valid
    doc = TrainingSettings().key_doc()
    assert set(doc) == {"n_train", "seed", "energy_range", "library_seed_offset", "overlay_fraction"}
    assert TrainingSettings(pileup_crossings=9).key_doc() == doc
    assert TrainingSettings(pileup=20.0).key_doc() == asdict(TrainingSettings(pileup=20.0))
    assert TrainingSettings(pileup=20.0).key_doc() != TrainingSettings(pileup=50.0).key_doc()


def test_pileup_regressors_are_cached_separately_and_deterministic(fresh_cache):
    folder = fresh_cache / "regressors"
    xgb0, _ = get_reconstruction("lhcb-shashlik", 40.4, SETTINGS, replace(TRAIN, pileup=0.0))
    before = set(folder.glob("lhcb-shashlik-40.4-*.json"))
    xgb, par = get_reconstruction("lhcb-shashlik", 40.4, SETTINGS, TRAIN)
    new = set(folder.glob("lhcb-shashlik-40.4-*.json")) - before
    assert len(new) == 1  # its own cache entry
    # the energy of pile-up regressors is fitted by its conditional median
    assert (xgb.energy_objective, xgb0.energy_objective) == ("reg:absoluteerror", "reg:squarederror")
    ro = Readout(homogeneous_design("lhcb-shashlik", 40.4), SETTINGS)
    s = photon_sample(ro, 30, seed=11, energy_range=(2.0, 20.0))
    assert not np.allclose(xgb.predict(s.features)[0], xgb0.predict(s.features)[0])
    # trained again (cache entry removed): the same models bit for bit
    new.pop().unlink()
    xgb2, par2 = get_reconstruction("lhcb-shashlik", 40.4, SETTINGS, TRAIN)
    np.testing.assert_array_equal(xgb.predict(s.features)[0], xgb2.predict(s.features)[0])
    np.testing.assert_array_equal(par.predict(s.features)[0], par2.predict(s.features)[0])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("pileup", -1.0, "pileup must be"), ("pileup", float("nan"), "pileup must be"),
     ("pileup_crossings", 0, "pileup_crossings"), ("n_train", 0, "n_train"), ("overlay_fraction", 1.5, "overlay")],
)  # fmt: skip
def test_bad_training_settings(field, value, message):
    with pytest.raises(CaloptInputError, match=message) as err:
        get_reconstruction("lhcb-shashlik", 40.4, SETTINGS, replace(TrainingSettings(), **{field: value}))
    assert "\n" not in str(err.value)
