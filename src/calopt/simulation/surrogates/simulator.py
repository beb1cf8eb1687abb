"""The ``surrogate`` backend: a trained generative model as a
:class:`~calopt.simulation.base.ShowerSimulator`.

Trained models have a response calibration (:mod:`calopt.simulation.surrogates.calibration`)
and a hit model (:mod:`calopt.simulation.surrogates.hits`) applied to the generated showers.
Shower ``i`` is generated from noise that depends only on its seed (``seeds[i]``, or one
derived from (``seed``, i)), through :mod:`calopt.simulation.surrogates.noise`; the
networks run in batches under ``torch.inference_mode``, and then the cells of each shower are
made in one compiled pass (:func:`_make_showers`). The result is deterministic in the seeds;
the same shower generated in batches of different size agrees to float rounding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numba
import numpy as np

from calopt.detector.technologies import Technology
from calopt.errors import CaloptInputError
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import Showers, shower_attrs
from calopt.simulation.surrogates.calibration import apply_response, interpolation
from calopt.simulation.surrogates.checkpoint import load_checkpoint
from calopt.simulation.surrogates.conditions import ConditionSpace
from calopt.simulation.surrogates.dataset import axis_context, axis_offsets, time_of
from calopt.simulation.surrogates.decoding import _decode_row, no_residual
from calopt.simulation.surrogates.hits import _hit_scratch, _hits_row, hit_key, hit_tables
from calopt.simulation.surrogates.noise import (
    _ZIG_RATIO,
    _ZIG_X,
    _inverse_normals_row,
    _inverse_scratch,
    inverse_normals,
    normals,
    run_seeds,
    stream_keys,
    uniforms,
)

__all__ = ["BFLOAT16_MODELS", "DEFAULT_MODEL", "PRECISIONS", "SurrogateSimulator", "load_surrogate", "place_sections"]

# The shipped default (``get_simulator("surrogate")``): a ``flow`` (aligned showers, profile
# variables, the calibrated residual model, the hit model) for lhcb-shashlik photons and
# electrons, 1-100 GeV, theta < 0.3 rad, on the full 30 x 30 grid, trained with one torch
# thread (OMP_NUM_THREADS=1) by
#   calopt surrogate train --model flow --steps 30000 --seed 1 --crop 30 --energy-range 1 100 \
#     --theta-max 0.3 --out lhcb-shashlik-default.pt --data shashlik-gamma-train.h5 \
#     shashlik-gamma-train2.h5 shashlik-electron-train.h5 shashlik-electron-train2.h5
# on cascade samples made with ``calopt simulate --technology lhcb-shashlik --energy-range 1 100
# --log-uniform --theta-max 0.3``: photons 4000 (seed 11) + 8000 (seed 17), electrons 3000
# (seed 14) + 5000 (seed 18).
# Its post-training calibrations (response and hits) were then measured again, with today's
# defaults, on 20000 photons and 32000 electrons (the training samples and 8000 more photons,
# seed 27, and 24000 more electrons, seeds 24, 25, 26; same settings) by
#   calopt surrogate calibrate trained.pt --out lhcb-shashlik-default.pt --data shashlik-gamma-train.h5 \
#     shashlik-gamma-train2.h5 shashlik-gamma-cal.h5 shashlik-electron-train.h5 \
#     shashlik-electron-train2.h5 shashlik-electron-cal1.h5 shashlik-electron-cal2.h5 shashlik-electron-cal3.h5
# With the 8000 training electrons alone the response calibration copied their resolution,
# ~1 sigma narrow by chance near 2 and 10 GeV (fixed-energy resolution ratios 0.942, 0.945).
DEFAULT_MODEL = Path(__file__).parent / "data" / "lhcb-shashlik-default.pt"
BATCH = 4096
CHUNK = 2048  # showers through the networks at once (their weights read once per chunk)
CELL_CHUNK = 512  # showers through a flow's inverse PCA and the cell pass at once
PRECISIONS = ("float32", "bfloat16")  # the arithmetic of the networks when sampling
BFLOAT16_MODELS = ("wgan", "adagan", "flow")  # the model types that can sample in bfloat16
RESIDUAL_STREAM = 5  # the flow's residual normals (noise.inverse_normals); 1: the networks' normals


@numba.njit(cache=True)
def _zero_cells(showers: np.ndarray, times: np.ndarray) -> None:
    for j in range(len(showers)):
        showers[j] = np.float32(0.0)
        times[j] = np.float32(0.0)


@numba.njit(cache=True)
def _copy_cells(inner: np.ndarray, showers: np.ndarray, times: np.ndarray, t: np.float32) -> None:
    """Cells and their time ``t`` (0 in an empty cell), without a branch (vectorised)."""
    zero = np.float32(0.0)
    for j in range(len(inner)):
        v = inner[j]
        showers[j] = v
        times[j] = t if v > zero else zero


@numba.njit(cache=True)
def _place_row(inner: np.ndarray, k: np.ndarray, t_sec: np.ndarray, showers: np.ndarray, times: np.ndarray) -> None:
    """:func:`place_sections` of one shower: ``inner`` (S, C, C), ``k`` (S, 2), ``t_sec`` (S,),
    ``showers`` and ``times`` (S, H, W). A crop as large as the grid is shifted as one flat
    copy, its cells wrapped round the row ends then emptied (1.2 us per shower); a smaller one
    row by row (4.2 us for the same grid)."""
    S, C = inner.shape[0], inner.shape[1]
    H, W = showers.shape[1], showers.shape[2]
    if C == H and C == W:
        for s in range(S):
            dy, dx = k[s, 1], k[s, 0]
            src, dst, tdst = inner[s].reshape(C * C), showers[s].reshape(H * W), times[s].reshape(H * W)
            if abs(dx) >= W or abs(dy) >= H:
                _zero_cells(dst, tdst)
                continue
            off = dy * W + dx  # grid cell of crop cell i: i + off
            lo, hi = max(0, -off), min(C * C, H * W - off)
            _zero_cells(dst[: lo + off], tdst[: lo + off])
            _copy_cells(src[lo:hi], dst[lo + off : hi + off], tdst[lo + off : hi + off], t_sec[s])
            _zero_cells(dst[hi + off :], tdst[hi + off :])
            c0, c1 = (0, dx) if dx > 0 else (W + dx, W)  # the columns a row's neighbour wrapped into
            for h in range(H):
                _zero_cells(showers[s, h, c0:c1], times[s, h, c0:c1])
        return
    off_y, off_x = (H - C) // 2, (W - C) // 2
    zero = np.float32(0.0)
    for s in range(S):
        t = t_sec[s]
        dy, dx = off_y + k[s, 1], off_x + k[s, 0]  # grid cell of crop cell (0, 0)
        a0, a1 = max(0, -dy), min(C, H - dy)  # the crop rows and columns on the grid
        b0, b1 = max(0, -dx), min(C, W - dx)
        for h in range(H):
            a = h - dy
            if a < a0 or a >= a1 or b0 >= b1:
                showers[s, h, :] = zero
                times[s, h, :] = zero
                continue
            for w in range(b0 + dx):  # left of the crop
                showers[s, h, w] = zero
                times[s, h, w] = zero
            for b in range(b0, b1):  # branch-free (vectorised)
                v = inner[s, a, b]
                showers[s, h, b + dx] = v
                times[s, h, b + dx] = t if v > zero else zero
            for w in range(b1 + dx, W):  # right of it
                showers[s, h, w] = zero
                times[s, h, w] = zero


@numba.njit(cache=True)
def place_sections(inner: np.ndarray, k: np.ndarray, t_sec: np.ndarray, showers: np.ndarray,
                   times: np.ndarray) -> None:  # fmt: skip
    """Write generated showers onto the grid: the central crop (N, S, C, C) of the model's frame,
    section s of shower i moved by ``k[i, s]`` cells (x, y; the shift back from the aligned
    frame, 0 for a model on the grid; what falls off the grid is dropped), into ``showers``
    (N, S, H, H), zeros elsewhere; ``times`` gets ``t_sec[i, s]`` in every non-empty cell and 0
    elsewhere. One pass, the same values as placing the crop on a zero grid and
    :func:`~calopt.simulation.surrogates.dataset.shift_sections` with sign -1 (which, with
    the numpy time fill, took ~30 us of the GAN's 110 us per shower)."""
    for i in range(inner.shape[0]):
        _place_row(inner[i], k[i], t_sec[i], showers[i], times[i])


@numba.njit(cache=True)
def _make_showers(g: np.ndarray, decode: bool, eps_keys: np.ndarray, res_mean: np.ndarray,
                  res_std: np.ndarray, rrows: np.ndarray, rlo: np.ndarray, rhi: np.ndarray, rt: np.ndarray,
                  target: np.ndarray, evis: np.ndarray, hit: bool, seeds: np.ndarray, hrows: np.ndarray,
                  hlo: np.ndarray, ht: np.ndarray, log_a: np.ndarray, miss: np.ndarray, shape: float, groups: int,
                  k: np.ndarray, t_sec: np.ndarray, showers: np.ndarray, times: np.ndarray, xs: np.ndarray,
                  ratio: np.ndarray) -> None:  # fmt: skip
    """The cells of the showers, one shower at a time from the networks' output ``g`` (N, D) to
    the grid, so that the shower stays in the CPU's first caches: with ``decode`` (a flow) its
    residual normals (:func:`~calopt.simulation.surrogates.noise._inverse_normals_row` of
    ``eps_keys``; none without a residual model, an empty ``eps_keys``) and the decoding
    (:func:`~calopt.simulation.surrogates.decoding._decode_row` with the residual rows, bins
    and weights ``rrows``, ``rlo``, ``rhi``, ``rt`` and the section fractions ``target``),
    otherwise ``g`` as it is; then the cell energies ``g^2 E_vis`` (``evis``), the hit model
    (``hit``: :func:`~calopt.simulation.surrogates.hits._hits_row` with the species rows
    ``hrows``, bins ``hlo`` and weights ``ht``) and :func:`place_sections` (shifts ``k``,
    section times ``t_sec``). The same values as the stages one after another over a chunk,
    each of which took the chunk's 7 MB arrays through memory."""
    n, d = g.shape
    S = showers.shape[1]
    C = int(np.sqrt(d // S) + 0.5)  # the crop
    row = np.empty(d, dtype=np.float32)  # the shower being made
    eps = np.zeros(d, dtype=np.float32)
    now = np.zeros(target.shape[1])
    zk, zf, zb = _inverse_scratch(d)
    hf, hi, hb, hs, h32, hi32 = _hit_scratch(d, groups)
    residual = decode and len(eps_keys) > 0
    for i in range(n):
        if decode:
            if residual:
                _inverse_normals_row(eps_keys[i], eps, zk, zf, zb)
            p, a, b = rrows[i], rlo[i], rhi[i]
            _decode_row(g[i], res_mean[p, a], res_mean[p, b], res_std[p, a], res_std[p, b], rt[i], eps, target[i],
                        row, now)  # fmt: skip
        else:
            row[:] = g[i]
        ev = np.float32(evis[i])
        for j in range(d):
            row[j] = row[j] * row[j] * ev
        if hit:
            _hits_row(row, hit_key(seeds[i]), hrows[i], hlo[i], ht[i], log_a, miss, shape, groups, xs, ratio, hf, hi,
                      hb, hs, h32, hi32)  # fmt: skip
        _place_row(row.reshape(S, C, C), k[i], t_sec[i], showers[i], times[i])


class SurrogateSimulator:
    """Generates showers with the model of a ``calopt-surrogate`` checkpoint."""

    def __init__(self, ck: dict[str, Any], source: str = "", *, precision: str = "float32") -> None:
        from calopt.simulation.surrogates.models import build_sampler

        self.ck = ck
        self.source = source
        self.model_type: str = ck["model_type"]
        self.technology: str = ck["technology"]
        self.space = ConditionSpace.from_dict(ck["conditions"])
        self.rep: dict[str, Any] = ck["representation"]
        self.norm: dict[str, float] = ck["normalisation"]
        self.net = build_sampler(self.model_type, ck["architecture"])
        self.net.load_state_dict(ck["state"])
        self.net.eval()
        self.precision = _check_precision(precision, ck["model_type"])
        if precision == "bfloat16":
            import torch

            nets: Any = self.net if ck["model_type"] == "adagan" else [self.net]
            for g in nets:
                g.set_sampling_dtype(torch.bfloat16)
        self.betas = np.asarray(ck.get("mixture_weights", [1.0]), dtype=np.float64)
        # absent in checkpoints from before them
        self.hit_model: dict[str, Any] | None = ck.get("hit_model")
        self._hit_tables = None if self.hit_model is None else hit_tables(self.hit_model)
        self.response_calibration: dict[str, Any] | None = ck.get("response_calibration")
        depths = self.rep.get("axis_depths_mm")  # showers aligned on their axis (absent before)
        self.axis_depths = None if depths is None else np.asarray(depths, dtype=np.float64)
        self.name = "surrogate"

    @property
    def noise_dim(self) -> int:
        net: Any = self.net[0] if self.model_type == "adagan" else self.net  # type: ignore[index]
        return int(net.noise_dim)

    def generate(
        self, cond: np.ndarray, seeds: np.ndarray, work: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Model-space samples for the networks' conditions ``cond`` (with the axis offsets of
        an aligned model): g (N, D), r (N,) standardised ln(E_vis/E) and, for a flow with
        profile variables, the section-time normals tau (N, S) (otherwise None). With ``work``
        (the buffers of :meth:`simulate`), the noise and g are made in its arrays and g is a
        view of one, valid until the next call with the same ``work``."""
        import torch

        n = len(cond)
        arch = self.ck["architecture"]
        z_all = _buffer(work, "z", (n, self.noise_dim))
        if self.model_type == "flow" and int(arch.get("res_bins", 0)) > 0:  # the latent, then the residual normals
            first = self.noise_dim - int(arch["n_out"])
            z_all[:, :first] = normals(seeds, first, stream=1, dtype=np.float32)
            z_all[:, first:] = inverse_normals(seeds, int(arch["n_out"]), RESIDUAL_STREAM)
        else:
            normals(seeds, self.noise_dim, stream=1, dtype=np.float32, out=z_all)
        comp = np.zeros(n, dtype=np.int64)
        if self.model_type == "adagan":
            u = uniforms(seeds, 1, stream=2)[:, 0]
            comp = np.minimum(np.searchsorted(np.cumsum(self.betas / self.betas.sum()), u), len(self.betas) - 1)
        g_out = _buffer(work, "g", (n, int(arch["n_out"])))
        r_out = np.empty(n, dtype=np.float32)
        sections = int(arch.get("sections", 0)) if self.model_type == "flow" else 0
        tau_out = np.empty((n, sections), dtype=np.float32) if sections else None
        with torch.inference_mode():
            for k in np.unique(comp):
                net = self.net[int(k)] if self.model_type == "adagan" else self.net  # type: ignore[index]
                idx = np.flatnonzero(comp == k)
                for a in range(0, len(idx), BATCH):
                    sel: Any = idx[a : a + BATCH]
                    if len(idx) == n:  # one component: the networks write g into g_out
                        sel = slice(a, min(a + BATCH, n))
                    c_t, z_t = torch.from_numpy(cond[sel]), torch.from_numpy(z_all[sel])
                    out = net(c_t, z_t, out=torch.from_numpy(g_out[sel])) if len(idx) == n else net(c_t, z_t)
                    if not np.shares_memory(out[0].numpy(), g_out):
                        g_out[sel] = out[0].numpy()
                    r_out[sel] = out[1].numpy()
                    if tau_out is not None:
                        tau_out[sel] = out[2].numpy()
        return g_out, r_out, tau_out

    def check_conditions(self, particles: Particles, tech: Technology) -> None:
        if tech.name != self.technology:
            raise CaloptInputError(
                f"surrogate {self.source or self.model_type!r} was trained for technology {self.technology!r}, "
                f"not {tech.name!r}"
            )
        self.space.check(particles)

    def check_run(self, technology: str, particle: str, e_lo_gev: float, e_hi_gev: float, theta_max: float) -> None:
        """Refuse the settings of a run outside the training range before simulating anything."""
        if technology != self.technology:
            raise CaloptInputError(
                f"surrogate {self.source or self.model_type!r} was trained for technology {self.technology!r}, "
                f"not {technology!r}"
            )
        self.space.check_run(species(particle).pdg, e_lo_gev * 1000.0, e_hi_gev * 1000.0, theta_max)

    def attrs(self, tech: Technology, seed: int) -> dict[str, Any]:
        return shower_attrs(tech, f"surrogate-{self.model_type}", seed, surrogate_model=self.source)

    def _flow_parts(self, cond: np.ndarray, seeds: np.ndarray) -> tuple[Any, ...]:
        """A flow's samples up to its cell decoding (:meth:`FlowModel.decode_inputs`) for the
        networks' conditions ``cond``: the latent normals of :meth:`generate` (its first ones:
        the residual normals are made shower by shower, :func:`_make_showers`) through the
        flow (its output ``x``, for the inverse PCA of each cell chunk), ``r``, the section
        fractions and times and the residual statistics; and the residual normals' keys (none
        without a residual model)."""
        import torch

        net: Any = self.net
        first = net.n_pca + 1 + net.n_profile
        z = normals(seeds, first, stream=1, dtype=np.float32)
        with torch.inference_mode():
            c_t = torch.from_numpy(cond)
            x = net.flow_inverse(c_t, torch.from_numpy(z))
            _, r, target, tau, res = net.decode_inputs(x, c_t, pca=False)
        keys = stream_keys(seeds, RESIDUAL_STREAM) if net.res_bins > 0 else np.zeros(0, dtype=np.uint64)
        return x, r.numpy(), target.numpy(), None if tau is None else tau.numpy(), res, keys

    def _fill(self, particles: Particles, seeds: np.ndarray, showers: np.ndarray, times: np.ndarray,
              work: dict[str, np.ndarray]) -> None:  # fmt: skip
        """Generate the showers of ``particles`` into ``showers`` and ``times`` (N, S, H, H),
        with the buffers ``work``."""
        n = len(particles)
        S = int(self.rep["sections"])
        e = particles.energies
        cond = self.space.encode(e, particles.directions, particles.points, particles.pdg)
        net_cond = cond
        if self.axis_depths is not None:
            pitch = float(self.rep["fine_pitch_mm"])
            k, u = axis_offsets(self.axis_depths, particles.directions, particles.points, pitch)
            net_cond = np.hstack([cond, axis_context(u)])
        else:
            k = np.zeros((n, S, 2), dtype=np.int64)
        decode = self.model_type == "flow"
        if decode:
            x, r, target, tau, res, eps_keys = self._flow_parts(net_cond, seeds)
        else:
            g, r, tau = self.generate(net_cond, seeds, work)
            target, eps_keys = np.ones((n, 1)), np.zeros(0, dtype=np.uint64)
            res = no_residual(n, 1)  # not decoded: unused
        rows = self.space.species_rows(cond)
        r_raw = r.astype(np.float64) * self.norm["r_std"] + self.norm["r_mean"]
        if self.response_calibration is not None:
            r_raw = apply_response(r_raw, cond[:, 0], rows, self.response_calibration)
        evis = np.exp(r_raw) * e
        if self.hit_model is not None and self._hit_tables is not None:
            lo, t = interpolation(cond[:, 0], np.asarray(self.hit_model["centres"], dtype=np.float64))
            log_a, miss = self._hit_tables
            shape = float(self.hit_model["shape"])
        else:
            lo, t = np.zeros(n, dtype=np.int64), np.zeros(n)
            log_a, miss = np.zeros((1, 1, 1)), np.zeros((1, 1, 1), dtype=np.float32)
            shape = 1.0
        tm = self.ck["time_model"]
        ta = np.asarray(tm["a"], dtype=np.float64)[rows]
        tb = np.asarray(tm["b"], dtype=np.float64)[rows]
        if "sigma" in tm:  # checkpoints before the time scatter have none
            sig = np.asarray(tm["sigma"], dtype=np.float64)[rows]
            # the flow's section-time normals (correlated with the shower) or independent ones
            z = tau.astype(np.float64) if tau is not None else normals(seeds, S, stream=4)
            t_sec = time_of(ta, tb, e, particles.directions[:, 2], sig, np.asarray(tm["lne"], dtype=np.float64),
                            z).astype(np.float32)  # fmt: skip
        else:
            t_sec = time_of(ta, tb, e, particles.directions[:, 2]).astype(np.float32)
        res_mean, res_std, res_rows, res_lo, res_hi, res_t = res
        seeds_u, rows, lo = np.asarray(seeds, dtype=np.uint64), rows.astype(np.int64), lo.astype(np.int64)
        groups = S if tau is not None else 1  # the flow's section fractions are kept through the hits
        if decode:
            import torch
        for a in range(0, n, CELL_CHUNK):  # a flow's inverse PCA too: its cells stay in the caches
            b = min(a + CELL_CHUNK, n)
            if decode:
                with torch.inference_mode():
                    g_ab = self.net.inverse_pca(x[a:b]).numpy()  # type: ignore[operator]
            else:
                g_ab = g[a:b]
            _make_showers(g_ab, decode, eps_keys[a:b], res_mean, res_std, res_rows[a:b], res_lo[a:b], res_hi[a:b],
                          res_t[a:b], target[a:b], evis[a:b], self.hit_model is not None, seeds_u[a:b], rows[a:b],
                          lo[a:b], t[a:b], log_a, miss, shape, groups, k[a:b], t_sec[a:b], showers[a:b], times[a:b],
                          _ZIG_X, _ZIG_RATIO)  # fmt: skip

    def simulate(
        self, particles: Particles, tech: Technology, seed: int, *, seeds: np.ndarray | None = None
    ) -> Showers:
        self.check_conditions(particles, tech)
        n = len(particles)
        if seeds is None:
            seeds = run_seeds(seed, 0, n)
        seeds = np.asarray(seeds)
        if len(seeds) != n:
            raise CaloptInputError(f"got {len(seeds)} seeds for {n} particles")
        S, H = int(self.rep["sections"]), int(tech.grid)
        if tech.grid != int(self.rep["grid"]) or len(tech.section_edges) - 1 != S:
            raise CaloptInputError(f"technology {tech.name!r} grid differs from the surrogate's training grid")
        # every cell is written by place_sections (zeros outside the generated crop)
        showers = np.empty((n, S, H, H), dtype=np.float32)
        times = np.empty_like(showers)
        # the noise and cell buffers of a chunk, reused by the next (fresh 7 MB arrays per chunk
        # of 512 made 6.7 page faults per flow shower, these 0.4)
        work: dict[str, np.ndarray] = {}
        # a 10 GeV flow photon took 33 us in chunks of 2048 (its inverse PCA and cells by 512),
        # 36 in chunks of 512, 39 of 4096 and 41 at 10^4 at once (one thread, 10^4 showers)
        for a in range(0, n, CHUNK):
            b = min(a + CHUNK, n)
            self._fill(particles[a:b], seeds[a:b], showers[a:b], times[a:b], work)
        e = particles.energies
        return Showers(
            showers=showers,
            times=times,
            incident_energies=e.reshape(-1, 1),
            momenta=particles.momenta,
            points=particles.points,
            pdg=particles.pdg,
            attrs=self.attrs(tech, seed),
        )


def _buffer(work: dict[str, np.ndarray] | None, name: str, shape: tuple[int, int]) -> np.ndarray:
    """The float32 buffer ``name`` of ``work`` as an array of ``shape`` (C-contiguous; made or
    grown when needed), or a new array without ``work``."""
    if work is None:
        return np.empty(shape, dtype=np.float32)
    buf = work.get(name)
    if buf is None or buf.shape[0] < shape[0] or buf.shape[1] != shape[1]:
        buf = work[name] = np.empty(shape, dtype=np.float32)
    return buf[: shape[0]]


def _check_precision(precision: str, model_type: str) -> str:
    if precision not in PRECISIONS:
        raise CaloptInputError(f"surrogate precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "bfloat16":
        import torch

        if model_type not in BFLOAT16_MODELS:
            raise CaloptInputError(
                f"bfloat16 sampling is for the model types {', '.join(BFLOAT16_MODELS)}, not a {model_type!r} model"
            )
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            raise CaloptInputError("bfloat16 sampling needs torch's oneDNN with bfloat16 support (AVX-512 at least)")
    return precision


def load_surrogate(path: str | os.PathLike[str] | None = None, *, precision: str = "float32") -> SurrogateSimulator:
    """The simulator of a checkpoint file (the shipped default when ``path`` is None).
    ``precision="bfloat16"`` samples with bfloat16 networks
    (:meth:`~calopt.simulation.surrogates.models.Generator.set_sampling_dtype`,
    :meth:`~calopt.simulation.surrogates.models.FlowModel.set_sampling_dtype`)."""
    p = DEFAULT_MODEL if path is None else Path(path)
    if path is None and not p.is_file():
        raise CaloptInputError("the default surrogate model is not installed with this calopt")
    sim = SurrogateSimulator(load_checkpoint(p), source=p.name, precision=precision)
    return sim
