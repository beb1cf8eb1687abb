"""Waveforms (calopt.readout.waveforms), time estimators and the waveform timing model of readout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calopt.errors import CaloptInputError
from calopt.readout.time_estimators import XGBTimer, cfd_times, resolution, tune_cfd, window_features
from calopt.readout.waveforms import (
    PULSE_MODELS,
    WaveformSettings,
    cell_light,
    pulse_density,
    sample_times,
    simulate_waveforms,
)


@pytest.fixture(scope="module")
def light():
    return cell_light("spacal-pb", 5.0, 12, seed=3)


@pytest.mark.parametrize("tech", sorted(PULSE_MODELS))
def test_pulse_density_is_normalised_with_the_summed_time_constants_as_mean(tech):
    """The photo-electron density is a probability density whose mean is the sum of the
    exponential time constants (a hypo-exponential), the Gaussian adding none."""
    m = PULSE_MODELS[tech]
    t = np.arange(-2.0, 400.0, 0.002)
    p = pulse_density(m, 200.0, t)
    assert np.all(p >= 0)
    assert np.trapezoid(p, t) == pytest.approx(1.0, abs=2e-3)
    taus = m.rise_ns + m.decay_ns + m.wls_decay_ns
    assert np.trapezoid(p * t, t) == pytest.approx(taus, rel=5e-3)


def test_cell_light_arrives_after_the_shower_and_is_photo_electrons(light):
    """Light of a section reaches the back later than the particle crosses the face (fibres are
    slower than the shower), and the photo-electrons are energy times the light yield."""
    from calopt.detector.technologies import get_technology

    assert light.pe.shape == light.arrival_ns.shape == (12, 4)
    depth = get_technology("spacal-pb").section_edges[-1]
    assert np.all(light.arrival_ns > depth / 299.79) and np.all(light.arrival_ns < 3 * depth / 299.79)
    # deeper sections are closer to the photodetector: their light arrives first
    assert np.mean(light.arrival_ns[:, 0]) > np.mean(light.arrival_ns[:, -1])
    assert light.pe.sum(axis=1) == pytest.approx(light.cell_gev * get_technology("spacal-pb").light_yield)
    assert 1.0 < light.cell_gev.mean() < 5.0


def test_waveforms_are_deterministic_and_sampled_at_the_rate(light):
    a = simulate_waveforms([light], 50, (10.0, 0.4), seed=7)
    b = simulate_waveforms([light], 50, (10.0, 0.4), seed=7)
    c = simulate_waveforms([light], 50, (10.0, 0.4), seed=8)
    assert np.array_equal(a.samples[10.0], b.samples[10.0]) and np.array_equal(a.t_ref, b.t_ref)
    assert not np.array_equal(a.samples[10.0], c.samples[10.0])
    st = WaveformSettings()
    assert a.samples[10.0].shape == (50, len(sample_times(10.0, st))) and len(sample_times(10.0, st)) == 400
    assert a.samples[0.4].shape[1] == 16
    # the pulse sits after t0 in the window; reference time = t0 within the counter's resolution
    peak_t = a.times[10.0][a.samples[10.0].argmax(axis=1)]
    assert np.all(peak_t > a.t0) and np.all(peak_t < a.t0 + 10.0)
    assert np.std(a.t_ref - a.t0) == pytest.approx(st.reference_sigma_ns, rel=0.35)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_non_positive_sampling_rate_is_refused(rate):
    with pytest.raises(CaloptInputError, match="sampling rate"):
        sample_times(rate, WaveformSettings())


def test_cfd_follows_a_shifted_pulse_exactly():
    """On noiseless copies of one pulse shifted by known times, the CFD time moves with them
    (to a few ps from the linear interpolation at 5 GS/s)."""
    t = np.arange(0.0, 40.0, 0.2)
    shifts = np.linspace(5.0, 10.0, 41)
    wave = np.array([np.where(t > s, ((t - s) / 1.5) ** 2 * np.exp(-(t - s) / 1.5), 0.0) * 1000 for s in shifts])
    for f, d in [(0.3, 0.0), (0.3, 1.0)]:
        tc = cfd_times(wave, t, f, d)
        resid = tc - shifts
        assert np.all(np.isfinite(tc))
        assert np.std(resid) < 0.01, (f, d)


@pytest.mark.slow
def test_regressor_and_cfd_measure_the_same_resolution_at_high_rate(light):
    """At 10 GS/s the tuned CFD and the XGBoost regressor on the samples (checked against each
    other, the point of several estimators) agree within their errors and a 30 % margin; at
    0.4 GS/s the regressor recovers what the CFD loses."""
    w = simulate_waveforms([light], 1200, (10.0, 0.4), seed=11)
    train = np.arange(len(w)) % 2 == 0
    test = ~train
    out = {}
    for r in (10.0, 0.4):
        s, t = w.samples[r], w.times[r]
        cfd = tune_cfd(s[train], t, w.t_ref[train]).predict(s, t)
        x, anchor = window_features(s, t)
        xgb = anchor + XGBTimer(n_estimators=150).fit(x[train], (w.t_ref - anchor)[train]).predict(x)
        out[r] = {k: resolution(v[test] - w.t_ref[test], 0.010) for k, v in (("cfd", cfd), ("xgb", xgb))}
    c, x = out[10.0]["cfd"], out[10.0]["xgb"]
    assert 5.0 < c["sigma_ps"] < 200.0
    assert (
        abs(c["sigma_ps"] - x["sigma_ps"]) < 3 * math.hypot(c["sigma_ps_err"], x["sigma_ps_err"]) + 0.3 * c["sigma_ps"]
    )
    assert out[0.4]["xgb"]["sigma_ps"] < 0.5 * out[0.4]["cfd"]["sigma_ps"]


def test_resolution_subtracts_the_reference_in_quadrature():
    rng = np.random.default_rng(0)
    r = resolution(rng.normal(0, 0.05, 20000), reference_sigma_ns=0.03)
    assert r["sigma_ps"] == pytest.approx(40.0, rel=0.05)
    assert r["failed"] == 0.0


def test_readout_default_keys_and_timing_model_setting():
    """The default settings' cache key has no timing-model fields (keys made before the
    waveform model stay valid); the waveform model's has; an unknown model is refused."""
    from calopt.readout.readout import ReadoutSettings

    assert "timing_model" not in ReadoutSettings().key_doc()
    assert ReadoutSettings(timing_model="waveform").key_doc()["timing_model"] == "waveform"
    with pytest.raises(CaloptInputError, match="timing model"):
        ReadoutSettings(timing_model="oracle")


def test_the_shipped_table_feeds_readouts_waveform_model():
    """The table has its provenance; readout's waveform model takes a and b from it for every
    technology of a design (b only where the region has the published constant term)."""
    from calopt.detector.design import load_design
    from calopt.readout.readout import Readout, ReadoutSettings
    from calopt.readout.waveform_timing import waveform_table, waveform_time_resolution

    table = waveform_table()
    assert table["seed"] is not None and table["calopt_version"] and table["settings"]["energies_gev"]
    with pytest.raises(CaloptInputError, match="tabulated at"):
        waveform_time_resolution("spacal-pb", 3.3)
    design = load_design("upgrade2-like")
    ro = Readout(design, ReadoutSettings(timing_model="waveform", waveform_sampling_gsps=5.0))
    a_w, b_w, _ = ro._waveform_terms
    index = ro.cells.table["tech"]
    assert len(ro.cells.technologies) == 3
    for i, name in enumerate(ro.cells.technologies):
        a, b = waveform_time_resolution(name, 5.0)
        sel = index == i
        assert sel.any() and np.allclose(a_w[sel], a) and np.allclose(b_w[sel], b) and a + b > 0


def test_a_table_entry_is_recomputed_within_errors():
    """The CFD entry of spacal-pb at 5 GS/s, recomputed on a small independent sample (other
    seed, fewer showers), predicts the measured resolution within 3 sigma and a 15 % margin for
    the reuse of a few showers."""
    from calopt.readout.waveform_timing import TimingStudy, run_timing_study, waveform_table

    key = ("spacal-pb", 5.0, "cfd")
    entry = next(x for x in waveform_table()["entries"]
                 if (x["technology"], x["sampling_rate_gsps"], x["estimator"]) == key)  # fmt: skip
    doc = run_timing_study(TimingStudy("spacal-pb", (5.0,), (2.0, 20.0), n=800, n_showers=25, seed=5,
                                       estimators=("cfd",)))  # fmt: skip
    a, b = entry["a_ps"], entry["b_ps"]
    a_err, b_err = entry["a_ps_err"] or 0.0, entry["b_ps_err"] or 0.0
    for r in doc["results"]:
        e = r["energy_gev"]
        pred = math.sqrt(a * a / e + b * b)
        pred_err = math.hypot(a * a_err / e, b * b_err) / pred
        tol = 3 * math.hypot(r["sigma_ps_err"], pred_err) + 0.15 * pred
        assert abs(r["sigma_ps"] - pred) < tol, (e, r["sigma_ps"], pred, tol)


@pytest.mark.parametrize("model", ["catalogue", "waveform"])
def test_readout_smears_cell_times_with_the_chosen_model(model):
    """10 GeV deposits at t = 0 in every SpaCal-Pb channel of a design with timing: the cell
    times spread as sigma_t(E) of the chosen model (the catalogue's published a, b, or the
    waveform table's), within the statistical error of the spread."""
    from calopt.detector.design import load_design
    from calopt.detector.technologies import get_technology
    from calopt.readout.readout import Readout, ReadoutSettings
    from calopt.readout.waveform_timing import waveform_time_resolution

    ro = Readout(load_design("upgrade2-like"), ReadoutSettings(timing_model=model))
    tech = ro.cells.technologies.index("spacal-pb")
    ch = np.flatnonzero(ro.cells.table["tech"] == tech)
    ch = ch[ro.cells.table["time_b"][ch] > 0]
    sums = (ch, np.full(len(ch), 10_000.0), np.zeros(len(ch)))
    hits = ro._electronics(sums, np.random.default_rng(3))
    t_ps = hits.time[np.isin(hits.channel, ch)] * 1e3
    a, b = waveform_time_resolution("spacal-pb", 5.0) if model == "waveform" else get_technology(
        "spacal-pb").time_resolution  # fmt: skip
    expected = math.hypot(a / math.sqrt(10.0), b)
    assert len(t_ps) > 1000
    assert abs(np.std(t_ps) / expected - 1.0) < 4.0 / math.sqrt(2 * len(t_ps)) + 0.01


def test_campaigns_and_evaluate_choose_the_timing_model(capsys, tmp_path):
    import tomllib

    from calopt.optimize.campaign import Campaign
    from tests.helpers import run_cli
    from tests.optimize.test_campaign import CAMPAIGN

    doc = tomllib.loads(CAMPAIGN)
    default = Campaign.from_dict(doc)
    waveform = Campaign.from_dict(doc | {"evaluate": {**doc["evaluate"], "timing_model": "waveform",
                                                       "waveform_sampling_gsps": 2.5}})  # fmt: skip
    readout = waveform.evaluate.settings().readout
    assert (readout.timing_model, readout.waveform_sampling_gsps) == ("waveform", 2.5)
    assert default.evaluate.settings().readout.timing_model == "catalogue"
    assert waveform.digest() != default.digest()
    # a default written out is the campaign without it: older campaigns keep their digest
    explicit = Campaign.from_dict(doc | {"evaluate": {**doc["evaluate"], "timing_model": "catalogue"}})
    assert explicit.digest() == default.digest()
    with pytest.raises(CaloptInputError, match=r"\[evaluate\]: waveform timing of 'lhcb-shashlik' is tabulated at"):
        Campaign.from_dict(doc | {"evaluate": {**doc["evaluate"], "timing_model": "waveform",
                                               "waveform_sampling_gsps": 3.3}})  # fmt: skip
    rc, _, err = run_cli(["evaluate", "upgrade2-like", "--timing-model", "waveform", "--waveform-sampling", "3.3"],
                           capsys)  # fmt: skip
    assert rc == 2 and err.count("\n") == 1 and "tabulated at 0.4, 1, 2.5, 5, 10 GS/s, not 3.3" in err
    rc, _, err = run_cli(["evaluate", "upgrade2-like", "--timing-model", "oracle"], capsys)
    assert rc == 2 and "unknown timing model 'oracle'; expected one of catalogue, waveform" in err
