"""Photon reconstruction: the regressors beat the raw barycentre, and models round-trip the cache."""

import numpy as np

from calopt.detector.design import homogeneous_design
from calopt.readout import Readout, ReadoutSettings
from calopt.reconstruction.regression import (
    ParametricReco,
    TrainingSettings,
    XGBReco,
    get_reconstruction,
    photon_sample,
)

SETTINGS = ReadoutSettings(library_energies=(1.0, 5.0, 25.0), library_angles=(0.0, 0.2), library_n_per_point=2)


def _core(r):
    lo, hi = np.percentile(r, [16, 84])
    return (hi - lo) / 2


def test_regressors_beat_barycentre():
    ro = Readout(homogeneous_design("lhcb-shashlik", 60.6), SETTINGS)
    train = photon_sample(ro, 500, seed=1, energy_range=(2.0, 40.0))
    test = photon_sample(ro, 300, seed=2, energy_range=(2.0, 40.0))
    assert train.lost < 25 and len(test.energy) > 280
    xgb = XGBReco(n_estimators=150).fit(train.features, train.energy, train.x, train.y)
    par = ParametricReco().fit(train.features, train.energy, train.x, train.y)
    raw = _core(test.features.x - test.x)
    e_x, x_x, _ = xgb.predict(test.features)
    e_p, x_p, _ = par.predict(test.features)
    assert abs(np.median(e_p / test.energy - 1)) < 0.05
    assert _core(x_p - test.x) < raw  # the S-shape correction helps
    assert _core(x_x - test.x) < _core(x_p - test.x)  # and the regressor more
    assert abs(np.median(e_x / test.energy - 1)) < 0.02
    assert _core(e_x / test.energy - 1) < 0.08


def test_cached_models_round_trip():
    tr = TrainingSettings(n_train=150, seed=3, energy_range=(2.0, 20.0))
    a_xgb, a_par = get_reconstruction("spacal-pb", 30.3, SETTINGS, tr)
    b_xgb, b_par = get_reconstruction("spacal-pb", 30.3, SETTINGS, tr)  # from the disk cache
    ro = Readout(homogeneous_design("spacal-pb", 30.3), SETTINGS)
    s = photon_sample(ro, 20, seed=9, energy_range=(2.0, 20.0))
    for a, b in ((a_xgb, b_xgb), (a_par, b_par)):
        for u, v in zip(a.predict(s.features), b.predict(s.features)):
            np.testing.assert_allclose(u, v, rtol=1e-6)
