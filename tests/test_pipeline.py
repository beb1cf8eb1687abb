"""The evaluate pipeline end to end on small samples, its typed result and the metric registry."""

import json

import pytest

from calopt.metrics.registry import METRICS, format_value, get_metric
from calopt.pipeline import CrossingSummary, EvaluateSettings, EvaluationResult
from tests.helpers import run_cli

# the keys of `calopt evaluate --json`, in order: a contract (docs/formats.md), users' scripts read them
EVALUATE_KEYS = [
    "design", "pileup", "events", "method", "pi0_mass_width_mev", "pi0_mass_width_mev_err", "pi0_mass_mev",
    "pi0_efficiency", "pi0_efficiency_err", "pi0_efficiency_window_mev", "pi0_efficiency_selected",
    "energy_resolution_stochastic", "energy_resolution_stochastic_err", "energy_resolution_constant",
    "energy_resolution_constant_err", "energy_resolution_noise", "energy_resolution_noise_err",
    "position_resolution_mm", "position_resolution_mm_err", "b_mass_width_mev", "b_mass_width_mev_err",
    "significance", "significance_err", "significance_method", "channels", "cost", "fits",
    "pi0_width_decomposition_mev", "resolution", "histograms", "pileup_aware_regressors", "photons_per_crossing",
    "photons_rejected_by_timing", "cuts_mev", "events_with_pi0_candidate", "timing_seconds", "settings", "precision",
]  # fmt: skip


@pytest.mark.integration
def test_evaluate_end_to_end(tmp_path, capsys):
    code, out, _ = run_cli(["evaluate", "lhcb-run3", "--quick", "--events", "150", "--n-resolution", "300",
                         "--plots", str(tmp_path), "--json"], capsys)  # fmt: skip
    assert code == 0
    r = json.loads(out)
    assert list(r) == EVALUATE_KEYS
    assert r["channels"] == 6064
    # the pi0 peak is found near the pi0 mass with a width of the order of 10 MeV
    assert r["fits"]["pi0"]["valid"], r["fits"]["pi0"]["reason"]
    assert 120.0 < r["pi0_mass_mev"] < 150.0 and 3.0 < r["pi0_mass_width_mev"] < 25.0
    assert r["pi0_mass_width_mev"] == r["fits"]["pi0"]["signal_shape"]["sigma_eff"]
    assert 0.2 < r["pi0_efficiency"] <= 1.0 and r["pi0_efficiency_window_mev"] == 30.0
    assert r["pi0_efficiency_selected"] <= r["pi0_efficiency"]
    # the free Gaussian fits stay as cross-checks; every metric but the exact ones comes with its error
    assert {"pi0_free", "b_free"} <= set(r["fits"])
    for m in METRICS.values():
        if m.error_key is not None:
            assert (r[m.name] is None) == (r[m.error_key] is None), m.name
            assert r[m.error_key] is None or r[m.error_key] >= 0
    assert r["significance_method"] in ("fit", "truth_count", None)
    assert (r["significance"] is None) == (r["significance_method"] is None)
    assert r["pi0_mass_width_mev_err"] == r["fits"]["pi0"]["signal_shape"]["sigma_eff_err"]
    assert r["precision"] is None
    # the regressors beat the parametric baseline on position
    res = r["resolution"]
    assert res["xgb"]["position_resolution_mm"] < res["parametric"]["position_resolution_mm"]
    assert res["parametric"]["position_resolution_mm"] < res["xgb"]["raw_barycentre_resolution_mm"]
    assert {p.name for p in tmp_path.iterdir()} >= {"pi0.png", "b.png", "energy_resolution.png", "evaluate.json"}


@pytest.mark.integration
def test_evaluate_reports_failed_fits(capsys):
    code, out, _ = run_cli(
        ["evaluate", "lhcb-run3", "--quick", "--events", "5", "--n-resolution", "100", "--json"], capsys
    )
    assert code == 0
    r = json.loads(out)
    assert r["pi0_mass_width_mev"] is None and r["fits"]["pi0"]["valid"] is False
    assert "too few" in r["fits"]["pi0"]["reason"]


@pytest.mark.integration
def test_evaluate_trains_pileup_aware_regressors(fresh_cache, capsys):
    def pileup_models():
        return {p.name for p in (fresh_cache / "regressors").glob("*.json") if '"pileup": 3.0' in p.read_text()}

    base = ["evaluate", "lhcb-run3", "--quick", "--events", "5", "--n-resolution", "100", "--pileup", "3", "--json"]
    code, out, _ = run_cli([*base, "--no-pileup-aware-regressors"], capsys)
    assert code == 0 and json.loads(out)["pileup_aware_regressors"] is False
    off = json.loads(out)
    assert not pileup_models()
    code, out, _ = run_cli(base, capsys)
    on = json.loads(out)
    assert code == 0 and on["pileup_aware_regressors"] is True
    assert len(pileup_models()) == 3  # one per (technology, cell size) of lhcb-run3
    # the single-photon resolutions stay those of the pile-up-free regressors
    assert on["resolution"] == off["resolution"]
    assert on["photons_per_crossing"] != off["photons_per_crossing"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nope"], "unknown design"), (["lhcb-run3", "--pileup", "-3"], "--pileup"),
     (["lhcb-run3", "--events", "0"], "--events"), (["lhcb-run3", "--method", "nn"], "reconstruction method"),
     (["lhcb-run3", "--fastsim", "library"], "--fastsim 'library'"), (["lhcb-run3", "--fastsim", "nope"], "nope")],
)  # fmt: skip
def test_evaluate_bad_input(capsys, args, message):
    code, out, err = run_cli(["evaluate", *args], capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def _result(significance_method=None, **metrics):
    values = dict.fromkeys(METRICS, 1.0) | metrics
    errors = {name: 0.5 for name, m in METRICS.items() if m.error_key is not None}
    return EvaluationResult(
        design="d", settings=EvaluateSettings(), metrics=values, errors=errors, pi0_mass_mev=135.0,
        pi0_efficiency_window_mev=30.0, pi0_efficiency_selected=0.2, fits={"b": {"reason": "too few events"}},
        histograms={}, decomposition={}, resolution={}, timing_seconds={"models": 1.0, "crossings": 2.0},
        crossings=CrossingSummary(10, 3.0, 1, (200.0, 1000.0), False, 4), significance_method=significance_method,
    )  # fmt: skip


def test_result_json_keys_and_registry():
    """The typed result writes the contract's keys; every registry metric is among them, each
    error right after its metric."""
    doc = _result(significance=None).to_json()
    assert list(doc) == EVALUATE_KEYS
    assert set(METRICS) <= set(doc)
    keys = list(doc)
    for m in METRICS.values():
        if m.error_key is not None:
            assert keys.index(m.error_key) == keys.index(m.name) + 1, m.name
    assert doc["significance_err"] == 0.5 and doc["cuts_mev"] == {"photon_et": 200.0, "pi0_pt": 1000.0}
    assert doc["settings"]["n_events"] == 1000 and doc["settings"]["n_use"] is None and doc["events"] == 10
    assert format_value(get_metric("significance"), doc) == "failed: too few events"
    assert format_value(get_metric("pi0_mass_width_mev"), doc) == "1 +- 0.5"
    assert format_value(get_metric("channels"), _result(channels=6064).to_json()) == "6064"
    truth = _result(significance=2.0, significance_method="truth_count").to_json()
    assert truth["significance_method"] == "truth_count"
    assert format_value(get_metric("significance"), truth) == "2 +- 0.5 (truth count)"
    assert format_value(get_metric("significance"), _result(significance_method="fit").to_json()) == "1 +- 0.5"


def test_registry_directions_and_unknown_metric():
    assert get_metric("significance").sign == -1.0 and get_metric("cost").sign == 1.0
    assert get_metric("significance").error_key == "significance_err"
    # every metric but the exact ones has an error
    assert {m.name for m in METRICS.values() if m.error_key is None} == {"channels", "cost"}
    assert get_metric("pi0_mass_width_mev").error_key == "pi0_mass_width_mev_err"
    assert get_metric("pi0_efficiency").error == "binomial"
    assert get_metric("position_resolution_mm").error == "robust"
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        get_metric("nope")
