"""A quick, private quality check of a surrogate against cascade showers (the full evaluation
is :mod:`calopt.simulation.surrogates.evaluation`): high-level features, response and
resolution per energy bin, and the AUC of an XGBoost classifier that tells cascade from
generated showers of the same particles (0.5 = indistinguishable)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from calopt.simulation.particles import Particles
from calopt.simulation.showers import Showers

__all__ = ["BINS_GEV", "auc", "classifier_auc", "features", "particles_of", "response_table", "section_times"]

BINS_GEV = (1.0, 3.0, 10.0, 30.0, 100.0)
FEATURES = ("evis_over_e", "sec0", "sec1", "sec2", "sec3", "E1", "E2", "E3", "E4")


def particles_of(sh: Showers) -> Particles:
    mom = sh.momenta.astype(np.float64)
    d = mom / np.linalg.norm(mom, axis=1, keepdims=True)
    return Particles(sh.pdg, sh.incident_energies[:, 0].astype(np.float64), d, sh.points.astype(np.float64))


def features(sh: Showers) -> np.ndarray:
    """(N, 9): E_vis/E, the four section fractions, and E1-E4 (LHCb GAN talk, seeds/002): the
    fractions of E_vis in the central 2x2, then the rings out to 4x4, 6x6, 8x8 cells."""
    x = sh.showers.astype(np.float64)
    n, _, H, _ = x.shape
    ev = np.maximum(x.reshape(n, -1).sum(axis=1), 1e-30)
    cols = [ev / sh.incident_energies[:, 0]]
    cols += list((x.sum(axis=(2, 3)) / ev[:, None]).T)
    img = x.sum(axis=1)
    prev = np.zeros(n)
    for k in (1, 2, 3, 4):
        a = H // 2 - k
        box = img[:, a : a + 2 * k, a : a + 2 * k].sum(axis=(1, 2)) / ev
        cols.append(box - prev)
        prev = box
    return np.stack(cols, axis=1)


def section_times(sh: Showers) -> np.ndarray:
    """(S,) energy-weighted mean time per section over all showers [ns] (0 without times)."""
    if sh.times is None:
        return np.zeros(sh.showers.shape[1])
    w = sh.showers.astype(np.float64)
    return (sh.times * w).sum(axis=(0, 2, 3)) / np.maximum(w.sum(axis=(0, 2, 3)), 1e-30)


def response_table(ref: Showers, gen: Showers) -> list[dict[str, Any]]:
    """Mean E_vis/E and its relative spread per energy bin, cascade vs surrogate."""
    e = ref.incident_energies[:, 0] / 1000.0
    a = ref.visible_energy / ref.incident_energies[:, 0]
    b = gen.visible_energy / gen.incident_energies[:, 0]
    rows = []
    for lo, hi in itertools.pairwise(BINS_GEV):
        m = (e >= lo) & (e < hi)
        if m.sum() < 5:
            continue
        rows.append(
            {
                "bin_gev": [lo, hi],
                "n": int(m.sum()),
                "cascade_response": float(a[m].mean()),
                "surrogate_response": float(b[m].mean()),
                "cascade_resolution": float(a[m].std() / a[m].mean()),
                "surrogate_resolution": float(b[m].std() / b[m].mean()),
            }
        )
    return rows


def classifier_auc(ref: Showers, gen: Showers, seed: int = 0) -> float:
    """2-fold cross-validated AUC of an XGBoost classifier on the features plus the conditions
    (ln E, angles, entry point), cascade (0) vs surrogate (1) for the same particles."""
    import xgboost as xgb

    def table(sh: Showers) -> np.ndarray:
        p = particles_of(sh)
        cond = np.column_stack(
            [np.log(p.energies), p.directions[:, 0] / p.directions[:, 2], p.directions[:, 1] / p.directions[:, 2]]
        )
        return np.column_stack([features(sh), cond, p.points])

    X = np.vstack([table(ref), table(gen)])
    y = np.r_[np.zeros(len(ref)), np.ones(len(gen))]
    rng = np.random.default_rng(seed)
    pair = rng.permutation(len(ref)) % 2  # the same particle's two showers fall in the same fold
    fold = np.r_[pair, pair]
    scores = np.zeros(len(y))
    for k in (0, 1):
        clf = xgb.XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.1, n_jobs=1, random_state=seed)
        clf.fit(X[fold != k], y[fold != k])
        scores[fold == k] = clf.predict_proba(X[fold == k])[:, 1]
    return auc(y, scores)


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    from scipy.stats import rankdata

    r = rankdata(scores)
    n1 = float(np.sum(y == 1))
    n0 = float(len(y) - n1)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))
