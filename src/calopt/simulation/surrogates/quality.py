"""The quality of a fast simulation against the cascade Monte Carlo (``calopt surrogate evaluate``).

Inputs are two :class:`~calopt.simulation.showers.Showers` samples of one technology: the
model's and the reference's (normally the model simulated for exactly the reference's
particles). A second, independent reference sample gives the *floor*: the values a perfect
model reaches with samples of this size.

High-level features per shower (:func:`shower_features`):

* ``evis_over_e``: visible energy in the window / incident energy;
* ``E1`` .. ``E4``: the LHCb GAN talk's energy fractions (shared/seeds/002), in rings of fine
  cells around the **window centre**, i.e. around the entry point (gun samples enter within
  +-pitch/2 of it; the talk's 30x30 grid is centred the same way): E1 = the central 2x2 block,
  E2 = 4x4 minus 2x2, E3 = 6x6 minus 4x4, E4 = 8x8 minus 6x6 (the talk's formula subtracts
  E_(k-1), which we read as the ring), each divided by the visible energy;
* ``section_k``: fraction of the visible energy in longitudinal section k;
* ``centroid_x``, ``centroid_y`` [mm]: energy-weighted barycentre of the (section-summed)
  fine cells, relative to the entry point; ``width_x``, ``width_y`` [mm]: its RMS;
* ``sparsity``: fraction of the S x H x W fine cells with more than
  :data:`SPARSITY_THRESHOLD_MEV` = 0.1 MeV of visible energy (about 1/8 of a MIP crossing one
  4 mm Shashlik scintillator tile);
* ``t_mean`` [ns]: energy-weighted mean time of the deposits (only when both samples have times).

Metrics (:func:`compare`):

* separation power per feature (CaloChallenge, arXiv:2410.21611 eq. 2):
  S = 1/2 sum_bins (h1 - h2)^2 / (h1 + h2) over histograms normalised to unit sum with common
  binning (:data:`N_BINS` equal bins between the 0.5 % and 99.5 % quantiles of the pooled
  values; values outside go to the edge bins); 0 for identical, 1 for disjoint histograms;
* response (median of E_vis/E) and resolution (Gaussian-core width
  :func:`~calopt.metrics.fits.robust_sigma` of E_vis/E divided by the median) per energy bin,
  and their ratios model/reference;
* classifier two-sample tests (:func:`classifier_auc`): gradient-boosted trees (XGBoost) that
  separate model from reference showers, (a) on the standardised high-level features, (b) on the
  cells, log(1 + E/MeV) (empty cells as missing values); both with the conditions (log E, the
  slopes p_x/p_z, p_y/p_z and the entry point). Trained on 50 %, early-stopped on 20 %, AUC
  on the held-out 30 %; 0.5 = indistinguishable;
* the same classifier on each high-level feature alone with the conditions
  (``auc_per_feature``): which feature gives a model away *given the conditions*, which the
  separation powers of the marginals cannot tell (a model with every separation power below
  0.02 had a high-level AUC of 0.79; the per-feature AUCs of 0.73 for the widths of another
  pointed at its tail cells);
* FPD and KPD (Kansal et al., arXiv:2211.10295) on the high-level features standardised with the
  reference's mean and standard deviation: FPD is the Frechet distance between Gaussians fitted
  to the two samples, |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), extrapolated to infinite
  sample size by a straight-line fit in 1/N of bootstrap estimates at several N (their
  section 4.2); KPD is the unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y/d + 1)^3, averaged over batches; the error is the standard deviation over
  batches divided by sqrt(number of batches). Batches drawn from the same two samples overlap,
  so these errors understate the spread between independent samples, and with a few thousand
  showers neither FPD nor KPD reaches 0: judge a model against the floor.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from calopt.simulation.showers import Showers
from calopt.stats import robust_sigma

__all__ = [
    "N_BINS",
    "SPARSITY_THRESHOLD_MEV",
    "assess",
    "classifier_auc",
    "compare",
    "conditions",
    "energy_bins",
    "fpd",
    "frechet_distance",
    "kpd",
    "plot_average_showers",
    "plot_features",
    "response_resolution",
    "separation_power",
    "shower_features",
]

SPARSITY_THRESHOLD_MEV = 0.1
N_BINS = 30


# ----------------------------------------------------------------------------- features
def conditions(sh: Showers) -> np.ndarray:
    """(N, 5) conditions: log(E/MeV), p_x/p_z, p_y/p_z, entry x, y [mm]."""
    p = np.asarray(sh.momenta, dtype=np.float64)
    return np.column_stack(
        [np.log(sh.incident_energies[:, 0]), p[:, 0] / p[:, 2], p[:, 1] / p[:, 2], sh.points[:, 0], sh.points[:, 1]]
    )


def shower_features(sh: Showers, *, times: bool = True) -> dict[str, np.ndarray]:
    """High-level features per shower (see the module doc), each an (N,) array."""
    x = np.asarray(sh.showers, dtype=np.float64)
    n, ns, h, w = x.shape
    tot = x.reshape(n, -1).sum(axis=1)
    safe = np.where(tot > 0, tot, 1.0)
    out: dict[str, np.ndarray] = {"evis_over_e": tot / sh.incident_energies[:, 0]}
    img = x.sum(axis=1)
    prev = np.zeros(n)
    for k, half in enumerate((1, 2, 3, 4), start=1):
        block = img[:, h // 2 - half : h // 2 + half, w // 2 - half : w // 2 + half].sum(axis=(1, 2))
        out[f"E{k}"] = (block - prev) / safe
        prev = block
    sec = x.sum(axis=(2, 3))
    for k in range(ns):
        out[f"section_{k}"] = sec[:, k] / safe
    pitch = float(sh.attrs["fine_pitch_mm"])
    cx = (np.arange(w) - w / 2 + 0.5) * pitch
    cy = (np.arange(h) - h / 2 + 0.5) * pitch
    px, py = img.sum(axis=1), img.sum(axis=2)  # (N, W), (N, H)
    mx, my = px @ cx / safe, py @ cy / safe
    out["centroid_x"] = mx - sh.points[:, 0]
    out["centroid_y"] = my - sh.points[:, 1]
    out["width_x"] = np.sqrt(np.maximum(px @ cx**2 / safe - mx**2, 0.0))
    out["width_y"] = np.sqrt(np.maximum(py @ cy**2 / safe - my**2, 0.0))
    out["sparsity"] = (x > SPARSITY_THRESHOLD_MEV).reshape(n, -1).mean(axis=1)
    if times and sh.times is not None:
        out["t_mean"] = (x * sh.times).reshape(n, -1).sum(axis=1) / safe
    return out


# ----------------------------------------------------------------------------- metrics
def common_edges(a: np.ndarray, b: np.ndarray, bins: int = N_BINS) -> np.ndarray:
    """Equal bins between the 0.5 % and 99.5 % quantiles of the pooled values."""
    pooled = np.concatenate([a, b])
    pooled = pooled[np.isfinite(pooled)]
    lo, hi = np.quantile(pooled, [0.005, 0.995]) if len(pooled) else (0.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _hist(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    v = v[np.isfinite(v)]
    h = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0].astype(np.float64)
    return h / max(h.sum(), 1.0)


def separation_power(a: np.ndarray, b: np.ndarray, *, edges: np.ndarray | None = None, bins: int = N_BINS) -> float:
    """1/2 sum (h1 - h2)^2 / (h1 + h2) of the unit-normalised histograms of ``a`` and ``b``."""
    edges = common_edges(a, b, bins) if edges is None else edges
    h1, h2 = _hist(np.asarray(a, dtype=float), edges), _hist(np.asarray(b, dtype=float), edges)
    s = h1 + h2
    m = s > 0
    return float(0.5 * np.sum((h1[m] - h2[m]) ** 2 / s[m]))


def energy_bins(e_gev: np.ndarray, n_bins: int = 6) -> np.ndarray:
    """Log-spaced energy bin edges [GeV] over the range of ``e_gev`` (rounded out slightly)."""
    lo, hi = float(np.min(e_gev)), float(np.max(e_gev))
    if not hi > lo:
        lo, hi = lo * 0.99, hi * 1.01
    return np.geomspace(lo * 0.999, hi * 1.001, n_bins + 1)


def response_resolution(ratio: np.ndarray, e_gev: np.ndarray, edges: np.ndarray) -> list[dict[str, float]]:
    """Per energy bin: n, response (median of E_vis/E) and resolution (robust sigma / median),
    with their statistical errors (1.253 sigma/sqrt(n); sigma/sqrt(2n))."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        r = ratio[(e_gev >= lo) & (e_gev < hi)]
        med = float(np.median(r)) if len(r) else float("nan")
        sig = robust_sigma(r)
        nn = max(len(r), 1)
        out.append({
            "n": len(r),
            "response": med,
            "response_err": 1.253 * sig / math.sqrt(nn),
            "resolution": sig / med if med else float("nan"),
            "resolution_err": sig / med / math.sqrt(2 * nn) if med else float("nan"),
        })  # fmt: skip
    return out


def auc_score(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classifier_auc(a: np.ndarray, b: np.ndarray, seed: int = 0, *, missing_zero: bool = False,
                   threads: int = 1) -> float:  # fmt: skip
    """Held-out AUC of gradient-boosted trees separating rows of ``a`` from rows of ``b``.

    Split 50 % train / 20 % early stopping / 30 % test (shuffled with ``seed``); depth-4 trees,
    learning rate 0.1, at most 300 rounds, early stop after 20 without improvement of the
    validation log-loss. ``missing_zero`` treats exact zeros as missing (sparse cell inputs).
    Deterministic for a given ``seed`` and ``threads``."""
    import xgboost as xgb

    x = np.vstack([a, b]).astype(np.float32)
    if missing_zero:
        x[x == 0] = np.nan
    y = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA0C])).permutation(len(y))
    n_tr, n_va = int(0.5 * len(y)), int(0.2 * len(y))
    tr, va, te = order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va :]
    dtr = xgb.DMatrix(x[tr], label=y[tr], missing=np.nan, nthread=threads)
    dva = xgb.DMatrix(x[va], label=y[va], missing=np.nan, nthread=threads)
    dte = xgb.DMatrix(x[te], missing=np.nan, nthread=threads)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "eta": 0.1,
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "tree_method": "hist",
        "max_bin": 64,
        "nthread": threads,
        "seed": int(seed),
        "verbosity": 0,
    }
    booster = xgb.train(params, dtr, num_boost_round=300, evals=[(dva, "valid")], early_stopping_rounds=20,
                        verbose_eval=False)  # fmt: skip
    pred = booster.predict(dte, iteration_range=(0, booster.best_iteration + 1))
    return auc_score(y[te], pred)


def _standardise(ref: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu = ref.mean(axis=0)
    sd = ref.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(v - mu) / sd for v in (ref, *others)]


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """|mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x C_y)^(1/2)) of Gaussians fitted to the rows.
    tr (C_x C_y)^(1/2) = sum sqrt(eig(C_x^(1/2) C_y C_x^(1/2))), computed with symmetric
    eigendecompositions (stable for singular covariances)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    cx, cy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    wx, vx = np.linalg.eigh(cx)
    sx = (vx * np.sqrt(np.maximum(wx, 0.0))) @ vx.T
    lam = np.linalg.eigvalsh(sx @ cy @ sx)
    tr_sqrt = float(np.sum(np.sqrt(np.maximum(lam, 0.0))))
    return float(np.sum((mx - my) ** 2) + np.trace(cx) + np.trace(cy) - 2.0 * tr_sqrt)


def fpd(x: np.ndarray, y: np.ndarray, seed: int = 0, *, n_points: int = 8, n_batches: int = 10) -> dict[str, float]:
    """Frechet physics distance extrapolated to infinite N (arXiv:2211.10295): bootstrap FDs at
    N between n/5 and n, straight-line fit in 1/N; value = intercept, error = its fit error."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF9D]))
    n = min(len(x), len(y))
    ns = np.unique(np.linspace(max(n // 5, 20), n, n_points).astype(int))
    vals = []
    for m in ns:
        vals.append(np.mean([frechet_distance(x[rng.integers(0, len(x), m)], y[rng.integers(0, len(y), m)])
                             for _ in range(n_batches)]))  # fmt: skip
    inv = 1.0 / ns
    if len(ns) >= 3:
        coef, cov = np.polyfit(inv, vals, 1, cov=True)
        value, err = float(coef[1]), float(math.sqrt(max(cov[1, 1], 0.0)))
    else:
        value, err = float(vals[-1]), float("nan")
    return {"value": value, "error": err, "at_n": float(frechet_distance(x, y)), "n": n}


def _mmd2_poly(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kpd(x: np.ndarray, y: np.ndarray, seed: int = 0, *, batch: int = 1000, n_batches: int = 10) -> dict[str, float]:
    """Kernel physics distance (arXiv:2211.10295): unbiased MMD^2, cubic polynomial kernel, over
    ``n_batches`` random batches of ``batch`` rows (at most half of each sample, so that batches
    differ; without replacement within a batch)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4BD]))
    b = max(2, min(batch, len(x) // 2, len(y) // 2))
    vals = np.array([_mmd2_poly(x[rng.choice(len(x), b, replace=False)], y[rng.choice(len(y), b, replace=False)])
                     for _ in range(n_batches)])  # fmt: skip
    return {"value": float(vals.mean()), "error": float(vals.std(ddof=1) / math.sqrt(n_batches)), "batch": b}


def compare(model: Showers, ref: Showers, seed: int = 0, *, e_edges: np.ndarray | None = None,
            cells: bool = True) -> dict[str, Any]:  # fmt: skip
    """All metrics of ``model`` against ``ref`` (see the module doc)."""
    times = model.times is not None and ref.times is not None
    fm, fr = shower_features(model, times=times), shower_features(ref, times=times)
    names = list(fr)
    feats = {
        k: {
            "model_mean": float(np.mean(fm[k])),
            "reference_mean": float(np.mean(fr[k])),
            "separation_power": separation_power(fm[k], fr[k]),
        }
        for k in names
    }
    worst = sorted(names, key=lambda k: -feats[k]["separation_power"])
    xm = np.column_stack([fm[k] for k in names])
    xr = np.column_stack([fr[k] for k in names])
    xr_s, xm_s = _standardise(xr, xm)
    cm, cr = conditions(model), conditions(ref)
    out: dict[str, Any] = {
        "n_model": len(model),
        "n_reference": len(ref),
        "features": feats,
        "worst_separation_power": [[k, feats[k]["separation_power"]] for k in worst[:5]],
        "auc_features": classifier_auc(np.hstack([xm_s, cm]), np.hstack([xr_s, cr]), seed),
        "auc_per_feature": {
            k: classifier_auc(np.hstack([xm_s[:, [i]], cm]), np.hstack([xr_s[:, [i]], cr]), seed)
            for i, k in enumerate(names)
        },
        "fpd": fpd(xm_s, xr_s, seed),
        "kpd": kpd(xm_s, xr_s, seed),
    }
    if cells:

        def cell_inputs(sh: Showers, c: np.ndarray) -> np.ndarray:
            v = np.log1p(np.maximum(np.asarray(sh.showers, dtype=np.float32).reshape(len(sh), -1), 0.0))
            return np.hstack([v, c.astype(np.float32)])

        out["auc_cells"] = classifier_auc(cell_inputs(model, cm), cell_inputs(ref, cr), seed, missing_zero=True)
    em, er = model.incident_energies[:, 0] / 1000.0, ref.incident_energies[:, 0] / 1000.0
    edges = energy_bins(er) if e_edges is None else e_edges
    rm = response_resolution(fm["evis_over_e"], em, edges)
    rr = response_resolution(fr["evis_over_e"], er, edges)
    bins = []
    for lo, hi, a, b in zip(edges[:-1], edges[1:], rm, rr):
        bins.append({
            "e_lo_gev": float(lo), "e_hi_gev": float(hi), "n_model": a["n"], "n_reference": b["n"],
            "response_model": a["response"], "response_reference": b["response"],
            "response_ratio": a["response"] / b["response"] if b["response"] else float("nan"),
            "resolution_model": a["resolution"], "resolution_reference": b["resolution"],
            "resolution_ratio": a["resolution"] / b["resolution"] if b["resolution"] else float("nan"),
            "resolution_ratio_err": _ratio_err(a["resolution"], a["resolution_err"], b["resolution"],
                                               b["resolution_err"]),
        })  # fmt: skip
    out["energy_bins"] = bins
    return out


def _ratio_err(a: float, da: float, b: float, db: float) -> float:
    if not (a and b) or not all(math.isfinite(v) for v in (a, b, da, db)):
        return float("nan")
    return abs(a / b) * math.hypot(da / a, db / b)


def assess(model: Showers, ref: Showers, floor: Showers | None = None, seed: int = 0, *,
           cells: bool = True) -> dict[str, Any]:  # fmt: skip
    """``compare(model, ref)``, and ``compare(floor, ref)`` as ``floor`` when a second independent
    reference sample is given (same energy bins)."""
    edges = energy_bins(ref.incident_energies[:, 0] / 1000.0)
    res = compare(model, ref, seed, e_edges=edges, cells=cells)
    if floor is not None:
        res["floor"] = compare(floor, ref, seed, e_edges=edges, cells=cells)
    return res


# ----------------------------------------------------------------------------- plots
def plot_features(model: Showers, ref: Showers, path: str | Path, floor: Showers | None = None,
                  label: str = "model") -> Path:  # fmt: skip
    """Histograms of every high-level feature, model vs reference (and floor), with ratio panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = model.times is not None and ref.times is not None
    fm, fr = shower_features(model, times=times), shower_features(ref, times=times)
    ff = shower_features(floor, times=times) if floor is not None else None
    names = list(fr)
    ncol = 4
    nrow = math.ceil(len(names) / ncol)
    fig = plt.figure(figsize=(4 * ncol, 3.6 * nrow))
    grid = fig.add_gridspec(2 * nrow, ncol, height_ratios=[3, 1] * nrow, hspace=0.45, wspace=0.3)
    for i, k in enumerate(names):
        r, c = divmod(i, ncol)
        ax = fig.add_subplot(grid[2 * r, c])
        axr = fig.add_subplot(grid[2 * r + 1, c], sharex=ax)
        edges = common_edges(fm[k], fr[k])
        ctr = 0.5 * (edges[1:] + edges[:-1])
        hr, hm = _hist(fr[k], edges), _hist(fm[k], edges)
        ax.stairs(hr, edges, color="k", label="reference (cascade)")
        ax.stairs(hm, edges, color="tab:red", label=f"{label}  S={separation_power(fm[k], fr[k]):.3f}")
        with np.errstate(invalid="ignore", divide="ignore"):
            axr.plot(ctr, hm / hr, "o", ms=2.5, color="tab:red")
            if ff is not None:
                hf = _hist(ff[k], edges)
                ax.stairs(hf, edges, color="tab:gray", ls="--", label=f"floor  S={separation_power(ff[k], fr[k]):.3f}")
                axr.plot(ctr, hf / hr, "s", ms=2, color="tab:gray")
        axr.axhline(1.0, color="k", lw=0.6)
        axr.set_ylim(0.5, 1.5)
        ax.set_title(k, fontsize=9)
        ax.tick_params(labelbottom=False)
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_average_showers(model: Showers, ref: Showers, path: str | Path, label: str = "model") -> Path:
    """Average shower per section (log colour scale), reference above, model below, and the
    model/reference ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    am = np.asarray(model.showers, dtype=np.float64).mean(axis=0)
    ar = np.asarray(ref.showers, dtype=np.float64).mean(axis=0)
    ns = ar.shape[0]
    edges = np.asarray(ref.attrs["section_edges_mm"], dtype=float)
    fig, axes = plt.subplots(3, ns, figsize=(3.2 * ns, 9.0), squeeze=False)
    vmax = max(float(am.max()), float(ar.max()), 1e-9)
    norm = LogNorm(vmin=vmax * 1e-5, vmax=vmax)
    half = ar.shape[-1] / 2 * float(ref.attrs["fine_pitch_mm"])
    ext = (-half, half, -half, half)
    for s in range(ns):
        for row, (img, name) in enumerate([(ar, "reference"), (am, label)]):
            ax = axes[row, s]
            im = ax.imshow(np.maximum(img[s], vmax * 1e-6), origin="lower", norm=norm, extent=ext, cmap="viridis")
            ax.set_title(f"{name}, section {s} ({edges[s]:.0f}-{edges[s + 1]:.0f} mm)", fontsize=7)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(ar[s] > vmax * 1e-5, am[s] / ar[s], np.nan)
        imr = axes[2, s].imshow(ratio, origin="lower", extent=ext, cmap="coolwarm", vmin=0.0, vmax=2.0)
        axes[2, s].set_title(f"{label}/reference, section {s}", fontsize=7)
    fig.colorbar(im, ax=axes[:2, :].ravel().tolist(), label="mean visible energy per cell [MeV]")
    fig.colorbar(imr, ax=axes[2, :].ravel().tolist(), label="ratio")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
