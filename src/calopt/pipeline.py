"""``calopt evaluate``: the physics metrics and the cost of one design.

1. photon reconstruction per (technology, cell size) of the design: XGBoost regressors and the
   parametric baseline, trained on single photons (half of them with a neighbouring photon) from
   a shower library independent of the one read out here (cached, shared by every design); at
   mu > 0 a second set trained on photons overlaid with pile-up at that mu reconstructs the
   photons of the crossings (``pileup_aware_regressors``);
2. energy and position resolution from single photons shot over the whole design (1-100 GeV,
   log-uniform): Gaussian-core widths per energy bin fitted as a/sqrt(E) (+) b (+) c/E, position
   residuals on the face, per region;
3. B0 -> J/psi(mu mu) pi0 crossings with Poisson pile-up (generated once per (events, mu, seed)
   and cached): read out, the mean pile-up energy of every channel subtracted, clustered,
   photons reconstructed (and, where the cells have timing, photons more than 3 sigma_t(E) from
   the time expected from the signal vertex rejected), pi0 candidates from photon pairs with a
   selection that tightens with pile-up, B candidates with smeared muons; the two signal
   photons truth-matched to reconstructed ones, which makes the truth-matched pi0 and B
   candidates; signal shapes fitted to those, candidate spectra fitted with the shapes fixed,
   significance and a fixed-window pi0 efficiency: see :mod:`calopt.metrics.mass`;
4. the pi0 width decomposed by combining the true energy with the reconstructed position of the
   truth-matched photons and vice versa ("inner validation").
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
from calopt.generation.runner import EventSpec, cached_events
from calopt.metrics.mass import Candidates, mass_metrics
from calopt.readout.readout import Readout, ReadoutSettings
from calopt.reconstruction.candidates import (
    expected_time,
    pair_masses,
    photon_momenta,
)
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
from calopt.stats import fit_energy_resolution, robust_sigma

__all__ = ["QUICK_READOUT", "QUICK_TRAINING", "EvaluateSettings", "evaluate"]


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
    use the pile-up-free ones, so they stay the figures of the detector alone."""

    pileup: float = 0.0
    n_events: int = 1000
    seed: int = 0
    n_resolution: int = 2000
    method: str = "xgb"
    photon_et_mev: float | None = None
    pi0_pt_mev: float | None = None
    pileup_subtraction: bool = True
    pileup_aware_regressors: bool = True
    readout: ReadoutSettings = field(default_factory=ReadoutSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)

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
        if self.n_events <= 0:
            raise CaloptInputError(f"--events must be positive, got {self.n_events}")
        if not (self.pileup >= 0 and math.isfinite(self.pileup)):
            raise CaloptInputError(f"--pileup must be >= 0, got {self.pileup}")
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


def _reconstruct(f: ClusterFeatures, models: Models, techs: list[str], method: str) -> tuple[np.ndarray, ...]:
    e = np.full(len(f.energy), np.nan)
    x = np.full(len(f.energy), np.nan)
    y = np.full(len(f.energy), np.nan)
    for (ti, size), (xgb, par) in models.items():
        sel = (f.tech == ti) & (np.abs(f.size - size) < 1e-6)
        if not sel.any():
            continue
        e[sel], x[sel], y[sel] = (xgb if method == "xgb" else par).predict(f.take(sel))
    return e, x, y


BLOCK = 200  # crossings whose photons are reconstructed together (one regressor call per block)


Reconstructed = dict[int, tuple[ClusterFeatures, np.ndarray, np.ndarray, np.ndarray]]


def _reconstruct_block(readout: Readout, events: Events, crossings: range, models: Models, method: str,
                       rng: np.random.Generator, rho: np.ndarray | None) -> Reconstructed:  # fmt: skip
    """Read out, cluster and reconstruct the photons of several crossings; the regressors are
    called once for all of them (their per-call overhead dominates otherwise). ``rho``: the
    mean pile-up energy per channel, subtracted from every hit before clustering."""
    z_front = readout.design.wall.z_front
    hits = [readout.read_crossing(events, ev, rng) for ev in crossings]
    feats = []
    for h in hits:
        h = subtract_offsets(h, rho)
        feats.append(cluster_features(cluster_cells(h, readout.cells, z_front), readout.cells, z_front))
    sizes = np.cumsum([0] + [len(f.energy) for f in feats])
    allf = ClusterFeatures.concat(feats)
    e, x, y = _reconstruct(allf, models, readout.cells.technologies, method)
    return {ev: (f, e[a:b], x[a:b], y[a:b]) for ev, f, a, b in zip(crossings, feats, sizes[:-1], sizes[1:])}


def _events(st: EvaluateSettings, progress: Callable[[str], None] | None) -> Events:
    return cached_events(EventSpec(process="b0-jpsipi0", n=st.n_events, pileup=st.pileup, seed=st.seed), progress)


def _resolution(readout: Readout, models: Models, st: EvaluateSettings) -> dict[str, Any]:
    sample = photon_sample(readout, st.n_resolution, st.seed + 1000)
    techs = readout.cells.technologies
    out: dict[str, Any] = {"lost_photons": sample.lost, "n_photons": len(sample.energy)}
    # time calibration per technology with these single photons: median and Gaussian-core
    # width of (cluster time - arrival time on the face)
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
        e, x, y = _reconstruct(sample.features, models, techs, method)
        rel = e / sample.energy - 1.0
        centres, sig, fit = _energy_resolution(sample.energy, rel, np.ones(len(rel), dtype=bool))
        res = np.concatenate([x - sample.x, y - sample.y])
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
            "position_resolution_mm": robust_sigma(res[np.isfinite(res)]),
            "raw_barycentre_resolution_mm": robust_sigma(
                np.concatenate([sample.features.x - sample.x, sample.features.y - sample.y])
            ),
            "per_region": per_region,
        }
    return out


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
            err.append(s / math.sqrt(2 * (sel.sum() - 1)) * 1.3)  # 1.3: efficiency of the quantile estimate
    return centres, sig, fit_energy_resolution(np.array(centres), np.array(sig), np.array(err))


def evaluate(design: Design, settings: EvaluateSettings | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """All metrics of ``design`` as one JSON-ready dictionary."""
    st = settings or EvaluateSettings()
    st.validate()
    t0 = time.perf_counter()
    readout = Readout(design, st.readout)
    techs = readout.cells.technologies
    combos = sorted({(r.technology, r.cell_size) for r in design.regions})
    models: Models = {}
    event_models: Models = {}  # the reconstruction of the crossings' photons
    pileup_aware = st.pileup > 0 and st.pileup_aware_regressors
    for tech, size in combos:
        if progress:
            progress(f"photon reconstruction for {tech} {size:g} mm (trained once, then cached)")
        combo = (techs.index(tech), size)
        models[combo] = get_reconstruction(tech, size, st.readout, st.training, readout.libraries)
        event_models[combo] = models[combo]
        if pileup_aware:
            if progress:
                progress(f"photon reconstruction for {tech} {size:g} mm with pile-up mu = {st.pileup:g} "
                         "(trained once, then cached)")  # fmt: skip
            event_models[combo] = get_reconstruction(tech, size, st.readout, replace(st.training, pileup=st.pileup),
                                                 readout.libraries)  # fmt: skip
    t_models = time.perf_counter() - t0
    if progress:
        progress("energy and position resolution")
    resolution = _resolution(readout, models, st)
    events = _events(st, progress)
    t1 = time.perf_counter()
    if progress:
        progress(f"reading out and reconstructing {len(events)} crossings")
    calib = resolution["time_calibration"]
    t_off = np.array([calib.get(t, {}).get("offset_ns", 0.0) for t in techs])
    t_sigma = np.array([calib.get(t, {}).get("sigma_ns", np.inf) for t in techs])
    # per-photon time resolution: the technology's a/sqrt(E) (+) b at the photon's energy, never
    # below the core width measured with the single photons (dominated by high energies)
    t_a = np.array([get_technology(t).time_resolution[0] for t in techs]) * 1e-3  # ns sqrt(GeV)
    t_b = np.array([get_technology(t).time_resolution[1] for t in techs]) * 1e-3  # ns
    rng = np.random.default_rng(np.random.SeedSequence([st.seed, 0xE7A1]))
    z_front = design.wall.z_front
    pi0_m: list[np.ndarray] = []
    pi0_sig: list[np.ndarray] = []
    pi0_ev: list[np.ndarray] = []
    pi0_p: list[np.ndarray] = []
    pi0_e: list[np.ndarray] = []
    matched_m: list[float] = []
    decomposition: dict[str, list[float]] = {"true_energy": [], "true_position": []}
    n_rejected = n_photons = 0
    et_cut, pt_cut = st.cuts()
    rho = pileup_density(readout, events, st.seed) if st.pileup > 0 and st.pileup_subtraction else None
    block: Reconstructed = {}
    for ev in range(len(events)):
        if ev not in block:
            block = _reconstruct_block(readout, events, range(ev, min(ev + BLOCK, len(events))), event_models,
                                       st.method, rng, rho)  # fmt: skip
        f, e, x, y = block[ev]
        z_pv, t_pv = (float(v) for v in events.pv_position[ev])
        ok = np.isfinite(e) & (e > 0)
        # timing: reject photons whose calibrated time is off the signal vertex's by more than
        # 3 sigma of the single-photon time residuals of their technology
        has_t = ok & np.isfinite(f.time)
        if has_t.any():
            dt = f.time - expected_time(x, y, z_front, z_pv, t_pv) - t_off[f.tech]
            egev = np.maximum(np.nan_to_num(e), 1.0) / 1000.0
            sigma = np.maximum(np.hypot(t_a[f.tech] / np.sqrt(egev), t_b[f.tech]), t_sigma[f.tech])
            off = np.abs(dt) > 3.0 * sigma
            n_rejected += int((has_t & off).sum())
            ok &= ~(has_t & off)
        # truth matching of the two signal photons: the nearest accepted photon within 1.5 cells
        c = events.crossing(ev)
        gam = np.nonzero((c["flags"] & FLAG.SIGNAL_PI0_PHOTON) > 0)[0]
        idx = []
        for g in gam:
            d = np.hypot(x - c["entry"][g, 0], y - c["entry"][g, 1])
            d = np.where(ok, d, np.inf)
            k = int(np.argmin(d)) if len(d) else -1
            idx.append(k if k >= 0 and d[k] < 1.5 * f.size[k] else -1)
        matched = len(gam) == 2 and min(idx) >= 0 and idx[0] != idx[1]
        p = photon_momenta(np.where(ok, e, 0.0), np.nan_to_num(x), np.nan_to_num(y), z_front, z_pv)
        et = np.hypot(p[:, 0], p[:, 1])
        sel = np.nonzero(ok & (et > et_cut))[0]
        n_photons += len(sel)
        m, i, j = pair_masses(p[sel], e[sel])
        ptot = p[sel][i] + p[sel][j]
        keep = (np.hypot(ptot[:, 0], ptot[:, 1]) > pt_cut) & (m < 300.0)
        # a pi0 candidate is signal when it is the pair of the two truth-matched photons
        if matched:
            is_sig = (np.minimum(sel[i], sel[j]) == min(idx)) & (np.maximum(sel[i], sel[j]) == max(idx))
        else:
            is_sig = np.zeros(len(m), dtype=bool)
        pi0_m.append(m[keep])
        pi0_sig.append(is_sig[keep])
        pi0_ev.append(np.full(int(keep.sum()), ev))
        pi0_p.append(ptot[keep])
        pi0_e.append(e[sel][i[keep]] + e[sel][j[keep]])
        if matched:
            tg = c["entry"][gam]
            te = c["energy"][gam]
            rp = np.stack([x[idx], y[idx]], axis=1)
            re = e[idx]
            for key, ee, pos in (("reco", re, rp), ("true_energy", te, rp), ("true_position", re, tg[:, :2])):
                pp = photon_momenta(ee, pos[:, 0], pos[:, 1], z_front, z_pv)
                mm = math.sqrt(max((ee.sum()) ** 2 - ((pp.sum(axis=0)) ** 2).sum(), 0.0))
                if key == "reco":
                    matched_m.append(mm)
                else:
                    decomposition[key].append(mm)
    cands = Candidates(
        pi0_mass=np.concatenate(pi0_m), pi0_signal=np.concatenate(pi0_sig), pi0_event=np.concatenate(pi0_ev),
        pi0_momentum=np.concatenate(pi0_p).reshape(-1, 3), pi0_energy=np.concatenate(pi0_e),
        matched_mass=np.array(matched_m), n_events=len(events),
        mu_plus=events.truth["mu_plus"][:, :3].astype(float), mu_minus=events.truth["mu_minus"][:, :3].astype(float),
    )  # fmt: skip
    mass = mass_metrics(cands, rng)
    t_events = time.perf_counter() - t1
    reso = resolution[st.method]
    fit = reso["energy_fit"]
    summary = design.summary()

    def num(v: float) -> float | None:
        return float(v) if v is not None and math.isfinite(v) else None

    return {
        "design": design.name,
        "pileup": st.pileup,
        "events": len(events),
        "method": st.method,
        "pi0_mass_width_mev": mass["pi0_mass_width_mev"],
        "pi0_mass_mev": mass["pi0_mass_mev"],
        "pi0_efficiency": mass["pi0_efficiency"],
        "pi0_efficiency_window_mev": mass["pi0_efficiency_window_mev"],
        "pi0_efficiency_selected": mass["pi0_efficiency_selected"],
        "energy_resolution_stochastic": num(fit["a"]) if fit.get("valid") else None,
        "energy_resolution_constant": num(fit["b"]) if fit.get("valid") else None,
        "energy_resolution_noise": num(fit["c"]) if fit.get("valid") else None,
        "position_resolution_mm": num(reso["position_resolution_mm"]),
        "b_mass_width_mev": mass["b_mass_width_mev"],
        "significance": mass["significance"],
        "significance_err": mass["significance_err"],
        "channels": summary["channels"],
        "cost": summary["cost"],
        "fits": mass["fits"],
        "pi0_width_decomposition_mev": {
            "reco": num(robust_sigma(cands.matched_mass)),
            "true_energy_reco_position": num(robust_sigma(np.array(decomposition["true_energy"]))),
            "reco_energy_true_position": num(robust_sigma(np.array(decomposition["true_position"]))),
            "n_matched": len(cands.matched_mass),
        },
        "resolution": resolution,
        "histograms": mass["histograms"],
        "pileup_aware_regressors": pileup_aware,
        "photons_per_crossing": n_photons / len(events),
        "photons_rejected_by_timing": n_rejected,
        "cuts_mev": {"photon_et": et_cut, "pi0_pt": pt_cut},
        "events_with_pi0_candidate": mass["events_with_pi0_candidate"],
        "timing_seconds": {"models": round(t_models, 2), "crossings": round(t_events, 2)},
        "settings": {k: v for k, v in asdict(replace(st)).items()},
    }
