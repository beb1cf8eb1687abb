"""examples/upgrade2-campaign.toml: it loads, asks what it says, and its space proposes only valid
designs (no evaluation). The campaign itself runs for about half an hour: not here."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

from calopt.detector.cost import cost_breakdown
from calopt.detector.design import load_design
from calopt.detector.technologies import get_technology
from calopt.optimize.campaign import EvaluateConfig, Objective, OptimizerConfig, load_campaign
from calopt.optimize.family import DesignFamily

EXAMPLE = Path(__file__).parents[2] / "examples" / "upgrade2-campaign.toml"

# the built-in upgrade2-like as a point of the example's space
REFERENCE = {
    "centre.half_x": 4, "centre.half_y": 3, "centre.technology": "spacal-w", "centre.cell_size": 15.15,
    "centre.split": True, "centre.timing": 15.0,
    "inner.half_x": 8, "inner.half_y": 6, "inner.technology": "spacal-pb", "inner.cell_size": 30.3,
    "inner.timing": 15.0,
}  # fmt: skip


@pytest.fixture(scope="module")
def doc():
    return tomllib.loads(EXAMPLE.read_text())


def check_point(family, point):
    """A point of the space is a valid design within the campaign's cost limit."""
    assert family.space.is_valid(point), point
    design = family.design(point)
    for r in design.regions:
        assert get_technology(r.technology).allows_cell_size(r.cell_size), (r.name, r.technology, r.cell_size)
    assert cost_breakdown(design)["total"] <= family.max_cost
    return design


def test_example_tables_and_sampled_points(doc):
    """Each table as the campaign reads it, without enumerating the space (see the test below)."""
    ev = EvaluateConfig.from_dict(doc["evaluate"])
    assert ev.pileup == 40 and ev.quick and ev.events <= 2000 and ev.n_resolution <= 1000
    ev.settings().validate()
    objective = Objective.from_dict(doc["objective"])
    assert objective.metrics == ("significance", "cost") and objective.n_objectives == 2
    [opt] = [OptimizerConfig.from_dict(o) for o in doc["optimizers"]]
    assert opt.name == "mobo"
    family = DesignFamily.from_dict(doc["space"])
    assert family.max_cost is not None
    names = family.space.names
    for setting in ("half_x", "half_y", "technology", "cell_size", "timing"):
        assert f"centre.{setting}" in names and f"inner.{setting}" in names
    points = family.space.sample(np.random.default_rng(0), 25)
    designs = [check_point(family, p) for p in points]
    assert {p["centre.technology"] for p in points} == {"spacal-w", "spacal-pb"}
    assert {d.regions[-1].technology for d in designs} == {"lhcb-shashlik"}
    # technology and cell size that do not go together are invalid points
    assert not family.is_valid(REFERENCE | {"centre.technology": "spacal-pb", "centre.cell_size": 15.15})
    assert not family.is_valid(REFERENCE | {"inner.technology": "lhcb-shashlik", "inner.cell_size": 30.3})
    # the reference layout is a point of the space, and the same design as the built-in one
    ref = check_point(family, REFERENCE | {"centre.split": True})
    builtin = load_design("upgrade2-like")
    for attr in ("technology", "cell_size", "split", "timing", "time_constant_ps"):
        assert np.array_equal(getattr(ref, attr), getattr(builtin, attr)), attr
    assert ref.n_channels == builtin.n_channels


@pytest.mark.integration
def test_example_loads_and_mobo_proposes_valid_designs():
    """The whole campaign as ``calopt optimize`` loads it (which counts the valid designs: ~10 s),
    and the asks of its optimiser, random ones and model-based ones, are valid designs."""
    from calopt.optimize.optimizers import get_optimizer

    c = load_campaign(EXAMPLE)
    space = c.family.space
    assert 10_000 < space.size < 65_536  # within the cache of validity checks
    oc = c.optimizers[0]
    opt = get_optimizer(oc.name, space, seed=oc.seed, n_objectives=2, **(oc.options | {"n_initial": 4}))
    first = opt.ask(4)
    for p in first:
        check_point(c.family, p)
    costs = [cost_breakdown(c.family.design(p))["total"] for p in first]
    opt.tell(first, [(-(1.0 + k / 10_000), k) for k in costs])  # significance grows with the cost
    for p in opt.ask(2):
        check_point(c.family, p)
