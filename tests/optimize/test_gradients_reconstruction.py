"""The design-conditioned reconstruction (calopt.optimize.gradients.reconstruction) and the
objectives measured through it: trained once and cached, refused outside its box, the same
function of cells on the cascade and on the model, differentiable in the design."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calopt.detector.module import load_module
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import estimate, get_objective
from calopt.optimize.gradients import reconstruction as rec
from calopt.optimize.gradients.samples import cascade_sample

SHASHLIK = load_module("lhcb-shashlik")


@pytest.fixture
def small_training(monkeypatch, fresh_cache):
    """A quick training (a few seconds) in a cache of the test's own."""
    monkeypatch.setattr(rec, "TRAIN_DESIGNS", 8)
    monkeypatch.setattr(rec, "SHOWERS_PER_DESIGN", 300)
    monkeypatch.setattr(rec, "STEPS", 300)
    monkeypatch.setattr(rec, "_MEMO", {})
    monkeypatch.setattr(rec, "_BY_POINT", {})
    return fresh_cache


def test_trained_once_kept_in_the_cache_and_reloaded(small_training, monkeypatch):
    reco = rec.reconstructor(SHASHLIK, 2000.0, 0.0)
    files = list((small_training / "reconstructions").glob("lhcb-shashlik-40.4-*.pt"))
    assert len(files) == 1 and rec.reconstructor(SHASHLIK, 2000.0, 0.0) is reco

    def no_training(*args: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(rec, "_train", no_training)
    rec._MEMO.clear()
    rec._BY_POINT.clear()
    again = rec.reconstructor(SHASHLIK, 2000.0, 0.0)  # from the file
    assert again is not reco
    cells = torch.rand(5, 3, 3, dtype=torch.float64) * 100 + torch.tensor([[0, 0, 0], [0, 1500, 0], [0, 0, 0]])
    t = reco.features(SHASHLIK.parameters())
    for a, b in zip(reco(cells, t), again(cells, t)):
        assert torch.equal(a, b)
    # every point of the box, e.g. a finite difference's neighbour with its own whole number of
    # layers, is reconstructed by the one regressor of its base
    moved = SHASHLIK.replace(absorber_thickness_mm=2.3, depth_x0=SHASHLIK.technology().depth_X0)
    assert moved.n_layers != SHASHLIK.n_layers and rec.reconstructor(moved, 2000.0, 0.0) is again
    with pytest.raises(AssertionError, match="trained again"):  # another beam energy: another regressor
        rec.reconstructor(SHASHLIK, 5000.0, 0.0)


def test_reconstruction_learns_energy_and_position(small_training):
    from calopt.simulation.differentiable import BaseNoise, DifferentiableShower

    reco = rec.reconstructor(SHASHLIK, 2000.0, 0.0)
    out = DifferentiableShower(SHASHLIK)(None, 2000.0, BaseNoise.draw(2000, 5, 99))
    cells = out.cells[:, 1:4, 1:4]
    energy, pos = reco(cells, reco.features(SHASHLIK.parameters()))
    assert abs(float(energy.mean()) / 2000.0 - 1.0) < 0.03  # calibrated, leakage recovered
    raw = cells.sum(dim=(1, 2))
    assert float(raw.mean()) < float(energy.mean())  # the 3 x 3 sum misses the lateral leakage
    err = float(((pos - out.impact_mm) ** 2).mean().sqrt())
    assert err < 0.25 * SHASHLIK.cell_size_mm  # far better than the cell centre (0.29 x cell)


def test_a_design_outside_the_training_box_is_refused(small_training):
    far = SHASHLIK.replace(absorber_thickness_mm=7.0, depth_x0=SHASHLIK.technology().depth_X0)
    with pytest.raises(CaloptInputError, match=r"absorber_thickness_mm = 7 is outside the range \[0.6667, 6\]"):
        rec.reconstructor(far, 2000.0, 0.0)


@pytest.mark.parametrize("name", ["position_resolution", "energy_resolution_ml"])
def test_reconstructed_objectives_on_the_cascade_and_through_the_model(small_training, name):
    obj = get_objective(name, 2.0)
    sample = cascade_sample(SHASHLIK, obj.beam, 200, 3)
    value = obj.of_sample(sample)
    assert obj.of_sample(sample) == value and value > 0  # a fixed function of the cells
    boot = obj.of_sample(sample, np.arange(100))
    assert boot != value
    r = estimate(obj, SHASHLIK, "pathwise", 200, seed=1, model_showers=800, batches=2)
    assert r.value == obj.of_sample(cascade_sample(SHASHLIK, obj.beam, 200, 1))  # the cascade sets the value
    assert set(r.gradient) == {"absorber_thickness_mm", "active_thickness_mm"}
    assert all(math.isfinite(g) and g != 0.0 for g in r.gradient.values())
    assert all(e > 0 for e in r.gradient_err.values())
    fd = estimate(obj, SHASHLIK, "fd", 500, seed=1)
    assert all(math.isfinite(g) for g in fd.gradient.values())


def test_position_resolution_is_in_mm_and_grows_with_the_cell(small_training):
    obj = get_objective("position_resolution", 2.0)
    assert obj.unit == "mm"
    small = obj.of_sample(cascade_sample(SHASHLIK, obj.beam, 200, 3))
    big_cells = load_module("lhcb-shashlik:60.6")
    big = obj.of_sample(cascade_sample(big_cells, obj.beam, 200, 3))
    assert 0.5 < small < big < 0.29 * 60.6 * 1.5
