"""The ``flow`` surrogate: a conditional neural spline flow on the PCA of a shower.

Model (:class:`FlowModel`): the square-root cell fractions ``g`` of a shower are compressed to
``n_pca`` whitened PCA components (64 keep 91 % of the variance for lhcb-shashlik); these, the
standardised response ``r`` and, with ``sections`` = S > 1, the *profile variables* are the
features of a conditional flow built from zuko's parts: ``transforms`` pairs of coupling
transforms with rational-quadratic splines (Durkan et al. 2019, arXiv:1906.04032; 8 bins,
zuko's bound and minimum slope), the features split in halves A and B (alternately the first
and the second half), B transformed given (A, conditions), then A given (B, conditions).
Sampling inverts each coupling in one pass.

The PCA alone loses the diffuse lateral tails and the deepest section: real tail cells are
mostly 0 with rare large values, so their truncated reconstruction (close to the mean of the
square roots) carries less energy than the mean of the squares (Jensen). With 64 components the
mean lateral width of lhcb-shashlik photons drops from 23.0 to 17.6 mm and the last section
from 10.1 to 8.3 % of the energy. The flow therefore has a *residual model* (as in
probabilistic PCA, with a diagonal noise that depends on the conditions): per species and
``res_bins`` bins of ln E, the mean and standard deviation of every cell's PCA residual on the
training data; a sample adds ``mean + std * eps`` (one standard normal per cell, interpolated
linearly in ln E between the bin centres) before the negative values are cut
(:meth:`FlowModel.calibrate_residual` then matches the tail cells' mean energy).

The profile variables model the longitudinal profile and the section times explicitly, jointly
with the shape, as the layer energies of CaloFlow (Krause & Shih, arXiv:2106.05285): the
stick-breaking logits of the section fractions (S - 1 values, ``v_s = f_s / (f_s + ... +
f_(S-1))``) and the section times about their fit in units of their scatter (S values,
:func:`~calopt.simulation.surrogates.dataset.time_residuals`), standardised. After the decoding
every section of ``g`` is rescaled to the fraction the flow drew, and the times go to the
simulator. Without them the shape-only flow gave the first section too thin a tail at small
fractions (10 % quantile 0.012 against 0.004) and section times independent of the shower.

Checkpoints of format version 1 and 2 hold the flow as zuko masked autoregressive transforms of
two passes; :func:`coupling_state` converts them exactly (the first half's parameters depended
on the conditions alone: the A transform's weights on B are zero).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import zuko
from torch import Tensor, nn
from torch.distributions import Transform
from zuko.transforms import MonotonicRQSTransform

from calopt.simulation.surrogates.calibration import ln_e_bins
from calopt.simulation.surrogates.conditions import N_KINEMATIC
from calopt.simulation.surrogates.noise import normals
from calopt.simulation.surrogates.resume import TrainingState
from calopt.simulation.surrogates.types import (
    RunningMean,
    Sample,
    SurrogateType,
    Trained,
    TrainingData,
)

__all__ = ["FLOW", "PROFILE_ALPHA", "FlowModel", "SplineTransform", "coupling_flow", "coupling_state"]

SPLINE_BINS = 8  # zuko's NSF default
SPLINE_BOUND, SPLINE_SLOPE = 5.0, 1e-3  # zuko's MonotonicRQSTransform defaults
SPLINE_SHAPES = [(SPLINE_BINS,), (SPLINE_BINS,), (SPLINE_BINS - 1,)]
PROFILE_ALPHA = 1e-4  # logit regularisation of the stick-breaking section fractions (CaloFlow uses 1e-6)
RES_CALIBRATION_STEPS = 5  # moment matching of the residual noise (FlowModel.calibrate_residual)
RES_TAIL_FRACTION = 1e-3  # cells below this mean energy fraction are the tails it calibrates


class SplineTransform(MonotonicRQSTransform):
    """zuko's monotonic rational-quadratic spline, its knots computed with exp and a sum instead
    of ``torch.softmax``: over a last dimension of 8 entries torch's CPU softmax is ~12x slower
    than the two plain operations, and would take half the flow's sampling time. zuko's
    parametrisation (soft clamp, bound, minimum slope) and its ``_call``, ``_inverse`` and
    Jacobian are unchanged; the state dicts are those of zuko's own spline. After the soft
    clamp the unconstrained widths and heights lie within |ln slope| / 2 = 3.5 of 0, so exp
    cannot overflow."""

    def __init__(self, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float = SPLINE_BOUND,
                 slope: float = SPLINE_SLOPE, **kwargs: Any) -> None:  # fmt: skip
        Transform.__init__(self, **kwargs)
        ln = math.log(slope)
        w = torch.exp(widths / (1 + torch.abs(2 * widths / ln)))
        h = torch.exp(heights / (1 + torch.abs(2 * heights / ln)))
        d = derivatives / (1 + torch.abs(derivatives / ln))
        pad = torch.nn.functional.pad
        self.horizontal = bound * (2 * pad(torch.cumsum(w, dim=-1) / w.sum(dim=-1, keepdim=True), (1, 0)) - 1)
        self.vertical = bound * (2 * pad(torch.cumsum(h, dim=-1) / h.sum(dim=-1, keepdim=True), (1, 0)) - 1)
        self.derivatives = torch.exp(pad(d, (1, 1)))  # slope 1 at the two ends


def _halves(features: int, k: int) -> Tensor:
    """The first half A of the features in pair ``k``: the first ceil(F / 2) features for even
    k, the last ones for odd k (the order of zuko's MAF with two passes)."""
    order = torch.arange(features) if k % 2 == 0 else torch.flipud(torch.arange(features))
    return order // math.ceil(features / 2) == 0


def coupling_flow(features: int, context: int, transforms: int, hidden: list[int]) -> zuko.flows.Flow:
    """``transforms`` pairs of zuko coupling transforms (B given A, then A given B) with
    :class:`SplineTransform` and a standard normal base."""
    layers = []
    for k in range(transforms):
        a = _halves(features, k)
        layers += [zuko.flows.GeneralCouplingTransform(features, context, mask=const, univariate=SplineTransform,
                                                       shapes=SPLINE_SHAPES, hidden_features=hidden)
                   for const in (a, ~a)]  # fmt: skip
    base = zuko.flows.UnconditionalDistribution(zuko.distributions.DiagNormal, loc=torch.zeros(features),
                                                scale=torch.ones(features), buffer=True)  # fmt: skip
    return zuko.flows.Flow(layers, base)


def coupling_state(state: dict[str, Tensor], features: int, context: int) -> dict[str, Tensor]:
    """A flow state of format versions 1-2 (zuko MAF, two passes, masked hyper-networks) in the
    layout of :func:`coupling_flow`, exactly: each masked transform becomes the pair (B given A
    and the conditions, A given the conditions, its weights on B zero), its masks folded into
    the weights and its output rows split by half."""
    out = {k: v for k, v in state.items() if not k.startswith("flow.transform.")}
    total = 3 * SPLINE_BINS - 1
    k = 0
    while f"flow.transform.transforms.{k}.order" in state:
        pre = f"flow.transform.transforms.{k}"
        a = state[f"{pre}.order"] == 0
        layers = sorted(int(name.split(".")[-2]) for name in state if name.startswith(f"{pre}.hyper.")
                        and name.endswith(".weight"))  # fmt: skip
        w = [state[f"{pre}.hyper.{i}.weight"] * state[f"{pre}.hyper.{i}.mask"] for i in layers]
        b = [state[f"{pre}.hyper.{i}.bias"] for i in layers]
        for j, const in enumerate((a, ~a)):
            new = f"flow.transform.transforms.{2 * k + j}.hyper"
            inputs = torch.cat([torch.nonzero(const).flatten(), features + torch.arange(context)])
            rows = (torch.nonzero(~const).flatten()[:, None] * total + torch.arange(total)).reshape(-1)
            out[f"flow.transform.transforms.{2 * k + j}.mask"] = const.clone()
            for i, wi, bi in zip(layers, w, b):
                first, last = i == layers[0], i == layers[-1]
                wi = wi[:, inputs] if first else wi
                out[f"{new}.{i}.weight"] = (wi[rows] if last else wi).contiguous()
                out[f"{new}.{i}.bias"] = (bi[rows] if last else bi).contiguous()
        k += 1
    return out


class FlowModel(nn.Module):
    """Conditional spline flow on (whitened PCA of g, r, profile variables) plus the per-cell
    residual model (``res_bins`` > 0; ``n_species`` rows of statistics); see the module doc."""

    pca_mean: Tensor
    pca_components: Tensor
    pca_scale: Tensor
    res_centres: Tensor
    res_mean: Tensor
    res_std: Tensor
    prof_mean: Tensor
    prof_std: Tensor

    def __init__(self, n_cond: int, n_in: int, n_pca: int = 64, transforms: int = 4, hidden: list[int] | None = None,
                 res_bins: int = 0, n_species: int = 1, sections: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.n_pca, self.n_in, self.n_cond = n_pca, n_in, n_cond
        self.res_bins, self.n_species, self.sections = res_bins, n_species, sections
        self.n_profile = 2 * sections - 1 if sections > 1 else 0
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
        self.flow = coupling_flow(self.n_features, n_cond, transforms, hidden or [128, 128])

    @property
    def n_features(self) -> int:
        """The flow's features: PCA components, r and the profile variables."""
        return self.n_pca + 1 + self.n_profile

    # ------------------------------------------------------------------ profile variables
    def section_fractions(self, g: Tensor) -> Tensor:
        """(N, S) fractions of sum g^2 per section (the cells are ordered section by section)."""
        gg = (g * g).reshape(len(g), self.sections, -1).sum(dim=2)
        return gg / torch.clamp(gg.sum(dim=1, keepdim=True), min=1e-12)

    def _raw_profile(self, g: Tensor, tau: Tensor) -> Tensor:
        """Stick-breaking logits of the section fractions, ``logit(PROFILE_ALPHA + (1 - 2
        PROFILE_ALPHA) v_s)`` for s < S - 1, and the section-time normals ``tau``."""
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
        """The section fractions (N, S; float64) and the section-time normals tau (N, S) of the
        standardised profile variables ``p``."""
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
        """Rescale, in place, the sections of non-negative ``g`` (N, D) to the fractions of the
        standardised profile variables ``p`` (a section the decoding left empty stays empty);
        (g, tau)."""
        target, tau = self._profile_targets(p)
        gs = g.view(len(g), self.sections, -1)
        now = torch.linalg.vector_norm(gs, dim=2, dtype=torch.float64) ** 2
        scale = torch.where(now > 0, torch.sqrt(target / torch.clamp(now, min=1e-300)), torch.zeros_like(now))
        gs.mul_(scale.float()[:, :, None])
        return g, tau

    # ------------------------------------------------------------------ PCA and residual model
    def species_row(self, c: Tensor) -> Tensor:
        """Row of the residual statistics: the species one-hot columns after the kinematic ones."""
        if self.n_species == 1:
            return torch.zeros(len(c), dtype=torch.long)
        return torch.argmax(c[:, N_KINEMATIC : N_KINEMATIC + self.n_species], dim=1)

    def fit_pca(self, g: Tensor) -> float:
        """Set the PCA from training ``g``; returns the fraction of variance kept."""
        mean = g.mean(dim=0)
        _, s, vh = torch.linalg.svd(g - mean, full_matrices=False)
        k = self.n_pca
        self.pca_mean.copy_(mean)
        self.pca_components.copy_(vh[:k])
        self.pca_scale.copy_(s[:k] / (len(g) - 1) ** 0.5)
        return float((s[:k] ** 2).sum() / (s**2).sum())

    def fit_residual(self, g: Tensor, c: Tensor) -> None:
        """Per species and ln E bin (equal-population bins of ``c[:, 0]``) mean and std of the
        PCA residual of every cell (call after :meth:`fit_pca`)."""
        res = g - (self.pca_mean + (g - self.pca_mean) @ self.pca_components.T @ self.pca_components)
        rows = self.species_row(c)
        which_np, centres = ln_e_bins(c[:, 0].double().numpy(), self.res_bins)
        which = torch.from_numpy(which_np)
        self.res_centres.copy_(torch.from_numpy(centres).float())
        for p in range(self.n_species):
            for b in range(self.res_bins):
                sel = (rows == p) & (which == b)
                if int(sel.sum()) < 2:  # species absent from this bin: fall back to all species
                    sel = which == b
                self.res_mean[p, b] = res[sel].mean(dim=0)
                self.res_std[p, b] = res[sel].std(dim=0)

    def calibrate_residual(self, g: Tensor, r: Tensor, c: Tensor, tau: Tensor | None = None, *,
                           iterations: int = RES_CALIBRATION_STEPS, tail: float = RES_TAIL_FRACTION,
                           seed: int = 0x5245) -> list[float]:  # fmt: skip
        """Scale the residual std of the tail cells so that the decoded showers keep their mean
        energy fraction: a Gaussian residual cut at zero carries less energy (E[relu(X)^2] <
        E[X^2]) than the sparse real one, and the showers come out narrow (lhcb-shashlik
        photons, aligned: 21.8 mm against 24.2 mm at 1-3 GeV). Per species and ln E bin, for the
        cells whose mean fraction is below ``tail``, the std is multiplied by sqrt(real /
        decoded mean of g^2) (at most 2x per step), ``iterations`` times, with the training
        showers encoded and decoded with fixed noise. Returns the mean |ln| of the remaining
        ratio after each step."""
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
                    want, have = real[(p, b)], (dec[sel] ** 2).mean(dim=0)
                    cells = (want < tail) & (want > 0) & (have > 0)
                    ratio = torch.clamp(want / torch.clamp(have, min=1e-30), 0.25, 4.0)
                    self.res_std[p, b] *= torch.where(cells, torch.sqrt(ratio), torch.ones_like(ratio))
                    dev.append(float(torch.log(ratio[cells]).abs().mean()) if bool(cells.any()) else 0.0)
                history.append(round(sum(dev) / max(len(dev), 1), 5))
        return history

    def _residual_weights(self, c: Tensor) -> Tensor:
        """(N, species x bins) weights of the residual statistics' rows for conditions ``c``:
        linear interpolation in ln E between the bin centres, in the shower's species."""
        x, k = self.res_centres, self.res_bins
        rows = self.species_row(c)
        if k == 1:
            lo = hi = torch.zeros(len(c), dtype=torch.long)
            t = torch.zeros(len(c))
        else:
            le = torch.clamp(c[:, 0], float(x[0]), float(x[-1]))
            hi = torch.clamp(torch.searchsorted(x.contiguous(), le.contiguous()), 1, k - 1)
            lo = hi - 1
            t = (le - x[lo]) / torch.clamp(x[hi] - x[lo], min=1e-9)
        w = torch.zeros(len(c), self.n_species * k)
        i = torch.arange(len(c))
        w[i, rows * k + lo] = 1 - t
        w[i, rows * k + hi] += t
        return w

    # ------------------------------------------------------------------ the model
    def encode(self, g: Tensor, r: Tensor, tau: Tensor | None = None) -> Tensor:
        """Flow space (N, n_features) of showers ``g`` (N, D), ``r`` (N,) and section-time
        normals ``tau`` (N, S) (needed with profile variables)."""
        y = (g - self.pca_mean) @ self.pca_components.T / self.pca_scale
        parts = [y, r[:, None]]
        if self.n_profile:
            if tau is None:
                raise ValueError("this flow models the section times: encode needs tau")
            parts.append((self._raw_profile(g, tau) - self.prof_mean) / self.prof_std)
        return torch.cat(parts, dim=1)

    def decode(self, x: Tensor, c: Tensor | None = None, eps: Tensor | None = None) -> tuple[Tensor, ...]:
        """(g, r) from flow space ``x`` (no gradient), and the section-time normals tau with
        profile variables: the inverse PCA, plus ``mean + std * eps`` of the residual model
        when ``c`` and ``eps`` (N, D) are given, cut at 0, the sections rescaled to the drawn
        fractions, normalised. In place on one (N, D) array: sampling decodes 10^4 showers of
        3600 cells, and each temporary of that size costs as much as a step."""
        k = self.n_pca
        with torch.no_grad():
            g = torch.addmm(self.pca_mean, x[:, :k] * self.pca_scale, self.pca_components)
            if self.res_bins > 0 and c is not None and eps is not None:
                w, d = self._residual_weights(c), self.n_in
                g.addmm_(w, self.res_mean.reshape(-1, d)).addcmul_(w @ self.res_std.reshape(-1, d), eps)
            g.relu_()
            tau = None
            if self.n_profile:
                g, tau = self._apply_profile(g, x[:, k + 1 :])
            g.div_(torch.sqrt(torch.linalg.vector_norm(g, dim=1, keepdim=True) ** 2 + 1e-12))
        return (g, x[:, k]) if tau is None else (g, x[:, k], tau)

    def log_prob(self, g: Tensor, r: Tensor, c: Tensor, tau: Tensor | None = None) -> Tensor:
        return self.flow(c).log_prob(self.encode(g, r, tau))

    def sample(self, c: Tensor, z: Tensor, eps: Tensor | None = None) -> tuple[Tensor, ...]:
        """:meth:`decode` of the flow's inverse of the latent normals ``z`` (N, n_features) for
        conditions ``c``, with residual normals ``eps`` (N, D)."""
        return self.decode(self.flow(c).transform.inv(z), c, eps)


def build_flow(arch: dict[str, Any]) -> FlowModel:
    return FlowModel(arch["n_cond"], arch["n_out"], arch["n_pca"], arch["transforms"], arch["flow_hidden"],
                     arch.get("res_bins", 0), arch.get("n_species", 1), arch.get("sections", 0))  # fmt: skip


def load_flow(net: nn.Module, ck: dict[str, Any]) -> None:
    """The checkpoint's state, converted from the masked layout of format versions 1-2."""
    state = ck["state"]
    if int(ck.get("format_version", 3)) < 3:
        assert isinstance(net, FlowModel)
        state = coupling_state(state, net.n_features, net.n_cond)
    net.load_state_dict(state)


def train_flow(run: TrainingState, d: TrainingData, steps: int, s: dict[str, Any]) -> Trained:
    """Maximum likelihood (Adam, cosine decay, gradient norm clipped at 10) after fitting the
    PCA, the residual model (and its tail calibration) and the profile standardisation in closed
    form."""
    from calopt.errors import CaloptInputError

    if s["res_bins"] < 0 or s["res_bins"] > d.n // 2:
        raise CaloptInputError(f"res_bins must be in 0..{d.n // 2} for {d.n} showers, got {s['res_bins']}")
    n_cond, n_out = d.c.shape[1], d.g.shape[1]
    arch = {"n_pca": min(s["n_pca"], n_out, d.n - 1), "transforms": s["transforms"], "flow_hidden": s["flow_hidden"],
            "res_bins": s["res_bins"], "n_species": len(d.ds.space.pdgs), "sections": d.sections if s["profile"] else 0}
    net = build_flow({"n_cond": n_cond, "n_out": n_out, **arch})
    summary: dict[str, Any] = {"pca_variance_kept": round(net.fit_pca(d.g), 5)}
    if arch["res_bins"] > 0:
        net.fit_residual(d.g, d.c)
    if net.n_profile:
        net.fit_profile(d.g, d.tau)
    if arch["res_bins"] > 0 and s["calibrate_residual"]:
        summary["residual_calibration"] = net.calibrate_residual(d.g, d.r, d.c, d.tau if net.n_profile else None)
    opt = torch.optim.Adam(net.parameters(), lr=s["lr_flow"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    nll = RunningMean(100, 4)
    for _ in run.phase("flow", steps, net=net, opt=opt, sched=sched, nll_history=nll):
        idx = d.index(s["flow_batch"])
        loss = -net.log_prob(d.g[idx], d.r[idx], d.c[idx], d.tau[idx]).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        sched.step()
        nll.add(float(loss.detach()))
    summary["nll_history"] = nll.means
    return Trained(net, arch, summary)


def sample_flow(net: nn.Module, ck: dict[str, Any], cond: np.ndarray, rngs: list[np.random.Generator]) -> Sample:
    """Each shower's latent normals, then its residual normals (with a residual model), from
    its generator; the flow's inverse and the decoding in one tensor pass."""
    assert isinstance(net, FlowModel)
    z = normals(rngs, net.n_features)
    eps = normals(rngs, net.n_in) if net.res_bins > 0 else None
    with torch.inference_mode():
        out = net.sample(torch.from_numpy(cond), torch.from_numpy(z), None if eps is None else torch.from_numpy(eps))
        fractions = out[0].square_().numpy()
    return Sample(fractions, out[1].numpy(), out[2].numpy() if len(out) > 2 else None)


FLOW = SurrogateType("flow", build=build_flow, train=train_flow, sample=sample_flow, load=load_flow)
