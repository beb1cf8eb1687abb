"""``evaluate --precision``: the crossings predicted for a relative error, and the pilot and final
runs (with a stand-in for ``evaluate``: the arithmetic, not the physics)."""

import math
from dataclasses import replace

import pytest

import calopt.pipeline as pipeline
from calopt.errors import CaloptInputError
from calopt.generation.events import Events
from calopt.metrics.registry import METRICS
from calopt.pipeline import (
    CrossingSummary,
    EvaluateSettings,
    EvaluationResult,
    check_precision,
    crossings_for_precision,
    evaluate_to_precision,
)


def test_crossings_for_precision():
    # relative errors scale as 1/sqrt(n): half the error needs four times the crossings
    assert crossings_for_precision(500, 0.2, 0.1, 10_000) == (2000, 2000)
    # capped at the crossings allowed, the needed ones still said
    assert crossings_for_precision(500, 0.2, 0.05, 5000) == (5000, 8000)
    # already better than asked: fewer than the pilot
    assert crossings_for_precision(500, 0.05, 0.1, 10_000) == (125, 125)
    # exact squares are not rounded up by floating-point noise; at least one crossing
    assert crossings_for_precision(100, 0.3, 0.1, 10_000) == (900, 900)
    assert crossings_for_precision(500, 0.0, 0.1, 10_000) == (1, 1)
    assert crossings_for_precision(300, 0.1, 0.07, 10_000)[1] == math.ceil(300 * (0.1 / 0.07) ** 2)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_check_precision_bad_values(bad):
    with pytest.raises(CaloptInputError, match=r"--precision must be .* got"):
        check_precision(bad)


def test_check_precision_objective():
    check_precision(0.1, "pi0_mass_width_mev")
    with pytest.raises(CaloptInputError, match="exact"):
        check_precision(0.1, "cost")
    with pytest.raises(CaloptInputError, match="unknown metric"):
        check_precision(0.1, "nope")


def _fake_evaluate(calls, significance=lambda n: 0.5 * math.sqrt(n), error=lambda n: 0.1):
    """A stand-in for ``evaluate`` whose significance grows as sqrt(n) with an error of 1; the
    other metrics are 1 with an error ``error(n)``."""

    def fake(design, st, progress=None):
        n = st.n_use if st.n_use is not None else st.n_events
        calls.append(n)
        z = significance(n)
        values = dict.fromkeys(METRICS, 1.0) | {"significance": z}
        errors = {name: error(n) for name, m in METRICS.items() if m.error_key} | {"significance": 1.0 if z else None}
        return EvaluationResult(
            design="d", settings=st, metrics=values, errors=errors, pi0_mass_mev=135.0, pi0_efficiency_window_mev=30.0,
            pi0_efficiency_selected=0.2, fits={"b": {"reason": "no peak"}}, histograms={}, decomposition={},
            resolution={}, timing_seconds={}, crossings=CrossingSummary(n, 3.0, 0, (200.0, 1000.0), False, 4),
            significance_method="fit" if z else None,
        )  # fmt: skip

    return fake


def test_evaluate_to_precision_runs_a_pilot_then_the_predicted_crossings(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(pipeline, "evaluate", _fake_evaluate(calls))
    # pilot: 500 crossings, relative error 2 / sqrt(500); 0.05 needs 1600
    r = evaluate_to_precision(None, EvaluateSettings(n_events=5000), 0.05)
    assert calls == [500, 1600]
    p = r.to_json()["precision"]
    assert p == {"objective": "significance", "target": 0.05, "achieved": pytest.approx(0.05), "crossings": 1600,
                 "needed": 1600, "pilot_crossings": 500, "capped": False, "note": None}  # fmt: skip
    assert r.settings.n_use == 1600 and r.settings.n_events == 5000
    # capped by --events: the crossings it would need are said in one line
    calls.clear()
    r = evaluate_to_precision(None, EvaluateSettings(n_events=1000), 0.05)
    assert calls == [500, 1000]
    p = r.precision
    assert p["capped"] and p["needed"] == 1600 and p["crossings"] == 1000
    assert p["achieved"] == pytest.approx(2 / math.sqrt(1000))
    assert "needs about 1600 crossings" in p["note"] and "\n" not in p["note"]
    # capped by a pessimistic prediction that the crossings allowed still meet: said so
    calls.clear()
    r = evaluate_to_precision(None, EvaluateSettings(n_events=1000), 0.05, "pi0_efficiency")
    # 0.1 at 500 -> 2000, capped at 1000; still 0.1 there -> 4000, the latest prediction
    assert r.precision["needed"] == 4000 and r.precision["capped"] and calls == [500, 1000]
    monkeypatch.setattr(pipeline, "evaluate", _fake_evaluate(calls, error=lambda n: 0.05 if n > 500 else 0.1))
    r = evaluate_to_precision(None, EvaluateSettings(n_events=1000), 0.05, "pi0_efficiency")
    assert r.precision["capped"] and r.precision["achieved"] == pytest.approx(0.05)
    assert r.precision["note"].startswith("--precision 0.05: pi0_efficiency reached 0.05 with all 1000")
    # the pilot is precise enough: no second run
    calls.clear()
    r = evaluate_to_precision(None, EvaluateSettings(n_events=300), 0.5)
    assert calls == [300] and r.precision["needed"] == 16 and r.precision["crossings"] == 300


def test_evaluate_to_precision_predicts_again_when_a_result_misses(monkeypatch):
    """A pilot whose error is smaller than the larger sample's (a truth-count significance, then
    a fitted one): the first prediction falls short, the next one from that result reaches it."""
    calls: list[int] = []
    fake = _fake_evaluate(calls)

    def worse_after_pilot(design, st, progress=None):
        r = fake(design, st, progress)
        n = r.crossings.n_events
        return replace(r, errors=r.errors | {"significance": 0.5 if n <= 500 else 1.0})

    monkeypatch.setattr(pipeline, "evaluate", worse_after_pilot)
    r = evaluate_to_precision(None, EvaluateSettings(n_events=5000), 0.04)
    # pilot 0.5 / (0.5 sqrt(500)) = 0.0447 -> 625; there 1 / 12.5 = 0.08 -> 2500; there 0.04
    assert calls == [500, 625, 2500]
    assert r.precision["achieved"] == pytest.approx(0.04) and r.precision["needed"] == 2500


def test_evaluate_to_precision_without_a_pilot_measurement(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(pipeline, "evaluate", _fake_evaluate(calls, significance=lambda n: None))
    r = evaluate_to_precision(None, EvaluateSettings(n_events=2000), 0.05)
    assert calls == [500, 2000]
    p = r.precision
    assert p["needed"] is None and p["achieved"] is None and not p["capped"] and p["crossings"] == 2000
    assert "not measured" in p["note"] and "2000" in p["note"] and "\n" not in p["note"]


def test_settings_n_use():
    EvaluateSettings(n_events=100, n_use=100).validate()
    for bad in (0, 101):
        with pytest.raises(CaloptInputError, match="n_use"):
            EvaluateSettings(n_events=100, n_use=bad).validate()


def test_events_head():
    import numpy as np

    ev = Events(
        particles={"pdg": np.arange(6), "energy": np.ones(6)}, offsets=np.array([0, 1, 3, 6]),
        n_pileup=np.array([0, 1, 2]), pv_position=np.zeros((3, 2)), attrs={"seed": 1},
        truth={"b": np.arange(12.0).reshape(3, 4)},
    )  # fmt: skip
    h = ev.head(2)
    assert len(h) == 2 and h.n_particles == 3 and list(h.particles["pdg"]) == [0, 1, 2]
    assert list(h.crossing(1)["pdg"]) == [1, 2] and h.truth["b"].shape == (2, 4) and h.attrs == ev.attrs
    assert len(ev.head(10)) == 3
