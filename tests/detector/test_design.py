"""Designs, the wall and the cost model."""

import tomllib

import numpy as np
import pytest

from calopt.detector.cost import cost_breakdown
from calopt.detector.design import design_from_dict, load_design
from calopt.detector.wall import LHCB_WALL
from calopt.errors import CaloptInputError


def test_lhcb_wall():
    # physics-reference §1: 7.757 x 6.302 m, 3312 modules around a 4 x 4 hole
    assert 2 * LHCB_WALL.half_width == pytest.approx(7756.8)
    assert 2 * LHCB_WALL.half_height == pytest.approx(6302.4)
    assert LHCB_WALL.n_modules == 3312
    i, j, ok = LHCB_WALL.slot_of(np.array([0.0, 300.0, 5000.0]), np.array([0.0, 0.0, 0.0]))
    assert i.tolist() == [32, 34, 73] and j.tolist() == [26, 26, 26]
    assert ok.tolist() == [False, True, False]


def test_lhcb_run3_counts():
    d = load_design("lhcb-run3")
    assert d.module_counts() == {"lhcb-shashlik": {"40.4": 176, "60.6": 448, "121.2": 2688}}
    assert d.n_channels == 176 * 9 + 448 * 4 + 2688  # 6064, "around 6000" (CERN Bulletin 44/2002)
    s = d.summary()
    assert s["modules_total"] == 3312 and s["channels"] == 6064
    assert s["cost"] == pytest.approx(3312 * 6.0 + 6064 * 0.6)


def test_upgrade2_like():
    d = load_design("upgrade2-like")
    counts = d.module_counts()
    assert counts["spacal-w"] == {"15.15": 32} and counts["spacal-pb"] == {"30.3": 144}
    # split doubles the channels: 32 * 64 * 2 + 144 * 16 * 2
    assert d.region_summary()[0]["channels"] == 32 * 64 * 2 and d.region_summary()[1]["channels"] == 144 * 16 * 2
    c = cost_breakdown(d)
    assert c["by_technology"]["spacal-w"]["timing_channels"] == 32 * 64 * 2
    assert c["total"] == pytest.approx(sum(v["total"] for v in c["by_technology"].values()))


def test_toml_round_trip(tmp_path):
    d = load_design("upgrade2-like")
    path = tmp_path / "d.toml"
    path.write_text(d.to_toml())
    back = load_design(path)
    assert back.spec == d.spec
    np.testing.assert_array_equal(back.region_index, d.region_index)


def _doc(**changes):
    doc = tomllib.loads(load_design("lhcb-run3").to_toml())
    doc.update(changes)
    return doc


def test_gamma_border_regions():
    doc = _doc(
        regions=[
            {
                "name": "in",
                "technology": "spacal-w",
                "cell_size": 20.2,
                "shape": {"type": "gamma", "height": 700.0, "k": 2.0, "scale": 400.0},
            },
            {"name": "out", "technology": "lhcb-shashlik", "cell_size": 121.2, "shape": {"type": "rest"}},
        ]
    )
    d = design_from_dict(doc)
    x, y = d.wall.centres
    inner = d.region_index == 0
    # symmetric under x -> -x and y -> -y, and narrower in y far from the axis
    np.testing.assert_array_equal(inner, inner[:, ::-1])
    np.testing.assert_array_equal(inner, inner[::-1, :])
    assert np.abs(y[inner]).max() > np.abs(y[inner & (np.abs(x) > 1000)]).max()


def test_costs_can_be_overridden():
    d = design_from_dict(_doc(cost={"lhcb-shashlik": {"module": 10.0}}))
    assert d.summary()["cost"] == pytest.approx(3312 * 10.0 + 6064 * 0.6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        (
            {"regions": [{"name": "a", "technology": "lead-glass", "cell_size": 40.4, "shape": {"type": "rest"}}]},
            "unknown technology 'lead-glass'",
        ),
        (
            {"regions": [{"name": "a", "technology": "lhcb-shashlik", "cell_size": 50.0, "shape": {"type": "rest"}}]},
            "cell size 50 mm is not allowed",
        ),
        (
            {
                "regions": [
                    {
                        "name": "a",
                        "technology": "lhcb-shashlik",
                        "cell_size": 40.4,
                        "shape": {"type": "rectangle", "half_x": 969.6, "half_y": 727.2},
                    }
                ]
            },
            "in no region",
        ),
        (
            {
                "regions": [
                    {
                        "name": "a",
                        "technology": "lhcb-shashlik",
                        "cell_size": 40.4,
                        "shape": {"type": "rectangle", "half_x": 969.6, "half_y": 200.0},
                    },
                    {
                        "name": "b",
                        "technology": "lhcb-shashlik",
                        "cell_size": 60.6,
                        "shape": {"type": "rectangle", "half_x": 500.0, "half_y": 1212.0},
                    },
                    {"name": "c", "technology": "lhcb-shashlik", "cell_size": 121.2, "shape": {"type": "rest"}},
                ]
            },
            "regions overlap",
        ),
        (
            {
                "regions": [
                    {
                        "name": "a",
                        "technology": "lhcb-shashlik",
                        "cell_size": 40.4,
                        "shape": {"type": "rectangle", "half_x": 100.0, "half_y": 100.0},
                    },
                    {"name": "c", "technology": "lhcb-shashlik", "cell_size": 121.2, "shape": {"type": "rest"}},
                ]
            },
            "region 'a' is empty",
        ),
        (
            {
                "regions": [
                    {
                        "name": "a",
                        "technology": "lhcb-shashlik",
                        "cell_size": 40.4,
                        "shape": {"type": "rectangle", "half_x": -1.0, "half_y": 1.0},
                    }
                ]
            },
            "half_x",
        ),
    ],
)
def test_invalid_designs(change, message):
    with pytest.raises(CaloptInputError, match=message):
        design_from_dict(_doc(**change))


def test_unknown_design_and_bad_toml(tmp_path):
    with pytest.raises(CaloptInputError, match="unknown design 'nope'"):
        load_design("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(CaloptInputError, match="not valid TOML"):
        load_design(bad)
