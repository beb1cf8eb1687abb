"""``calopt evaluate``: bad --precision, --pileup and timing options are one line and exit code 2
before any work; --precision end to end on a small sample (integration)."""

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--precision", "0"], "got 0.0"), (["--precision", "1"], "got 1.0"), (["--precision", "-0.1"], "got -0.1"),
     (["--precision", "1.5"], "got 1.5"), (["--precision", "nan"], "got nan"), (["--precision", "inf"], "got inf"),
     (["--precision", "0.1", "--objective", "cost"], "'cost' is exact"),
     (["--precision", "0.1", "--objective", "nope"], "unknown metric 'nope'"),
     (["--objective", "significance"], "give --precision too"),
     (["--pileup", "500"], "--pileup must be between 0 and 200"), (["--pileup", "-3"], "got -3.0")],
)  # fmt: skip
def test_evaluate_bad_precision(capsys, args, message):
    code, out, err = run_cli(["evaluate", "lhcb-run3", *args], capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.integration
def test_evaluate_precision_end_to_end(capsys):
    """A pilot of the --events crossings, then as many of them as the target needs (at most
    --events): the result says what it aimed at and got."""
    base = ["evaluate", "lhcb-run3", "--quick", "--events", "120", "--n-resolution", "300", "--json"]
    code, out, err = run_cli([*base, "--precision", "0.5", "--objective", "pi0_efficiency"], capsys)
    assert code == 0, err
    r = json.loads(out)
    p = r["precision"]
    assert p["objective"] == "pi0_efficiency" and p["target"] == 0.5 and p["pilot_crossings"] == 120
    assert p["needed"] is not None and p["crossings"] == r["events"] <= 120
    assert p["achieved"] == pytest.approx(r["pi0_efficiency_err"] / r["pi0_efficiency"])
    # a target beyond --events: capped, said on stderr in one line
    code, out, err = run_cli([*base, "--precision", "0.001", "--objective", "pi0_efficiency"], capsys)
    r = json.loads(out)
    assert code == 0 and r["precision"]["capped"] and r["events"] == 120 and r["settings"]["n_use"] == 120
    assert f"{r['precision']['needed']} crossings" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("timing", "message"), [('"fast"', "unknown timing option 'fast'"),
                                                  ("-20.0", "timing -20.0: a timing tier"),
                                                  ("0", "timing 0: a timing tier")])  # fmt: skip
def test_evaluate_bad_timing_option(tmp_path, capsys, timing, message):
    design = tmp_path / "bad.toml"
    design.write_text(f'name = "bad"\n[[regions]]\nname = "all"\ntechnology = "spacal-w"\ncell_size = 15.15\n'
                      f'timing = {timing}\nshape = {{ type = "rest" }}\n')  # fmt: skip
    code, out, err = run_cli(["evaluate", str(design), "--quick"], capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
