"""Module campaigns (calopt.optimize.module_campaign): the gradient descent and the black-box
optimisers over the module design space in one campaign database, resumed and reported."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from calopt.errors import CaloptInputError
from calopt.optimize.campaign import Campaign, load_campaign, run_campaign
from calopt.optimize.gradients.descent import descend
from calopt.optimize.module_campaign import ModuleFamily, evaluate_module, step_from_metrics
from calopt.optimize.store import CampaignStore
from calopt.report.html import write_report
from tests.helpers import run_cli

BOX = {"absorber_thickness_mm": [1.0, 4.0], "active_thickness_mm": [3.0, 7.5]}
MODULE = {"start": "lhcb-shashlik", "energy_gev": 1.0, "objective": {"energy_resolution": 100.0, "cost": 0.5},
          "max_cost_kchf": 6.5, "showers": 60, "seed": 3, "box": BOX}  # fmt: skip
DESCENT = {"name": "descent", "evaluations": 2, "seed": 1,
           "options": {"estimator": "fd", "step_budget": 100, "check_budget": 60}}  # fmt: skip


def campaign(**changes: Any) -> Campaign:
    doc = {"name": "module-test", "module": MODULE, "optimizers": [DESCENT, {"name": "random", "evaluations": 2}]}
    return Campaign.from_dict(doc | changes, "test")


def test_a_descent_in_a_campaign_is_the_descent(tmp_path):
    c = campaign()
    db = run_campaign(c, tmp_path / "c")
    with CampaignStore(db, read_only=True) as st:
        trials = st.trials()
    steps = [step_from_metrics(t.metrics) for t in trials if t.optimizer == "descent"]
    fam = c.family
    assert isinstance(fam, ModuleFamily)
    direct = descend(fam.problem, fam.start, fam.descent_settings(DESCENT["options"], 1, 2), max_steps=2)
    assert [s.parameters for s in steps] == [s.parameters for s in direct]
    assert [s.value for s in steps] == [s.value for s in direct] and steps[1].showers == direct[1].showers
    # each step is a trial: its point, J +- error, the module's cost per module and channels
    first = trials[0]
    assert first.optimizer == "descent" and first.batch == 0 and first.objectives == [steps[0].value]
    assert first.objective_errors == [steps[0].value_err] and first.cost == pytest.approx(6.0)
    assert first.channels == 9 and first.events == 100
    # the black-box trials: points of the box, J = 100 sigma/E + 0.5 cost + penalty, measured on 60 showers
    points = [t for t in trials if t.optimizer == "random"]
    assert len(points) == 2 and all(t.status == "done" for t in points)
    for t in points:
        m = t.metrics
        assert m["showers"] == 60 and 1.0 <= t.params["absorber_thickness_mm"] <= 4.0
        assert m["module_objective"] == pytest.approx(100 * m["energy_resolution"] + 0.5 * m["cost"] + m["penalty"])
        assert 0 < m["module_objective_err"] == t.objective_errors[0]


def test_a_point_is_measured_with_common_random_numbers():
    fam = campaign().family
    assert isinstance(fam, ModuleFamily)
    params = {"absorber_thickness_mm": 2.5, "active_thickness_mm": 5.0}
    a = evaluate_module(fam.design_dict(params), {"seed": 4, "events": 40})
    b = evaluate_module(fam.design_dict(params), {"seed": 4, "events": 40})
    assert a == b
    # the depth held in X0, to half a layer (a layer of 2.5 mm Pb + 5 mm plastic is 0.46 X0)
    assert abs(a["depth_x0"] - fam.start.technology().depth_X0) < 0.25
    assert evaluate_module(fam.design_dict(params), {"seed": 5, "events": 40})["energy_resolution"] != (
        a["energy_resolution"])  # fmt: skip


class Interrupt(BaseException):
    """A kill of the campaign's process: nothing catches it."""


def test_a_killed_descent_resumes_to_the_same_steps(tmp_path):
    c = campaign(optimizers=[replace_evaluations(DESCENT, 3)])
    calls = {"n": 0}

    def dies_at_the_second_step(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Interrupt
        return evaluate_module(doc, config)

    with pytest.raises(Interrupt):
        run_campaign(c, tmp_path / "c", evaluator=dies_at_the_second_step)
    with CampaignStore(tmp_path / "c" / "campaign.sqlite", read_only=True) as st:
        assert [t.status for t in st.trials()] == ["done", "pending"]
    said: list[str] = []
    run_campaign(c, tmp_path / "c", resume=True, progress=said.append)
    assert any("resuming step 1" in s for s in said)
    whole = run_campaign(c, tmp_path / "whole")
    with CampaignStore(tmp_path / "c" / "campaign.sqlite", read_only=True) as a, CampaignStore(whole) as b:
        resumed, straight = a.trials(), b.trials()
    assert [t.status for t in resumed] == ["done"] * 3
    assert [(t.params, t.objectives) for t in resumed] == [(t.params, t.objectives) for t in straight]


def replace_evaluations(entry: dict[str, Any], n: int) -> dict[str, Any]:
    return {**entry, "evaluations": n}


def test_the_report_plots_the_descent(tmp_path):
    run_campaign(campaign(), tmp_path / "c")
    text = write_report(tmp_path / "c").read_text()
    assert "(module design)" in text and "Descent: objective and parameters against the step" in text
    assert "Answer of this descent" in text and "The objective over the box" in text
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', text)) == 3
    assert "no finished step" not in text


def test_campaign_file_with_a_module_spec_file(tmp_path, capsys):
    (tmp_path / "mod.toml").write_text('base = "lhcb-shashlik"\nabsorber_thickness_mm = 1.5\n')
    doc = ('name = "m"\n[module]\nstart = "mod.toml"\nenergy_gev = 1.0\nshowers = 40\n'
           '[module.box]\nabsorber_thickness_mm = [1.0, 4.0]\n'
           '[[optimizers]]\nname = "descent"\nevaluations = 1\n'
           'options = { estimator = "pathwise", step_budget = 40, check_budget = 40 }\n')  # fmt: skip
    (tmp_path / "c.toml").write_text(doc)
    c = load_campaign(tmp_path / "c.toml")
    assert isinstance(c.family, ModuleFamily) and c.family.start.absorber_thickness_mm == 1.5
    # the stored settings hold the module itself, not the path
    assert c.to_dict()["module"]["start"]["absorber_thickness_mm"] == 1.5
    assert Campaign.from_dict(json.loads(json.dumps(c.to_dict())), "stored").digest() == c.digest()
    rc, out, err = run_cli(["optimize", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--json"], capsys)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["trials"] == 1 and summary["best"]["params"] == {"absorber_thickness_mm": 1.5}
    assert Path(summary["report"]).is_file()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"optimizers": [{**DESCENT, "batch": 2}]}, r"descent takes one step at a time: batch must be 1"),
        ({"optimizers": [{**DESCENT, "options": {"estimator": "magic"}}]}, r"unknown estimator 'magic'"),
        ({"optimizers": [{**DESCENT, "options": {"speed": 1}}]}, r"speed"),
        ({"optimizers": [{**DESCENT, "options": {"step_budget": 5}}]}, r"step_budget"),
        ({"optimizers": [{**DESCENT, "options": {"step_budget": 80}}]},
         r"descent: step_budget 80 is too small for fd with 2 parameters: it needs 100 or more"),
        ({"optimizers": [{**DESCENT, "options": {"estimator": "spsa", "step_budget": 300}}]},
         r"too small for spsa with 2 parameters: it needs 340 or more"),
        ({"optimizers": [{**DESCENT, "options": {"estimator": "reweight"}}],
          "module": {**MODULE, "objective": {"position_resolution": 1.0}}},
         r"estimator reweight cannot take the objective 'position_resolution'"),
        ({"module": {**MODULE, "box": {"n_layers": [10, 90]}}}, r"n_layers.*not a continuous parameter"),
        ({"module": {**MODULE, "box": {"absorber_thickness_mm": [2.5, 4.0]}}}, r"outside the box"),
        ({"module": {**MODULE, "objective": {"beauty": 1.0}}}, r"unknown objective 'beauty'"),
        ({"module": {**MODULE, "start": "no-such-tech"}}, r"neither a built-in technology"),
        ({"module": {**MODULE, "showers": 5}}, r"showers"),
        ({"space": {"regions": []}}, r"give \[space\] .* or \[module\]"),
        ({"evaluate": {"events": 10}}, r"remove \[evaluate\]"),
    ],
)
def test_bad_module_campaigns_are_refused(changes, message):
    with pytest.raises(CaloptInputError, match=message):
        campaign(**changes)


def test_descent_needs_a_module_campaign():
    import tomllib

    from tests.optimize.test_campaign import CAMPAIGN  # a layout campaign

    doc = tomllib.loads(CAMPAIGN) | {"optimizers": [DESCENT]}
    with pytest.raises(CaloptInputError, match=r"descent designs a module; it needs a module campaign"):
        Campaign.from_dict(doc, "test")


def test_workers_give_the_same_module_trials(tmp_path):
    c = campaign(optimizers=[DESCENT, {"name": "random", "evaluations": 2, "batch": 2}])
    run_campaign(c, tmp_path / "seq")
    run_campaign(c, tmp_path / "par", workers=2)

    def rows(folder: Path) -> list[Any]:
        with CampaignStore(folder / "campaign.sqlite", read_only=True) as st:
            return [(t.optimizer, t.params, t.objectives, t.objective_errors) for t in st.trials()]

    assert rows(tmp_path / "par") == rows(tmp_path / "seq")
