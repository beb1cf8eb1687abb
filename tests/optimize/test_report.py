"""The campaign report with statistical errors: error bars on the Pareto plots of the physics
metrics, and for two objectives the front with the Pareto-optimal layouts drawn on it. The
trials are those of the cheap stand-in of ``fake.py`` with errors added (no real evaluation)."""

import math

import numpy as np
import pytest

from calopt.optimize.campaign import run_campaign
from calopt.optimize.store import CampaignStore
from calopt.report.html import MAX_THUMBNAILS, objective_front_data, pareto_data, write_report
from tests.optimize.fake import fake_evaluate
from tests.optimize.test_campaign import CAMPAIGN, campaign


def with_errors(doc, config):
    """``fake_evaluate`` with the statistical errors ``evaluate`` stores: 5 % of the pi0 width,
    0.1 on the significance (none for one design: a trial without an error bar)."""
    out = fake_evaluate(doc, config)
    if out["pi0_mass_width_mev"] is not None:
        out["pi0_mass_width_mev_err"] = 0.05 * out["pi0_mass_width_mev"]
        out["significance_err"] = None if out["channels"] % 7 == 0 else 0.1
        out["significance_method"] = "fit"
    return out


TWO = (CAMPAIGN.replace('metrics = ["pi0_mass_width_mev"]', 'metrics = ["significance", "cost"]')
       .replace('name = "random"', 'name = "mobo"').replace('name = "bo"', 'name = "random"')
       .replace("options = { n_initial = 4 }", "")
       .replace('cell_size = 60.6\n[[space.regions]]\nname = "outer"',
                'cell_size = 60.6\ntiming = [false, 20.0]\n[[space.regions]]\nname = "outer"'))  # fmt: skip


@pytest.fixture(scope="module")
def two_objectives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "c"
    db = run_campaign(campaign(TWO), folder, evaluator=with_errors)
    with CampaignStore(db) as st:
        trials = st.trials()
    return folder, campaign(TWO), trials


def test_pareto_plots_carry_the_stored_errors(two_objectives):
    _, _, trials = two_objectives
    data = pareto_data(trials, "pi0_mass_width_mev")
    done = [t for t in trials if t.metrics and t.metrics.get("pi0_mass_width_mev") is not None]
    assert data is not None and data["ids"] == [t.id for t in done]
    assert np.allclose(data["error"], 0.05 * data["value"])
    assert list(data["cost"]) == [t.cost for t in done] and list(data["channels"]) == [t.channels for t in done]
    # the front against cost: nothing both cheaper and narrower than a front point
    for i in np.flatnonzero(data["front_cost"]):
        assert not np.any((data["cost"] < data["cost"][i]) & (data["value"] < data["value"][i]))
    sig = pareto_data(trials, "significance")
    assert sig is not None
    stored = [t.metrics.get("significance_err") for t in trials if t.id in sig["ids"]]
    assert [None if math.isnan(e) else e for e in sig["error"]] == stored
    assert pareto_data(trials, "b_mass_width_mev") is None  # never measured: no plot


def test_front_of_two_objectives(two_objectives):
    _, c, trials = two_objectives
    data = objective_front_data(c, trials)
    assert data is not None
    assert (data["x_metric"], data["y_metric"]) == ("cost", "significance")  # the cost on the x axis
    ok = [t for t in trials if t.objectives is not None]
    assert data["ids"] == [t.id for t in ok]
    assert list(data["y"]) == [t.metrics["significance"] for t in ok]  # the metric, not the signed objective
    assert list(data["x"]) == [t.cost for t in ok] and not data["xerr"].any()  # the cost is exact
    assert [None if math.isnan(e) else e for e in data["yerr"]] == [t.metrics["significance_err"] for t in ok]
    front = [t for t, f in zip(ok, data["front"]) if f]
    assert front and all(not any(o.cost < t.cost and o.metrics["significance"] > t.metrics["significance"]
                                 for o in ok) for t in front)  # fmt: skip
    # thumbnails: Pareto-optimal designs, one per design, by increasing cost, at most six
    thumbs = data["thumbnails"]
    assert 1 <= len(thumbs) <= MAX_THUMBNAILS
    by_id = {t.id: t for t in ok}
    assert all(by_id[i] in front for i in thumbs)
    assert len({by_id[i].design_key for i in thumbs}) == len(thumbs)
    assert [by_id[i].cost for i in thumbs] == sorted(by_id[i].cost for i in thumbs)
    if len({t.design_key for t in front}) <= MAX_THUMBNAILS:
        assert len(thumbs) == len({t.design_key for t in front})


def test_report_of_two_objectives(two_objectives):
    folder, _, _ = two_objectives
    text = write_report(folder).read_text()
    assert "<h2>Front of the two objectives</h2>" in text and "Thumbnails: the layouts" in text
    front_section = text.split("<h2>Front of the two objectives</h2>")[1].split("<h2>")[0]
    assert front_section.count('<img src="data:image/png;base64,') == 1  # self-contained
    assert "± 0.1" in text  # errors in the trial table
    for section in ("Physics against channels and cost", "Best layouts", "Trials", "Reproduce"):
        assert section in text


def test_single_objective_has_no_front_section(tmp_path):
    run_campaign(campaign(), tmp_path / "c", evaluator=with_errors)
    text = write_report(tmp_path / "c").read_text()
    assert "Front of the two objectives" not in text and "Physics against channels and cost" in text
    assert objective_front_data(campaign(), []) is None


def test_few_trials_give_no_front(two_objectives):
    _, c, trials = two_objectives
    ok = [t for t in trials if t.objectives is not None]
    assert objective_front_data(c, ok[:1]) is None
    assert pareto_data(ok[:1], "significance") is None
