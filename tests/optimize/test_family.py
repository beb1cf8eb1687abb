"""Design families: campaign [space] tables to parameter spaces and designs."""

import numpy as np
import pytest

from calopt.errors import CaloptInputError
from calopt.optimize.family import DesignFamily
from calopt.optimize.space import Categorical, Integer, Real

SHASHLIK = "lhcb-shashlik"


def family(**inner):
    regions = [
        {"name": "inner", "shape": "rectangle", "half_x": {"min": 3, "max": 8}, "half_y": {"min": 3, "max": 5},
         "technology": SHASHLIK, "cell_size": [40.4, 60.6]} | inner,
        {"name": "middle", "shape": "rectangle", "half_x": 16, "half_y": 10, "technology": SHASHLIK,
         "cell_size": 60.6},
        {"name": "outer", "shape": "rest", "technology": SHASHLIK, "cell_size": 121.2},
    ]  # fmt: skip
    return DesignFamily.from_dict({"regions": regions})


def test_parameters_and_designs():
    fam = family()
    space = fam.space
    assert space.names == ["inner.half_x", "inner.half_y", "inner.cell_size"]
    assert isinstance(space.params[0], Integer) and isinstance(space.params[2], Categorical)
    assert space.size == 6 * 3 * 2
    d = fam.design({"inner.half_x": 8, "inner.half_y": 6 - 1, "inner.cell_size": 40.4})
    # 16 x 10 modules in the inner region minus the 4 x 4 hole; 40.4 mm cells: 9 per module
    counts = d.module_counts()[SHASHLIK]
    assert counts["40.4"] == 16 * 10 - 16
    assert counts["60.6"] == 32 * 20 - 16 * 10
    # the LHCb Run-3 layout is a point of the family with 8 x 6 modules: same channels as lhcb-run3
    from calopt.detector.design import load_design

    run3 = family(half_y={"min": 3, "max": 6}).design({"inner.half_x": 8, "inner.half_y": 6, "inner.cell_size": 40.4})
    assert run3.n_channels == load_design("lhcb-run3").n_channels


def test_real_ranges_and_gamma_borders():
    fam = DesignFamily.from_dict({"regions": [
        {"name": "inner", "shape": "gamma", "height": {"min": 3, "max": 8}, "k": {"min": 0.5, "max": 4.0},
         "scale": {"min": 2.0, "max": 10.0, "log": True}, "technology": [SHASHLIK, "spacal-pb"], "cell_size": 40.4,
         "split": [False, True]},
        {"name": "outer", "shape": "rest", "technology": SHASHLIK, "cell_size": 121.2},
    ]})  # fmt: skip
    space = fam.space
    assert not space.is_finite
    assert isinstance(space.params[1], Real) and space.params[2].log
    points = space.sample(np.random.default_rng(1), 20)
    for p in points:
        d = fam.design(p)
        assert d.regions[0].shape.type == "gamma" and (d.region_index == 0).sum() > 0


def test_cost_and_channel_limits_exclude_designs():
    free = family()
    capped = DesignFamily.from_dict({**free.to_dict(), "max_channels": 5500})
    assert 0 < capped.space.size < free.space.size
    for p in capped.space.enumerate():
        assert capped.design(p).n_channels <= 5500


@pytest.mark.parametrize(
    ("change", "message"),
    [({"shape": "circle"}, r"shape: Input should be 'rectangle', 'gamma' or 'rest', got 'circle'"),
     ({"colour": "red"}, r"unknown key 'colour' \(expected name, shape, "),
     ({"half_x": {"min": 5}}, r"half_x\.range\.max: Field required"),
     ({"half_x": {"min": 5, "max": 2}}, r"half_x\.range: min 5 must be below max 2"),
     ({"half_x": {"min": 5, "max": 5}}, r"half_x\.range: min 5 must be below max 5"),
     ({"cell_size": []}, r"cell_size\.choices: List should have at least 1 item"),
     ({"cell_size": "abc"}, r"cell_size\.fixed: Input should be a valid number, got 'abc'"),
     ({"technology": "nosuchtech"}, r"technology\.fixed: unknown technology 'nosuchtech'; expected one of"),
     ({"technology": [SHASHLIK, "nosuchtech"]}, r"technology\.choices\.1: unknown technology 'nosuchtech'"),
     ({"shape": ["rectangle"]}, r"shape: Input should be .*, got \['rectangle'\]"),
     ({"split": "yes"}, r"split\.fixed: Input should be a valid boolean, got 'yes'"),
     ({"timing": [False, "fast"]}, r"timing\.choices\.1: unknown timing option .fast."),
     ({"timing": [False, -5.0]}, r"timing\.choices\.1: timing -5.0: a timing tier is a constant term in ps > 0"),
     ({"half_x": {"min": 3, "max": 8, "log": "yes"}}, r"half_x\.range\.log: .*valid boolean, got 'yes'"),
     ({"half_x": float("nan")}, r"half_x\.fixed: Input should be a finite number, got nan"),
     ({"half_y": {"min": 3, "max": float("inf")}}, r"half_y\.range\.max: Input should be a finite number, got inf"),
     ({"half_y": [4, -4]}, r"half_y\.choices\.1: Input should be greater than 0, got -4"),
     ({"half_y": [4, 4.0]}, r"half_y\.choices: the choices \[4\.0, 4\.0\] repeat"),
     ({"half_x": True}, r"half_x\.fixed: Input should be a valid number, got True"),
     ({"cell_size": {"min": 20, "max": 40}}, r"cell_size: expected a value or a list of choices \(not a range\)"),
     ({"k": 2.0}, r"unknown key 'k' for a rectangle region \(its borders: half_x, half_y\)"),
     ({"half_y": None}, r"a rectangle region needs half_y$")],
)  # fmt: skip
def test_bad_space(change, message):
    with pytest.raises(CaloptInputError, match=r"^\[space\]: region 'inner': " + message) as exc:
        family(**change)
    assert "\n" not in str(exc.value)


def test_bad_space_table():
    fam = family().to_dict()
    for doc, message in [
        ({**fam, "max_cost": "lots"}, r"max_cost: Input should be a valid number, got 'lots'"),
        ({**fam, "max_channels": True}, r"max_channels: .*valid number, got True"),
        ({**fam, "regions": []}, r"regions: List should have at least 1 item"),
        ({"max_cost": 1}, r"regions: Field required"),
        ({**fam, "regions": [5]}, r"regions\.0: Input should be a valid dictionary, got 5"),
        ({**fam, "colour": 1}, r"unknown key 'colour' \(expected regions, max_cost, max_channels\)"),
    ]:
        with pytest.raises(CaloptInputError, match=r"^\[space\]: " + message):
            DesignFamily.from_dict(doc)


def test_integer_choices_and_ranges_keep_their_types():
    """Integers in a range give an Integer parameter and stay integers in the stored family (its
    campaign's digest hashes them as written); any float makes the range real."""
    fam = family(half_x={"min": 3, "max": 8}, half_y={"min": 3.0, "max": 5})
    assert isinstance(fam.space.params[0], Integer) and isinstance(fam.space.params[1], Real)
    assert fam.to_dict()["regions"][0]["half_x"] == {"min": 3, "max": 8}
    assert type(fam.to_dict()["regions"][0]["half_x"]["min"]) is int
    assert DesignFamily.from_dict({**fam.to_dict(), "max_cost": 30000}).to_dict()["max_cost"] == 30000


def test_rest_must_be_last_and_space_not_empty():
    with pytest.raises(CaloptInputError, match="shape 'rest'"):
        DesignFamily.from_dict({"regions": [{"name": "a", "shape": "rectangle", "half_x": 5, "half_y": 5,
                                             "technology": SHASHLIK, "cell_size": 40.4}]})  # fmt: skip
    with pytest.raises(CaloptInputError, match="every setting is fixed"):
        DesignFamily.from_dict({"regions": [{"name": "a", "shape": "rest", "technology": SHASHLIK,
                                             "cell_size": 121.2}]})  # fmt: skip
    # a cell size that no technology choice allows
    with pytest.raises(CaloptInputError, match=r"cell size 15\.15 mm is allowed for none of lhcb-shashlik"):
        family(cell_size=[15.15, 20.2])
    # limits that exclude every design
    with pytest.raises(CaloptInputError, match="no valid design"):
        DesignFamily.from_dict({**family().to_dict(), "max_cost": 1})
