"""Time resolution from waveforms, and the fitted table that readout's waveform timing model reads.

:func:`run_timing_study` simulates cells of one technology at a few beam energies
(:mod:`calopt.readout.waveforms`), digitises them at each sampling rate, trains the time
estimators of :mod:`calopt.readout.time_estimators` on half of the events (all energies
together, against the trigger counter's time as in a test beam) and measures each one's
resolution on the other half, energy by energy, with the counter's resolution subtracted in
quadrature. Per rate and estimator it fits sigma_t(E) = a/sqrt(E) (+) b (E the beam energy).
With ``second_signal`` it also trains, per rate, the regressor of the time and amplitude of the
bigger of two pulses and the one-or-two-pulses classifier, binned in the second pulse's delay
and amplitude ratio.

The shipped table ``data/waveform_timing.json`` holds those fits per technology and sampling
rate (made by ``studies/waveform_timing.py``, settings and seed in it);
:func:`waveform_time_resolution` reads the chosen estimator's (a, b) for readout's
``timing_model = "waveform"``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from calopt.detector.technologies import get_technology
from calopt.errors import CaloptInputError
from calopt.readout.time_estimators import (
    NNTimer,
    TwoPulseClassifier,
    XGBTimer,
    resolution,
    tune_cfd,
    window_features,
)
from calopt.readout.waveforms import WaveformSettings, cell_light, pulse_model, simulate_waveforms
from calopt.stats import fit_energy_resolution

__all__ = [
    "ESTIMATORS",
    "TABLE_FORMAT",
    "TimingStudy",
    "check_waveform_timing",
    "fit_sigma_t",
    "run_timing_study",
    "waveform_table",
    "waveform_time_resolution",
]

ESTIMATORS = ("cfd", "xgb", "nn")
TABLE_FORMAT = "calopt-waveform-timing"
TABLE_VERSION = 1
MAX_RATE_GSPS = 50.0  # the fine analogue grid is 20 ps: 50 GS/s samples every bin
MAX_N = 1_000_000


@dataclass(frozen=True)
class TimingStudy:
    """One study: ``technology``, digitiser ``rates_gsps``, beam ``energies_gev``, ``n`` events
    per energy (half to train, half to measure), ``n_showers`` cascade showers per energy (each
    reused with fresh photo-statistics), ``seed``; ``second_signal``: the two-pulse study too;
    ``estimators``: which of :data:`ESTIMATORS`."""

    technology: str
    rates_gsps: tuple[float, ...] = (0.4, 1.0, 2.5, 5.0, 10.0)
    energies_gev: tuple[float, ...] = (1.0, 5.0, 20.0)
    n: int = 2000
    n_showers: int = 100
    seed: int = 0
    second_signal: bool = False
    estimators: tuple[str, ...] = ESTIMATORS

    def validate(self) -> None:
        """One-line errors for a bad technology, rate, energy or size."""
        get_technology(self.technology)
        pulse_model(self.technology)
        if not self.rates_gsps:
            raise CaloptInputError("--sampling-rate: give at least one sampling rate")
        for r in self.rates_gsps:
            if not 0 < r <= MAX_RATE_GSPS:
                raise CaloptInputError(f"--sampling-rate must be in (0, {MAX_RATE_GSPS:g}] GS/s, got {r:g}")
        if not self.energies_gev:
            raise CaloptInputError("--energies: give at least one energy")
        for e in self.energies_gev:
            if not 0.1 <= e <= 500.0:
                raise CaloptInputError(f"--energies must be in [0.1, 500] GeV, got {e:g}")
        if not 100 <= self.n <= MAX_N:
            raise CaloptInputError(f"--n must be in [100, {MAX_N}] events per energy, got {self.n}")
        if not 1 <= self.n_showers <= 100_000:
            raise CaloptInputError(f"--showers must be in [1, 100000], got {self.n_showers}")
        for name in self.estimators:
            if name not in ESTIMATORS:
                raise CaloptInputError(f"unknown estimator {name!r}; expected one of {', '.join(ESTIMATORS)}")


def fit_sigma_t(e_gev: np.ndarray, sigma_ps: np.ndarray, err_ps: np.ndarray) -> dict[str, Any]:
    """Fit sigma_t = a/sqrt(E) (+) b [ps, E in GeV] to resolutions with errors: ``a_ps``,
    ``a_ps_err``, ``b_ps``, ``b_ps_err`` (an error is None for a term at its bound of 0), or
    ``valid = False`` with the ``reason`` (fewer than two energies)."""
    fit = fit_energy_resolution(np.asarray(e_gev, float), np.asarray(sigma_ps, float) * 1e-3,
                                np.asarray(err_ps, float) * 1e-3, noise=False)  # fmt: skip
    if not fit.get("valid"):
        return {"valid": False, "reason": fit.get("reason", "fit failed")}

    def ps(v: Any) -> float | None:
        return None if v is None else float(v) * 1e3

    return {"valid": True, "a_ps": ps(fit["a"]), "a_ps_err": ps(fit.get("a_err")), "b_ps": ps(fit["b"]),
            "b_ps_err": ps(fit.get("b_err"))}  # fmt: skip


def _train_predict(name: str, x: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int) -> np.ndarray:
    model = XGBTimer(seed=seed) if name == "xgb" else NNTimer(seed=seed)
    return model.fit(x[train], y[train]).predict(x)


def _bins(values: np.ndarray, edges: tuple[float, ...]) -> list[tuple[float, float, np.ndarray]]:
    return [(lo, hi, (values >= lo) & (values < hi)) for lo, hi in itertools.pairwise(edges)]


def _two_signal(st: TimingStudy, lights: list[Any], ws: WaveformSettings, rate_seed: int) -> list[dict[str, Any]]:
    """Per rate: the bigger pulse's time and amplitude regressed (XGBoost) in the presence of a
    second one, and the one-or-two classifier, binned in delay and amplitude ratio."""
    w = simulate_waveforms(lights, st.n, st.rates_gsps, rate_seed, ws, second_signal=True)
    rng = np.random.default_rng(rate_seed)
    train = rng.uniform(size=len(w)) < 0.5
    test = ~train
    out = []
    for r in st.rates_gsps:
        x, anchor = window_features(w.samples[r], w.times[r], before_ns=8.0, after_ns=8.0)
        t_hat = anchor + _train_predict("xgb", x, w.t_ref - anchor, train, st.seed)
        a_hat = _train_predict("xgb", x, w.amplitude_gev, train, st.seed)
        score = TwoPulseClassifier(st.seed).fit(x[train], w.two[train]).score(x)
        single = test & ~w.two
        cut = float(np.quantile(score[single], 0.95))  # 5 % of single pulses flagged
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(w.two[test], score[test]))
        rows = []
        for kind, values, edges in (("abs_dt_ns", np.abs(w.dt2), (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)),
                                    ("ratio", w.ratio, (0.05, 0.25, 0.5, 0.75, 1.0001))):  # fmt: skip
            for lo, hi, sel in _bins(values, edges):
                m = test & w.two & sel
                if m.sum() < 10:
                    continue
                res = resolution(t_hat[m] - w.t_ref[m], ws.reference_sigma_ns)
                amp = (a_hat[m] - w.amplitude_gev[m]) / w.amplitude_gev[m]
                rows.append({"variable": kind, "low": lo, "high": min(hi, 1.0) if kind == "ratio" else hi,
                             "n": int(m.sum()), "sigma_ps": res["sigma_ps"], "sigma_ps_err": res["sigma_ps_err"],
                             "amplitude_rel_sigma": float(np.std(amp)),
                             "efficiency": float(np.mean(score[m] > cut))})  # fmt: skip
        single_res = resolution(t_hat[single] - w.t_ref[single], ws.reference_sigma_ns)
        out.append({"technology": st.technology, "sampling_rate_gsps": r, "estimator": "xgb",
                    "classifier_auc": auc, "false_positive_rate": 0.05,
                    "single_sigma_ps": single_res["sigma_ps"], "single_sigma_ps_err": single_res["sigma_ps_err"],
                    "bins": rows})  # fmt: skip
    return out


def run_timing_study(st: TimingStudy, ws: WaveformSettings | None = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Resolutions of every estimator at every rate and energy (``results``), their fits
    (``fits``), the tuned CFD settings (``cfd``) and with ``second_signal`` the two-pulse
    figures (``two_signal``). Deterministic in ``st.seed``."""
    from calopt import __version__

    st.validate()
    ws = ws or WaveformSettings()
    say = progress or (lambda s: None)
    lights = []
    for i, e in enumerate(st.energies_gev):
        say(f"cascade showers at {e:g} GeV")
        lights.append(cell_light(st.technology, e, st.n_showers, st.seed * 1000 + i))
    say("waveforms")
    w = simulate_waveforms(lights, st.n, st.rates_gsps, st.seed * 1000 + 999, ws)
    train = np.random.default_rng(st.seed).uniform(size=len(w)) < 0.5
    test = ~train
    results: list[dict[str, Any]] = []
    fits: list[dict[str, Any]] = []
    cfds: list[dict[str, Any]] = []
    for r in st.rates_gsps:
        s, t = w.samples[r], w.times[r]
        estimates: dict[str, np.ndarray] = {}
        if "cfd" in st.estimators:
            say(f"{r:g} GS/s: cfd")
            c = tune_cfd(s[train], t, w.t_ref[train])
            cfds.append({"sampling_rate_gsps": r, **asdict(c)})
            estimates["cfd"] = c.predict(s, t)
        x, anchor = window_features(s, t)
        for name in ("xgb", "nn"):
            if name in st.estimators:
                say(f"{r:g} GS/s: {name}")
                estimates[name] = anchor + _train_predict(name, x, w.t_ref - anchor, train, st.seed)
        for name, est in estimates.items():
            rows = []
            for e in st.energies_gev:
                m = test & (w.beam_gev == e)
                res = resolution(est[m] - w.t_ref[m], ws.reference_sigma_ns)
                rows.append({"technology": st.technology, "sampling_rate_gsps": r, "energy_gev": e,
                             "estimator": name, **res})  # fmt: skip
            results.extend(rows)
            fit = fit_sigma_t(np.array([x["energy_gev"] for x in rows]), np.array([x["sigma_ps"] for x in rows]),
                              np.array([x["sigma_ps_err"] for x in rows]))  # fmt: skip
            fits.append({"technology": st.technology, "sampling_rate_gsps": r, "estimator": name, **fit})
    doc: dict[str, Any] = {
        "technology": st.technology,
        "results": results,
        "fits": fits,
        "cfd": cfds,
        "settings": {"study": asdict(st), "waveforms": asdict(ws)},
        "calopt_version": __version__,
    }
    if st.second_signal:
        say("two signals")
        doc["two_signal"] = _two_signal(st, lights, ws, st.seed * 1000 + 998)
    return doc


@cache
def waveform_table() -> dict[str, Any]:
    """The shipped table of fitted (a, b) (``data/waveform_timing.json``)."""
    path = resources.files("calopt.readout").joinpath("data/waveform_timing.json")
    if not path.is_file():
        raise CaloptInputError("the waveform timing table is not there: run studies/waveform_timing.py")
    text = path.read_text()
    doc = json.loads(text)
    if doc.get("format") != TABLE_FORMAT or doc.get("format_version") != TABLE_VERSION:
        raise ValueError(f"waveform timing table: expected {TABLE_FORMAT} v{TABLE_VERSION}")
    return doc


def waveform_time_resolution(technology: str, rate_gsps: float) -> tuple[float, float]:
    """(a [ps sqrt(GeV)], b [ps]) of the chosen estimator for ``technology`` at ``rate_gsps``
    from the shipped table; one line naming the tabulated rates otherwise."""
    entries = [x for x in waveform_table()["entries"] if x["technology"] == technology and x["chosen"]]
    if not entries:
        raise CaloptInputError(f"no waveform timing for technology {technology!r} in the shipped table")
    for x in entries:
        if abs(x["sampling_rate_gsps"] - rate_gsps) < 1e-9:
            return float(x["a_ps"]), float(x["b_ps"])
    rates = ", ".join(f"{x['sampling_rate_gsps']:g}" for x in entries)
    raise CaloptInputError(f"waveform timing of {technology!r} is tabulated at {rates} GS/s, not {rate_gsps:g}")


def check_waveform_timing(settings: Any, design: Any) -> None:
    """Refuse, in one line and before anything runs, readout settings whose waveform timing
    model has no table entry for a technology of ``design`` that reads out times (or an unknown
    timing model: :class:`~calopt.readout.readout.ReadoutSettings` checks it when made)."""
    if settings.timing_model != "waveform":
        if settings.waveform_sampling_gsps != 5.0:
            raise CaloptInputError("--waveform-sampling applies to --timing-model waveform only")
        return
    for region in design.regions:
        if region.timing is not False:
            waveform_time_resolution(region.technology, settings.waveform_sampling_gsps)
