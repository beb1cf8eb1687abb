"""Networks of the generative surrogates (all sized for a CPU).

Every model maps (condition vector c, noise z) to a shower in the representation of
:mod:`calopt.simulation.surrogates.dataset`: ``g`` (N, D) non-negative square-root cell
fractions of unit L2 norm and ``r`` (N,) the standardised ln(E_vis / E).

* :class:`Generator` (``wgan``, and each ``adagan`` component): an MLP
  ``[z, c] -> 256 -> 512 -> 512 -> (D + 1)`` with LeakyReLU(0.2); the first D outputs go
  through a ReLU and are normalised to unit L2 norm (exact zeros are possible, like in
  real showers), the last one is ``r``. Sampling (no gradient) runs the linear layers
  through oneDNN with their activations fused (:class:`InferenceLinear`; 2.2x faster than
  MKL on the AMD EPYC of the benchmarks), in float32 or, by choice, bfloat16
  (:meth:`Generator.set_sampling_dtype`).
* :class:`Critic`: an MLP ``[g, r, c] -> 256 -> 256 -> 1`` with LeakyReLU(0.2), no
  normalisation layers (the gradient penalty is per sample).
* :class:`Regressor`: the LHCb GAN's auxiliary network, an MLP ``[g, ln E_vis] -> 256 -> 128
  -> 5`` predicting the kinematic conditions (ln E, tan theta_x, tan theta_y, x, y) from a
  shower. Trained on real showers, frozen, its error on generated showers is added to the
  generator loss (seeds/002).
* :class:`FlowModel` (``flow``): PCA of ``g`` (``n_pca`` = 64 whitened components, 91 % of
  the variance for lhcb-shashlik) plus ``r`` -> a conditional neural spline flow (zuko NSF,
  4 coupling transforms, hyper-networks 128 x 128, 8 bins; coupling so that sampling is one
  pass; the spline's bins normalised without ``torch.softmax``, :func:`_spline_transform`).
  Decoding: inverse PCA, negative square-root fractions set to 0, renormalised.
  Sampling without gradients takes compiled paths with the same values to float rounding
  (:meth:`FlowModel.flow_inverse`, :func:`_spline_inverse`, the inverse PCA and the
  hyper-networks as oneDNN layers, :mod:`~calopt.simulation.surrogates.decoding`): with them
  and the simulator's shower-by-shower cell pass, the whole simulator takes ~0.035 ms per
  10 GeV photon on one thread, against 0.24 ms with zuko's inverse and the tensor decoding.
  By choice, the hyper-networks' hidden and output layers sample in bfloat16
  (:meth:`FlowModel.set_sampling_dtype`: ~4 us less per shower; the evaluation's figures
  unchanged within their errors).

  The PCA alone loses the diffuse lateral tails and the deepest section: real tail cells are
  mostly 0 with rare large values, so their truncated reconstruction (close to the mean of
  the square roots) carries less energy than the mean of the squares (Jensen). With 64
  components the mean lateral width of lhcb-shashlik photons drops from 23.0 to 17.6 mm and
  the last section from 10.1 to 8.3 % of the energy; even 512 components give 21.2 mm. The
  flow therefore has a *residual model* (as in probabilistic PCA / factor analysis, with a
  diagonal noise that depends on the conditions): per species and ``res_bins`` bins of ln E,
  the mean and standard deviation of every cell's PCA residual on the training data; a
  sample adds ``mean + std * eps`` (one standard normal per cell, interpolated linearly in
  ln E between the bin centres) before the negative values are cut. This restores the
  widths (separation power 0.55 -> 0.03 on the training sample) and the section fractions.

  The flow also has *profile variables* (``sections`` = S > 1; 0 switches them off): the
  longitudinal profile and the section times are modelled explicitly, jointly with the
  shape, as the layer energies of CaloFlow (Krause & Shih, arXiv:2106.05285). They are the
  stick-breaking logits of the section fractions (S - 1 values, ``v_s = f_s / (f_s + ... +
  f_(S-1))``, so the first is the fraction in the first section, which the late conversions
  make small) and the section times about their fit in units of their scatter (S values,
  :func:`calopt.simulation.surrogates.dataset.time_residuals`), standardised. After the
  decoding, every section of ``g`` is rescaled to the fraction the flow drew, and the times
  go to the simulator. Without them the shape-only flow gave the first section too thin a
  tail at small fractions (10 % quantile 0.012 against 0.004), and section times that were
  independent of the shower (mean time spread 0.095 against 0.113 ns).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor, nn

from calopt.simulation.surrogates.conditions import N_KINEMATIC
from calopt.simulation.surrogates.decoding import _decode_cells, no_residual

__all__ = ["PROFILE_ALPHA", "Critic", "FlowModel", "Generator", "Regressor", "mlp", "normalise_g"]

PROFILE_ALPHA = 1e-4  # logit regularisation of the stick-breaking section fractions (CaloFlow uses 1e-6)
RES_CALIBRATION_STEPS = 5  # moment matching of the residual noise (FlowModel.calibrate_residual)
RES_TAIL_FRACTION = 1e-3  # cells below this mean energy fraction are the tails it calibrates
_ONEDNN_BATCH = 2048  # the batch oneDNN's weights are laid out for: the simulator's chunk (simulator.CHUNK)


def mlp(n_in: int, hidden: list[int], n_out: int, slope: float = 0.2) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.LeakyReLU(slope)]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def normalise_g(raw: Tensor) -> Tensor:
    """Non-negative, unit-L2-norm square-root fractions from any real vector."""
    g = torch.relu(raw)
    return g / torch.sqrt((g * g).sum(dim=1, keepdim=True) + 1e-12)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _normalise_rows(raw: np.ndarray, out: np.ndarray) -> None:
    """:func:`normalise_g` of the first ``out.shape[1]`` columns of ``raw``, row by row, into
    ``out`` (float32; the sum of squares in float64): two passes, no temporaries (the tensor
    version took 10 us per wgan shower, this one 2)."""
    n, d = out.shape
    zero = np.float32(0.0)
    for i in range(n):
        r = raw[i]
        acc = 0.0
        for j in range(d):
            v = float(max(r[j], zero))
            acc += v * v
        sc = np.float32(1.0 / np.sqrt(acc + 1e-12))
        o = out[i]
        for j in range(d):
            o[j] = max(r[j], zero) * sc


@numba.njit(cache=True)
def _normalise_rows_bf16(bits: np.ndarray, out: np.ndarray) -> None:
    """:func:`_normalise_rows` of bfloat16 rows given as their bits (uint16), without a float32
    copy of the whole batch: a bfloat16 is the upper half of the float32 of the same value."""
    n = out.shape[0]
    row = np.empty(bits.shape[1], dtype=np.uint32)
    for i in range(n):
        for j in range(bits.shape[1]):
            row[j] = np.uint32(bits[i, j]) << np.uint32(16)
        _normalise_rows(row.view(np.float32).reshape(1, -1), out[i : i + 1])


class InferenceLinear:
    """``act(x W^T + b)`` for sampling (no gradient), with its weights prepared once: through
    oneDNN when torch has it (the weights reordered once for its kernels, the activation fused;
    the result a plain tensor), otherwise ``F.linear`` (MKL). ``act``: None, ``"relu"`` or
    ``("leaky_relu", slope)``. On the AMD EPYC of the benchmarks, MKL's sgemm ran at ~45
    GMAC/s per core and oneDNN at ~90: the wgan's generator took 25 instead of 55 us per
    shower at batch 512 (its output the same to 6e-6). ``onednn=False`` keeps MKL. With
    ``dtype=torch.bfloat16`` (oneDNN only) the weights, the input and the result are
    bfloat16, the products summed in float32 (:meth:`Generator.set_sampling_dtype`,
    :meth:`FlowModel.set_sampling_dtype`)."""

    def __init__(self, weight: Tensor, bias: Tensor, *, act: Any = None, onednn: bool = True,
                 dtype: torch.dtype = torch.float32) -> None:  # fmt: skip
        self.weight, self.bias = weight.detach().contiguous(), bias.detach().contiguous()
        self.dtype = dtype
        self._scalars: list[float] = []
        if act is None:
            self._attr = "none"
        elif act == "relu":
            self._attr = "relu"
        elif isinstance(act, tuple) and act[0] == "leaky_relu":
            self._attr, self._scalars = "leaky_relu", [float(act[1])]
        else:
            raise ValueError(f"InferenceLinear: activation {act!r}, expected None, 'relu' or ('leaky_relu', slope)")
        self.onednn = (onednn and self.weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()
                       and hasattr(torch.ops.mkldnn, "_linear_pointwise"))  # fmt: skip
        if dtype == torch.bfloat16:
            if not (self.onednn and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
                raise ValueError("bfloat16 sampling needs torch's oneDNN with bfloat16 support on this CPU")
            self.bias = self.bias.to(dtype)
        elif dtype != torch.float32:
            raise ValueError(f"InferenceLinear: dtype {dtype}, expected torch.float32 or torch.bfloat16")
        if self.onednn:
            # the layout for batches of a simulator chunk (any batch size is computed right)
            self._w = torch.ops.mkldnn._reorder_linear_weight(self.weight.to(dtype), _ONEDNN_BATCH)

    def __call__(self, x: Tensor) -> Tensor:
        if self.dtype == torch.bfloat16:
            x = x.to(torch.bfloat16).contiguous()
            return torch.ops.mkldnn._linear_pointwise(x, self._w, self.bias, self._attr, self._scalars, "")
        if self.onednn and x.dtype == torch.float32:
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self._w, self.bias, self._attr, self._scalars, "")
        y = torch.nn.functional.linear(x, self.weight, self.bias)
        if self._attr == "relu":
            return torch.relu(y)
        if self._attr == "leaky_relu":
            return torch.nn.functional.leaky_relu(y, self._scalars[0])
        return y


def _activation_of(m: nn.Module) -> Any:
    """The ``act`` of :class:`InferenceLinear` for an activation module."""
    if isinstance(m, nn.ReLU):
        return "relu"
    if isinstance(m, nn.LeakyReLU):
        return ("leaky_relu", m.negative_slope)
    raise ValueError(f"no fused form of the activation {m!r}")


class _InferenceCache(dict[str, Any]):
    """Prepared weights, rebuilt on demand: a copy or a pickle of a module starts empty (oneDNN
    tensors cannot be copied)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _InferenceCache:
        return _InferenceCache()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_InferenceCache, ())


def inference_cache(owner: nn.Module, name: str, tensors: list[Tensor], build: Any) -> Any:
    """``build()``, kept on ``owner`` under ``name`` until one of ``tensors`` changes (their
    version counters and storage): the prepared weights of the sampling paths."""
    key = tuple((t._version, t.data_ptr()) for t in tensors)
    cache = owner.__dict__.setdefault("_inference_cache", _InferenceCache())
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        value = build()
    cache[name] = (key, value)
    return value


def _sampling_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"sampling dtype {dtype}, expected torch.float32 or torch.bfloat16")
    return dtype


class Generator(nn.Module):
    def __init__(self, n_cond: int, n_out: int, nz: int = 32, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.nz = nz
        self.net = mlp(nz + n_cond, hidden or [256, 512, 512], n_out + 1)
        self.sampling_dtype = torch.float32

    def set_sampling_dtype(self, dtype: torch.dtype) -> None:
        """The arithmetic of sampling (no gradient): float32 (the default) or bfloat16 (weights
        and activations rounded to bfloat16's 8 significant bits, products summed in float32;
        on CPUs with AVX512-BF16 or AMX, 1.8x faster networks). Training is unaffected."""
        self.sampling_dtype = _sampling_dtype(dtype)

    @property
    def noise_dim(self) -> int:
        return self.nz

    def forward(self, c: Tensor, z: Tensor, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(g, r) of noise ``z`` for conditions ``c``; when sampling (no gradient) g can be
        written into ``out`` (float32, (N, D): the simulator's buffer, reused from batch to
        batch)."""
        x = torch.cat([z, c], dim=1)
        if torch.is_grad_enabled():
            raw = self.net(x)
        else:  # sampling: the linear layers through InferenceLinear
            name = f"net-{self.sampling_dtype}"
            for layer in inference_cache(self, name, list(self.net.parameters()), self._inference_layers):
                x = layer(x)
            if x.dtype in (torch.float32, torch.bfloat16):
                buf = np.empty((len(x), x.shape[1] - 1), dtype=np.float32) if out is None else out.numpy()
                x = x.contiguous()
                if x.dtype == torch.bfloat16:
                    _normalise_rows_bf16(x.view(torch.int16).numpy().view(np.uint16), buf)
                    return torch.from_numpy(buf), x[:, -1].float()
                _normalise_rows(x.numpy(), buf)
                return torch.from_numpy(buf), x[:, -1]
            raw = x
        g = normalise_g(raw[:, :-1])
        if out is not None and not torch.is_grad_enabled():
            out.copy_(g)
            g = out
        return g, raw[:, -1]

    def _inference_layers(self) -> list[Any]:
        """The linear layers with the activation that follows each fused."""
        mods = list(self.net)
        layers: list[Any] = []
        k = 0
        while k < len(mods):
            m = mods[k]
            fuse = isinstance(m, nn.Linear) and k + 1 < len(mods) and isinstance(mods[k + 1], (nn.ReLU, nn.LeakyReLU))
            if isinstance(m, nn.Linear):
                act = _activation_of(mods[k + 1]) if fuse else None
                layers.append(InferenceLinear(m.weight, m.bias, act=act, dtype=self.sampling_dtype))
            else:
                layers.append(m)
            k += 2 if fuse else 1
        return layers


class Critic(nn.Module):
    def __init__(self, n_cond: int, n_in: int, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.net = mlp(n_in + 1 + n_cond, hidden or [512, 256], 1)

    def forward(self, g: Tensor, r: Tensor, c: Tensor) -> Tensor:
        return self.net(torch.cat([g, r[:, None], c], dim=1))[:, 0]


class Regressor(nn.Module):
    """Predicts the 5 kinematic conditions from (g, standardised ln E_vis)."""

    def __init__(self, n_in: int, n_targets: int = 5, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.net = mlp(n_in + 1, hidden or [256, 128], n_targets)

    def forward(self, g: Tensor, lnevis: Tensor) -> Tensor:
        return self.net(torch.cat([g, lnevis[:, None]], dim=1))


SPLINE_BINS = 8  # of the flow's rational-quadratic splines (zuko's NSF default)
SPLINE_BOUND, SPLINE_SLOPE = 5.0, 1e-3  # zuko's MonotonicRQSTransform defaults (the NSF's)


def _spline_transform() -> Any:
    """zuko's monotonic rational-quadratic spline (Durkan et al. 2019, arXiv:1906.04032) with
    its bin widths and heights normalised by exp and a sum instead of ``torch.softmax``: over a
    last dimension of 8 entries torch's softmax took 15 ns per entry, a third of the flow's
    sampling time, 6x the two plain operations. The parametrisation is zuko's (the same soft
    clamp, bound and minimum slope), so the state dicts of ``zuko.flows.NSF`` load unchanged.
    After the soft clamp the unconstrained widths and heights are within |ln slope| / 2 = 3.5
    of 0, so exp cannot overflow and no maximum need be subtracted."""
    import math

    import torch.nn.functional as F
    from torch.distributions import Transform
    from zuko.transforms import MonotonicRQSTransform

    class SplineTransform(MonotonicRQSTransform):
        def __init__(self, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float = SPLINE_BOUND,
                     slope: float = SPLINE_SLOPE, **kwargs: Any) -> None:  # fmt: skip
            Transform.__init__(self, **kwargs)
            ln = math.log(slope)
            w = torch.exp(widths / (1 + torch.abs(2 * widths / ln)))
            h = torch.exp(heights / (1 + torch.abs(2 * heights / ln)))
            d = derivatives / (1 + torch.abs(derivatives / ln))
            # the knots: cumulative fractions from 0 to 1 mapped onto [-bound, bound]
            self.horizontal = bound * (2 * F.pad(torch.cumsum(w, dim=-1) / w.sum(dim=-1, keepdim=True), (1, 0)) - 1)
            self.vertical = bound * (2 * F.pad(torch.cumsum(h, dim=-1) / h.sum(dim=-1, keepdim=True), (1, 0)) - 1)
            self.derivatives = torch.exp(F.pad(d, (1, 1)))  # slope 1 at the two ends

    return SplineTransform


@functools.cache
def _soft_clamp_scale(n_features: int, n_params: int) -> np.ndarray:
    """1 / zuko's soft-clamp bounds of the ``n_params`` parameters of each of ``n_features``
    splines, flat and parameter-major: widths and heights within |ln slope| / 2 of 0 after the
    clamp, the derivatives within |ln slope|."""
    ln = abs(math.log(SPLINE_SLOPE))
    scale = np.full(n_params, 2.0 / ln, dtype=np.float32)
    scale[2 * SPLINE_BINS :] = 1.0 / ln
    return np.repeat(scale, n_features)


def _spline_inverse_major(phi: Tensor, y: Tensor, cols: np.ndarray, out: Tensor) -> None:
    """:func:`_spline_inverse` of the parameters ``phi`` (N, (3K - 1) F), parameter-major, at
    the columns ``cols`` (F,) of ``y``, into the same columns of ``out`` (N, >= F), in place."""
    f = len(cols)
    p = phi.float().contiguous()  # a bfloat16 hyper-network's output to float32
    _spline_inverse(p.numpy(), _soft_clamp_scale(f, p.shape[1] // f), y.contiguous().numpy(), cols, out.numpy(),
                    SPLINE_BOUND)  # fmt: skip


_EXP_EIGHTH = (1.0 / np.cumprod(np.r_[1.0, np.arange(1.0, 8.0)])).astype(np.float32)  # 1 / q!, q = 0..7


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _clamped_exp(phi: np.ndarray, scale: np.ndarray, e: np.ndarray) -> None:
    """zuko's soft clamp and exp, ``e = exp(phi / (1 + |phi| scale))``, over a flat float32
    block, without a branch (vectorised: numpy's error model drops the division's zero test).
    The clamped values are below |ln slope| = 6.9 in size, so ``exp(x / 8)^8`` with exp(x / 8)
    to order 7 is exact to float32 rounding, 7e-7 at most (torch's float32 operations: 5e-7).
    1 us per flow shower; the 5 torch operations, with their 1.7 MB temporaries, took 8."""
    c = _EXP_EIGHTH
    for k in range(len(phi)):
        x = phi[k]
        r = x / (np.float32(1.0) + abs(x) * scale[k]) * np.float32(0.125)
        p = c[7]
        for q in range(6, -1, -1):  # Horner
            p = p * r + c[q]
        p = p * p
        p = p * p
        e[k] = p * p


@numba.njit(cache=True, error_model="numpy")
def _spline_inverse(phi: np.ndarray, scale: np.ndarray, y: np.ndarray, cols: np.ndarray, out: np.ndarray,
                    bound: float) -> None:  # fmt: skip
    """The inverse of :func:`_spline_transform`'s spline for every (shower, feature), from its
    unconstrained parameters ``phi`` (N, (3K - 1) F), parameter-major per shower (K widths,
    K heights, K - 1 inner knot derivatives, each for the F features), soft-clamped and
    exponentiated a shower at a time (:func:`_clamped_exp`, ``scale`` from
    :func:`_soft_clamp_scale`), at the columns ``cols`` (F,) of ``y``, into the same columns of
    ``out`` (a coupling's half; torch's indexing of them took 2 us per flow shower). zuko's
    formulas (the knots, the bin search, the quadratic of Durkan et al. eq. 6-8 in its stable
    root), in float64; the bin is found against the unnormalised cumulative heights. Every
    step runs over the features of a shower without a branch (vectorised; a feature outside
    the knots, where the spline is the identity, is computed too and then replaced): 3.7
    instead of 7.7 us per flow shower with a branch and a bin search per feature, the same
    values."""
    n, f = len(y), len(cols)
    K = (phi.shape[1] // f + 1) // 3
    e = np.empty(phi.shape[1], dtype=np.float32)
    sw, sh, cum, level, nb = np.empty(f), np.empty(f), np.empty(f), np.empty(f), np.empty(f, dtype=np.int64)
    cw, ch, wb, hb, d0, d1 = np.empty(f), np.empty(f), np.empty(f), np.empty(f), np.empty(f), np.empty(f)
    yi, o = np.empty(f), np.empty(f)
    for i in range(n):
        _clamped_exp(phi[i], scale, e)
        w, h, d = e[: K * f], e[K * f : 2 * K * f], e[2 * K * f :]
        for j in range(f):
            yi[j] = y[i, cols[j]]
        sw[:] = 0.0
        sh[:] = 0.0
        for k in range(K):
            for j in range(f):
                sw[j] += w[k * f + j]
                sh[j] += h[k * f + j]
        # the bin of y: the number of inner knots below it (zuko counts vertical knots < y)
        for j in range(f):
            level[j] = sh[j] * (yi[j] + bound) / (2.0 * bound)
            cum[j] = 0.0
            nb[j] = 0
        for k in range(K - 1):
            for j in range(f):
                cum[j] += h[k * f + j]
                nb[j] += cum[j] < level[j]
        # its widths, heights and end slopes (1 at the two outer knots)
        cw[:] = 0.0
        ch[:] = 0.0
        wb[:] = 0.0
        hb[:] = 0.0
        for j in range(f):
            d0[j] = 1.0 if nb[j] == 0 else 0.0
            d1[j] = 1.0 if nb[j] == K - 1 else 0.0
        for k in range(K):
            for j in range(f):
                below, at = (1.0 if k < nb[j] else 0.0), (1.0 if k == nb[j] else 0.0)
                cw[j] += below * w[k * f + j]
                ch[j] += below * h[k * f + j]
                wb[j] += at * w[k * f + j]
                hb[j] += at * h[k * f + j]
        for k in range(K - 1):
            for j in range(f):
                d0[j] += d[k * f + j] if k + 1 == nb[j] else 0.0
                d1[j] += d[k * f + j] if k == nb[j] else 0.0
        for j in range(f):
            yv = yi[j]
            x0 = bound * (2.0 * cw[j] / sw[j] - 1.0)
            x1 = bound * (2.0 * (cw[j] + wb[j]) / sw[j] - 1.0)
            y0 = bound * (2.0 * ch[j] / sh[j] - 1.0)
            y1 = bound * (2.0 * (ch[j] + hb[j]) / sh[j] - 1.0)
            s = (y1 - y0) / (x1 - x0)
            dy = yv - y0
            qa = (y1 - y0) * (s - d0[j]) + dy * (d0[j] + d1[j] - 2.0 * s)
            qb = (y1 - y0) * d0[j] - dy * (d0[j] + d1[j] - 2.0 * s)
            qc = -s * dy
            z = 2.0 * qc / (-qb - np.sqrt(qb * qb - 4.0 * qa * qc))
            inside = -bound < yv < bound
            o[j] = x0 + z * (x1 - x0) if inside else yv  # outside the knots: the identity
        for j in range(f):
            out[i, cols[j]] = o[j]


class FlowModel(nn.Module):
    """Conditional NSF on (whitened PCA of g, r), plus the per-cell residual model
    (``res_bins`` > 0; ``n_species`` rows of statistics)."""

    pca_mean: Tensor
    pca_components: Tensor
    pca_scale: Tensor
    res_centres: Tensor
    res_mean: Tensor
    res_std: Tensor
    prof_mean: Tensor
    prof_std: Tensor

    def __init__(
        self,
        n_cond: int,
        n_in: int,
        n_pca: int = 64,
        transforms: int = 4,
        hidden: list[int] | None = None,
        res_bins: int = 0,
        n_species: int = 1,
        sections: int = 0,
    ) -> None:
        import zuko

        super().__init__()
        self.n_pca = n_pca
        self.n_in = n_in
        self.n_cond = n_cond
        self.res_bins = res_bins
        self.n_species = n_species
        self.sections = sections
        self.n_profile = 2 * sections - 1 if sections > 1 else 0
        self.sampling_dtype = torch.float32
        self.register_buffer("pca_mean", torch.zeros(n_in))
        self.register_buffer("pca_components", torch.zeros(n_pca, n_in))
        self.register_buffer("pca_scale", torch.ones(n_pca))
        if res_bins > 0:
            self.register_buffer("res_centres", torch.zeros(res_bins))
            self.register_buffer("res_mean", torch.zeros(n_species, res_bins, n_in))
            self.register_buffer("res_std", torch.zeros(n_species, res_bins, n_in))
        if self.n_profile:
            self.register_buffer("prof_mean", torch.zeros(self.n_profile))
            self.register_buffer("prof_std", torch.ones(self.n_profile))
        # zuko's NSF (8 bins), with the spline of _spline_transform: the same networks and state dict
        self.flow: Any = zuko.flows.MAF(
            features=n_pca + 1 + self.n_profile,
            context=n_cond,
            transforms=transforms,
            hidden_features=hidden or [128, 128],
            passes=2,
            univariate=_spline_transform(),
            shapes=[(SPLINE_BINS,), (SPLINE_BINS,), (SPLINE_BINS - 1,)],
        )

    @property
    def noise_dim(self) -> int:
        return self.n_pca + 1 + self.n_profile + (self.n_in if self.res_bins > 0 else 0)

    def set_sampling_dtype(self, dtype: torch.dtype) -> None:
        """The arithmetic of the hyper-networks' hidden and output layers when sampling (no
        gradient), as :meth:`Generator.set_sampling_dtype`; their first layers, the splines,
        the inverse PCA and the decoding stay in float32. Training is unaffected."""
        self.sampling_dtype = _sampling_dtype(dtype)

    # --------------------------------------------------------------- profile variables
    def section_fractions(self, g: Tensor) -> Tensor:
        """(N, S) fractions of sum g^2 per section (the cells are ordered section by section)."""
        gg = (g * g).reshape(len(g), self.sections, -1).sum(dim=2)
        return gg / torch.clamp(gg.sum(dim=1, keepdim=True), min=1e-12)

    def _raw_profile(self, g: Tensor, tau: Tensor) -> Tensor:
        """Stick-breaking logits of the section fractions, ``logit(PROFILE_ALPHA + (1 - 2
        PROFILE_ALPHA) v_s)`` with ``v_s = f_s / (f_s + ... + f_(S-1))`` for s < S - 1 (CaloFlow's
        layer-energy variables, arXiv:2106.05285), and the section-time normals ``tau``."""
        f = self.section_fractions(g).double()
        rest = torch.flip(torch.cumsum(torch.flip(f, [1]), 1), [1])[:, :-1]  # f_s + ... + f_(S-1)
        v = torch.where(rest > 0, f[:, :-1] / torch.clamp(rest, min=1e-300), torch.ones_like(rest))
        a = PROFILE_ALPHA
        u = torch.logit(a + (1 - 2 * a) * torch.clamp(v, 0.0, 1.0))
        return torch.cat([u.float(), tau], dim=1)

    def fit_profile(self, g: Tensor, tau: Tensor) -> None:
        """Mean and std of the profile variables on the training data (call before training)."""
        x = self._raw_profile(g, tau)
        self.prof_mean.copy_(x.mean(dim=0))
        self.prof_std.copy_(torch.clamp(x.std(dim=0), min=1e-6))

    def _profile_targets(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """The section fractions (N, S; float64) and the section-time normals tau (N, S) of
        the standardised profile variables ``p``."""
        S, a = self.sections, PROFILE_ALPHA
        x = p * self.prof_std + self.prof_mean
        v = torch.clamp((torch.sigmoid(x[:, : S - 1].double()) - a) / (1 - 2 * a), 0.0, 1.0)
        rest = torch.ones(len(p), dtype=torch.float64)
        fr = []
        for s in range(S - 1):
            fr.append(v[:, s] * rest)
            rest = rest - fr[-1]
        fr.append(torch.clamp(rest, min=0.0))
        return torch.stack(fr, dim=1), x[:, S - 1 :]

    def _apply_profile(self, g: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """Rescale the sections of non-negative ``g`` to the fractions of the standardised
        profile variables ``p``; returns (g, tau)."""
        S = self.sections
        target, tau = self._profile_targets(p)
        gs = g.reshape(len(g), S, -1)
        now = (gs.double() ** 2).sum(dim=2)
        # a section the decoding left empty stays empty; normalise_g renormalises the rest
        scale = torch.where(now > 0, torch.sqrt(target / torch.clamp(now, min=1e-300)), torch.zeros_like(now))
        return (gs * scale.float()[:, :, None]).reshape(len(g), -1), tau

    def species_row(self, c: Tensor) -> Tensor:
        """Row of the residual statistics: the species one-hot columns after the 5 kinematic ones."""
        if self.n_species == 1:
            return torch.zeros(len(c), dtype=torch.long)
        return torch.argmax(c[:, N_KINEMATIC : N_KINEMATIC + self.n_species], dim=1)

    def fit_residual(self, g: Tensor, c: Tensor) -> None:
        """Per species and ln E bin (equal-population bins of ``c[:, 0]``) mean and std of the
        PCA residual of every cell (call after :meth:`fit_pca`)."""
        k = self.res_bins
        res = g - (self.pca_mean + (g - self.pca_mean) @ self.pca_components.T @ self.pca_components)
        from calopt.simulation.surrogates.calibration import ln_e_bins

        rows = self.species_row(c)
        which_np, centres = ln_e_bins(c[:, 0].double().numpy(), k)
        which = torch.from_numpy(which_np)
        self.res_centres.copy_(torch.from_numpy(centres).float())
        for p in range(self.n_species):
            for b in range(k):
                sel = (rows == p) & (which == b)
                if int(sel.sum()) < 2:  # species absent from this bin: fall back to all species
                    sel = which == b
                self.res_mean[p, b] = res[sel].mean(dim=0)
                self.res_std[p, b] = res[sel].std(dim=0)

    def calibrate_residual(self, g: Tensor, r: Tensor, c: Tensor, tau: Tensor | None = None, *,
                           iterations: int = RES_CALIBRATION_STEPS, tail: float = RES_TAIL_FRACTION,
                           seed: int = 0x5245) -> list[float]:  # fmt: skip
        """Scale the residual std of the tail cells so that the decoded showers keep their
        mean energy fraction: a Gaussian residual cut at zero carries less energy
        (E[relu(X)^2] < E[X^2]) than the sparse real one, and the showers come out narrow
        (lhcb-shashlik photons, aligned: 21.8 mm against 24.2 mm at 1-3 GeV). Per species and
        ln E bin, for the cells whose mean fraction is below ``tail``, the std is multiplied
        by sqrt(real / decoded mean of g^2) (at most 2x per step), ``iterations`` times, with
        the training showers encoded and decoded with fixed noise. Returns the mean |ln| of
        the remaining ratio after each step."""
        from calopt.simulation.surrogates.calibration import ln_e_bins

        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            x = self.encode(g, r, tau)
            eps = torch.randn(len(g), self.n_in, generator=gen)
            rows = self.species_row(c)
            which = torch.from_numpy(ln_e_bins(c[:, 0].double().numpy(), self.res_bins)[0])
            groups = [(p, b, (rows == p) & (which == b)) for p in range(self.n_species) for b in range(self.res_bins)]
            groups = [(p, b, sel) for p, b, sel in groups if int(sel.sum()) >= 20]
            real = {(p, b): (g[sel] ** 2).mean(dim=0) for p, b, sel in groups}
            history = []
            for _ in range(iterations):
                dec = self.decode(x, c, eps)[0]
                dev = []
                for p, b, sel in groups:
                    want = real[(p, b)]
                    have = (dec[sel] ** 2).mean(dim=0)
                    cells = (want < tail) & (want > 0) & (have > 0)
                    ratio = torch.clamp(want / torch.clamp(have, min=1e-30), 0.25, 4.0)
                    self.res_std[p, b] *= torch.where(cells, torch.sqrt(ratio), torch.ones_like(ratio))
                    dev.append(float(torch.log(ratio[cells]).abs().mean()) if bool(cells.any()) else 0.0)
                history.append(round(sum(dev) / max(len(dev), 1), 5))
        return history

    def _residual_bins(self, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(species row, lower bin, upper bin, weight of the upper bin) of the linear
        interpolation in ln E between the residual model's bin centres."""
        x = self.res_centres
        k = len(x)
        rows = self.species_row(c)
        if k == 1:
            zero = torch.zeros(len(c), dtype=torch.long)
            return rows, zero, zero, torch.zeros(len(c))
        le = torch.clamp(c[:, 0], float(x[0]), float(x[-1]))
        hi = torch.clamp(torch.searchsorted(x.contiguous(), le.contiguous()), 1, k - 1)
        lo = hi - 1
        return rows, lo, hi, (le - x[lo]) / torch.clamp(x[hi] - x[lo], min=1e-9)

    def residual(self, c: Tensor, eps: Tensor) -> Tensor:
        """``mean + std * eps`` interpolated linearly in ln E between the bin centres (as one
        matrix product with the interpolation weights of the (species, bin) rows)."""
        k = self.res_bins
        rows, lo, hi, t = self._residual_bins(c)
        w = torch.zeros(len(c), self.n_species * k)
        i = torch.arange(len(c))
        w[i, rows * k + lo] = 1 - t
        w[i, rows * k + hi] += t
        d = self.res_mean.shape[-1]
        return w @ self.res_mean.reshape(-1, d) + (w @ self.res_std.reshape(-1, d)) * eps

    def fit_pca(self, g: Tensor) -> float:
        """Set the PCA from training ``g``; returns the fraction of variance kept."""
        mean = g.mean(dim=0)
        _, s, vh = torch.linalg.svd(g - mean, full_matrices=False)
        k = self.n_pca
        self.pca_mean.copy_(mean)
        self.pca_components.copy_(vh[:k])
        self.pca_scale.copy_(s[:k] / (len(g) - 1) ** 0.5)
        return float((s[:k] ** 2).sum() / (s**2).sum())

    def encode(self, g: Tensor, r: Tensor, tau: Tensor | None = None) -> Tensor:
        y = (g - self.pca_mean) @ self.pca_components.T / self.pca_scale
        parts = [y, r[:, None]]
        if self.n_profile:
            if tau is None:
                raise ValueError("this flow models the section times: encode needs tau")
            parts.append((self._raw_profile(g, tau) - self.prof_mean) / self.prof_std)
        return torch.cat(parts, dim=1)

    def decode(self, x: Tensor, c: Tensor | None = None, eps: Tensor | None = None,
               out: Tensor | None = None) -> tuple[Tensor, ...]:  # fmt: skip
        """(g, r) from flow space, and the section-time normals tau when the flow has the
        profile variables; when sampling (no gradient) g can be written into ``out``."""
        k = self.n_pca
        if not (self.res_bins > 0 and c is not None and eps is not None):
            c = eps = None  # no residual model
        if not torch.is_grad_enabled():
            return self._decode_compiled(x, c, eps, out)
        g = self.pca_mean + (x[:, :k] * self.pca_scale) @ self.pca_components
        if c is not None and eps is not None:
            g = g + self.residual(c, eps)
        if not self.n_profile:
            return normalise_g(g), x[:, k]
        g, tau = self._apply_profile(torch.relu(g), x[:, k + 1 :])
        return normalise_g(g), x[:, k], tau

    def inverse_pca(self, x: Tensor) -> Tensor:
        """The inverse PCA of flow-space ``x`` (no gradient): (N, D), one oneDNN layer, the scale
        folded into the weights and the mean the bias (2.8 instead of 21 us per shower at batch
        512)."""
        pca = inference_cache(self, "pca", [self.pca_components, self.pca_scale, self.pca_mean],
                              lambda: InferenceLinear((self.pca_components.T * self.pca_scale).contiguous(),
                                                      self.pca_mean))  # fmt: skip
        return pca(x[:, : self.n_pca])

    def decode_inputs(self, x: Tensor, c: Tensor | None, *, pca: bool = True) -> tuple[Any, ...]:
        """What the compiled decoding takes from flow space ``x`` (no gradient): the inverse PCA
        ``base`` (N, D) (:meth:`inverse_pca`; None unless ``pca``), ``r`` (N,), the section fractions
        ``target`` (N, S) float64 and the section-time normals ``tau`` (N, S) (S = 1 and None
        without profile variables), and the residual statistics of each shower (``res_mean``,
        ``res_std`` (species, bins, D) and per shower the species row, the two bins and the
        upper one's weight, as numpy arrays; all zero without ``c`` or a residual model)."""
        k = self.n_pca
        base = self.inverse_pca(x) if pca else None
        n, d = len(x), self.n_in
        res: tuple[np.ndarray, ...]
        if self.res_bins > 0 and c is not None:
            rows, lo, hi, t = (v.numpy() for v in self._residual_bins(c))
            res = (self.res_mean.numpy(), self.res_std.numpy(), rows, lo, hi, t.astype(np.float64))
        else:
            res = no_residual(n, d)
        if self.n_profile:
            target, tau = self._profile_targets(x[:, k + 1 :])
        else:
            target, tau = torch.ones(n, 1, dtype=torch.float64), None
        return base, x[:, k], target, tau, res

    def _decode_compiled(self, x: Tensor, c: Tensor | None, eps: Tensor | None,
                         g_out: Tensor | None = None) -> tuple[Tensor, ...]:  # fmt: skip
        """:meth:`decode` without gradients, in one compiled pass per shower after the inverse
        PCA (:meth:`decode_inputs`, :func:`_decode_cells`): the residual, the cut at 0, the
        section fractions and the normalisation; the same values to float rounding as the
        tensor operations."""
        base, r, target, tau, (res_mean, res_std, rows, lo, hi, t) = self.decode_inputs(x, c)
        n, d = base.shape
        e = eps.numpy() if eps is not None else np.zeros((n, d), np.float32)
        out = np.empty((n, d), dtype=np.float32) if g_out is None else g_out.numpy()
        _decode_cells(base.numpy(), res_mean, res_std, e, rows, lo, hi, t, target.numpy(), out)
        g = torch.from_numpy(out)
        return (g, r) if tau is None else (g, r, tau)

    def log_prob(self, g: Tensor, r: Tensor, c: Tensor, tau: Tensor | None = None) -> Tensor:
        return self.flow(c).log_prob(self.encode(g, r, tau))

    def forward(self, c: Tensor, z: Tensor, out: Tensor | None = None) -> tuple[Tensor, ...]:
        """(g, r[, tau]) of the latent ``z``; when sampling g can be written into ``out``."""
        k = self.n_pca + 1 + self.n_profile
        x = self.flow_inverse(c, z[:, :k])
        return self.decode(x, c, z[:, k:] if self.res_bins > 0 else None, out=out)

    def flow_inverse(self, c: Tensor, z: Tensor) -> Tensor:
        """The flow's inverse (latent ``z`` -> flow space), as ``self.flow(c).transform.inv(z)``
        but without its redundant work. zuko inverts each coupling transform in two full
        passes: the hyper-network and the splines for every feature twice, although the
        first pass only fixes the first half of the features (whose parameters depend on the
        context alone) and the second only the other half. Here each pass computes the
        output rows and splines of its half only, and the second reuses the first's context
        term: the same values to float rounding, half the output layer and splines. With
        gradients enabled (differentiable in the weights) it is zuko's inverse."""
        if torch.is_grad_enabled():
            return self.flow(c).transform.inv(z)
        x = z
        for t in reversed(self.flow.transform.transforms):
            x = self._coupling_inverse(t, c, x)
        return x

    def _coupling_inverse(self, t: Any, c: Tensor, y: Tensor) -> Tensor:
        (first_c, w_x, g0), hidden, halves, acts = self._coupling_weights(t)
        h_c = first_c(c)  # the context's part of the first layer
        x = torch.empty_like(y)
        for half, (out, cols) in enumerate(halves):
            h = acts[0](h_c if half == 0 else torch.addmm(h_c, torch.index_select(x, 1, g0), w_x))
            for lin in hidden:  # their activation fused
                h = lin(h)
            _spline_inverse_major(out(h), y, cols, x)  # parameter-major rows
        return x

    @staticmethod
    def spline_inverse(phi: Tensor, y: Tensor) -> Tensor:
        """The inverse of the splines with unconstrained parameters ``phi`` (N, F, 3K - 1) at
        ``y`` (N, F), compiled (:func:`_spline_inverse`; no gradient)."""
        out = torch.empty(tuple(y.shape))
        _spline_inverse_major(phi.transpose(1, 2).flatten(1), y, np.arange(y.shape[1]), out)
        return out

    def _coupling_weights(self, t: Any) -> tuple[Any, ...]:
        """The masked weights of a coupling transform's hyper-network, split by half, cached
        until its parameters change."""
        lin = [m for m in t.hyper if isinstance(m, nn.Linear)]
        acts = [m for m in t.hyper if not isinstance(m, nn.Linear)]
        if t.passes != 2:
            raise ValueError("flow_inverse needs coupling transforms (passes=2)")

        def build() -> tuple[Any, ...]:
            w = [m.get_buffer("mask") * m.weight for m in lin]
            b = [m.bias for m in lin]
            n = len(t.order)
            g0 = torch.nonzero(t.order == 0).flatten()
            g1 = torch.nonzero(t.order == 1).flatten()
            if bool(w[0][:, g1].any()):  # the second half feeds nothing (a MADE of two passes)
                raise ValueError("flow_inverse: the second half of the features feeds the hyper-network")

            def rows(idx: Tensor) -> Tensor:  # parameter-major: parameter k of every feature, k = 0, 1, ...
                return (idx[None, :] * t.total + torch.arange(t.total)[:, None]).reshape(-1)

            # oneDNN, the activations of the hidden layers fused: 29-48 us per shower for the whole
            # inverse at batch 512 against 43-51 with MKL (the same values here)
            fused = [_activation_of(a) for a in acts[1:]]
            first = (InferenceLinear(w[0][:, n:], b[0]), w[0][:, g0].T.contiguous(), g0)
            dt = self.sampling_dtype
            hidden = [InferenceLinear(wi, bi, act=f, dtype=dt) for wi, bi, f in zip(w[1:-1], b[1:-1], fused)]
            halves = [(InferenceLinear(w[-1][rows(g)], b[-1][rows(g)], dtype=dt), g.numpy()) for g in (g0, g1)]
            return first, hidden, halves, acts

        params = [p for m in lin for p in (m.weight, m.bias)]
        return inference_cache(self, f"coupling-{id(t)}-{self.sampling_dtype}", params, build)


def build_sampler(model_type: str, arch: dict[str, Any]) -> nn.Module:
    """The sampling network(s) of a model type from its stored architecture settings."""
    if model_type == "wgan":
        return Generator(arch["n_cond"], arch["n_out"], arch["nz"], arch["g_hidden"])
    if model_type == "flow":
        return FlowModel(
            arch["n_cond"],
            arch["n_out"],
            arch["n_pca"],
            arch["transforms"],
            arch["flow_hidden"],
            arch.get("res_bins", 0),  # checkpoints before the residual model have none
            arch.get("n_species", 1),
            arch.get("sections", 0),  # checkpoints before the profile variables have none
        )
    if model_type == "adagan":
        return nn.ModuleList(
            [Generator(arch["n_cond"], arch["n_out"], arch["nz"], arch["g_hidden"]) for _ in range(arch["components"])]
        )
    raise ValueError(model_type)
