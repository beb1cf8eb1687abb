"""The validation suite on small samples (the full run is studies/run_cascade_validation.sh)."""

import json

import numpy as np
import pytest

from calopt.stats import fit_energy_resolution
from calopt.validation.cascade import ValidationSettings, shower_maximum, validate_technology
from calopt.validation.report import plot_validation, summary_lines


def test_noise_free_resolution_fit_recovers_parameters():
    e = np.array([1.0, 2.0, 5.0, 10.0, 50.0])
    s = np.sqrt(0.09**2 / e + 0.01**2)
    fit = fit_energy_resolution(e, s, 0.02 * s, noise=False)
    assert fit["a"] == pytest.approx(0.09, rel=1e-3) and fit["b"] == pytest.approx(0.01, rel=1e-2)


def test_shower_maximum_of_a_gamma_profile():
    t = (np.arange(100) + 0.5) * 0.25
    a, b = 5.0, 0.5
    prof = (b * t) ** (a - 1) * np.exp(-b * t)
    assert shower_maximum(prof, 25.0) == pytest.approx((a - 1) / b, rel=0.01)


def test_small_validation_run(tmp_path):
    st = ValidationSettings(energies=(1.0, 4.0), n_per_energy=40, profile_energies=(5.0,), n_profile=20, n_pions=60,
                            readout_library=((1.0, 8.0), (0.0, 0.2), 2))  # fmt: skip
    res = validate_technology("lhcb-shashlik", st)
    json.dumps(res)  # JSON-ready
    g = res["response_gamma"]
    assert g["linearity_max_dev"] < 0.04
    assert 0.04 < g["resolution_fit"]["a"] < 0.12
    p = res["profiles"]["points"][0]
    # shower maximum within 1 X0 of the Longo-Sestili prediction, ~90 % within R_M
    assert abs(p["gamma"]["t_max_x0"] - p["gamma"]["longo_prediction"]) < 1.0
    assert 0.82 < p["electron"]["containment_1RM"] < 0.95
    assert 0.45 < res["pions"]["interacting_fraction"] < 0.8
    # through the readout, per cell size (a tiny library: few showers, so only the trend is tested)
    assert set(res["readout"]) == {"40.4", "60.6", "121.2"}
    assert all(0 < r["rel_sigma"][1] < r["rel_sigma"][0] < 0.15 for r in res["readout"].values())
    assert len(summary_lines(res)) >= 5
    axes = plot_validation(res, tmp_path / "v.png")
    assert len(axes) == 4 and (tmp_path / "v.png").stat().st_size > 10_000


@pytest.mark.slow
def test_quick_validation_command(tmp_path, capsys):
    from calopt.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["validate", "--quick", "--technology", "spacal-pb", "--out", str(tmp_path), "--json"])
    assert exc.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert "spacal-pb" in doc["results"] and (tmp_path / "spacal-pb.png").exists()
