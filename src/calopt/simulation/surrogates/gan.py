"""The ``wgan`` and ``adagan`` surrogates.

``wgan`` (the LHCb calorimeter GAN recipe, seeds/002): a conditional WGAN-GP (Gulrajani et al.
2017, arXiv:1704.00028). The :class:`Generator` is an MLP ``[z, c] -> 256 -> 512 -> 512 ->
(D + 1)`` with LeakyReLU(0.2); its first D outputs go through a ReLU and are normalised to unit
L2 norm (the square-root cell fractions), the last one is ``r``. The :class:`Critic` is an MLP
``[g, r, c] -> 256 -> 256 -> 1`` without normalisation layers (the gradient penalty is per
sample). Critic loss ``D(fake) - D(real) + lambda (|grad D(x_hat)| - 1)^2`` with ``x_hat``
uniform on the segments between real and fake, lambda = 10, ``n_critic`` = 5 critic steps per
generator step, Adam(lr 1e-4, betas (0, 0.9)). The generator loss is ``-D(fake) + lambda_reg *
MSE(R(fake), c)``: R is the auxiliary :class:`Regressor` (``[g, ln E_vis] -> 256 -> 128 ->
5``, predicting ln E, tan theta_x, tan theta_y, x, y) trained first on real showers and frozen.

``adagan`` (Tolstikhin et al. 2017, arXiv:1701.02386; seeds/004): T WGAN components trained in
sequence, the generator steps split evenly. Before component t (t >= 1) a mixture
discriminator D separates the training showers (label 1) from as many showers of the current
mixture (label 0, same conditions). By default (``disc_input = "features"``) D is an MLP on
the shower observables (ln E_vis/E, section fractions, E1-E4) and the conditions: on the full
cells (``"full"``) it separates GAN showers perfectly at our budgets, saturates and gives
uniform weights. The training showers are then weighted ``w_i = p_i / beta (lambda* - (1 -
beta) h_i)_+`` with ``h_i = (1 - D(X_i)) / D(X_i)`` (:func:`adagan_weights`); component t is
trained on minibatches drawn with these weights and enters the mixture with ``beta_t = 1 / (t +
1)``, the earlier weights scaled by ``1 - beta_t`` (equal weights 1/T in the end, as in
seeds/004). Each component starts from the previous one's networks (``warm_start``: a
departure from the paper that matters at CPU budgets); the regressor is shared.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from calopt.simulation.surrogates.noise import normals, uniforms
from calopt.simulation.surrogates.resume import Record, TrainingState
from calopt.simulation.surrogates.types import (
    RunningMean,
    Sample,
    SurrogateType,
    Trained,
    TrainingData,
    mlp,
    normalise_g,
)

__all__ = ["ADAGAN", "WGAN", "Critic", "Generator", "Regressor", "adagan_weights"]


class Generator(nn.Module):
    """``(c, z) -> (g, r)``: unit-norm non-negative square-root fractions and the response."""

    def __init__(self, n_cond: int, n_out: int, nz: int = 32, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.nz = nz
        self.net = mlp(nz + n_cond, hidden or [256, 512, 512], n_out + 1)

    def forward(self, c: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        raw = self.net(torch.cat([z, c], dim=1))
        return normalise_g(raw[:, :-1]), raw[:, -1]


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


def adagan_weights(h: np.ndarray, beta: float, p: np.ndarray | None = None) -> np.ndarray:
    """AdaGAN data weights (Tolstikhin et al. 2017, Theorem 1; seeds/004):
    ``w_i = p_i / beta * (lambda* - (1 - beta) h_i)_+`` with lambda* such that sum w = 1.

    ``h`` are the density ratios mixture/data at the training points (``(1 - D) / D`` for a
    discriminator D that outputs the probability of "data"), ``beta`` in (0, 1] the weight of the
    next component, ``p`` the empirical weights (uniform by default)."""
    h = np.asarray(h, dtype=np.float64)
    n = len(h)
    if n == 0:
        return h
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    p = np.full(n, 1.0 / n) if p is None else np.asarray(p, dtype=np.float64) / np.sum(p)
    order = np.argsort(h, kind="stable")
    hs, ps = h[order], p[order]
    cum_p = np.cumsum(ps)
    cum_ph = np.cumsum(ps * hs)
    lam = (beta + (1.0 - beta) * cum_ph) / cum_p
    ok = (1.0 - beta) * hs < lam
    k = int(np.flatnonzero(ok)[-1]) if ok.any() else 0
    w = p / beta * np.maximum(lam[k] - (1.0 - beta) * h, 0.0)
    return w / w.sum()


# ----------------------------------------------------------------------------- training
def _train_regressor(run: TrainingState, d: TrainingData, steps: int, hidden: list[int]) -> Regressor:
    reg = Regressor(d.g.shape[1], 5, hidden)
    opt = torch.optim.Adam(reg.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    for _ in run.phase("regressor", steps, net=reg, opt=opt, sched=sched):
        idx = d.index(256)
        loss = torch.mean((reg(d.g[idx], d.lnevis(d.r[idx], idx)) - d.c[idx, :5]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    reg.eval()
    for q in reg.parameters():
        q.requires_grad_(False)
    return reg


def _regressor(run: TrainingState, d: TrainingData, s: dict[str, Any]) -> Regressor | None:
    use = s["lambda_reg"] > 0 and s["reg_steps"] > 0
    return _train_regressor(run, d, s["reg_steps"], s["r_hidden"]) if use else None


def _train_wgan(run: TrainingState, key: str, d: TrainingData, steps: int, s: dict[str, Any], reg: Regressor | None,
                *, weights: Tensor | None = None,
                init: tuple[Generator, Critic] | None = None) -> tuple[Generator, Critic, list[float]]:  # fmt: skip
    """WGAN-GP with the regressor term, as phase ``key``; (generator, critic, W estimates)."""
    n_cond, n_out = d.c.shape[1], d.g.shape[1]
    if init is None:
        G, D = Generator(n_cond, n_out, s["nz"], s["g_hidden"]), Critic(n_cond, n_out, s["c_hidden"])
    else:
        G, D = copy.deepcopy(init[0]), copy.deepcopy(init[1])
    opt_g = torch.optim.Adam(G.parameters(), lr=s["lr_g"], betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=s["lr_c"], betas=(0.0, 0.9))
    B, nz = s["batch"], s["nz"]
    hist = RunningMean(100, 5)
    for _ in run.phase(key, steps, G=G, D=D, opt_g=opt_g, opt_d=opt_d, w_history=hist):
        for _ in range(s["n_critic"]):
            idx = d.index(B, weights)
            g_real, r_real, c = d.g[idx], d.r[idx], d.c[idx]
            with torch.no_grad():
                g_fake, r_fake = G(c, torch.randn(B, nz, generator=d.gen))
            a = torch.rand(B, 1, generator=d.gen)
            g_hat = (a * g_real + (1 - a) * g_fake).requires_grad_(True)
            r_hat = (a[:, 0] * r_real + (1 - a[:, 0]) * r_fake).requires_grad_(True)
            d_hat = D(g_hat, r_hat, c)
            gg, gr = torch.autograd.grad(d_hat.sum(), (g_hat, r_hat), create_graph=True)
            gnorm = torch.sqrt((gg * gg).sum(dim=1) + gr * gr + 1e-12)
            w_est = D(g_real, r_real, c).mean() - D(g_fake, r_fake, c).mean()
            loss_d = -w_est + s["lambda_gp"] * ((gnorm - 1.0) ** 2).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        idx = d.index(B, weights)
        c = d.c[idx]
        g_fake, r_fake = G(c, torch.randn(B, nz, generator=d.gen))
        loss_g = -D(g_fake, r_fake, c).mean()
        if reg is not None and s["lambda_reg"] > 0:
            loss_g = loss_g + s["lambda_reg"] * torch.mean((reg(g_fake, d.lnevis(r_fake, idx)) - c[:, :5]) ** 2)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        hist.add(float(w_est.detach()))
    return G, D, hist.means


def train_wgan(run: TrainingState, d: TrainingData, steps: int, s: dict[str, Any]) -> Trained:
    G, _, hist = _train_wgan(run, "generator", d, steps, s, _regressor(run, d, s))
    return Trained(G, {"nz": s["nz"], "g_hidden": s["g_hidden"]}, {"w_history": hist})


def _mixture_samples(d: TrainingData, gens: list[Generator], betas: list[float], nz: int) -> tuple[Tensor, Tensor]:
    """One shower of the current mixture for the conditions of every training shower."""
    comp = torch.multinomial(torch.tensor(betas, dtype=torch.float64), d.n, replacement=True, generator=d.gen)
    z = torch.randn(d.n, nz, generator=d.gen)
    g, r = torch.empty_like(d.g), torch.empty_like(d.r)
    with torch.no_grad():
        for k, G in enumerate(gens):
            sel = torch.nonzero(comp == k)[:, 0]
            if len(sel):
                g[sel], r[sel] = G(d.c[sel], z[sel])
    return g, r


def _high_level(g: Tensor, r: Tensor, sections: int, crop: int) -> Tensor:
    """Shower observables from the representation: standardised ln(E_vis/E), the section
    fractions and the E1-E4 ring fractions around the window centre (seeds/002)."""
    f = (g * g).reshape(len(g), sections, crop, crop)
    sec = f.sum(dim=(2, 3))
    img = f.sum(dim=1)
    rings, prev = [], torch.zeros(len(g))
    for k in range(1, min(4, crop // 2) + 1):
        a = crop // 2 - k
        box = img[:, a : a + 2 * k, a : a + 2 * k].sum(dim=(1, 2))
        rings.append(box - prev)
        prev = box
    return torch.cat([r[:, None], sec, torch.stack(rings, dim=1)], dim=1)


def _mixture_discriminator(run: TrainingState, key: str, d: TrainingData, gens: list[Generator], mixture: list[float],
                           s: dict[str, Any]) -> tuple[np.ndarray, float]:  # fmt: skip
    """Train the mixture discriminator (data 1 : mixture 0) against one shower of the mixture
    per training shower, as phase ``key``; D(X_i) on the training data and its accuracy."""
    full = s["disc_input"] == "full"
    n_in = (d.g.shape[1] + 1 if full else 1 + d.sections + min(4, d.crop // 2)) + d.c.shape[1]
    net = mlp(n_in, [256, 128] if full else [64, 64], 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4 if full else 1e-3)
    bce = torch.nn.BCEWithLogitsLoss()

    def logits(g: Tensor, r: Tensor, c: Tensor) -> Tensor:
        x = torch.cat([g, r[:, None]], dim=1) if full else _high_level(g, r, d.sections, d.crop)
        return net(torch.cat([x, c], dim=1))[:, 0]

    # the mixture samples are drawn again on resume, from the generator state they came from
    out = Record(gen_state=d.gen.get_state(), p_data=None, accuracy=None)
    phase = run.phase(key, s["disc_steps"], net=net, opt=opt, out=out)
    if phase.skipped:
        return out["p_data"].numpy(), out["accuracy"]
    d.gen.set_state(out["gen_state"])
    g_fake, r_fake = _mixture_samples(d, gens, mixture, s["nz"])
    B = 256
    for _ in phase:
        i, j = d.index(B), d.index(B)
        x = logits(torch.cat([d.g[i], g_fake[j]]), torch.cat([d.r[i], r_fake[j]]), torch.cat([d.c[i], d.c[j]]))
        loss = bce(x, torch.cat([torch.ones(B), torch.zeros(B)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p_data = torch.sigmoid(logits(d.g, d.r, d.c)).numpy().astype(np.float64)
        p_fake = torch.sigmoid(logits(g_fake, r_fake, d.c)).numpy().astype(np.float64)
    acc = 0.5 * (float(np.mean(p_data > 0.5)) + float(np.mean(p_fake < 0.5)))
    out.update(p_data=torch.from_numpy(p_data), accuracy=acc)
    return p_data, acc


def train_adagan(run: TrainingState, d: TrainingData, steps: int, s: dict[str, Any]) -> Trained:
    from calopt.errors import CaloptInputError

    T = s["components"]
    if not 1 <= T <= steps:
        raise CaloptInputError(f"adagan needs 1 <= components <= steps, got {T} components")
    reg = _regressor(run, d, s)
    per = [steps // T + (1 if k < steps % T else 0) for k in range(T)]
    gens: list[Generator] = []
    mixture: list[float] = []
    comps: list[dict[str, Any]] = []
    weights, init = None, None
    for t in range(T):
        if t > 0:
            p_data, acc = _mixture_discriminator(run, f"discriminator {t + 1}/{T}", d, gens, mixture, s)
            pd = np.clip(p_data, 1e-3, 1 - 1e-3)
            beta = 1.0 / (t + 1)
            w = adagan_weights((1 - pd) / pd, beta)
            weights = torch.from_numpy(w)
            mixture = [m * (1 - beta) for m in mixture]
            ess = float(1.0 / np.sum(w**2))
            comps[-1]["next_disc_accuracy"] = round(acc, 4)
        else:
            beta, ess = 1.0, float(d.n)
        G, D, hist = _train_wgan(run, f"generator {t + 1}/{T}", d, per[t], s, reg, weights=weights, init=init)
        if s["warm_start"]:
            init = (G, D)
        gens.append(G)
        mixture.append(beta)
        comps.append({"steps": per[t], "beta": beta, "effective_sample_size": round(ess, 1), "w_history": hist})
    arch = {"nz": s["nz"], "g_hidden": s["g_hidden"], "components": T}
    return Trained(nn.ModuleList(gens), arch, {"components": comps}, {"mixture_weights": [float(m) for m in mixture]})


# ----------------------------------------------------------------------------- sampling
def _generate(G: nn.Module, cond: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fractions g^2 (N, D) and r (N,) of generator ``G``."""
    with torch.inference_mode():
        g, r = G(torch.from_numpy(cond), torch.from_numpy(z))
    return np.square(g.numpy()), r.numpy()


def sample_wgan(net: nn.Module, ck: dict[str, Any], cond: np.ndarray, rngs: list[np.random.Generator]) -> Sample:
    assert isinstance(net, Generator)
    return Sample(*_generate(net, cond, normals(rngs, net.nz)))


def sample_adagan(net: nn.Module, ck: dict[str, Any], cond: np.ndarray, rngs: list[np.random.Generator]) -> Sample:
    """Each shower's component (one uniform against the cumulative mixture weights), then its
    noise, from its generator; each component generates its showers."""
    assert isinstance(net, nn.ModuleList)
    betas = np.asarray(ck["mixture_weights"], dtype=np.float64)
    comp = np.minimum(np.searchsorted(np.cumsum(betas / betas.sum()), uniforms(rngs, 1)[:, 0]), len(betas) - 1)
    z = normals(rngs, int(ck["architecture"]["nz"]))
    frac = np.empty((len(cond), int(ck["architecture"]["n_out"])), dtype=np.float32)
    r = np.empty(len(cond), dtype=np.float32)
    for k in np.unique(comp):
        idx = np.flatnonzero(comp == k)
        frac[idx], r[idx] = _generate(net[int(k)], cond[idx], z[idx])
    return Sample(frac, r)


def _build_generator(arch: dict[str, Any]) -> Generator:
    return Generator(arch["n_cond"], arch["n_out"], arch["nz"], arch["g_hidden"])


def _build_mixture(arch: dict[str, Any]) -> nn.ModuleList:
    return nn.ModuleList([_build_generator(arch) for _ in range(arch["components"])])


def _regressor_work(s: dict[str, Any]) -> int:
    return s["reg_steps"] if s["lambda_reg"] > 0 else 0


WGAN = SurrogateType("wgan", build=_build_generator, train=train_wgan, sample=sample_wgan,
                     work=lambda steps, s: _regressor_work(s) + steps)  # fmt: skip
ADAGAN = SurrogateType("adagan", build=_build_mixture, train=train_adagan, sample=sample_adagan,
                       work=lambda steps, s: _regressor_work(s) + steps + (s["components"] - 1) * s["disc_steps"])
