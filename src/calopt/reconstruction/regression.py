"""Photon energy and position reconstruction: XGBoost regressors and the parametric baseline.

Both are trained per (technology, cell size) on single photons shot into a wall made only of
that module type (so the result does not depend on the design that will use it), read out
with noise and photo-statistics, and clustered; the truth is the photon energy and its entry
point on the ECAL face. Trained models are cached on disk, keyed by their inputs (technology,
cell size, readout and training settings, the versions of the reconstruction and the readout,
the keys of the shower libraries they are read out from: :func:`regressor_key_doc`): every
design reuses them.
With ``TrainingSettings.pileup`` > 0 the photons are overlaid with minimum-bias pile-up and the
mean pile-up energy per channel is subtracted, as in ``calopt evaluate``
(:mod:`.pileup`), and the energy regressor fits the conditional median.

* baseline (:class:`ParametricReco`): linear energy calibration E = a E_cluster + b, and the
  barycentre with an S-shape correction, x = x_seed + s (c1 u + c3 u^3 + c5 u^5 + d x_seed/z)
  with u the barycentre offset in cell units (the odd polynomial is the classic S-curve; the
  last term absorbs the shift of the shower at depth for inclined photons);
* :class:`XGBReco`: three gradient-boosted regressors (log E_true/E_cluster and the two
  offsets in cell units) on the 5x5 features of :mod:`.features` (seed talk 000).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from calopt.cache import build_once, cache_key, stage_dir
from calopt.detector.design import homogeneous_design
from calopt.detector.wall import ECAL_FRONT_Z_MM
from calopt.errors import CaloptInputError
from calopt.files import atomic_path
from calopt.generation.events import Events
from calopt.generation.guns import wall_photons
from calopt.generation.runner import EventSpec, cached_events
from calopt.readout.readout import Readout, ReadoutSettings
from calopt.reconstruction.clusters import ClusterSettings, cluster_cells
from calopt.reconstruction.features import ClusterFeatures, cluster_features
from calopt.reconstruction.pileup import pileup_density, subtract_offsets
from calopt.simulation.library import CLASSES

__all__ = ["RECONSTRUCTION_VERSION", "ParametricReco", "PhotonSample", "TrainingSettings", "XGBReco",
           "get_reconstruction", "photon_sample", "regressor_key_doc", "training_pileup"]

# Version of the trained reconstruction; it enters the regressors' cache key (regressor_key_doc).
# Bump it whenever the same inputs would train other regressors or store them otherwise: the
# clustering (clusters.py), the features (features.py), the pile-up subtraction (pileup.py), the
# photon sample, the fits here, or the layout of the cached file.
RECONSTRUCTION_VERSION = 2


@dataclass
class PhotonSample:
    """Matched clusters of single photons: ``features`` and the truth ``energy`` [MeV], ``x``,
    ``y`` [mm] at the face and ``arrival`` time [ns] there; ``lost`` photons had no cluster
    within 1.5 cells."""

    features: ClusterFeatures
    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    lost: int
    arrival: np.ndarray


def photon_sample(readout: Readout, n: int, seed: int, energy_range: tuple[float, float] = (1.0, 100.0),
                  clustering: ClusterSettings | None = None, margin_cells: float = 2.5,
                  overlay: float = 0.0, pileup: Events | None = None, rho: np.ndarray | None = None,
                  pileup_radius_cells: float = 8.0) -> PhotonSample:  # fmt: skip
    """``n`` gun photons over the readout's design (:func:`calopt.generation.guns.wall_photons`,
    log-uniform in ``energy_range`` [GeV], ``margin_cells`` from the wall's edges), each read out
    alone and clustered.

    With ``overlay`` > 0, that fraction of the photons is read out together with a second photon
    nearby, like the two photons of a pi0: regressors trained on isolated photons alone
    extrapolate badly when a neighbour's shower enters their 5 x 5 window. The sample describes
    the first photon.

    With ``pileup`` (crossings whose pile-up collisions are used), every photon is read out
    together with the pile-up particles of a randomly chosen crossing around it (and the
    previous crossing's near it spills over), and ``rho`` (the mean pile-up energy per channel,
    :func:`calopt.reconstruction.pileup.pileup_density`) is subtracted before clustering, as
    ``calopt evaluate`` does; the photon's cluster is then
    the nearest one within 1.5 cells (as evaluate's truth matching; the most energetic one could
    be a pile-up cluster)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9407]))
    z_front = readout.design.wall.z_front
    feats, te, tx, ty, ta = [], [], [], [], []
    lost = 0
    # the gun and the readout draw from one stream, photon after photon
    for g in wall_photons(readout.design, n, rng, energy_range, margin_cells=margin_cells, overlay=overlay,
                          pileup=pileup, pileup_radius_cells=pileup_radius_cells):  # fmt: skip
        previous = readout.true_energies(*g.previous) if g.previous is not None else None
        hits = subtract_offsets(readout.read(g.pdg, g.energies, g.momenta, g.entry, rng, previous), rho)
        cl = cluster_cells(hits, readout.cells, z_front, clustering)
        f = cluster_features(cl, readout.cells, z_front)
        dist = np.hypot(f.x - g.x, f.y - g.y)
        near = dist < 1.5 * np.maximum(f.size, 1.0)
        if not near.any():
            lost += 1
            continue
        if pileup is not None:
            k = int(np.argmin(np.where(near, dist, np.inf)))
        else:
            k = int(np.argmax(np.where(near, f.energy, -1.0)))
        feats.append(f.take(np.array([k])))
        ta.append(g.arrival)
        te.append(g.energy)
        tx.append(g.x)
        ty.append(g.y)
    return PhotonSample(ClusterFeatures.concat(feats), np.array(te), np.array(tx), np.array(ty), lost, np.array(ta))


@dataclass
class ParametricReco:
    """Linear energy calibration and S-shape-corrected barycentre (fitted by least squares)."""

    energy_coef_: np.ndarray | None = None
    x_coef_: np.ndarray | None = None
    y_coef_: np.ndarray | None = None

    @staticmethod
    def _design(u: np.ndarray, slope: np.ndarray) -> np.ndarray:
        return np.column_stack([u, u**3, u**5, slope])

    def fit(self, f: ClusterFeatures, e_true: np.ndarray, x_true: np.ndarray, y_true: np.ndarray) -> ParametricReco:
        A = np.column_stack([f.energy, np.ones(len(f.energy))])
        self.energy_coef_ = np.linalg.lstsq(A, e_true, rcond=None)[0]
        z = ECAL_FRONT_Z_MM
        self.x_coef_ = np.linalg.lstsq(self._design((f.x - f.seed_x) / f.size, f.seed_x / z),
                                       (x_true - f.seed_x) / f.size, rcond=None)[0]  # fmt: skip
        self.y_coef_ = np.linalg.lstsq(self._design((f.y - f.seed_y) / f.size, f.seed_y / z),
                                       (y_true - f.seed_y) / f.size, rcond=None)[0]  # fmt: skip
        return self

    def predict(self, f: ClusterFeatures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.energy_coef_ is not None and self.x_coef_ is not None and self.y_coef_ is not None
        z = ECAL_FRONT_Z_MM
        e = self.energy_coef_[0] * f.energy + self.energy_coef_[1]
        x = f.seed_x + f.size * (self._design((f.x - f.seed_x) / f.size, f.seed_x / z) @ self.x_coef_)
        y = f.seed_y + f.size * (self._design((f.y - f.seed_y) / f.size, f.seed_y / z) @ self.y_coef_)
        return e, x, y

    def to_dict(self) -> dict[str, Any]:
        return {k: np.asarray(getattr(self, k)).tolist() for k in ("energy_coef_", "x_coef_", "y_coef_")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParametricReco:
        return cls(**{k: np.asarray(v) for k, v in d.items()})


@dataclass
class XGBReco:
    """Gradient-boosted regressors (xgboost's native API, no scikit-learn needed) of
    log(E_true/E_cluster) and of the entry point in units of the seed's cell size, relative to
    the seed centre."""

    n_estimators: int = 300
    max_depth: int = 5
    learning_rate: float = 0.08
    random_state: int = 0
    energy_objective: str = "reg:squarederror"
    models_: list[Any] | None = None
    bounds_: np.ndarray | None = None

    def _params(self, objective: str = "reg:squarederror") -> dict[str, Any]:
        return {"max_depth": self.max_depth, "eta": self.learning_rate, "subsample": 0.8, "seed": self.random_state,
                "nthread": 1, "tree_method": "hist", "objective": objective}  # fmt: skip

    def fit(self, f: ClusterFeatures, e_true: np.ndarray, x_true: np.ndarray, y_true: np.ndarray) -> XGBReco:
        import xgboost as xgb

        targets = [
            np.log(e_true / np.maximum(f.energy, 1e-3)),
            (x_true - f.seed_x) / f.size,
            (y_true - f.seed_y) / f.size,
        ]
        objectives = [self.energy_objective, "reg:squarederror", "reg:squarederror"]
        self.models_ = [xgb.train(self._params(o), xgb.DMatrix(f.X, label=t), self.n_estimators)
                        for t, o in zip(targets, objectives)]  # fmt: skip
        # predictions are clipped to the central 99 % of the training targets: clusters unlike
        # the training photons (region borders, overlaps) must not be extrapolated wildly
        self.bounds_ = np.array([np.percentile(t, [0.5, 99.5]) for t in targets])
        return self

    def predict(self, f: ClusterFeatures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import xgboost as xgb

        assert self.models_ is not None
        if len(f.energy) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        d = xgb.DMatrix(f.X)
        bounds = self.bounds_ if self.bounds_ is not None else np.array([[-np.inf, np.inf]] * 3)
        le, dx, dy = (np.clip(m.predict(d), lo, hi) for m, (lo, hi) in zip(self.models_, bounds))
        return f.energy * np.exp(le), f.seed_x + dx * f.size, f.seed_y + dy * f.size

    def to_dict(self) -> dict[str, Any]:
        assert self.models_ is not None
        params = {k: getattr(self, k) for k in ("n_estimators", "max_depth", "learning_rate", "random_state",
                                                "energy_objective")}  # fmt: skip
        bounds = None if self.bounds_ is None else self.bounds_.tolist()
        return {
            "models": [bytes(m.save_raw("json")).decode() for m in self.models_],
            "params": params,
            "bounds": bounds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XGBReco:
        import xgboost as xgb

        obj = cls(**d["params"])
        obj.bounds_ = None if d.get("bounds") is None else np.asarray(d["bounds"])
        obj.models_ = []
        for raw in d["models"]:
            booster = xgb.Booster()
            booster.load_model(bytearray(raw.encode()))
            obj.models_.append(booster)
        return obj


@dataclass(frozen=True)
class TrainingSettings:
    """``n_train`` single photons, log-uniform in ``energy_range`` [GeV]. They are read out from
    a shower library with seed ``library_seed + library_seed_offset``: a library independent of
    the one the evaluation reads out, so that the regressors cannot learn the library's finite
    set of showers (with a shared library of a few showers per grid point they did, and the
    measured resolution came out far below the showers' own fluctuations). 0 shares it.
    ``overlay_fraction`` of them come with a neighbouring photon (:func:`photon_sample`).

    ``pileup`` > 0: every training photon is overlaid with the minimum-bias pile-up of a crossing
    at that mean number of collisions, and the mean pile-up energy per channel is subtracted
    before clustering, exactly as ``calopt evaluate`` does for the signal crossings (shared code:
    :mod:`calopt.reconstruction.pileup`), so that the regressors learn the noise that pile-up
    adds to the cluster's cells. The pile-up comes from ``pileup_crossings`` crossings generated
    for the training (seed ``PILEUP_SEED_BASE + seed``, independent of evaluate's), each photon
    with a randomly chosen one. Both fields enter the cache key only when ``pileup`` > 0
    (without pile-up, ``pileup_crossings`` changes nothing)."""

    n_train: int = 10000
    seed: int = 0
    energy_range: tuple[float, float] = (0.3, 100.0)
    library_seed_offset: int = 1
    overlay_fraction: float = 0.5
    pileup: float = 0.0
    pileup_crossings: int = 500

    def validate(self) -> None:
        if self.n_train <= 0:
            raise CaloptInputError(f"training: n_train must be positive, got {self.n_train}")
        if not (self.pileup >= 0 and math.isfinite(self.pileup)):
            raise CaloptInputError(f"training: pileup must be a finite mean >= 0, got {self.pileup}")
        if self.pileup_crossings <= 0:
            raise CaloptInputError(f"training: pileup_crossings must be positive, got {self.pileup_crossings}")
        if not 0.0 <= self.overlay_fraction <= 1.0:
            raise CaloptInputError(f"training: overlay_fraction must be in [0, 1], got {self.overlay_fraction}")

    def key_doc(self) -> dict[str, Any]:
        """The settings as they enter the regressor cache key (pile-up fields only when used)."""
        doc = asdict(self)
        if self.pileup == 0:
            doc.pop("pileup")
            doc.pop("pileup_crossings")
        return doc


PILEUP_SEED_BASE = 7_000_000  # training pile-up seeds: far from the seeds of evaluated crossings


def _training_readout(readout_settings: ReadoutSettings, tr: TrainingSettings) -> ReadoutSettings:
    """The readout of the training photons: library seed shifted by ``tr.library_seed_offset``."""
    return replace(readout_settings, library_seed=readout_settings.library_seed + tr.library_seed_offset)


def _training_pileup_spec(tr: TrainingSettings) -> EventSpec:
    return EventSpec(process="gun", n=tr.pileup_crossings, pileup=tr.pileup, seed=PILEUP_SEED_BASE + tr.seed)


def training_pileup(tr: TrainingSettings, progress: Callable[[str], None] | None = None) -> Events:
    """The pile-up crossings of the training (cached): particle-gun crossings at mean pile-up
    ``tr.pileup``; only their pile-up collisions are used (the gun photon is left out)."""
    return cached_events(_training_pileup_spec(tr), progress)


def regressor_key_doc(technology: str, cell_size: float, readout_settings: ReadoutSettings,
                      training: TrainingSettings) -> dict[str, Any]:  # fmt: skip
    """Everything the regressors of one module type depend on, as it enters their cache key:
    the technology, cell size, readout and training settings, :data:`RECONSTRUCTION_VERSION`,
    :data:`~calopt.readout.readout.READOUT_VERSION`, the keys of the shower libraries the
    training photons are read out from (so that new shower physics or a retrained surrogate
    checkpoint gives new regressors) and, with pile-up, the key of the pile-up crossings. The
    other stages' versions are read when called, so that a test can change them."""
    from calopt.readout.readout import READOUT_VERSION

    train_settings = _training_readout(readout_settings, training)
    return {
        "technology": technology,
        "cell": cell_size,
        "readout": readout_settings.key_doc(),
        "training": training.key_doc(),
        "reconstruction_version": RECONSTRUCTION_VERSION,
        "readout_version": READOUT_VERSION,
        "libraries": {c: train_settings.library_spec(technology, c).key() for c in CLASSES},
        "pileup_events": _training_pileup_spec(training).key() if training.pileup > 0 else None,
    }


def get_reconstruction(technology: str, cell_size: float, readout_settings: ReadoutSettings,
                       training: TrainingSettings | None = None,
                       libraries: dict[Any, Any] | None = None) -> tuple[XGBReco, ParametricReco]:  # fmt: skip
    """Trained (XGBoost, parametric) reconstructions for one module type, from the disk cache
    (``<cache>/regressors/<technology>-<cell size>-<key>.json``, keyed by
    :func:`regressor_key_doc`, which the file also holds as ``inputs``) or trained now (and
    cached)."""
    tr = training or TrainingSettings()
    tr.validate()
    inputs = regressor_key_doc(technology, cell_size, readout_settings, tr)
    key = cache_key("regressors", inputs)
    folder = stage_dir("regressors")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{technology}-{cell_size:g}-{key}.json"

    def train() -> None:
        independent = tr.library_seed_offset != 0
        ro = Readout(homogeneous_design(technology, cell_size), _training_readout(readout_settings, tr),
                     libraries={} if independent else (libraries or {}))  # fmt: skip
        pileup, rho = None, None
        if tr.pileup > 0:
            pileup = training_pileup(tr)
            rho = pileup_density(ro, pileup, tr.seed, pileup_only=True)
        sample = photon_sample(ro, tr.n_train, tr.seed, tr.energy_range, overlay=tr.overlay_fraction, pileup=pileup,
                               rho=rho)  # fmt: skip
        # with pile-up the energy target is fitted by its conditional median (absolute error):
        # the squared error is pulled down by the photons that pile-up swamps (log E_true/E_cluster
        # of -2 and below) and scaled the photons of the busiest cells, where the signal photons
        # are, down by 10-30 % (measured with lhcb-run3 at mu = 20)
        objective = "reg:absoluteerror" if tr.pileup > 0 else "reg:squarederror"
        xgb = XGBReco(random_state=tr.seed, energy_objective=objective).fit(sample.features, sample.energy, sample.x,
                                                                             sample.y)  # fmt: skip
        par = ParametricReco().fit(sample.features, sample.energy, sample.x, sample.y)
        doc = {"xgb": xgb.to_dict(), "parametric": par.to_dict(), "inputs": inputs}
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(doc))

    build_once(path, train)
    doc = json.loads(path.read_text())
    xgb, par = XGBReco.from_dict(doc["xgb"]), ParametricReco.from_dict(doc["parametric"])
    return xgb, par
