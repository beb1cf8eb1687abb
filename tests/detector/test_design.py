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


def _with(path: str, value):
    """The lhcb-run3 design document with ``value`` at the dotted ``path`` (list items by index)."""
    doc = load_design("lhcb-run3").spec.model_dump()
    *head, last = path.split(".")
    node = doc
    for key in head:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [("wall.pitch", float("nan"), r"wall\.pitch: .*finite number"),
     ("wall.pitch", 1e9, r"wall\.pitch: .*less than or equal to 1000"),
     ("wall.nx", 10**9, r"wall\.nx: .*less than or equal to 1000, got 1000000000"),
     ("wall.ny", 0, r"wall\.ny: .*greater than or equal to 1"),
     ("wall.hole_y", 10**9, r"wall\.hole_y: .*less than or equal to 1000"),
     ("cost.lhcb-shashlik.module", float("inf"), r"cost\.lhcb-shashlik\.module: .*finite number, got inf"),
     ("cost.lhcb-shashlik.channel", 1e12, r"cost\.lhcb-shashlik\.channel: .*less than or equal to"),
     ("regions.0.shape.half_x", float("inf"), r"regions\.0\.shape\.rectangle\.half_x: .*finite number"),
     ("regions.0.shape.half_y", 1e300, r"regions\.0\.shape\.rectangle\.half_y: .*less than or equal to"),
     ("regions.0.shape", {"type": "gamma", "height": 800.0, "k": 1e6, "scale": 1500.0},
      r"regions\.0\.shape\.gamma\.k: .*less than or equal to 1000"),
     ("regions.0.cell_size", float("nan"), r"regions\.0\.cell_size: .*finite number, got nan"),
     ("regions.0.cell_size", 242.4, r"regions\.0\.cell_size: 242\.4 mm is larger than the module pitch 121\.2 mm"),
     ("regions.0.timing", float("nan"), r"regions\.0\.timing: timing nan"),
     ("regions.0.timing", 1e-300, r"regions\.0\.timing: .*tier is a constant term in \[1, 10000\] ps"),
     ("regions.0.timing", 1e9, r"regions\.0\.timing: .*tier is a constant term in \[1, 10000\] ps")],
)  # fmt: skip
def test_design_numbers_out_of_range(path, value, message):
    """Every number of a design has a finite range, checked when it is read: one line naming the key."""
    with pytest.raises(CaloptInputError, match=message) as exc:
        design_from_dict(_with(path, value), "d.toml")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("d.toml: ")


def test_wall_limits_are_usable():
    """The largest wall allowed is built (10^6 slots) and a design on it is valid."""
    doc = _with("wall", {"nx": 1000, "ny": 1000, "hole_x": 4, "hole_y": 4})
    d = design_from_dict(doc)
    assert d.region_index.shape == (1000, 1000) and int((d.region_index >= 0).sum()) == 10**6 - 16


def test_load_design_refuses_files_that_are_not_designs(tmp_path):
    """A broken TOML file (with the error's position), binary data, an HDF5 file and a campaign
    file are each refused in one line naming the file and what it is."""
    import h5py

    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[[regions]\nname = \n')
    with pytest.raises(CaloptInputError, match=r"broken\.toml: not valid TOML \(.*line 2, column 10\)"):
        load_design(broken)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(np.random.default_rng(1).bytes(512))
    with pytest.raises(CaloptInputError, match=r"'.*binary\.toml' is a binary file .*expected a design TOML file"):
        load_design(binary)
    h5 = tmp_path / "showers.h5"
    with h5py.File(h5, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CaloptInputError, match=r"'.*showers\.h5' is an HDF5 file, expected a design TOML file"):
        load_design(h5)
    camp = tmp_path / "quick.toml"
    camp.write_text('name = "c"\n[[optimizers]]\nname = "random"\nevaluations = 2\n[space]\nregions = []\n')
    with pytest.raises(CaloptInputError, match=r"'.*quick\.toml' looks like a campaign file"):
        load_design(camp)
