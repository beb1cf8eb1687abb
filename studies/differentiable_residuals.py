"""The differentiable parametric EM shower (:mod:`calopt.simulation.differentiable`) against the
cascade Monte Carlo (issue 21).

Two jobs, both on photons over a grid of module designs (points of
:class:`calopt.detector.module.ModuleSpec`), each cascade sample simulated once and cached under
``--cache`` (default /work/data/s21/diffshower):

* ``--tune``: fit the global constants of the shower (:class:`~calopt.simulation.differentiable.ShowerTune`)
  to the cascade samples of the designs marked ``tune`` below and print them (paste them into
  ``TUNE`` in differentiable.py); the fit is also written to ``--tune-out``.
* ``OUT.json`` (default): residuals on every design, those used in the tuning and the others:
  response (mean calibrated E/E), resolution (Gaussian-core sigma/E of the energy in the
  scoring window, sampling only: the cascade has no photo-statistics), t_max [X0] (fit of the
  mean longitudinal profile with :func:`calopt.validation.cascade.shower_maximum`, the same for
  both) and containment (fraction of the window energy in the 3 x 3 and 5 x 5 cells around
  the hit cell). Prints a Markdown table and writes JSON.

Photons enter uniformly over one readout cell, at normal incidence for layers and at a 3 degree
tilt in x and y for fibres (as ``calopt validate``, against channelling).

Usage::

    python studies/differentiable_residuals.py --tune
    python studies/differentiable_residuals.py residuals.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calopt.detector.module import ModuleSpec
from calopt.simulation import differentiable as dt
from calopt.simulation.cascade import CascadeSimulator
from calopt.simulation.cascade.kernel import DIAG
from calopt.simulation.particles import Particles
from calopt.stats import robust_sigma, robust_sigma_error
from calopt.validation.cascade import shower_maximum

CACHE = Path("/work/data/s21/diffshower")
CASCADE_SEED = 2100
TILT_FIBRES_DEG = 3.0


@dataclass(frozen=True)
class Point:
    """A design of the study: a ModuleSpec built from ``base`` with ``overrides`` and a depth."""

    label: str
    base: str
    cell_mm: float
    overrides: dict[str, Any] = field(default_factory=dict)
    depth_x0: float | None = None
    tune: bool = False

    def spec(self) -> ModuleSpec:
        s = ModuleSpec.from_technology(self.base, self.cell_mm)
        if self.overrides:
            s = s.replace(**self.overrides)
        return s.replace(depth_x0=self.depth_x0) if self.depth_x0 is not None else s

    @property
    def tilt_deg(self) -> float:
        return TILT_FIBRES_DEG if self.spec().structure == "fibres" else 0.0


def _shashlik(a: float, s: float, depth_x0: float = 25.0, cell: float = 40.4, tune: bool = False,
              absorber: str = "Pb") -> Point:  # fmt: skip
    lab = f"layers {a:g} {absorber} + {s:g} sc, {depth_x0:g} X0, {cell:g}"
    # n_layers: any number inside the envelope; depth_x0 then sets it
    n_layers = min(66, int(800 // (a + s + 0.24)))
    ov: dict[str, Any] = {"absorber_thickness_mm": a, "active_thickness_mm": s, "n_layers": n_layers}
    if absorber != "Pb":
        ov["absorber"] = absorber
    return Point(lab, "lhcb-shashlik", cell, ov, depth_x0, tune)


# Tuning grid: Shashlik Pb absorber 1, 2, 4 mm x scintillator 2, 4, 8 mm at 25 X0 (1 + 8 mm needs
# 1166 mm for 25 X0, beyond the 835 mm envelope: 17.5 X0), one W and one Fe Shashlik (the absorber
# dependence), and the two SpaCal technologies.
TUNE_POINTS = [
    *(
        _shashlik(a, s, 17.5 if (a, s) == (1.0, 8.0) else 25.0, tune=True)
        for a in (1.0, 2.0, 4.0)
        for s in (2.0, 4.0, 8.0)
    ),
    _shashlik(2.0, 4.0, 25.0, tune=True, absorber="W"),
    _shashlik(10.0, 4.0, 20.0, tune=True, absorber="Fe"),
    Point("spacal-w (W/GAGG 1.0 sq @1.7, 145 mm), 15.15", "spacal-w", 15.15, tune=True),
    Point("spacal-pb (Pb/PS 2.0 rd @2.5, 290 mm), 30.3", "spacal-pb", 30.3, tune=True),
]
# Points not used in the tuning: other thicknesses, absorbers, depths, cell sizes and fibres.
OTHER_POINTS = [
    _shashlik(2.0, 4.0, 66 * 6.24 / 17.0, cell=60.6),  # the LHCb module itself (66 layers), 60.6 mm cells
    _shashlik(3.0, 3.0),
    _shashlik(1.5, 6.0, 20.0),
    _shashlik(2.0, 4.0, 15.0),
    _shashlik(2.0, 4.0, 20.0, cell=30.3),
    _shashlik(1.0, 4.0, 25.0, absorber="W"),
    _shashlik(3.0, 4.0, 20.0, absorber="Cu"),
    _shashlik(6.0, 4.0, 20.0, absorber="Fe"),
    Point(
        "fibres W/PS 1.0 rd @1.5, 25 X0, 20.2",
        "spacal-w",
        20.2,
        {"active": "polystyrene", "fibre_pitch_mm": 1.5, "fibre_diameter_mm": 1.0, "fibre_shape": "round"},
        25.0,
    ),
    Point(
        "fibres W/GAGG 1.5 sq @2.5, 25 X0, 30.3",
        "spacal-w",
        30.3,
        {"fibre_pitch_mm": 2.5, "fibre_diameter_mm": 1.5},
        25.0,
    ),
    Point(
        "fibres Pb/PS 1.5 rd @2.0, 20 X0, 40.4",
        "spacal-pb",
        40.4,
        {"fibre_pitch_mm": 2.0, "fibre_diameter_mm": 1.5},
        20.0,
    ),
    Point("fibres Pb/PS 2.0 rd @3.0, 25 X0, 30.3", "spacal-pb", 30.3, {"fibre_pitch_mm": 3.0}, 25.0),
]
TUNE_ENERGIES = {2.0: 200, 10.0: 200, 50.0: 60}
OTHER_ENERGIES = {1.0: 200, 5.0: 200, 20.0: 120}


# --------------------------------------------------------------------------- cascade samples
def _key(point: Point, e_gev: float, n: int) -> str:
    tech = point.spec().technology()
    return f"{tech.name}_c{point.cell_mm:g}_t{point.tilt_deg:g}_gamma_{e_gev:g}GeV_n{n}"


def cascade_sample(point: Point, e_gev: float, n: int, cache: Path, sim: CascadeSimulator | None = None,
                   log: Any = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Photons of ``e_gev`` in ``point``'s module, simulated by the cascade once and cached: the
    energy balance, per-shower longitudinal profiles, the mean radial profile, the visible energy
    on the fine grid summed over the sections, entry points and directions."""
    path = cache / f"{_key(point, e_gev, n)}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    tech = point.spec().technology()
    rng = np.random.default_rng([CASCADE_SEED, int(e_gev * 1000), *tech.name.encode()])
    tilt = math.tan(math.radians(point.tilt_deg))
    d = np.array([tilt, tilt, 1.0]) / math.sqrt(1.0 + 2.0 * tilt**2)
    pts = rng.uniform(0.0, point.cell_mm, size=(n, 2))  # uniform over the cell [0, c)^2
    particles = Particles(np.full(n, 22), np.full(n, e_gev * 1000.0), np.tile(d, (n, 1)), pts)
    t0 = time.time()
    sh = (sim or CascadeSimulator()).simulate(particles, tech, int(rng.integers(2**31)))
    if log:
        log(f"  cascade {tech.name} {point.label}: {n} x {e_gev:g} GeV in {time.time() - t0:.1f} s")
    out = {
        "energy_balance": sh.diagnostics["energy_balance"],
        "longitudinal_profile": sh.diagnostics["longitudinal_profile"].astype(np.float32),
        "radial_profile": sh.diagnostics["radial_profile"].mean(axis=0),
        "grid": sh.showers.sum(axis=1).astype(np.float32),
        "points": pts,
        "direction": d,
        "fine_pitch": np.array(tech.fine_pitch),
        "depth_x0": np.array(tech.depth_X0),
    }
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(path)
    return out


def cascade_cells(sample: dict[str, np.ndarray], cell: float, n_cells: int) -> np.ndarray:
    """(N, n, n) visible energy in the n x n readout cells around the hit cell [0, c)^2 (cell
    boundaries at multiples of ``cell`` from the window centre, which the fine grid shares)."""
    g = sample["grid"]
    pitch = float(sample["fine_pitch"])
    k = round(cell / pitch)
    h = g.shape[1] // 2  # fine index of x = 0
    half = n_cells // 2
    lo = h - half * k
    hi = h + (half + 1) * k
    if lo < 0 or hi > g.shape[1]:
        raise ValueError(f"{n_cells} x {n_cells} cells of {cell} mm do not fit the scoring window")
    w = g[:, lo:hi, lo:hi]
    return w.reshape(len(g), n_cells, k, n_cells, k).sum(axis=(2, 4))


# --------------------------------------------------------------------------- the model's side
def _shower_of(point: Point, tune: dt.ShowerTune | None = None, n_slices: int = 32) -> dt.DifferentiableShower:
    return dt.DifferentiableShower(point.spec(), photostatistics=False, n_slices=n_slices, tune=tune)


def _slopes(point: Point) -> tuple[float, float]:
    t = math.tan(math.radians(point.tilt_deg))
    return (t, t)


def model_run(point: Point, e_gev: float, n: int, seed: int, *, tune: dt.ShowerTune | None = None,
              n_slices: int = 32, params: dict[str, torch.Tensor] | None = None,
              chunk: int = 500) -> dict[str, torch.Tensor]:  # fmt: skip
    """Model showers of ``point`` (photons of ``e_gev`` uniform over the cell [0, c)^2 like the
    cascade's, sampling fluctuations only), concatenated over chunks: total in the cascade's
    scoring window, 5 x 5 cells, mean profile, t_max, leakage, radial containment."""
    ds = _shower_of(point, tune, n_slices)
    tech = point.spec().technology()
    c = point.cell_mm
    half = tech.window_mm / 2.0
    box = (-half - c / 2.0, half - c / 2.0, -half - c / 2.0, half - c / 2.0)  # window from the hit-cell centre
    noise = dt.BaseNoise.draw(n, 5, seed)
    outs: dict[str, list[torch.Tensor]] = {}
    for lo in range(0, n, chunk):
        o = ds(params, e_gev * 1000.0, noise[lo : lo + chunk], slopes=_slopes(point), window_mm=box)
        for k, v in (
            ("total", o.total),
            ("cells", o.cells),
            ("profile", o.profile.sum(dim=0)),
            ("leakage", o.leakage),
            ("t_max", o.t_max_x0),
            ("mean_total", o.mean_total),
            ("radial", o.radial_containment(RADII_RM * o.properties["moliere_radius_mm"]).sum(dim=0)),
        ):
            outs.setdefault(k, []).append(v)
    res = {k: torch.cat(v) for k, v in outs.items() if k not in ("profile", "radial")}
    res["profile"] = torch.stack(outs["profile"]).sum(dim=0) / n
    res["radial"] = torch.stack(outs["radial"]).sum(dim=0) / n
    res["depth_x0"] = o.properties["depth_x0"]
    return res


LOG_WEIGHT = 0.1  # weight of the log fraction beyond each depth (the tail) in the longitudinal fit
RADII_RM = torch.tensor([0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0], dtype=torch.float64)


def cascade_radial(sample: dict[str, np.ndarray], rm: float) -> np.ndarray:
    """Mean fraction of the visible energy within RADII_RM Moliere radii of the incident axis."""
    cum = np.cumsum(sample["radial_profile"]) / sample["energy_balance"][:, DIAG.VISIBLE_ALL].mean()
    r = np.arange(1, len(cum) + 1, dtype=float)
    return np.interp(RADII_RM.numpy() * rm, np.concatenate([[0.0], r]), np.concatenate([[0.0], cum]))


def true_e_over_mip(sample: dict[str, np.ndarray], f_mip: float) -> float:
    """The cascade's e/mip: visible over deposited energy, over f_mip."""
    d = sample["energy_balance"]
    return float(d[:, DIAG.VISIBLE_ALL].sum() / d[:, DIAG.DEPOSITED].sum() / f_mip)


# --------------------------------------------------------------------------- tuning
def _tune_with(base: dt.ShowerTune, **kw: Any) -> dt.ShowerTune:
    d = asdict(base)
    d.update(kw)
    return dt.ShowerTune(**d)


def _rebin(prof: np.ndarray, most: int = 40) -> np.ndarray:
    """The profile summed into the largest number of equal groups of bins up to ``most`` (all
    bins when that number is below 15)."""
    n = len(prof)
    k = max((d for d in range(1, most + 1) if n % d == 0), default=n)
    k = n if k < 15 else k
    return prof.reshape(k, n // k).sum(axis=1)


def _minimise(loss_fn: Any, x0: list[float], log: Any, name: str) -> list[float]:
    """Minimise a torch loss of a few parameters with L-BFGS (the model is differentiable)."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=0.5, max_iter=25, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        final = float(loss_fn(x))
    log(f"{name}: {[round(float(v), 4) for v in x.detach()]} loss {final:.4g}")
    return [float(v) for v in x.detach()]


def tune(cache: Path, log: Any) -> dt.ShowerTune:
    """Fit :class:`ShowerTune` to the cascade samples of TUNE_POINTS at TUNE_ENERGIES, in four
    steps: e/mip (visible over deposited energy), the longitudinal profile (t_offset,
    alpha_scale: mean profiles in E-fractions per bin), the lateral profile (rc, rt, p scales:
    mean radial containment at RADII_RM), the sampling term (Gaussian-core widths of the total,
    minus the model's leakage fluctuations)."""
    sim = CascadeSimulator()
    data = [(p, e, cascade_sample(p, e, n, cache, sim, log)) for p in TUNE_POINTS for e, n in TUNE_ENERGIES.items()]
    tn = dt.ShowerTune(source="being fitted")
    props = {p.label: _shower_of(p).properties() for p in TUNE_POINTS}
    mats = {p.label: _shower_of(p).materials for p in TUNE_POINTS}

    # 1. e/mip = 1/(1 + k dz x^q), x = absorber per sampling layer in X0 of the absorber
    xs, ys = [], []
    for p, _e, smp in data:
        pr = props[p.label]
        em = true_e_over_mip(smp, float(pr["mip_sampling_fraction"]))
        xs.append(math.log(float(pr["absorber_thickness_x0"])))
        ys.append(math.log((1.0 / em - 1.0) / mats[p.label].e_over_mip_z()))
    q, lk = np.polyfit(xs, ys, 1)
    tn = _tune_with(tn, emip_k=float(math.exp(lk)), emip_q=float(q))
    log(f"e/mip: k = {tn.emip_k:.5f}, q = {tn.emip_q:.4f}")

    # 2. longitudinal: mean profiles as fractions of E per bin (visible / (E f_true)) and the
    # mean fraction of E beyond each bin edge (log), whose last value is the rear leakage
    targets = []
    for p, e, smp in data:
        f_true = true_e_over_mip(smp, float(props[p.label]["mip_sampling_fraction"])) * float(
            props[p.label]["mip_sampling_fraction"]
        )
        prof = _rebin(smp["longitudinal_profile"].mean(axis=0) / (e * 1000.0 * f_true))
        back = float(smp["energy_balance"][:, DIAG.BACK].mean() / (e * 1000.0))
        beyond = np.clip(1.0 - back - np.cumsum(prof), 0.0, None)
        targets.append((p, e, torch.tensor(prof), torch.tensor(beyond)))
    noise = dt.BaseNoise.draw(200, 1, 7)

    def long_loss(x: torch.Tensor) -> torch.Tensor:
        t = _tune_with(tn, t_offset=x[0], alpha_scale=x[1], t_offset_fibres=x[2], sigma_scale=x[3])
        total = torch.zeros((), dtype=torch.float64)
        for p, e, prof, beyond in targets:
            o = _shower_of(p, t, len(prof))(None, e * 1000.0, noise, slopes=_slopes(p))
            m = o.profile.mean(dim=0) / (e * 1000.0)
            m_beyond = o.leakage.mean() + m.flip(0).cumsum(0).flip(0)[1:]
            m_beyond = torch.cat([m_beyond, o.leakage.mean()[None]])
            total = total + ((m - prof) ** 2).sum() / (prof**2).sum()
            total = total + LOG_WEIGHT * ((torch.log(m_beyond + 1e-3) - torch.log(beyond + 1e-3)) ** 2).mean()
        return total / len(targets)

    t_off, a_sc, t_fib, s_sc = _minimise(
        long_loss, [0.0, 1.0, 0.0, 1.0], log, "longitudinal (t_offset, alpha_scale, t_offset_fibres, sigma_scale)"
    )
    tn = _tune_with(tn, t_offset=t_off, alpha_scale=a_sc, t_offset_fibres=t_fib, sigma_scale=s_sc)

    # 3. lateral: radial containment
    rad_t = [(p, e, torch.tensor(cascade_radial(smp, float(props[p.label]["moliere_radius_mm"]))))
             for p, e, smp in data]  # fmt: skip
    noise = dt.BaseNoise.draw(100, 1, 8)

    def lat_loss(x: torch.Tensor) -> torch.Tensor:
        t = _tune_with(tn, rc_scale=x[0], rt_scale=x[1], p_scale=x[2])
        total = torch.zeros((), dtype=torch.float64)
        for p, e, target in rad_t:
            o = _shower_of(p, t)(None, e * 1000.0, noise, slopes=_slopes(p))
            rm = o.properties["moliere_radius_mm"]
            total = total + ((o.radial_containment(RADII_RM * rm).mean(dim=0) - target) ** 2).sum()
        return total / len(rad_t)

    rc, rt, ps = _minimise(lat_loss, [1.0, 1.0, 1.0], log, "lateral (rc_scale, rt_scale, p_scale)")
    tn = _tune_with(tn, rc_scale=rc, rt_scale=rt, p_scale=ps)

    # 4. sampling term: a^2 = E (sigma_cascade^2 - sigma_model_without_sampling^2)
    no_samp = _tune_with(tn, samp_c_layers=0.0, samp_c_fibres=0.0)
    rows = []
    for p, e, smp in data:
        vis = smp["energy_balance"][:, DIAG.VISIBLE_WINDOW]
        s_c = robust_sigma(vis) / vis.mean()
        err = robust_sigma_error(s_c, len(vis))
        m = model_run(p, e, 2000, 9, tune=no_samp)["total"].detach().numpy()
        s_m = robust_sigma(m) / m.mean()
        a2 = (s_c**2 - s_m**2) * e
        pr = {k: float(v) for k, v in props[p.label].items()}
        rows.append((p.spec().structure, a2, 2 * s_c * err * e, pr))
        log(f"  {p.label} {e:g} GeV: sigma/E cascade {s_c:.4f}, model without sampling {s_m:.4f}: "
            f"a = {math.sqrt(max(a2, 0)):.4f}")  # fmt: skip
    ok = [r for r in rows if r[1] > 2 * r[2]]  # a^2 measured (not only leakage)
    lay = [r for r in ok if r[0] == "layers"]
    la = 0.5 * np.log([r[1] for r in lay])
    wts = np.array([r[1] / r[2] for r in lay])  # 1 / relative error of a^2
    cols = np.column_stack([np.ones(len(lay)), np.log([r[3]["absorber_thickness_x0"] for r in lay]),
                            -np.log([r[3]["mip_sampling_fraction"] for r in lay])])  # fmt: skip
    coef, *_ = np.linalg.lstsq(cols * wts[:, None], la * wts, rcond=None)
    fib = [r for r in ok if r[0] == "fibres"]
    lf = np.array([0.5 * math.log(r[1]) - 0.5 * math.log(r[3]["active_loss_mev"] / r[3]["mip_sampling_fraction"])
                   for r in fib])  # fmt: skip
    wf = np.array([r[1] / r[2] for r in fib]) ** 2
    tn = _tune_with(tn, samp_c_layers=float(math.exp(coef[0])), samp_p_x=float(coef[1]), samp_p_f=float(coef[2]),
                    samp_c_fibres=float(math.exp((lf * wf).sum() / wf.sum())))  # fmt: skip
    log(f"sampling: layers c {tn.samp_c_layers:.5f} p_x {tn.samp_p_x:.4f} "
        f"p_f {tn.samp_p_f:.4f}; fibres c {tn.samp_c_fibres:.5f}")  # fmt: skip
    return _tune_with(tn, source="studies/differentiable_residuals.py --tune")


# --------------------------------------------------------------------------- residuals
def _ratio_mean(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    r = num / np.maximum(den, 1e-12)
    return float(r.mean()), float(r.std(ddof=1) / math.sqrt(len(r)))


def residual_row(point: Point, e_gev: float, n: int, cache: Path, sim: CascadeSimulator, tune_: dt.ShowerTune,
                 n_model: int = 2000, log: Any = None) -> dict[str, Any]:  # fmt: skip
    """Cascade and model figures of one design and energy (module doc)."""
    smp = cascade_sample(point, e_gev, n, cache, sim, log)
    ds = _shower_of(point, tune_)
    pr = ds.properties()
    f_cal = float(tune_.sampling_fraction(ds.materials, pr))
    e = e_gev * 1000.0
    vis = smp["energy_balance"][:, DIAG.VISIBLE_WINDOW].astype(np.float64)
    depth_x0 = float(smp["depth_x0"])
    prof = smp["longitudinal_profile"].mean(axis=0)
    cells = cascade_cells(smp, point.cell_mm, 5)
    c_res = robust_sigma(vis) / vis.mean()
    c3, c3e = _ratio_mean(cells[:, 1:4, 1:4].sum(axis=(1, 2)), vis)
    c5, c5e = _ratio_mean(cells.sum(axis=(1, 2)), vis)
    cascade = {
        "response": float(vis.mean() / (e * f_cal)),
        "response_err": float(vis.std(ddof=1) / math.sqrt(len(vis)) / (e * f_cal)),
        "rel_sigma": c_res,
        "rel_sigma_err": robust_sigma_error(c_res, len(vis)),
        "t_max_x0": shower_maximum(prof, depth_x0),
        "containment_3x3": c3,
        "containment_3x3_err": c3e,
        "containment_5x5": c5,
        "containment_5x5_err": c5e,
        "rear_leakage": float(smp["energy_balance"][:, DIAG.REAR].mean() / e),
        "e_over_mip": true_e_over_mip(smp, float(pr["mip_sampling_fraction"])),
    }
    with torch.no_grad():
        m = model_run(point, e_gev, n_model, 11, tune=tune_, n_slices=len(prof))
    tot = m["total"].numpy()
    mc = m["cells"].numpy()
    m_res = robust_sigma(tot) / tot.mean()
    model = {
        "response": float(tot.mean() / e),
        "rel_sigma": m_res,
        "rel_sigma_err": robust_sigma_error(m_res, len(tot)),
        "t_max_x0": shower_maximum(m["profile"].numpy(), depth_x0),
        "containment_3x3": float((mc[:, 1:4, 1:4].sum(axis=(1, 2)) / tot).mean()),
        "containment_5x5": float((mc.sum(axis=(1, 2)) / tot).mean()),
        "rear_leakage": float(m["leakage"].mean()),
        "e_over_mip": float(tune_.e_over_mip(ds.materials, pr)),
    }
    return {
        "design": point.label,
        "module": point.spec().parameters(),
        "tuned_on": point.tune and e_gev in TUNE_ENERGIES,
        "energy_gev": e_gev,
        "n_cascade": len(vis),
        "n_model": n_model,
        "x0_mm": float(pr["x0_mm"]),
        "moliere_radius_mm": float(pr["moliere_radius_mm"]),
        "depth_x0": depth_x0,
        "cascade": cascade,
        "model": model,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the residuals (cascade / model)."""
    out = ["| design | E [GeV] | tuned | response c / m | sigma/E [%] c / m | t_max [X0] c / m | "
           "3x3 [%] c / m | 5x5 [%] c / m | rear leak [%] c / m |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        c, m = r["cascade"], r["model"]
        out.append(
            f"| {r['design']} | {r['energy_gev']:g} | {'yes' if r['tuned_on'] else 'no'} | "
            f"{c['response']:.3f} / {m['response']:.3f} | "
            f"{100 * c['rel_sigma']:.2f}±{100 * c['rel_sigma_err']:.2f} / {100 * m['rel_sigma']:.2f} | "
            f"{c['t_max_x0']:.2f} / {m['t_max_x0']:.2f} | "
            f"{100 * c['containment_3x3']:.1f} / {100 * m['containment_3x3']:.1f} | "
            f"{100 * c['containment_5x5']:.1f} / {100 * m['containment_5x5']:.1f} | "
            f"{100 * c['rear_leakage']:.2f} / {100 * m['rear_leakage']:.2f} |"
        )
    return "\n".join(out)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and largest residuals (model - cascade; relative for response and sigma/E), in the
    tuning set and outside it."""
    out: dict[str, Any] = {}
    for name, flag in (("tuned", True), ("not_tuned", False)):
        sel = [r for r in rows if r["tuned_on"] == flag]
        if not sel:
            continue
        d: dict[str, Any] = {"n": len(sel)}
        for k, rel in (("response", True), ("rel_sigma", True), ("t_max_x0", False), ("containment_3x3", False),
                       ("containment_5x5", False)):  # fmt: skip
            v = np.array([r["model"][k] - r["cascade"][k] for r in sel])
            if rel:
                v = v / np.array([r["cascade"][k] for r in sel])
            d[k] = {"mean": float(v.mean()), "rms": float(np.sqrt((v**2).mean())), "max_abs": float(np.abs(v).max()),
                    "relative": rel}  # fmt: skip
        out[name] = d
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="differentiable_residuals.json", help="JSON of the residuals")
    ap.add_argument("--tune", action="store_true", help="fit the tuned constants instead")
    ap.add_argument("--tune-out", default=str(CACHE / "tune.json"))
    ap.add_argument("--cache", default=str(CACHE))
    ap.add_argument("--quick", action="store_true", help="only the tuning energies 2 and 10 GeV")
    ap.add_argument("--tune-json", help="residuals with the constants of this JSON instead of calopt's TUNE")
    ns = ap.parse_args(argv)
    cache = Path(ns.cache)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    if ns.tune:
        tn = tune(cache, log)
        Path(ns.tune_out).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.tune_out).write_text(json.dumps(asdict(tn), indent=1))
        print(repr(tn))
        return
    tn = dt.ShowerTune(**json.loads(Path(ns.tune_json).read_text())) if ns.tune_json else dt.TUNE
    sim = CascadeSimulator()
    rows = []
    for p in TUNE_POINTS + OTHER_POINTS:
        energies = TUNE_ENERGIES if p.tune else {**OTHER_ENERGIES, **TUNE_ENERGIES}
        for e, n in sorted(energies.items()):
            if ns.quick and e not in (2.0, 10.0):
                continue
            rows.append(residual_row(p, e, n, cache, sim, tn, log=log))
            log(f"{p.label} {e:g} GeV done")
    doc = {"tune": asdict(tn), "rows": rows, "summary": summary(rows)}
    Path(ns.out).write_text(json.dumps(doc, indent=1))
    print(table(rows))
    print()
    print(json.dumps(doc["summary"], indent=1))


if __name__ == "__main__":
    main()
