"""The module design space (calopt.detector.module): built-in technologies are points of it,
derived properties follow the parameters, bad points are refused in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calopt.detector.module import MAX_DEPTH_MM, ModuleSpec, load_module
from calopt.detector.technologies import TECHNOLOGIES
from calopt.errors import CaloptInputError
from tests.helpers import run_cli


@pytest.mark.parametrize("name", list(TECHNOLOGIES))
def test_builtin_technologies_are_points(name):
    point = load_module(name)
    assert point.is_builtin() and point.name == name
    assert point.technology() is TECHNOLOGIES[name]
    props = point.properties()
    tech = TECHNOLOGIES[name]
    assert props["x0_mm"] == pytest.approx(tech.effective_material.X0_mm)
    assert props["sampling_fraction"] == pytest.approx(tech.sampling_fraction)
    assert props["cost_kchf_per_module"] == tech.cost_module
    # every allowed cell size is the same point; another cell size is another technology
    for size in tech.cell_sizes:
        assert load_module(f"{name}:{size}").technology() is tech


def test_a_new_point_changes_what_it_should():
    base = load_module("lhcb-shashlik")
    thin = base.replace(absorber_thickness_mm=1.0, depth_x0=25.0)
    t = thin.technology()
    assert t.name.startswith("lhcb-shashlik+") and t.name != base.name
    assert t.depth_X0 == pytest.approx(25.0, abs=0.2)  # whole layers
    assert t.mip_sampling_fraction > base.technology().mip_sampling_fraction
    assert t.n_periods > 66 and t.section_edges[0] == 0.0 and t.section_edges[-1] == pytest.approx(t.depth_mm)
    # more tiles and less lead: a dearer module, by the assumed prices
    assert thin.properties()["cost_kchf_per_module"] > 6.0
    # the cascade's tables are per technology name: the name follows the parameters, not the cell
    assert thin.replace(cell_size_mm=60.6).technology().name == t.name
    assert base.replace(active_thickness_mm=4.5).technology().name != t.name


def test_fibre_points():
    w = load_module("spacal-w")
    assert w.fibre_shape == "square" and w.fibre_diameter_mm == 1.0
    pb = load_module("spacal-pb")
    assert pb.fibre_shape == "round" and pb.fibre_diameter_mm == pytest.approx(2.0)
    wider = w.replace(fibre_pitch_mm=2.0)
    assert wider.properties()["sampling_fraction"] < w.properties()["sampling_fraction"]
    assert wider.properties()["x0_mm"] < w.properties()["x0_mm"]  # more tungsten
    assert wider.technology().fine_pitch == pytest.approx(5.05)


def test_toml_spec_and_json_round_trip(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('[module]\nbase = "lhcb-shashlik"\nabsorber = "W"\nabsorber_thickness_mm = 1.0\n'
                 'active_thickness_mm = 5.0\ndepth_x0 = 20\ncell_size_mm = 60.6\n')  # fmt: skip
    point = load_module(str(f))
    assert point.absorber == "W" and point.cell_size_mm == 60.6
    assert point.properties()["depth_x0"] == pytest.approx(20.0, abs=0.3)
    again = ModuleSpec(**json.loads(point.to_json()))
    assert again == point and again.technology().name == point.technology().name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"absorber_thickness_mm": 0.0}, r"absorber_thickness_mm = 0 is outside"),
        ({"absorber_thickness_mm": -2.0}, r"absorber_thickness_mm = -2 is outside"),
        ({"absorber_thickness_mm": math.nan}, r"finite number"),
        ({"absorber": "unobtainium"}, r"absorber 'unobtainium' \(unknown material\)"),
        ({"active": "Pb"}, r"active 'Pb'"),
        ({"n_layers": 200}, rf"beyond the {MAX_DEPTH_MM:g} mm"),
        ({"depth_x0": 80.0}, rf"beyond the {MAX_DEPTH_MM:g} mm"),
        ({"cell_size_mm": 50.0}, r"does not tile"),
        ({"thickness": 1.0}, r"unknown module parameter"),
    ],
)
def test_bad_points_are_refused(change, message):
    with pytest.raises(CaloptInputError, match=message):
        load_module("lhcb-shashlik").replace(**change)


def test_fibre_wider_than_pitch_is_refused():
    with pytest.raises(CaloptInputError, match="leaves no absorber"):
        load_module("spacal-pb").replace(fibre_diameter_mm=3.0)


def test_module_show_cli(capsys, tmp_path):
    rc, out, _ = run_cli(["module", "show", "spacal-w", "--json"], capsys)
    assert rc == 0
    doc = json.loads(out)
    for key in ("x0_mm", "moliere_radius_mm", "sampling_fraction", "depth_x0", "parameters"):
        assert key in doc
    assert doc["parameters"]["fibre_pitch_mm"] == 1.7
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "lhcb-shashlik"\nabsorber_thickness_mm = -1\n')
    rc, out, err = run_cli(["module", "show", str(bad)], capsys)
    assert rc == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "absorber_thickness_mm = -1" in err


def test_simulate_a_module_point(capsys, tmp_path):
    from calopt.simulation.showers import read_showers

    spec = tmp_path / "thin.toml"
    spec.write_text('base = "lhcb-shashlik"\nabsorber_thickness_mm = 1.0\nn_layers = 60\n')
    out = tmp_path / "s.h5"
    argv = ["simulate", "--module", str(spec), "--particle", "gamma", "--energy", "2", "--n", "6", "--out", str(out)]
    rc, _, err = run_cli(argv, capsys)
    assert rc == 0, err
    sh = read_showers(out)
    point = load_module(str(spec))
    assert sh.attrs["technology"] == point.name
    assert ModuleSpec(**json.loads(str(sh.attrs["module"]))) == point
    assert np.all(sh.visible_energy > 0)
    rc, _, err = run_cli([*argv[:3], "--backend", "library", *argv[3:], "--overwrite"], capsys)
    assert rc == 2 and "--backend library serves the built-in technologies only" in err
    rc, _, err = run_cli(["simulate", "--particle", "gamma", "--energy", "2", "--n", "6", "--out", str(out)], capsys)
    assert rc == 2 and "exactly one of --technology" in err
