"""``calopt timing study``: end to end on a small sample (one energy, one rate), its JSON, and
bad input as one line with exit code 2."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli


def test_timing_study_end_to_end(capsys, tmp_path):
    argv = ["timing", "study", "--technology", "spacal-pb", "--sampling-rate", "2.5", "--energies", "5",
            "--n", "200", "--showers", "10", "--second-signal", "--json", "--plots", str(tmp_path / "p")]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    doc = json.loads(out)
    rows = doc["results"]
    assert {r["estimator"] for r in rows} == {"cfd", "xgb", "nn"}
    for r in rows:
        assert r["technology"] == "spacal-pb" and r["sampling_rate_gsps"] == 2.5 and r["energy_gev"] == 5.0
        assert 1.0 < r["sigma_ps"] < 500.0 and 0 < r["sigma_ps_err"] < r["sigma_ps"]
    two = doc["two_signal"][0]
    assert 0.5 < two["classifier_auc"] <= 1.0 and two["sampling_rate_gsps"] == 2.5
    assert (tmp_path / "p" / "timing_vs_energy.png").stat().st_size > 1000
    assert json.loads((tmp_path / "p" / "timing.json").read_text())["results"] == rows


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--sampling-rate", "0"], "--sampling-rate must be in (0, 50] GS/s, got 0"),
     (["--technology", "unobtainium"], "unknown technology 'unobtainium'"),
     (["--n", "50"], "--n must be in [100"), (["--energies", "0"], "--energies must be in")],
)  # fmt: skip
def test_timing_study_bad_input(capsys, tmp_path, args, message):
    base = ["timing", "study", "--technology", "spacal-pb"]
    code, out, err = run_cli([*base, *args, "--plots", str(tmp_path / "p")], capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
