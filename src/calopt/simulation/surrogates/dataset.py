"""Training showers in the surrogates' representation.

Representation (the same for every model type):

* the central ``crop x crop`` cells of every section (default 20 x 20 of the 30 x 30 fine
  grid of lhcb-shashlik). The energy outside is dropped: 0.2 % of E_vis on average for
  1-100 GeV photons with theta < 0.3 rad (worst shower ~2 %); the fraction measured on the
  training data is stored in the checkpoint (``outside_fraction``). Generated showers are
  placed back on the full grid (zeros outside the crop);
* ``g``: the square roots of the cell energy fractions ``f = E_cell / E_vis(crop)``, flattened
  (S * crop * crop values, unit L2 norm). The square root compresses the dynamic range so
  that the tails matter to the critic / likelihood, and any non-negative ``g`` gives
  non-negative energies after ``f = g^2 / sum(g^2)``;
* ``r``: ``ln(E_vis(crop) / E)``, standardised with the training mean and std (the response
  and its fluctuations: the sampling fraction).

Aligned showers (``align``, the default of ``calopt surrogate train``): an inclined shower
moves across the grid with depth (lhcb-shashlik, theta = 0.3 rad: by 4-5 fine cells of
20.2 mm in the last section), which a PCA of the cells represents badly (a shift is not a
linear combination of a few shapes). Every section is therefore moved by the whole number of
cells ``k`` nearest to where the particle's line crosses it at the section's depth
(:func:`axis_depths`, fitted on the training showers: the depth of the section's energy
barycentre), before the crop; the model learns showers in this aligned frame, with the rest
``u`` in [-1/2, 1/2] cell of every section (x and y, times 2) appended to its conditions, and
a generated shower is moved back by ``k``. The shift is exact (no interpolation); what it
moves off the grid is 5e-5 of the energy of 1-100 GeV photons, at the far edge.

Times are not learnt: the cascade's energy-weighted cell time is close to the time of flight
to the mean depth of the deposits in the section. For each species and section we fit
``t * cos(theta) = a + b ln(E / GeV)`` (energy-weighted least squares over the training
showers) and give every non-empty cell of that section this time, plus a per-shower Gaussian
offset whose standard deviation is the scatter of the training showers' section times about
the fit (half the 16-84 % range), measured in ``TIME_BINS`` bins of ln E (interpolated
between the bin centres), and kept above a quarter of the fitted time. Without the offsets
the spread of the mean shower time was 23 % too small. The offsets are independent normals,
except for a flow with profile variables (:class:`calopt.simulation.surrogates.flow.
FlowModel`), which learns them with the shower from the training showers' ``time_res``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calopt.errors import CaloptInputError
from calopt.simulation.showers import Showers, read_showers
from calopt.simulation.surrogates.calibration import interpolation, ln_e_bins
from calopt.simulation.surrogates.conditions import ConditionSpace

__all__ = [
    "DEFAULT_CROP",
    "TrainingSet",
    "axis_context",
    "axis_depths",
    "axis_offsets",
    "crop_slice",
    "load_training_set",
    "shift_sections",
    "time_residuals",
]

DEFAULT_CROP = 20
TIME_BINS = 6


def crop_slice(grid: int, crop: int) -> slice:
    a = (grid - crop) // 2
    return slice(a, a + crop)


@dataclass
class TrainingSet:
    """Showers as model inputs: g (N, S*C*C), r (N,) raw ln(E_vis/E), cond (N, n_cond) and the
    metadata needed to rebuild showers."""

    g: np.ndarray
    r: np.ndarray
    cond: np.ndarray
    space: ConditionSpace
    technology: str
    grid: int
    crop: int
    sections: int
    pitch: float
    section_edges: np.ndarray
    sampling_fraction: float
    outside_fraction: float
    time_a: np.ndarray  # (P, S) [ns]
    time_b: np.ndarray  # (P, S) [ns]
    time_sigma: np.ndarray  # (P, S, TIME_BINS) [ns]
    time_lne: np.ndarray  # (TIME_BINS,) ln(E/GeV) bin centres
    time_res: np.ndarray  # (N, S) section times about the fit in units of the scatter (0: empty section)
    files: list[str]
    energies: np.ndarray  # (N,) MeV
    axis_depths: np.ndarray | None = None  # (S,) mm: showers aligned on their axis (None: on the grid)
    context: np.ndarray | None = None  # (N, 2 S) the sub-cell offsets of the aligned axis, x2

    @property
    def model_cond(self) -> np.ndarray:
        """The networks' input conditions: ``cond`` and, for aligned showers, ``context``."""
        return self.cond if self.context is None else np.hstack([self.cond, self.context])

    def __len__(self) -> int:
        return len(self.r)

    def meta(self) -> dict[str, Any]:
        return {
            "technology": self.technology,
            "grid": self.grid,
            "crop": self.crop,
            "sections": self.sections,
            "fine_pitch_mm": self.pitch,
            "section_edges_mm": [float(x) for x in self.section_edges],
            "sampling_fraction": self.sampling_fraction,
            "outside_fraction": self.outside_fraction,
            "axis_depths_mm": None if self.axis_depths is None else [float(x) for x in self.axis_depths],
        }


def _section_times(sh: Showers) -> tuple[np.ndarray, np.ndarray]:
    """(N, S) section energies and energy-weighted section times (times must be present)."""
    assert sh.times is not None
    e_sec = sh.showers.sum(axis=(2, 3)).astype(np.float64)
    t_sec = (sh.times.astype(np.float64) * sh.showers).sum(axis=(2, 3)) / np.maximum(e_sec, 1e-30)
    return e_sec, t_sec


def _scatter_at(sigma: np.ndarray, le: np.ndarray, lne: np.ndarray) -> np.ndarray:
    """(N, S) time scatter of each shower: its rows ``sigma`` (N, S, TIME_BINS) interpolated
    in ln E between the bin centres ``lne``."""
    k, w1 = interpolation(le, lne)
    k1 = np.minimum(k + 1, len(lne) - 1)
    rows = np.arange(len(le))
    return (1 - w1[:, None]) * sigma[rows, :, k] + w1[:, None] * sigma[rows, :, k1]


def _fit_times(sh: Showers, cos_t: np.ndarray, pdgs: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Per species and section, energy-weighted fit of t*cos(theta) = a + b ln(E/GeV); and the
    standard deviation of the residuals ``sigma`` (P, S, TIME_BINS) in bins of ln E with
    centres ``lne`` (TIME_BINS,)."""
    S = sh.showers.shape[1]
    a = np.zeros((len(pdgs), S))
    b = np.zeros((len(pdgs), S))
    sigma = np.zeros((len(pdgs), S, TIME_BINS))
    le = np.log(sh.incident_energies[:, 0].astype(np.float64) / 1000.0)
    which, centres = ln_e_bins(le, TIME_BINS)
    if sh.times is None:
        return a, b, sigma, centres
    e_sec, t_sec = _section_times(sh)
    for i, p in enumerate(pdgs):
        sel = sh.pdg == p
        for s in range(S):
            w = np.where(sel & (e_sec[:, s] > 0), e_sec[:, s], 0.0)
            if w.sum() <= 0:
                continue
            A = np.stack([np.ones_like(le), le], axis=1) * np.sqrt(w)[:, None]
            y = t_sec[:, s] * cos_t * np.sqrt(w)
            coef, *_ = np.linalg.lstsq(A, y, rcond=None)
            a[i, s], b[i, s] = coef
            res = t_sec[:, s] * cos_t - coef[0] - coef[1] * le
            for k in range(TIME_BINS):
                m = sel & (e_sec[:, s] > 0) & (which == k)
                if m.sum() > 1:  # half the 16-84 % range: robust against the rare late deposits
                    q16, q84 = np.quantile(res[m], [0.16, 0.84])
                    sigma[i, s, k] = 0.5 * (q84 - q16)
    return a, b, sigma, centres


TIME_RES_CLIP = 8.0


def axis_depths(showers: np.ndarray, directions: np.ndarray, points: np.ndarray, pitch: float) -> np.ndarray:
    """(S,) depth [mm] at which each section's energy barycentre sits on the particle's line:
    the energy-weighted least-squares slope of (barycentre - entry point) against tan(theta),
    x and y pooled (lhcb-shashlik photons, 1-100 GeV: 53, 103, 181, 292 mm)."""
    S, H, W = showers.shape[1:]
    cx = (np.arange(W) - W / 2 + 0.5) * pitch
    cy = (np.arange(H) - H / 2 + 0.5) * pitch
    tx = directions[:, 0] / directions[:, 2]
    ty = directions[:, 1] / directions[:, 2]
    out = np.zeros(S)
    for s in range(S):
        x = showers[:, s].astype(np.float64)
        e = x.sum(axis=(1, 2))
        ok = e > 0
        mx = (x.sum(axis=1) @ cx)[ok] / e[ok] - points[ok, 0]
        my = (x.sum(axis=2) @ cy)[ok] / e[ok] - points[ok, 1]
        w = e[ok]
        den = float(np.sum(w * (tx[ok] ** 2 + ty[ok] ** 2)))
        out[s] = float(np.sum(w * (tx[ok] * mx + ty[ok] * my))) / den if den > 0 else 0.0
    return out


def axis_offsets(depths: np.ndarray, directions: np.ndarray, points: np.ndarray,
                 pitch: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Where the particle's line crosses each section at its ``depths``, in fine cells from
    the grid centre: the nearest whole number of cells ``k`` (N, S, 2) int (x, y) and the
    rest ``u`` (N, S, 2) in [-1/2, 1/2]."""
    t = directions[:, :2] / directions[:, 2:3]
    pos = (points[:, None, :2] + t[:, None, :] * np.asarray(depths, dtype=np.float64)[None, :, None]) / pitch
    k = np.rint(pos)
    return k.astype(np.int64), pos - k


def axis_context(u: np.ndarray) -> np.ndarray:
    """The extra conditions of an aligned model's networks: the sub-cell offsets ``u`` (N, S, 2)
    of :func:`axis_offsets`, times 2 (in [-1, 1]), as (N, 2 S) float32, x and y per section."""
    return (2.0 * u).reshape(len(u), -1).astype(np.float32)


def shift_sections(x: np.ndarray, k: np.ndarray, sign: int, out: np.ndarray | None = None) -> np.ndarray:
    """Section images (N, S, H, W) moved by ``-sign * k`` cells (k: (N, S, 2) as x, y), zeros
    where nothing comes in: ``sign`` = +1 brings the axis to the grid centre (the aligned frame
    of the model), -1 moves an aligned shower back. Written into ``out`` (of x's shape) when
    given. The sections that move by the same shift are copied together, as one slice."""
    n, S, H, W = x.shape
    out = np.zeros_like(x) if out is None else out
    out[...] = 0
    src, dst = x.reshape(n * S, H, W), out.reshape(n * S, H, W)
    moves = (-sign * np.asarray(k)).reshape(n * S, 2)
    shifts, which = np.unique(moves, axis=0, return_inverse=True)
    order = np.argsort(which.reshape(-1), kind="stable")
    bounds = np.searchsorted(which.reshape(-1)[order], np.arange(len(shifts) + 1))
    for (dx, dy), a, b in zip(shifts, bounds[:-1], bounds[1:]):
        if abs(dx) >= W or abs(dy) >= H:
            continue
        idx = order[a:b]
        dst[idx, max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = \
            src[idx, max(-dy, 0) : H - max(dy, 0), max(-dx, 0) : W - max(dx, 0)]  # fmt: skip
    return out


def time_residuals(sh: Showers, cos_t: np.ndarray, rows: np.ndarray, a: np.ndarray, b: np.ndarray,
                   sigma: np.ndarray, lne: np.ndarray) -> np.ndarray:  # fmt: skip
    """(N, S) float32 section times of the showers as standard normals of :func:`time_of`: ``z``
    with ``t cos(theta) = a + b ln E + z sigma(ln E)`` (clipped to +-``TIME_RES_CLIP``: the rare
    late deposits; 0 for an empty section or a zero scatter). The flow's profile variables."""
    n, S = sh.showers.shape[:2]
    if sh.times is None:
        return np.zeros((n, S), dtype=np.float32)
    e_sec, t_sec = _section_times(sh)
    le = np.log(sh.incident_energies[:, 0].astype(np.float64) / 1000.0)
    fit = a[rows] + b[rows] * le[:, None]
    sig = _scatter_at(sigma[rows], le, lne)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where((e_sec > 0) & (sig > 0), (t_sec * cos_t[:, None] - fit) / sig, 0.0)
    return np.clip(z, -TIME_RES_CLIP, TIME_RES_CLIP).astype(np.float32)


def load_training_set(
    files: Sequence[str | os.PathLike[str]],
    *,
    crop: int = DEFAULT_CROP,
    energy_range_gev: tuple[float, float] | None = None,
    theta_max: float | None = None,
    align: bool = False,
    space: ConditionSpace | None = None,
    depths: np.ndarray | None = None,
) -> TrainingSet:
    """Read calopt-showers files of one technology and build the representation.

    ``energy_range_gev`` and ``theta_max`` declare the training range (e.g. the settings the
    samples were generated with); by default it is the range the data cover. Data outside a
    declared range is refused. ``align`` moves every section by whole cells so that the
    particle's line crosses it in the central cells (see the module doc).

    ``space`` and ``depths`` give the condition space and the axis depths [mm] of an existing
    model instead (its showers for calibration, :func:`calopt.simulation.surrogates.training.
    calibrate_surrogate`): data outside ``space`` is refused, and ``depths`` implies ``align``."""
    if not files:
        raise CaloptInputError("no training files given")
    parts = [read_showers(f, diagnostics=False) for f in files]
    techs = {str(p.attrs["technology"]) for p in parts}
    if len(techs) != 1:
        raise CaloptInputError(f"training files mix technologies: {', '.join(sorted(techs))}")
    shapes = {p.showers.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise CaloptInputError(f"training files have different grids: {sorted(shapes)}")
    S, H, W = parts[0].showers.shape[1:]
    if H != W:
        raise CaloptInputError(f"training files have a non-square grid {H}x{W}")
    crop = int(crop)
    if not 0 < crop <= H or (H - crop) % 2:
        raise CaloptInputError(f"crop {crop} must be in 1..{H} (the grid) and have the parity of the grid")
    showers = np.concatenate([p.showers for p in parts]).astype(np.float32)
    times = None if any(p.times is None for p in parts) else np.concatenate([p.times for p in parts])
    e = np.concatenate([p.incident_energies[:, 0] for p in parts]).astype(np.float64)
    mom = np.concatenate([p.momenta for p in parts]).astype(np.float64)
    pts = np.concatenate([p.points for p in parts]).astype(np.float64)
    pdg = np.concatenate([p.pdg for p in parts]).astype(np.int64)
    dirs = mom / np.maximum(np.linalg.norm(mom, axis=1, keepdims=True), 1e-30)
    pitch = float(parts[0].attrs["fine_pitch_mm"])
    context, frame = None, showers
    if depths is not None:
        depths = np.asarray(depths, dtype=np.float64)
        if depths.shape != (S,):
            raise CaloptInputError(f"got {depths.size} axis depths for showers of {S} sections")
    elif align:
        depths = axis_depths(showers, dirs, pts, pitch)
    if depths is not None:
        k, u = axis_offsets(depths, dirs, pts, pitch)
        context = axis_context(u)
        frame = shift_sections(showers, k, +1)
        if times is not None:
            times = shift_sections(times, k, +1)
    sl = crop_slice(H, crop)
    inner = frame[:, :, sl, sl]
    e_in = inner.reshape(len(inner), -1).sum(axis=1).astype(np.float64)
    e_all = showers.reshape(len(showers), -1).sum(axis=1).astype(np.float64)
    keep = e_in > 0
    if not keep.any():
        raise CaloptInputError("training files hold no shower with visible energy")
    from calopt.simulation.particles import Particles

    inside = Particles(pdg[keep], e[keep], dirs[keep], pts[keep])
    if space is not None:
        space.check(inside)  # data must lie inside the model's range
    else:
        space = ConditionSpace.from_data(e[keep], dirs[keep], pitch / 2.0, pdg[keep])
        if energy_range_gev is not None or theta_max is not None:
            lo, hi = (space.energy_range[0], space.energy_range[1])
            if energy_range_gev is not None:
                lo, hi = energy_range_gev[0] * 1000.0, energy_range_gev[1] * 1000.0
                if not (0 < lo < hi):
                    raise CaloptInputError(f"energy range needs 0 < LO < HI, got {energy_range_gev}")
            th = space.theta_max if theta_max is None else float(theta_max)
            space = ConditionSpace((lo, hi), th, space.half_pitch, space.pdgs)
            space.check(inside)  # data must lie inside the declared range
    f = inner[keep].reshape(int(keep.sum()), -1) / e_in[keep, None].astype(np.float32)
    g = np.sqrt(np.maximum(f, 0.0)).astype(np.float32)
    r = np.log(e_in[keep] / e[keep])
    sub = Showers(
        showers=frame[keep],
        times=None if times is None else times[keep],
        incident_energies=e[keep, None],
        momenta=mom[keep],
        points=pts[keep],
        pdg=pdg[keep],
        attrs={},
    )
    ta, tb, tsig, tle = _fit_times(sub, dirs[keep, 2], space.pdgs)
    cond = space.encode(e[keep], dirs[keep], pts[keep], pdg[keep])
    tres = time_residuals(sub, dirs[keep, 2], space.species_rows(cond), ta, tb, tsig, tle)
    return TrainingSet(
        g=g,
        r=r,
        cond=cond,
        space=space,
        technology=techs.pop(),
        grid=H,
        crop=crop,
        sections=S,
        pitch=pitch,
        section_edges=np.asarray(parts[0].attrs["section_edges_mm"], dtype=np.float64),
        sampling_fraction=float(parts[0].attrs["sampling_fraction"]),
        outside_fraction=float(1.0 - e_in.sum() / max(e_all.sum(), 1e-30)),
        time_a=ta,
        time_b=tb,
        time_sigma=tsig,
        time_lne=tle,
        time_res=tres,
        files=[Path(f).name for f in files],
        energies=e[keep],
        axis_depths=depths,
        context=None if context is None else context[keep],
    )


def time_of(a: np.ndarray, b: np.ndarray, energies_mev: np.ndarray, cos_t: np.ndarray,
            sigma: np.ndarray | None = None, lne: np.ndarray | None = None,
            z: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N, S) section times [ns] from the fitted coefficients (rows of a, b per shower), plus
    ``z`` (N, S) standard normals times the scatter ``sigma`` (rows (N, S, TIME_BINS) per
    shower, interpolated in ln E between the centres ``lne``) when given."""
    le = np.log(energies_mev / 1000.0)
    t = a + b * le[:, None]
    if sigma is not None and lne is not None and z is not None:
        sig = _scatter_at(sigma, le, lne)
        t = np.maximum(t + z * sig, 0.25 * t)  # a Gaussian tail must not reach the entry time
    return t / cos_t[:, None]
