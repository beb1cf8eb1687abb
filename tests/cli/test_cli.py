"""The command line: JSON output, exit codes, one-line errors."""

import json
import re

import pytest

from calopt.cli.main import main
from calopt.simulation.showers import read_showers
from tests.helpers import run_cli


def test_help(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "simulate" in out and "technologies" in out


def test_technologies_json(capsys):
    code, out, _ = run_cli(["technologies", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    names = [t["name"] for t in doc["technologies"]]
    assert names == ["lhcb-shashlik", "spacal-w", "spacal-pb"]
    shashlik = doc["technologies"][0]
    assert shashlik["depth_X0"] == pytest.approx(24.2, abs=0.3)
    assert shashlik["moliere_radius_mm"] == pytest.approx(37.1, abs=1.0)


def test_technologies_table(capsys):
    code, out, _ = run_cli(["technologies"], capsys)
    assert code == 0 and "lhcb-shashlik" in out and "spacal-pb" in out


def test_simulate_json(tmp_path, capsys):
    out_file = tmp_path / "s.h5"
    code, out, _ = run_cli(
        [
            "simulate",
            "--technology",
            "spacal-pb",
            "--particle",
            "e-",
            "--energy-range",
            "1",
            "3",
            "--theta-max",
            "0.05",
            "--n",
            "4",
            "--out",
            str(out_file),
            "--seed",
            "2",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)  # stdout holds exactly one JSON object
    assert doc["n"] == 4 and doc["out"] == str(out_file)
    sh = read_showers(out_file)
    assert sh.showers.shape == (4, 4, 36, 36) and sh.attrs["technology"] == "spacal-pb"
    assert set(sh.pdg) == {11}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--technology", "nope", "--particle", "gamma", "--energy", "1", "--n", "2"], "unknown technology 'nope'"),
        (["--technology", "lhcb-shashlik", "--particle", "tau", "--energy", "1", "--n", "2"], "unknown particle 'tau'"),
        (["--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "0", "--n", "2"], "--energy must be"),
        (["--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "1", "--n", "0"], "1, got '0'"),
        (["--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "x", "--n", "2"], "--energy"),
        (["--technology", "lhcb-shashlik", "--particle", "gamma", "--energy-range", "5", "1", "--n", "2"], "LO < HI"),
        (["--technology", "lhcb-shashlik", "--particle", "gamma", "--n", "2"], "exactly one of"),
        (
            ["--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "1", "--n", "2", "--backend", "gan"],
            "unknown backend",
        ),
        (
            ["--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "1", "--n", "2", "--workers", "0"],
            "--workers",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    code, out, err = run_cli(["simulate", *args, "--out", str(tmp_path / "x.h5")], capsys)
    assert code == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip() and "simulate" not in ln]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()


ONE_PHOTON = ["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "1", "--n", "1"]


def test_unwritable_and_foreign_outputs_are_refused(tmp_path, capsys):
    code, _, err = run_cli([*ONE_PHOTON, "--out", str(tmp_path / "missing" / "x.h5")], capsys)
    assert code == 2 and "does not exist" in err
    foreign = tmp_path / "data.h5"
    foreign.write_bytes(b"\x89HDF-not-really")
    code, _, err = run_cli([*ONE_PHOTON, "--out", str(foreign), "--overwrite"], capsys)
    assert code == 2 and "not a calopt-showers file" in err
    assert foreign.read_bytes() == b"\x89HDF-not-really"


def test_layout_show(tmp_path, capsys):
    png = tmp_path / "wall.png"
    code, out, _ = run_cli(["layout", "show", "lhcb-run3", "--json", "--png", str(png)], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["modules"] == {"lhcb-shashlik": {"40.4": 176, "60.6": 448, "121.2": 2688}}
    assert doc["channels"] == 6064 and doc["cost"] > 0
    assert png.stat().st_size > 50_000


def test_layout_show_bad_input(tmp_path, capsys):
    code, out, err = run_cli(["layout", "show", "no-such-design"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "unknown design" in err
    design = tmp_path / "d.toml"
    design.write_text(
        'name = "x"\nbogus = 1\n[[regions]]\nname = "a"\ntechnology = "spacal-w"\ncell_size = 15.15\n'
        'shape = { type = "rest" }\n'
    )
    code, _, err = run_cli(["layout", "show", str(design)], capsys)
    assert code == 2 and "unknown key 'bogus'" in err


def test_events_generate_gun(tmp_path, capsys):
    out_file = tmp_path / "ev.h5"
    code, out, _ = run_cli(["events", "generate", "--process", "gun", "--gun-particle", "gamma", "--n", "20",
                        "--out", str(out_file), "--seed", "4", "--json"], capsys)  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert doc["n"] == 20 and doc["particles_per_crossing"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--process", "higgs", "--n", "2"], "unknown process 'higgs'"),
     (["--process", "minbias", "--pileup", "-1", "--n", "2"], "--pileup must be between 0 and 200"),
     (["--process", "minbias", "--pileup", "1000", "--n", "2"], "--pileup must be between 0 and 200"),
     (["--process", "minbias", "--n", "0"], "1, got '0'")],
)  # fmt: skip
def test_events_bad_input(tmp_path, capsys, args, message):
    code, out, err = run_cli(["events", "generate", *args, "--out", str(tmp_path / "e.h5")], capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_a_text_file_is_not_a_surrogate(tmp_path, capsys):
    text = tmp_path / "model.pt"
    text.write_text("hello")
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--n", "5", "--energy", "10",
              "--out", str(tmp_path / "s.h5"), "--backend", str(text)])  # fmt: skip
    out, err = capsys.readouterr()
    assert out == ""
    assert exc.value.code == 2 and "not a readable calopt-surrogate checkpoint" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.integration
def test_demo_runs_the_whole_cycle(tmp_path, capsys):
    """The README's main job: showers, evaluate, a BO campaign and the report, end to end."""
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "demo"), "--workers", "1"])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    report = tmp_path / "demo" / "campaign" / "report.html"
    assert out.strip() == f"report: {report.resolve()}" and report.is_file()
    assert "shipped surrogate" in err and "cascade MC" in err
    # the backends are timed after a warm-up, and the quick figures are labelled as smoke tests
    assert "ms per shower after warm-up" in err and re.search(r"the surrogate is [0-9.]+ x faster", err)
    assert "SMOKE-TEST FIGURES" in err and err.count("[smoke test]") >= 10
    assert not list((tmp_path / "demo").glob(".warm-up-*"))
    figures = [tmp_path / "demo" / "evaluate-lhcb-run3" / f for f in ("pi0.png", "b.png", "energy_resolution.png")]
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in figures)
    result = json.loads((tmp_path / "demo" / "evaluate-lhcb-run3" / "evaluate.json").read_text())
    assert result["channels"] == 6064 and result["pi0_mass_width_mev"] is not None
    from calopt.optimize.store import CampaignStore

    with CampaignStore(tmp_path / "demo" / "campaign" / "campaign.sqlite") as st:
        trials = st.trials(metrics=False)
    assert len(trials) == 12 and all(t.finished for t in trials)
