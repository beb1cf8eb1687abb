"""The gradient interface (calopt.optimize.gradients): fd and spsa on the cascade, the check
against fd, and the trust-region descent with its rho test and resumable log."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calopt.detector.module import load_module
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import check, estimate, get_objective
from calopt.optimize.gradients.descent import DescentSettings, Problem, descend
from calopt.optimize.gradients.samples import cascade_sample, clear_memo
from tests.helpers import run_cli

SHASHLIK = load_module("lhcb-shashlik")
RES_1GEV = get_objective("energy_resolution", 1.0)


def test_cascade_samples_share_random_numbers():
    clear_memo()
    a = cascade_sample(SHASHLIK, RES_1GEV.beam, 30, 5)
    clear_memo()
    b = cascade_sample(SHASHLIK, RES_1GEV.beam, 30, 5)
    assert np.array_equal(a.cluster, b.cluster) and np.array_equal(a.photo_normal, b.photo_normal)
    other = cascade_sample(SHASHLIK.replace(active_thickness_mm=4.4), RES_1GEV.beam, 30, 5)
    assert np.array_equal(other.photo_normal, a.photo_normal)  # common random numbers
    assert not np.array_equal(other.cluster, a.cluster)
    assert np.all(a.cluster <= a.window) and np.all(a.cluster > 0)


def test_cost_gradient_is_exact():
    r = estimate("cost", SHASHLIK, "fd", 1)
    assert r.showers == 0 and r.value == 6.0
    # thicker lead at 25 X0: fewer, cheaper layers; thicker scintillator: more plastic
    assert r.gradient["absorber_thickness_mm"] < 0 < r.gradient["active_thickness_mm"]
    # the slope over the finite-difference step (15 %), across the staircase of whole layers
    h = 0.15 * 4.0
    depth_x0 = SHASHLIK.technology().depth_X0
    up = SHASHLIK.replace(active_thickness_mm=4.0 + h, depth_x0=depth_x0)
    down = SHASHLIK.replace(active_thickness_mm=4.0 - h, depth_x0=depth_x0)
    fd = (up.properties()["cost_kchf_per_module"] - down.properties()["cost_kchf_per_module"]) / (2 * h)
    assert r.gradient["active_thickness_mm"] == pytest.approx(fd, rel=1e-9)


def test_pathwise_through_the_differentiable_shower():
    r = estimate(RES_1GEV, SHASHLIK, "pathwise", 100, seed=2, model_showers=800, batches=4)
    assert r.showers == 100 and r.diagnostics["model_showers"] == 800
    # finer sampling resolves better: thicker lead worse, thicker scintillator better (at 25 X0)
    assert r.gradient["absorber_thickness_mm"] > 3 * r.gradient_err["absorber_thickness_mm"] > 0
    assert r.gradient["active_thickness_mm"] < 0
    assert 0.7 < r.diagnostics["cascade_over_model"] < 1.4
    again = estimate(RES_1GEV, SHASHLIK, "pathwise", 100, seed=2, model_showers=800, batches=4)
    assert again.gradient == r.gradient
    with pytest.raises(CaloptInputError, match="too small for pathwise"):
        estimate(RES_1GEV, SHASHLIK, "pathwise", 10)


@pytest.mark.parametrize("estimator", ["fd", "spsa"])
def test_cascade_estimators(estimator):
    r = estimate(RES_1GEV, SHASHLIK, estimator, 650, seed=3)
    assert r.estimator == estimator and r.module == "lhcb-shashlik"
    assert 0.03 < r.value < 0.15 and 0 < r.value_err < r.value
    assert set(r.gradient) == set(r.gradient_err) == {"absorber_thickness_mm", "active_thickness_mm"}
    assert all(math.isfinite(g) for g in r.gradient.values())
    assert all(e > 0 for e in r.gradient_err.values())
    assert 0 < r.showers <= 650
    again = estimate(RES_1GEV, SHASHLIK, estimator, 650, seed=3)
    assert again.gradient == r.gradient


def test_check_against_fd():
    r = estimate(RES_1GEV, SHASHLIK, "spsa", 650, seed=4)
    c = check(r, RES_1GEV, SHASHLIK, 500, 4)
    assert set(c["z"]) == set(r.gradient)
    assert c["chi2"] >= 0 and 0 <= c["p_value"] <= 1 and c["agree"] == (c["p_value"] >= 0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimator": "nope", "budget": 100}, "unknown estimator 'nope'"),
        ({"estimator": "fd", "budget": 60}, "too small for fd"),
        ({"estimator": "spsa", "budget": 100}, "too small for spsa"),
        ({"estimator": "fd", "budget": 500, "parameters": ("n_layers",)}, "not continuous parameters"),
    ],
)
def test_refusals(kwargs, message):
    with pytest.raises(CaloptInputError, match=message):
        estimate(RES_1GEV, SHASHLIK, **kwargs)


BOX = {"absorber_thickness_mm": (1.0, 4.0), "active_thickness_mm": (1.5, 7.5)}


def test_descent_on_an_exact_objective_goes_downhill():
    # the cheapest module of the box at 25 X0 has the thickest lead and the thinnest plastic
    problem = Problem(terms=(("cost", 1.0),), box=BOX)
    steps = descend(problem, SHASHLIK, DescentSettings(radius=0.1, max_radius=0.4, seed=1), max_steps=20)
    assert steps[0].showers == 0 and steps[1].radius > steps[0].radius >= 0.1  # good steps widen the region
    moves, last = steps[:-1], steps[-1]
    assert all(s.accepted and s.rho is not None and s.rho > 0.5 for s in moves)
    assert last.note.startswith("converged") and len(steps) < 20
    assert last.parameters == {"absorber_thickness_mm": 4.0, "active_thickness_mm": 1.5}
    assert last.value < steps[0].value


def test_trust_region_stops_at_a_constraint():
    # the dearest module under an 8 kCHF ceiling: -cost + 100 (cost / 8 - 1)^2 is least at 8.32 kCHF;
    # the model is exact in the penalty, so the steps stop at the wall instead of bouncing off it
    problem = Problem(terms=(("cost", -1.0),), box=BOX, max_cost_kchf=8.0)
    steps = descend(problem, SHASHLIK, DescentSettings(radius=0.1, seed=1), max_steps=40)
    last = steps[-1]
    final = last.proposal if last.accepted and last.proposal is not None else last.parameters
    cost = SHASHLIK.replace(**final, depth_x0=SHASHLIK.technology().depth_X0).properties()["cost_kchf_per_module"]
    assert 7.7 < cost < 8.7
    assert sum(s.accepted for s in steps) >= len(steps) // 2


def test_adam_descent_goes_downhill():
    problem = Problem(terms=(("cost", 1.0),), box=BOX)
    st = DescentSettings(method="adam", learning_rate=0.1, radius=0.1, seed=1)
    steps = descend(problem, SHASHLIK, st, max_steps=5)
    assert all(s.accepted for s in steps[:3])
    assert steps[-1].value < steps[0].value
    assert steps[-1].parameters["absorber_thickness_mm"] > 2.0


def test_descent_constraint_and_rejection():
    # a cost ceiling below the start: the penalty dominates and pushes towards cheaper modules
    problem = Problem(terms=(("cost", 0.0),), box=BOX, max_cost_kchf=5.0)
    steps = descend(problem, SHASHLIK, DescentSettings(radius=0.05, seed=1), max_steps=3)
    assert steps[0].value > 0 and steps[0].gradient["absorber_thickness_mm"] < 0


def test_descent_log_resumes(tmp_path):
    problem = Problem(terms=(("energy_resolution", 100.0), ("cost", 0.5)), box=BOX, energy_gev=1.0)
    st = DescentSettings(budget=1800, step_budget=300, check_budget=150, seed=2)
    log = tmp_path / "d.jsonl"
    first = descend(problem, SHASHLIK, st, log=log, max_steps=1)
    both = descend(problem, SHASHLIK, st, log=log, max_steps=2)
    assert len(first) == 1 and len(both) == 2
    assert both[0].value == first[0].value and both[0].gradient == first[0].gradient
    straight = descend(problem, SHASHLIK, st, max_steps=2)
    assert straight[1].parameters == both[1].parameters and straight[1].value == both[1].value
    assert both[1].showers <= st.budget
    with pytest.raises(CaloptInputError, match="other settings"):
        descend(problem, SHASHLIK, DescentSettings(budget=1800, step_budget=300, check_budget=150, seed=3), log=log)
    (tmp_path / "other.jsonl").write_text("not a log\n")
    with pytest.raises(CaloptInputError, match=r"not a calopt descent log"):
        descend(problem, SHASHLIK, st, log=tmp_path / "other.jsonl")


def test_optimize_cli_plots_the_steps(capsys, tmp_path):
    argv = ["module", "optimize", "lhcb-shashlik", "--objective", "cost", "--box", "absorber_thickness_mm=1:4",
            "--log", str(tmp_path / "d.jsonl"), "--plot", str(tmp_path / "d.png"), "--json"]  # fmt: skip
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["final"]["absorber_thickness_mm"] == pytest.approx(4.0)
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_gradient_cli(capsys):
    argv = ["module", "gradient", "lhcb-shashlik", "--objective", "energy_resolution", "--energy", "1",
            "--estimator", "spsa", "--budget", "390", "--check", "--check-budget", "300", "--json"]  # fmt: skip
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    doc = json.loads(out)
    for key in ("value", "value_err", "gradient", "gradient_err", "showers"):
        assert key in doc
    assert isinstance(doc["check"]["agree"], bool)
    rc, out, err = run_cli(["module", "gradient", "lhcb-shashlik", "--estimator", "magic"], capsys)
    assert rc == 2 and out == "" and "magic" in err
    rc, out, err = run_cli(["module", "gradient", "lhcb-shashlik", "--budget", "10"], capsys)
    assert rc == 2 and "too small" in err
