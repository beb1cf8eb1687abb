"""``calopt evaluate``: the physics metrics and the cost of one design, from named stages.

The stages, in the order :func:`evaluate` runs them (each a function of this module):

1. :func:`train_reconstruction`: per (technology, cell size) of the design, the XGBoost
   regressors and the parametric baseline, trained on single photons (half of them with a
   neighbouring photon) from a shower library independent of the one read out here (cached,
   shared by every design); at mu > 0 a second set trained on photons overlaid with pile-up at
   that mu reconstructs the photons of the crossings (``pileup_aware_regressors``);
2. :func:`measure_resolution`: energy and position resolution from single photons shot over the
   whole design (1-100 GeV, log-uniform): Gaussian-core widths per energy bin fitted as
   a/sqrt(E) (+) b (+) c/E, position residuals on the face, per region; and the time
   calibration of each technology;
3. for B0 -> J/psi(mu mu) pi0 crossings with Poisson pile-up (generated once per (events, mu,
   seed) and cached), crossing by crossing: :func:`read_out_crossings`,
   :func:`select_cells_in_time` (the 4D reconstruction: where the cells have timing, cells more
   than 3 sigma_t(E) from the time expected from the signal vertex are kept out of the
   clusters), :func:`subtract_pileup` (the mean pile-up energy of every channel that survives
   that selection), :func:`cluster`, :func:`reconstruct_photons`, :func:`select_in_time`
   (photons more than 3 sigma_t(E) off the signal vertex's time are not associated with it),
   :func:`match_truth` (the two signal photons to reconstructed ones) and
   :func:`pi0_candidates` (photon pairs with a selection that tightens with pile-up; a
   candidate is signal when it is the pair of the two truth-matched photons);
4. :func:`measure_masses`: B candidates with smeared muons, signal shapes fitted to the
   truth-matched candidates, candidate spectra fitted with the shapes fixed, significance and a
   fixed-window pi0 efficiency (:mod:`calopt.metrics.mass`); and :func:`width_decomposition`, the
   pi0 width of the truth-matched photons with the true energy and the reconstructed position and
   vice versa ("inner validation").

The result is an :class:`EvaluationResult`; its :meth:`~EvaluationResult.to_json` is what
``calopt evaluate --json`` prints. The metrics it carries are those of the registry
(:mod:`calopt.metrics.registry`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from calopt.detector.design import Design
from calopt.detector.technologies import get_technology
from calopt.errors import CaloptInputError
from calopt.generation.events import FLAG, Events
from calopt.generation.runner import MAX_PILEUP, EventSpec, cached_events, crossing_bytes
from calopt.jobs import check_fits_in_memory, check_seed
from calopt.metrics.mass import Candidates, mass_metrics
from calopt.metrics.registry import METRICS, get_metric
from calopt.readout.cells import CellMap
from calopt.readout.readout import CellHits, Readout, ReadoutSettings, time_resolution
from calopt.reconstruction.candidates import expected_time, pair_masses, photon_momenta
from calopt.reconstruction.clusters import cluster_cells
from calopt.reconstruction.features import ClusterFeatures, cluster_features
from calopt.reconstruction.pileup import pileup_density, subtract_offsets
from calopt.reconstruction.regression import (
    ParametricReco,
    TrainingSettings,
    XGBReco,
    get_reconstruction,
    photon_sample,
)
from calopt.reconstruction.timing import CellTimeWindow
from calopt.stats import fit_energy_resolution, robust_sigma, robust_sigma_error

__all__ = [
    "PILOT_CROSSINGS",
    "QUICK_READOUT",
    "QUICK_TRAINING",
    "CrossingCandidates",
    "EvaluateSettings",
    "EvaluationResult",
    "Photons",
    "TimeSelection",
    "cell_time_window",
    "check_precision",
    "cluster",
    "crossings_for_precision",
    "evaluate",
    "evaluate_to_precision",
    "match_truth",
    "measure_masses",
    "measure_resolution",
    "pi0_candidates",
    "read_out_crossings",
    "reconstruct_photons",
    "select_cells_in_time",
    "select_in_time",
    "subtract_pileup",
    "train_reconstruction",
    "width_decomposition",
]


# single photons for the resolutions: fewer leave too few per energy bin for the fit of
# a/sqrt(E) (+) b (+) c/E; 10^6 measure the terms to ~0.1 % and more only cost time
MIN_RESOLUTION_PHOTONS = 100
MAX_RESOLUTION_PHOTONS = 1_000_000


@dataclass(frozen=True)
class EvaluateSettings:
    """``n_events`` signal crossings at mean pile-up ``pileup``; ``n_resolution`` single photons
    for the resolutions; ``method``: ``xgb`` or ``parametric`` photon reconstruction; photons
    enter pi0 candidates above ``photon_et_mev`` and pi0 candidates need ``pi0_pt_mev`` (None:
    tightened with pile-up, see :meth:`cuts`); ``pileup_subtraction``: subtract the mean
    pile-up energy of every channel before clustering; ``pileup_aware_regressors``: at
    ``pileup`` > 0 the photons of the crossings are reconstructed with regressors trained on
    photons overlaid with pile-up at that mu (and the same offset subtraction, see
    :class:`TrainingSettings`); the single-photon resolutions (and the time calibration) always
    use the pile-up-free ones, so they stay the figures of the detector alone.
    ``cell_timing``: the 4D reconstruction -- cells out of time with the signal vertex are kept
    out of seeds and clusters (:func:`select_cells_in_time`); photons are then still
    associated with the vertex by their time (:func:`select_in_time`).

    ``n_use``: evaluate only the first ``n_use`` of the ``n_events`` crossings (None: all of
    them). The crossings are generated and cached per (``n_events``, mu, seed), and a sample of
    n crossings is not the start of a larger one (the pile-up library and the vertices of a
    chunk depend on its size), so ``calopt evaluate --precision`` generates the ``--events``
    sample once and evaluates its first n crossings: one sample, and the same first n crossings
    whatever n is."""

    pileup: float = 0.0
    n_events: int = 1000
    seed: int = 0
    n_resolution: int = 2000
    method: str = "xgb"
    photon_et_mev: float | None = None
    pi0_pt_mev: float | None = None
    pileup_subtraction: bool = True
    pileup_aware_regressors: bool = True
    cell_timing: bool = True
    readout: ReadoutSettings = field(default_factory=ReadoutSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    n_use: int | None = None

    def cuts(self) -> tuple[float, float]:
        """(photon E_T, pi0 p_T) thresholds [MeV]. Defaults: 200 + 40 mu (at most 1000) and
        1000 + 100 mu (at most 3000): at mu = 0 the loose selection of the resolved-pi0 studies;
        at mu >= 20 the combinatorial background of ~10^4 photon pairs per crossing buries the
        pi0 peak unless the selection is tightened (measured with lhcb-run3: no pi0 peak at
        mu = 20 with the mu = 0 cuts, a fitted 22 MeV peak with 1000 / 3000 MeV)."""
        et = self.photon_et_mev if self.photon_et_mev is not None else min(200.0 + 40.0 * self.pileup, 1000.0)
        pt = self.pi0_pt_mev if self.pi0_pt_mev is not None else min(1000.0 + 100.0 * self.pileup, 3000.0)
        return et, pt

    def validate(self) -> None:
        """Refuse settings out of their documented ranges (docs/cli.md) in one line, before
        anything runs."""
        if self.n_events <= 0:
            raise CaloptInputError(f"--events must be positive, got {self.n_events}")
        if not MIN_RESOLUTION_PHOTONS <= self.n_resolution <= MAX_RESOLUTION_PHOTONS:
            raise CaloptInputError(f"--n-resolution must be in [{MIN_RESOLUTION_PHOTONS}, {MAX_RESOLUTION_PHOTONS}] "
                                   f"photons, got {self.n_resolution}")  # fmt: skip
        check_seed(self.seed)
        if self.n_use is not None and not 0 < self.n_use <= self.n_events:
            raise CaloptInputError(f"n_use must be in 1..{self.n_events} (the crossings generated), got {self.n_use}")
        if not (0 <= self.pileup <= MAX_PILEUP):
            raise CaloptInputError(f"--pileup must be between 0 and {MAX_PILEUP:g} (the largest mean pile-up the event "
                                   f"generation serves; Upgrade II's reference is 40), got {self.pileup}")  # fmt: skip
        # the crossings are held in memory (twice while their generation merges its parts)
        check_fits_in_memory("--events", self.n_events, 2 * crossing_bytes(self.pileup), "crossing")
        if self.method not in ("xgb", "parametric"):
            raise CaloptInputError(f"unknown reconstruction method {self.method!r}; expected xgb or parametric")
        if self.readout.fastsim is not None:
            from calopt.simulation.base import get_simulator

            if self.readout.fastsim in ("cascade", "library"):
                raise CaloptInputError(
                    f"--fastsim {self.readout.fastsim!r}: the libraries are cascade showers by default; --fastsim "
                    "takes gflash, surrogate or a surrogate checkpoint"
                )
            get_simulator(self.readout.fastsim)  # an unknown backend or a bad checkpoint: a clear error now


Models = dict[tuple[int, float], tuple[XGBReco, ParametricReco]]


# small libraries and training samples: a smoke test in a few minutes, not a measurement
QUICK_READOUT = ReadoutSettings(library_energies=(0.2, 1.0, 5.0, 20.0, 100.0), library_angles=(0.0, 0.15, 0.3),
                                library_n_per_point=3)  # fmt: skip
QUICK_TRAINING = TrainingSettings(n_train=1000, pileup_crossings=100)


BLOCK = 200  # crossings whose photons are reconstructed together (one regressor call per block)
MATCH_CELLS = 1.5  # a signal photon's reconstructed photon lies within this many (seed) cells of it
TIME_CUT_SIGMA = 3.0  # photons further than this many sigma_t from the signal vertex's time are rejected
PI0_MASS_MAX_MEV = 300.0  # pi0 candidates above this mass are dropped before the fits


@dataclass(frozen=True)
class CrossingSummary:
    """What the crossings gave besides the mass peaks: ``n_events`` crossings, the accepted
    photons above the E_T cut per crossing, the photons rejected by timing, the cuts applied
    (photon E_T, pi0 p_T [MeV]), whether pile-up-aware regressors reconstructed them, and how
    many crossings had a pi0 candidate in the B window."""

    n_events: int
    photons_per_crossing: float
    photons_rejected_by_timing: int
    cuts_mev: tuple[float, float]
    pileup_aware_regressors: bool
    events_with_pi0_candidate: int


@dataclass(frozen=True)
class EvaluationResult:
    """Everything ``evaluate`` measured for one design.

    ``metrics``: the value of every registry metric (:data:`calopt.metrics.registry.METRICS`;
    None: not measured, the reason in ``fits``); ``errors``: the statistical error of every
    metric that is not exact (its registry ``error_key``; None where the metric is None);
    ``significance_method``: ``"fit"`` or ``"truth_count"`` (None with no significance, see
    :mod:`calopt.metrics.mass`); ``precision``: what ``evaluate --precision`` aimed at and got
    (:func:`evaluate_to_precision`; None without it); ``fits``, ``histograms``: the mass fits
    and spectra (:func:`calopt.metrics.mass.mass_metrics`); ``resolution``: the single-photon
    resolutions per method and region and the time calibration (:func:`measure_resolution`);
    ``decomposition``: :func:`width_decomposition`; ``timing_seconds``: the time the
    reconstruction models (and resolutions), the pile-up offsets, the crossings (readout and
    reconstruction) and the mass fits took."""

    design: str
    settings: EvaluateSettings
    metrics: dict[str, float | None]
    errors: dict[str, float | None]
    pi0_mass_mev: float | None
    pi0_efficiency_window_mev: float
    pi0_efficiency_selected: float
    fits: dict[str, Any]
    histograms: dict[str, Any]
    decomposition: dict[str, Any]
    resolution: dict[str, Any]
    crossings: CrossingSummary
    timing_seconds: dict[str, float]
    significance_method: str | None = None
    precision: dict[str, Any] | None = None

    def metric(self, name: str) -> float | None:
        """The value of the registry metric ``name`` (None: not measured)."""
        return self.metrics[name]

    def to_json(self) -> dict[str, Any]:
        """The ``calopt evaluate --json`` document (its keys are a contract: docs/formats.md)."""
        out: dict[str, Any] = {
            "design": self.design,
            "pileup": self.settings.pileup,
            "events": self.crossings.n_events,
            "method": self.settings.method,
        }

        def put(name: str) -> None:  # a registry metric, its error right after it
            out[name] = self.metrics[name]
            key = METRICS[name].error_key
            if key is not None:
                out[key] = self.errors.get(name)
            if name == "significance":
                out["significance_method"] = self.significance_method

        put("pi0_mass_width_mev")
        out["pi0_mass_mev"] = self.pi0_mass_mev
        put("pi0_efficiency")
        out["pi0_efficiency_window_mev"] = self.pi0_efficiency_window_mev
        out["pi0_efficiency_selected"] = self.pi0_efficiency_selected
        for name in METRICS:  # the rest of the registry
            if name not in out:
                put(name)
        out |= {
            "fits": self.fits,
            "pi0_width_decomposition_mev": self.decomposition,
            "resolution": self.resolution,
            "histograms": self.histograms,
            "pileup_aware_regressors": self.crossings.pileup_aware_regressors,
            "photons_per_crossing": self.crossings.photons_per_crossing,
            "photons_rejected_by_timing": self.crossings.photons_rejected_by_timing,
            "cuts_mev": {"photon_et": self.crossings.cuts_mev[0], "pi0_pt": self.crossings.cuts_mev[1]},
            "events_with_pi0_candidate": self.crossings.events_with_pi0_candidate,
            "timing_seconds": self.timing_seconds,
            "settings": asdict(self.settings),
            "precision": self.precision,
        }
        return out


@dataclass
class Photons:
    """The reconstructed photons of one crossing, one per cluster: ``features`` (the clusters),
    ``energy`` (K,) [MeV] and entry point ``x``, ``y`` (K,) [mm] (NaN where no regressor
    applies), and ``accepted`` (K,): a finite, positive energy that the time selection kept."""

    features: ClusterFeatures
    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    accepted: np.ndarray


@dataclass(frozen=True)
class TimeSelection:
    """Per technology (index into the readout's technologies): the calibrated time offset [ns]
    and the Gaussian-core width of single-photon time residuals [ns] (inf without timing
    measurements), and the stochastic term ``a`` [ns sqrt(GeV)] of the technology's
    sigma_t = a/sqrt(E) (+) b (the constant term b is the region's: :func:`select_in_time` takes
    it from the photon's seed cell)."""

    offset: np.ndarray
    core_sigma: np.ndarray
    a: np.ndarray

    @classmethod
    def from_calibration(cls, calibration: dict[str, dict[str, float]], technologies: list[str]) -> TimeSelection:
        """From :func:`measure_resolution`'s ``time_calibration`` and the technologies' timing
        (:attr:`calopt.detector.technologies.Technology.time_resolution`, in ps)."""
        return cls(
            offset=np.array([calibration.get(t, {}).get("offset_ns", 0.0) for t in technologies]),
            core_sigma=np.array([calibration.get(t, {}).get("sigma_ns", np.inf) for t in technologies]),
            a=np.array([get_technology(t).time_resolution[0] for t in technologies]) * 1e-3,
        )


@dataclass(frozen=True)
class CrossingCandidates:
    """The pi0 candidates of one crossing after the selection: ``mass`` (K,) [MeV], ``signal``
    (K,) (the pair of the two truth-matched photons), ``momentum`` (K, 3) [MeV/c], ``energy``
    (K,) [MeV]; ``n_photons``: the accepted photons above the E_T cut."""

    mass: np.ndarray
    signal: np.ndarray
    momentum: np.ndarray
    energy: np.ndarray
    n_photons: int


# ----------------------------------------------------------------------------- stages
def train_reconstruction(readout: Readout, st: EvaluateSettings,
                         progress: Callable[[str], None] | None = None) -> tuple[Models, Models]:  # fmt: skip
    """The photon reconstruction of every (technology, cell size) of the readout's design, from
    the cache or trained now: (for the single photons, for the crossings); the two differ at
    mu > 0 with ``pileup_aware_regressors``."""
    techs = readout.cells.technologies
    models: Models = {}
    event_models: Models = {}
    for tech, size in sorted({(r.technology, r.cell_size) for r in readout.design.regions}):
        if progress:
            progress(f"photon reconstruction for {tech} {size:g} mm (trained once, then cached)")
        combo = (techs.index(tech), size)
        models[combo] = event_models[combo] = get_reconstruction(tech, size, st.readout, st.training,
                                                                 readout.libraries)  # fmt: skip
        if st.pileup > 0 and st.pileup_aware_regressors:
            if progress:
                progress(f"photon reconstruction for {tech} {size:g} mm with pile-up mu = {st.pileup:g} "
                         "(trained once, then cached)")  # fmt: skip
            event_models[combo] = get_reconstruction(tech, size, st.readout, replace(st.training, pileup=st.pileup),
                                                     readout.libraries)  # fmt: skip
    return models, event_models


def reconstruct_photons(f: ClusterFeatures, models: Models, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy [MeV] and entry point x, y [mm] of every cluster of ``f`` with the models of its
    (technology, cell size) (``method``: ``xgb`` or ``parametric``); NaN where none applies."""
    e = np.full(len(f.energy), np.nan)
    x = np.full(len(f.energy), np.nan)
    y = np.full(len(f.energy), np.nan)
    for (ti, size), (xgb, par) in models.items():
        sel = (f.tech == ti) & (np.abs(f.size - size) < 1e-6)
        if not sel.any():
            continue
        e[sel], x[sel], y[sel] = (xgb if method == "xgb" else par).predict(f.take(sel))
    return e, x, y


def _energy_resolution(energy: np.ndarray, rel: np.ndarray, mask: np.ndarray,
                       bins: int = 6) -> tuple[list[float], list[float], dict[str, Any]]:  # fmt: skip
    """Gaussian-core sigma/E in log bins of 1-100 GeV (at least 20 photons a bin) and its fit."""
    centres, sig, err = [], [], []
    for lo, hi in itertools.pairwise(np.geomspace(1.0, 100.0, bins + 1)):
        sel = mask & (energy >= lo * 1000) & (energy < hi * 1000) & np.isfinite(rel)
        if sel.sum() >= 20:
            centres.append(math.sqrt(lo * hi))
            s = robust_sigma(rel[sel])
            sig.append(s)
            err.append(robust_sigma_error(s, int(sel.sum())))
    return centres, sig, fit_energy_resolution(np.array(centres), np.array(sig), np.array(err))


def measure_resolution(readout: Readout, models: Models, st: EvaluateSettings) -> dict[str, Any]:
    """Single-photon energy and position resolutions (both methods, overall and per region) and
    the time calibration per technology: median and Gaussian-core width of (cluster time -
    arrival time on the face)."""
    sample = photon_sample(readout, st.n_resolution, st.seed + 1000)
    techs = readout.cells.technologies
    out: dict[str, Any] = {"lost_photons": sample.lost, "n_photons": len(sample.energy)}
    residual = sample.features.time - sample.arrival
    out["time_calibration"] = {}
    for ti, name in enumerate(techs):
        r = residual[(sample.features.tech == ti) & np.isfinite(residual)]
        if len(r) >= 20:
            out["time_calibration"][name] = {"offset_ns": float(np.median(r)), "sigma_ns": robust_sigma(r)}
    design = readout.design
    i, j, _ = design.wall.slot_of(sample.x, sample.y)
    region = design.region_index[np.clip(j, 0, design.wall.ny - 1), np.clip(i, 0, design.wall.nx - 1)]
    for method in ("xgb", "parametric"):
        e, x, y = reconstruct_photons(sample.features, models, method)
        rel = e / sample.energy - 1.0
        centres, sig, fit = _energy_resolution(sample.energy, rel, np.ones(len(rel), dtype=bool))
        res = np.concatenate([x - sample.x, y - sample.y])
        res = res[np.isfinite(res)]
        position = robust_sigma(res)
        per_region = {}
        for k, r in enumerate(design.regions):
            sel = region == k
            if sel.sum() >= 20:
                per_region[r.name] = {
                    "position_resolution_mm": robust_sigma(np.concatenate([(x - sample.x)[sel], (y - sample.y)[sel]])),
                    "energy_core_sigma": robust_sigma(rel[sel]),
                    "energy_fit": _energy_resolution(sample.energy, rel, sel, bins=4)[2],
                    "n": int(sel.sum()),
                }
        out[method] = {
            "energy_fit": fit,
            "energy_points": {"energy_gev": centres, "sigma_over_e": sig},
            "energy_bias": float(np.nanmedian(rel)),
            "position_resolution_mm": position,
            "position_resolution_mm_err": robust_sigma_error(position, len(res)),
            "raw_barycentre_resolution_mm": robust_sigma(
                np.concatenate([sample.features.x - sample.x, sample.features.y - sample.y])
            ),
            "per_region": per_region,
        }
    return out


def read_out_crossings(readout: Readout, events: Events, crossings: range, rng: np.random.Generator) -> list[CellHits]:
    """The channels of each crossing (photo-statistics, noise and times drawn from ``rng``)."""
    return [readout.read_crossing(events, ev, rng) for ev in crossings]


def cell_time_window(readout: Readout, timing: TimeSelection) -> CellTimeWindow | None:
    """The 4D selection of the readout's cells (:class:`calopt.reconstruction.timing.CellTimeWindow`)
    with the calibrated time offsets, or None when no cell has timing."""
    if not readout.cells.table["timing"].any():
        return None
    return CellTimeWindow.for_cells(readout.cells, timing.a, timing.offset, readout.design.wall.z_front,
                                    TIME_CUT_SIGMA)  # fmt: skip


def select_cells_in_time(hits: CellHits, window: CellTimeWindow | None, z_pv: float, t_pv: float) -> CellHits:
    """``hits`` without the cells out of time with the signal vertex (z_pv [mm], t_pv [ns]);
    unchanged without a window."""
    return hits if window is None else window.select(hits, z_pv, t_pv)


def subtract_pileup(hits: CellHits, rho: np.ndarray | None) -> CellHits:
    """``hits`` less the mean pile-up energy ``rho`` of their channels (None: unchanged)."""
    return subtract_offsets(hits, rho)


def cluster(hits: CellHits, readout: Readout) -> ClusterFeatures:
    """The clusters of one crossing and their regressor features."""
    z_front = readout.design.wall.z_front
    return cluster_features(cluster_cells(hits, readout.cells, z_front), readout.cells, z_front)


def select_in_time(p: Photons, timing: TimeSelection, z_front: float, z_pv: float, t_pv: float,
                   cells: CellMap) -> int:  # fmt: skip
    """Reject (in ``p.accepted``) the photons whose calibrated time is off the one expected from
    the signal vertex (z_pv [mm], t_pv [ns]) by more than TIME_CUT_SIGMA sigma_t: the
    technology's a/sqrt(E) (+) b at the photon's energy (b of the region of its seed cell in
    ``cells``), never below the core width of the single-photon residuals. Returns how many
    were rejected."""
    f = p.features
    has_t = p.accepted & np.isfinite(f.time)
    if not has_t.any():
        return 0
    dt = f.time - expected_time(p.x, p.y, z_front, z_pv, t_pv) - timing.offset[f.tech]
    seed = cells.channel(f.seed_x, f.seed_y, np.ones(len(f.seed_x), dtype=bool))  # seeds are cell centres
    b = cells.table["time_b"][seed] * 1e-3
    sigma = np.maximum(time_resolution(timing.a[f.tech], b, np.nan_to_num(p.energy)), timing.core_sigma[f.tech])
    rejected = has_t & (np.abs(dt) > TIME_CUT_SIGMA * sigma)
    p.accepted &= ~rejected
    return int(rejected.sum())


def match_truth(p: Photons, crossing: dict[str, np.ndarray]) -> list[int] | None:
    """The accepted photons nearest to the two signal pi0 photons of ``crossing`` (within
    MATCH_CELLS cells of the photon's seed), or None unless both are matched to different
    photons."""
    gam = np.nonzero((crossing["flags"] & FLAG.SIGNAL_PI0_PHOTON) > 0)[0]
    idx = []
    for g in gam:
        d = np.hypot(p.x - crossing["entry"][g, 0], p.y - crossing["entry"][g, 1])
        d = np.where(p.accepted, d, np.inf)
        k = int(np.argmin(d)) if len(d) else -1
        idx.append(k if k >= 0 and d[k] < MATCH_CELLS * p.features.size[k] else -1)
    return idx if len(gam) == 2 and min(idx) >= 0 and idx[0] != idx[1] else None


def pi0_candidates(p: Photons, matched: list[int] | None, z_front: float, z_pv: float,
                   cuts: tuple[float, float]) -> CrossingCandidates:  # fmt: skip
    """Photon pairs of the accepted photons above the E_T cut that pass the pi0 p_T cut and lie
    below PI0_MASS_MAX_MEV, photons pointing from (0, 0, z_pv)."""
    et_cut, pt_cut = cuts
    e = p.energy
    mom = photon_momenta(np.where(p.accepted, e, 0.0), np.nan_to_num(p.x), np.nan_to_num(p.y), z_front, z_pv)
    sel = np.nonzero(p.accepted & (np.hypot(mom[:, 0], mom[:, 1]) > et_cut))[0]
    m, i, j = pair_masses(mom[sel], e[sel])
    ptot = mom[sel][i] + mom[sel][j]
    keep = (np.hypot(ptot[:, 0], ptot[:, 1]) > pt_cut) & (m < PI0_MASS_MAX_MEV)
    if matched is not None:
        signal = (np.minimum(sel[i], sel[j]) == min(matched)) & (np.maximum(sel[i], sel[j]) == max(matched))
    else:
        signal = np.zeros(len(m), dtype=bool)
    return CrossingCandidates(m[keep], signal[keep], ptot[keep], e[sel][i[keep]] + e[sel][j[keep]], len(sel))


def _pair_mass(energies: np.ndarray, pos: np.ndarray, z_front: float, z_pv: float) -> float:
    """The invariant mass [MeV] of two photons of ``energies`` [MeV] entering at ``pos`` (2, 2)."""
    pp = photon_momenta(energies, pos[:, 0], pos[:, 1], z_front, z_pv)
    return math.sqrt(max(energies.sum() ** 2 - (pp.sum(axis=0) ** 2).sum(), 0.0))


def width_decomposition(p: Photons, matched: list[int], crossing: dict[str, np.ndarray], z_front: float,
                        z_pv: float) -> tuple[float, float, float]:  # fmt: skip
    """The mass of the two truth-matched photons: reconstructed, with their true energies (and
    reconstructed positions), and with their true positions (and reconstructed energies)."""
    gam = np.nonzero((crossing["flags"] & FLAG.SIGNAL_PI0_PHOTON) > 0)[0]
    true_pos, true_e = crossing["entry"][gam][:, :2], crossing["energy"][gam]
    reco_pos, reco_e = np.stack([p.x[matched], p.y[matched]], axis=1), p.energy[matched]
    return (_pair_mass(reco_e, reco_pos, z_front, z_pv), _pair_mass(true_e, reco_pos, z_front, z_pv),
            _pair_mass(reco_e, true_pos, z_front, z_pv))  # fmt: skip


def measure_masses(c: Candidates, rng: np.random.Generator) -> dict[str, Any]:
    """The pi0 and B mass metrics of the candidates (:func:`calopt.metrics.mass.mass_metrics`;
    ``rng`` smears the muons)."""
    return mass_metrics(c, rng)


def _num(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def evaluate(design: Design, settings: EvaluateSettings | None = None,
             progress: Callable[[str], None] | None = None) -> EvaluationResult:  # fmt: skip
    """Every metric of ``design`` (the stages of the module docstring)."""
    st = settings or EvaluateSettings()
    st.validate()
    t0 = time.perf_counter()
    readout = Readout(design, st.readout)
    models, event_models = train_reconstruction(readout, st, progress)
    t_models = time.perf_counter() - t0
    if progress:
        progress("energy and position resolution")
    resolution = measure_resolution(readout, models, st)
    events = cached_events(EventSpec(process="b0-jpsipi0", n=st.n_events, pileup=st.pileup, seed=st.seed), progress)
    if st.n_use is not None:
        events = events.head(st.n_use)
    t1 = time.perf_counter()
    if progress:
        progress(f"reading out and reconstructing {len(events)} crossings")
    timing = TimeSelection.from_calibration(resolution["time_calibration"], readout.cells.technologies)
    window = cell_time_window(readout, timing) if st.cell_timing else None
    rng = np.random.default_rng(np.random.SeedSequence([st.seed, 0xE7A1]))
    z_front = design.wall.z_front
    cuts = st.cuts()

    def in_time(h: CellHits, ev: int) -> CellHits:
        return select_cells_in_time(h, window, *(float(v) for v in events.pv_position[ev]))

    rho = None
    if st.pileup > 0 and st.pileup_subtraction:
        rho = pileup_density(readout, events, st.seed, cell_filter=in_time if window is not None else None)
    t_rho = time.perf_counter() - t1
    t2 = time.perf_counter()
    per_crossing: list[CrossingCandidates] = []
    masses: list[tuple[float, float, float]] = []
    n_rejected = 0
    for start in range(0, len(events), BLOCK):
        block = range(start, min(start + BLOCK, len(events)))
        hits = read_out_crossings(readout, events, block, rng)
        feats = [cluster(subtract_pileup(in_time(h, ev), rho), readout) for ev, h in zip(block, hits)]
        # the regressors once for the whole block: their per-call overhead dominates otherwise
        e, x, y = reconstruct_photons(ClusterFeatures.concat(feats), event_models, st.method)
        bounds = np.cumsum([0] + [len(f.energy) for f in feats])
        for ev, f, a, b in zip(block, feats, bounds[:-1], bounds[1:]):
            p = Photons(f, e[a:b], x[a:b], y[a:b], np.isfinite(e[a:b]) & (e[a:b] > 0))
            z_pv, t_pv = (float(v) for v in events.pv_position[ev])
            n_rejected += select_in_time(p, timing, z_front, z_pv, t_pv, readout.cells)
            crossing = events.crossing(ev)
            matched = match_truth(p, crossing)
            per_crossing.append(pi0_candidates(p, matched, z_front, z_pv, cuts))
            if matched is not None:
                masses.append(width_decomposition(p, matched, crossing, z_front, z_pv))
    cands = Candidates(
        pi0_mass=np.concatenate([c.mass for c in per_crossing]),
        pi0_signal=np.concatenate([c.signal for c in per_crossing]),
        pi0_event=np.concatenate([np.full(len(c.mass), ev) for ev, c in enumerate(per_crossing)]),
        pi0_momentum=np.concatenate([c.momentum for c in per_crossing]).reshape(-1, 3),
        pi0_energy=np.concatenate([c.energy for c in per_crossing]),
        matched_mass=np.array([m[0] for m in masses]), n_events=len(events),
        mu_plus=events.truth["mu_plus"][:, :3].astype(float), mu_minus=events.truth["mu_minus"][:, :3].astype(float),
    )  # fmt: skip
    t_events = time.perf_counter() - t2
    t3 = time.perf_counter()
    mass = measure_masses(cands, rng)
    t_fits = time.perf_counter() - t3
    reso = resolution[st.method]
    fit = reso["energy_fit"]
    summary = design.summary()
    metrics: dict[str, float | None] = {
        "pi0_mass_width_mev": mass["pi0_mass_width_mev"],
        "pi0_efficiency": mass["pi0_efficiency"],
        "energy_resolution_stochastic": _num(fit["a"]) if fit.get("valid") else None,
        "energy_resolution_constant": _num(fit["b"]) if fit.get("valid") else None,
        "energy_resolution_noise": _num(fit["c"]) if fit.get("valid") else None,
        "position_resolution_mm": _num(reso["position_resolution_mm"]),
        "b_mass_width_mev": mass["b_mass_width_mev"],
        "significance": mass["significance"],
        "channels": summary["channels"],
        "cost": summary["cost"],
    }
    # the statistical error of every metric that is not exact (the registry's error methods)
    measured_errors: dict[str, float | None] = {
        "pi0_mass_width_mev": mass["pi0_mass_width_mev_err"],
        "pi0_efficiency": mass["pi0_efficiency_err"],
        "energy_resolution_stochastic": _num(fit.get("a_err")),
        "energy_resolution_constant": _num(fit.get("b_err")),
        "energy_resolution_noise": _num(fit.get("c_err")),
        "position_resolution_mm": _num(reso["position_resolution_mm_err"]),
        "b_mass_width_mev": mass["b_mass_width_mev_err"],
        "significance": mass["significance_err"],
    }
    errors = {name: measured_errors[name] if metrics[name] is not None else None
              for name, m in METRICS.items() if m.error_key is not None}  # fmt: skip
    return EvaluationResult(
        design=design.name,
        settings=st,
        metrics=metrics,
        errors=errors,
        significance_method=mass["significance_method"],
        pi0_mass_mev=mass["pi0_mass_mev"],
        pi0_efficiency_window_mev=mass["pi0_efficiency_window_mev"],
        pi0_efficiency_selected=mass["pi0_efficiency_selected"],
        fits=mass["fits"],
        histograms=mass["histograms"],
        decomposition={
            "reco": _num(robust_sigma(cands.matched_mass)),
            "true_energy_reco_position": _num(robust_sigma(np.array([m[1] for m in masses]))),
            "reco_energy_true_position": _num(robust_sigma(np.array([m[2] for m in masses]))),
            "n_matched": len(cands.matched_mass),
        },
        resolution=resolution,
        crossings=CrossingSummary(
            n_events=len(events),
            photons_per_crossing=sum(c.n_photons for c in per_crossing) / len(events),
            photons_rejected_by_timing=n_rejected,
            cuts_mev=cuts,
            pileup_aware_regressors=st.pileup > 0 and st.pileup_aware_regressors,
            events_with_pi0_candidate=mass["events_with_pi0_candidate"],
        ),
        timing_seconds={
            "models": round(t_models, 2),
            "pileup_offsets": round(t_rho, 2),
            "crossings": round(t_events, 2),
            "mass_fits": round(t_fits, 2),
        },
    )


# ----------------------------------------------------------------------------- --precision
PILOT_CROSSINGS = 500  # evaluate --precision: the pilot evaluates at most this many crossings first
PRECISION_ROUNDS = 3  # evaluate --precision: evaluations after the pilot, each predicting from the last


def check_precision(target: float, objective: str = "significance") -> None:
    """The relative error ``target`` must lie in (0, 1) and ``objective`` be a registry metric
    with a statistical error: else a one-line :class:`CaloptInputError`."""
    if not (math.isfinite(target) and 0.0 < target < 1.0):
        raise CaloptInputError(f"--precision must be a relative error between 0 and 1 (exclusive), got {target}")
    if get_metric(objective).error_key is None:
        raise CaloptInputError(f"--objective {objective!r} is exact: it has no statistical error to aim at")


def crossings_for_precision(n0: int, rel_err0: float, target: float, n_max: int) -> tuple[int, int]:
    """(crossings to evaluate, crossings needed) for the relative error ``target`` on a metric
    whose relative error was ``rel_err0`` with ``n0`` crossings. Relative errors scale as
    1 / sqrt(n) (for the significance S / sqrt(S + B) grows as sqrt(n) at fixed S/B and its
    error stays ~1), so n0 (rel_err0 / target)^2 are needed, rounded up (at least 1); at most
    ``n_max`` are evaluated."""
    needed = max(1, math.ceil(n0 * (rel_err0 / target) ** 2 - 1e-9))
    return min(needed, n_max), needed


def _relative_error(r: EvaluationResult, name: str) -> float | None:
    v, e = r.metrics[name], r.errors.get(name)
    if v is None or e is None or v == 0 or not (math.isfinite(v) and math.isfinite(e)):
        return None
    return abs(e / v)


def evaluate_to_precision(design: Design, settings: EvaluateSettings, target: float, objective: str = "significance",
                          progress: Callable[[str], None] | None = None) -> EvaluationResult:  # fmt: skip
    """``evaluate`` with as many crossings as a relative error ``target`` on the registry metric
    ``objective`` needs, at most ``settings.n_events``. The ``n_events`` crossings are generated
    (once, cached) and a pilot evaluates the first min(n_events, PILOT_CROSSINGS) of them; its
    relative error predicts the crossings needed (:func:`crossings_for_precision`) and, if the
    pilot had fewer, the first that many crossings are evaluated (the models, libraries and
    crossings come from the cache; see :attr:`EvaluateSettings.n_use`); a result that misses the
    target predicts again, at most :data:`PRECISION_ROUNDS` evaluations after the pilot, each
    with more crossings than the last. Where the pilot did not
    measure the objective (or its relative error), all ``n_events`` are evaluated. The result's
    ``precision`` says what was aimed at and got: ``objective``, ``target``, ``achieved`` (the
    relative error of the result), ``crossings`` (evaluated), ``needed`` (predicted; None
    without a pilot measurement), ``pilot_crossings``, ``capped`` (needed > n_events) and
    ``note`` (one line for the user where capped or without a pilot measurement, else None)."""
    check_precision(target, objective)
    settings.validate()
    n_max = settings.n_events
    n0 = min(n_max, PILOT_CROSSINGS)
    if progress:
        progress(f"pilot evaluation of {n0} crossings for --precision {target:g}")
    result = evaluate(design, replace(settings, n_use=n0), progress)
    r0 = _relative_error(result, objective)
    needed: int | None = None
    note: str | None = None
    if r0 is None:
        v = result.metrics[objective]
        why = "its value is 0" if v == 0 else "it was not measured" if v is None else "it has no error"
        note = f"--precision: {objective} has no relative error with the {n0}-crossing pilot ({why}); using all {n_max}"
        if n_max > n0:
            result = evaluate(design, replace(settings, n_use=n_max), progress)
    else:
        # the prediction is redone from each result that misses the target: the relative error
        # scales as 1/sqrt(n) only roughly (a pilot may measure the significance by truth counts,
        # whose error is smaller than the fit's that a larger sample gets)
        n_cur, r = n0, r0
        for _ in range(PRECISION_ROUNDS):
            n, needed = crossings_for_precision(n_cur, r, target, n_max)
            if n <= n_cur:
                break
            if progress:
                progress(f"evaluating {n} crossings for a relative error of {target:g} on {objective}")
            result = evaluate(design, replace(settings, n_use=n), progress)
            n_cur, r_new = n, _relative_error(result, objective)
            if r_new is None or r_new <= target:
                break
            r = r_new
    achieved = _relative_error(result, objective)
    capped = needed is not None and needed > n_max
    if capped and achieved is not None and achieved <= target:  # the prediction was pessimistic
        note = (f"--precision {target:g}: {objective} reached {achieved:.3g} with all {n_max} crossings of --events "
                f"(predicted to need about {needed})")  # fmt: skip
    elif capped:
        got = f"{achieved:.3g}" if achieved is not None else "none"
        note = (f"--precision {target:g}: {objective} needs about {needed} crossings, --events allows {n_max} "
                f"(relative error {got})")  # fmt: skip
    precision = {"objective": objective, "target": target, "achieved": achieved, "crossings": result.crossings.n_events,
                 "needed": needed, "pilot_crossings": n0, "capped": capped, "note": note}  # fmt: skip
    return replace(result, precision=precision)
