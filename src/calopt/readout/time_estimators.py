"""Time (and amplitude) estimators on digitised waveforms (:mod:`calopt.readout.waveforms`).

* constant-fraction discrimination (:func:`cfd_times`), the baseline: with ``delay_ns = 0``
  the leading edge crosses ``fraction`` of the (parabola-interpolated) peak; with a delay the
  zero crossing of x(t - d) - f x(t) on the linearly interpolated samples, the analogue CFD.
  Fraction and delay are tuned on training events (:func:`tune_cfd`);
* regressors on the samples around the highest one (:func:`window_features`): XGBoost
  (:class:`XGBTimer`) and a small torch MLP (:class:`NNTimer`). Both predict the reference time
  minus the time of the highest sample, so they are equivariant under the clock phase, and are
  checked against each other and against the CFD;
* for two pulses in one cell: the same regressors trained on the time and amplitude of the
  bigger one, and an XGBoost classifier of one versus two pulses (:class:`TwoPulseClassifier`).

torch and xgboost are imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.stats import robust_sigma, robust_sigma_error

__all__ = [
    "CFD",
    "NNTimer",
    "TwoPulseClassifier",
    "XGBTimer",
    "cfd_times",
    "resolution",
    "tune_cfd",
    "window_features",
]

CFD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
CFD_DELAYS_NS = (0.0, 0.5, 1.0, 2.0, 3.0)


def _peak(samples: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the highest sample, and the amplitude and time offset [ns] of the parabola
    through it and its neighbours."""
    n, k = samples.shape
    i = np.clip(np.argmax(samples, axis=1), 1, k - 2)
    r = np.arange(n)
    y0, y1, y2 = samples[r, i - 1], samples[r, i], samples[r, i + 1]
    den = y0 - 2 * y1 + y2
    u = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    u = np.clip(u, -0.5, 0.5)
    return i, y1 - 0.25 * (y0 - y2) * u, u * period


def cfd_times(samples: np.ndarray, times: np.ndarray, fraction: float, delay_ns: float) -> np.ndarray:
    """(N,) CFD times [ns] of ``samples`` (N, K) taken at ``times`` (K,), NaN where no crossing is
    found before the peak."""
    samples = samples.astype(np.float64)
    n, k = samples.shape
    period = float(times[1] - times[0])
    i_pk, amp, _ = _peak(samples, period)
    idx = np.arange(k)[None, :]
    if delay_ns <= 0:
        # the last sample below f * A before the peak; the next one is at or above it
        y = samples - fraction * amp[:, None]
        below = (y < 0) & (idx < i_pk[:, None])
        j = np.where(below.any(axis=1), k - 1 - np.argmax(below[:, ::-1], axis=1), -1)
    else:
        # x(t - d) - f x(t) on the linearly interpolated samples: negative on the leading edge,
        # crossing zero once the delayed pulse catches up; armed at 10 % of the peak
        d = delay_ns / period
        m = int(np.floor(d))
        f = d - m
        ext = np.concatenate([np.zeros((n, m + 1)), samples], axis=1)
        delayed = (1 - f) * ext[:, 1 : k + 1] + f * ext[:, 0:k]  # x at index i - m - f
        y = delayed - fraction * samples
        armed = samples > 0.1 * amp[:, None]
        first = np.where(armed.any(axis=1), np.argmax(armed, axis=1), k)
        cross = (y[:, :-1] < 0) & (y[:, 1:] >= 0) & (idx[:, :-1] >= first[:, None])
        j = np.where(cross.any(axis=1), np.argmax(cross, axis=1), -1)
    r = np.arange(n)
    jj = np.clip(j, 0, k - 2)
    y0, y1 = y[r, jj], y[r, jj + 1]
    t = times[jj] + period * (-y0) / np.where(y1 != y0, y1 - y0, 1.0)
    return np.where((j >= 0) & (amp > 0), t, np.nan)


@dataclass(frozen=True)
class CFD:
    """A tuned CFD: ``fraction``, ``delay_ns`` and the calibration ``offset_ns`` (mean of the
    reference minus the CFD time on the training events)."""

    fraction: float
    delay_ns: float
    offset_ns: float

    def predict(self, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
        return cfd_times(samples, times, self.fraction, self.delay_ns) + self.offset_ns


def tune_cfd(samples: np.ndarray, times: np.ndarray, t_ref: np.ndarray) -> CFD:
    """The (fraction, delay) of :data:`CFD_FRACTIONS` x :data:`CFD_DELAYS_NS` with the smallest
    Gaussian-core width of t_ref - t_cfd on training events (a setting that fails on more than
    1 % of them is not taken)."""
    best: tuple[float, float, float, float] | None = None
    for d in CFD_DELAYS_NS:
        for f in CFD_FRACTIONS:
            res = t_ref - cfd_times(samples, times, f, d)
            ok = np.isfinite(res)
            if ok.mean() < 0.99:
                continue
            s = robust_sigma(res[ok])
            if best is None or s < best[0]:
                best = (s, f, d, float(np.median(res[ok])))
    if best is None:
        raise ValueError("no CFD setting finds the pulses")
    return CFD(best[1], best[2], best[3])


def window_features(samples: np.ndarray, times: np.ndarray, before_ns: float = 6.0,
                    after_ns: float = 4.0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Regressor inputs: the samples from ``before_ns`` before to ``after_ns`` after the highest
    one, divided by it, and log10 of the highest sample (N, F); and the time of the highest
    sample (N,) [ns], the anchor that the regressors' targets are relative to."""
    samples = samples.astype(np.float64)
    n, k = samples.shape
    period = float(times[1] - times[0])
    lo, hi = int(np.ceil(before_ns / period)), int(np.ceil(after_ns / period))
    i_pk, _, _ = _peak(samples, period)
    idx = i_pk[:, None] + np.arange(-lo, hi + 1)[None, :]
    ok = (idx >= 0) & (idx < k)
    win = np.where(ok, samples[np.arange(n)[:, None], np.clip(idx, 0, k - 1)], 0.0)
    top = np.maximum(samples[np.arange(n), i_pk], 1.0)
    x = np.concatenate([win / top[:, None], np.log10(top)[:, None]], axis=1)
    return x.astype(np.float32), times[i_pk]


class XGBTimer:
    """XGBoost regressor of one target (time offset [ns] or amplitude) from
    :func:`window_features`."""

    def __init__(self, n_estimators: int = 300, max_depth: int = 6, learning_rate: float = 0.08,
                 seed: int = 0) -> None:  # fmt: skip
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> XGBTimer:
        import xgboost as xgb

        self.model_ = xgb.XGBRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                       learning_rate=self.learning_rate, subsample=0.8, tree_method="hist",
                                       random_state=self.seed, n_jobs=2)  # fmt: skip
        self.model_.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(x), dtype=np.float64)


class NNTimer:
    """A small torch MLP (2 hidden layers of ``hidden`` with SiLU) regressing standardised
    targets (K,) from standardised :func:`window_features`; Adam, MSE, ``epochs`` passes."""

    def __init__(self, hidden: int = 64, epochs: int = 40, lr: float = 2e-3, batch: int = 256, seed: int = 0) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch = batch
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> NNTimer:
        import torch

        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        y2 = y.reshape(len(y), -1).astype(np.float64)
        self.x_mu_, self.x_sd_ = x.mean(axis=0), x.std(axis=0) + 1e-6
        self.y_mu_, self.y_sd_ = y2.mean(axis=0), y2.std(axis=0) + 1e-9
        self.squeeze_ = y.ndim == 1
        xt = torch.tensor((x - self.x_mu_) / self.x_sd_, dtype=torch.float32)
        yt = torch.tensor((y2 - self.y_mu_) / self.y_sd_, dtype=torch.float32)
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], self.hidden), torch.nn.SiLU(),
            torch.nn.Linear(self.hidden, self.hidden), torch.nn.SiLU(),
            torch.nn.Linear(self.hidden, y2.shape[1]),
        )  # fmt: skip
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        n = len(xt)
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=g)
            for a in range(0, n, self.batch):
                b = perm[a : a + self.batch]
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(net(xt[b]), yt[b])
                loss.backward()
                opt.step()
            sched.step()
        self.net_ = net.eval()
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.net_(torch.tensor((x - self.x_mu_) / self.x_sd_, dtype=torch.float32)).numpy()
        y = out.astype(np.float64) * self.y_sd_ + self.y_mu_
        return y[:, 0] if self.squeeze_ else y


class TwoPulseClassifier:
    """XGBoost classifier: does a waveform hold two pulses? Inputs :func:`window_features`
    over a wider window (the second pulse may precede the bigger one)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, x: np.ndarray, two: np.ndarray) -> TwoPulseClassifier:
        import xgboost as xgb

        self.model_ = xgb.XGBClassifier(n_estimators=300, max_depth=5, learning_rate=0.1, subsample=0.8,
                                        tree_method="hist", random_state=self.seed, n_jobs=2)  # fmt: skip
        self.model_.fit(x, two.astype(np.int64))
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(x)[:, 1], dtype=np.float64)


def resolution(residual: np.ndarray, reference_sigma_ns: float = 0.0) -> dict[str, Any]:
    """Gaussian-core width of ``residual`` [ns] (estimate - reference time) with the reference's
    resolution subtracted in quadrature, and its error, in ps; the fraction of events without
    an estimate (NaN) as ``failed``."""
    ok = np.isfinite(residual)
    s = robust_sigma(residual[ok])
    err = robust_sigma_error(s, int(ok.sum()))
    s_det = float(np.sqrt(max(s * s - reference_sigma_ns**2, 0.0)))
    # error propagation of sqrt(s^2 - r^2): ds_det = s ds / s_det
    err_det = float(err * s / s_det) if s_det > 0 else float(err)
    return {"sigma_ps": s_det * 1e3, "sigma_ps_err": err_det * 1e3, "n": int(ok.sum()),
            "failed": float(1.0 - ok.mean()) if len(ok) else float("nan")}  # fmt: skip
