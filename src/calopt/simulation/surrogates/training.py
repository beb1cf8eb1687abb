"""Training of the generative surrogates, reproducible from the seed.

``wgan`` (the LHCb calorimeter GAN recipe, seeds/002): a conditional WGAN-GP (Gulrajani et
al. 2017, arXiv:1704.00028): critic loss ``D(fake) - D(real) + lambda (|grad D(x_hat)| - 1)^2``
with ``x_hat`` uniform on the segments between real and fake, lambda = 10, ``n_critic`` = 5
critic steps per generator step, Adam(lr 1e-4, betas (0, 0.9)). The generator loss is
``-D(fake) + lambda_reg * MSE(R(fake), c)`` where R is the auxiliary regressor trained first
on real showers (predicting ln E, tan theta_x, tan theta_y, x, y) and frozen.

``flow``: maximum likelihood of the conditional NSF on (whitened PCA of the square-root
fractions, standardised ln(E_vis/E) and, with ``profile``, the profile variables: section
fractions and section times); Adam(lr 1e-3) with cosine decay. The per-cell residual model
(``res_bins`` bins of ln E per species; 0 switches it off) is fitted in closed form before,
from the PCA residuals of the training showers, and (``calibrate_residual``) its tail-cell
widths are then matched to the mean energy fractions of the training showers
(:meth:`~calopt.simulation.surrogates.models.FlowModel.calibrate_residual`).

Every model type gets two calibrations after training, measured on the model's own showers
against the training showers and stored in the checkpoint: ``response_calibration``
(median and robust width of ln(E_vis/E) per ln E bin, :mod:`calopt.simulation.surrogates.
calibration`; ``calibrate_response``) and ``hit_model`` (tail cells whose mean energy is
below ``hit_max_mev`` become discrete deposits, :mod:`calopt.simulation.surrogates.hits`; 0
switches it off). :func:`calibrate_surrogate` (``calopt surrogate calibrate``) measures them
again on other showers, e.g. a larger sample than the networks were trained on: the widths
the response calibration copies are uncertain by ~3 % with ~1000 showers per ln E bin.

``adagan`` (Tolstikhin et al. 2017, arXiv:1701.02386; seeds/004): T components trained in
sequence, the total number of generator steps split evenly. Before component t (t >= 1) a
mixture discriminator D separates the training showers (label 1) from as many showers of the
current mixture (label 0, same conditions). By default (``disc_input = "features"``) D is an
MLP on the shower observables (ln E_vis/E, section fractions, E1-E4) and the conditions: on
the full cell representation (``"full"``) it separates GAN showers perfectly at our budgets
(accuracy 1.0), D saturates and the weights come out uniform, so the reweighting targets the
observables where the mixture is worst instead;
the training showers are then weighted ``w_i = p_i / beta (lambda* - (1 - beta) h_i)_+``
with ``h_i = (1 - D(X_i)) / D(X_i)`` (the estimated density ratio mixture / data),
``p_i = 1 / N`` and lambda* normalising the weights (:func:`adagan_weights`). Component t
is trained on minibatches drawn with these weights, and enters the mixture with
``beta_t = 1 / (t + 1)``, the earlier weights scaled by ``1 - beta_t``: equal weights 1/T
in the end, as in seeds/004. Each component starts from the previous component's networks
(``warm_start``, a departure from the paper that matters at CPU budgets); the regressor is
shared.

Every model is trained on the aligned showers of :func:`~calopt.simulation.surrogates.
dataset.load_training_set` (``align``, the default; the networks get the sub-cell offsets of
the axis as more conditions) unless ``align=False``.

Data order and noise come from a ``torch.Generator`` seeded with ``seed``: the same seed,
data and thread count give the same checkpoint bit for bit.

:func:`train_surrogate` is resumable (:mod:`calopt.simulation.surrogates.resume`): every
phase (regressor, each generator, each mixture discriminator, flow) and every 500 of its
steps, the training state is saved to ``OUT.partial``; a killed training started again with
the same settings and data goes on from there, and gives the same checkpoint bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calopt import __version__
from calopt.errors import CaloptInputError
from calopt.simulation.surrogates.calibration import MIN_SPECIES_SHOWERS
from calopt.simulation.surrogates.checkpoint import MODEL_TYPES, save_checkpoint
from calopt.simulation.surrogates.dataset import DEFAULT_CROP, TrainingSet, load_training_set
from calopt.simulation.surrogates.resume import (
    SAVE_EVERY,
    Record,
    TrainingState,
    data_identity,
    job_key,
    partial_path,
)

__all__ = [
    "DEFAULTS",
    "MIN_CALIBRATION_SHOWERS",
    "MODEL_TYPES",
    "adagan_weights",
    "calibrate_surrogate",
    "total_work",
    "train_on_set",
    "train_surrogate",
]

DEFAULTS: dict[str, Any] = {
    "batch": 128,
    "nz": 32,
    "g_hidden": [256, 512, 512],
    "c_hidden": [256, 256],
    "r_hidden": [256, 128],
    "n_critic": 5,
    "lambda_gp": 10.0,
    "lambda_reg": 5.0,
    "lr_g": 1e-4,
    "lr_c": 1e-4,
    "reg_steps": 1500,
    "n_pca": 64,
    "res_bins": 8,
    "profile": True,
    "calibrate_residual": True,
    "hit_max_mev": 10.0,
    "calibrate_response": True,
    "smooth_response": True,
    "transforms": 4,
    "flow_hidden": [128, 128],
    "flow_batch": 256,
    "lr_flow": 1e-3,
    "components": 3,
    "disc_steps": 600,
    "disc_input": "features",
    "warm_start": True,
}

# per species and ln E bin of calibrate_surrogate's showers: no fewer than calibrate_response
# needs before it pools the species
MIN_CALIBRATION_SHOWERS = MIN_SPECIES_SHOWERS

Progress = Callable[[int, int], None]


class RunningMean:
    """Means of a loss over windows of ``window`` steps (the histories of the summary)."""

    def __init__(self, window: int = 100, digits: int = 4) -> None:
        self.window, self.digits = window, digits
        self.means: list[float] = []
        self.sum, self.n = 0.0, 0

    def add(self, x: float) -> None:
        self.sum += x
        self.n += 1
        if self.n == self.window:
            self.means.append(round(self.sum / self.window, self.digits))
            self.sum, self.n = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"means": list(self.means), "sum": self.sum, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.means, self.sum, self.n = list(state["means"]), state["sum"], state["n"]


def adagan_weights(h: np.ndarray, beta: float, p: np.ndarray | None = None) -> np.ndarray:
    """AdaGAN data weights (Tolstikhin et al. 2017, Theorem 1; seeds/004):
    ``w_i = p_i / beta * (lambda* - (1 - beta) h_i)_+`` with lambda* such that sum w = 1.

    ``h`` are the density ratios mixture/data at the training points (``(1 - D) / D`` for a
    discriminator D that outputs the probability of "data"), ``beta`` in (0, 1] the weight
    of the next component, ``p`` the empirical weights (uniform by default)."""
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


class _Data:
    """Training tensors and the shared sampling helpers."""

    def __init__(self, ds: TrainingSet, gen: Any) -> None:
        import torch

        self.torch = torch
        self.gen = gen
        self.g = torch.from_numpy(ds.g)
        self.r_mean, self.r_std = float(ds.r.mean()), float(max(ds.r.std(), 1e-6))
        self.r = torch.from_numpy(((ds.r - self.r_mean) / self.r_std).astype(np.float32))
        self.c = torch.from_numpy(ds.model_cond)
        self.tau = torch.from_numpy(ds.time_res)
        self.lne = torch.from_numpy(np.log(ds.energies).astype(np.float32))
        lnevis = ds.r + np.log(ds.energies)
        self.v_mean, self.v_std = float(lnevis.mean()), float(max(lnevis.std(), 1e-6))
        self.n = len(ds)
        self.sections, self.crop = ds.sections, ds.crop

    def index(self, batch: int, weights: Any = None) -> Any:
        if weights is None:
            return self.torch.randint(0, self.n, (batch,), generator=self.gen)
        return self.torch.multinomial(weights, batch, replacement=True, generator=self.gen)

    def lnevis(self, r: Any, idx: Any) -> Any:
        """Standardised ln E_vis from standardised r of showers with conditions ``idx``."""
        return (r * self.r_std + self.r_mean + self.lne[idx] - self.v_mean) / self.v_std


def _train_regressor(run: TrainingState, d: _Data, steps: int, hidden: list[int]) -> Any:
    import torch

    from calopt.simulation.surrogates.models import Regressor

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


def _train_wgan(
    run: TrainingState,
    key: str,
    d: _Data,
    steps: int,
    s: dict[str, Any],
    reg: Any,
    *,
    weights: Any = None,
    init: tuple[Any, Any] | None = None,
) -> tuple[Any, Any, list[float]]:
    """WGAN-GP with the regressor term, as phase ``key``; returns (generator, critic, history
    of W estimates)."""
    import copy

    import torch

    from calopt.simulation.surrogates.models import Critic, Generator

    n_cond, n_out = d.c.shape[1], d.g.shape[1]
    if init is None:
        G = Generator(n_cond, n_out, s["nz"], s["g_hidden"])
        D = Critic(n_cond, n_out, s["c_hidden"])
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
            pred = reg(g_fake, d.lnevis(r_fake, idx))
            loss_g = loss_g + s["lambda_reg"] * torch.mean((pred - c[:, :5]) ** 2)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        hist.add(float(w_est.detach()))
    return G, D, hist.means


def _mixture_samples(d: _Data, gens: list[Any], betas: list[float], nz: int) -> tuple[Any, Any]:
    """One shower of the current mixture for the conditions of every training shower."""
    import torch

    comp = torch.multinomial(torch.tensor(betas, dtype=torch.float64), d.n, replacement=True, generator=d.gen)
    z = torch.randn(d.n, nz, generator=d.gen)
    g = torch.empty_like(d.g)
    r = torch.empty_like(d.r)
    with torch.no_grad():
        for k, G in enumerate(gens):
            sel = torch.nonzero(comp == k)[:, 0]
            if len(sel):
                g[sel], r[sel] = G(d.c[sel], z[sel])
    return g, r


def _high_level(g: Any, r: Any, sections: int, crop: int) -> Any:
    """Shower observables from the representation: standardised ln(E_vis/E), the section
    fractions and the E1-E4 ring fractions around the window centre (seeds/002)."""
    import torch

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


def _mixture_discriminator(
    run: TrainingState, key: str, d: _Data, gens: list[Any], mixture: list[float], s: dict[str, Any]
) -> tuple[np.ndarray, float]:
    """Train the MIXDISC (data 1 : mixture 0, 1:1) against one shower of the mixture of
    ``gens`` (weights ``mixture``) per training shower, as phase ``key``; return D(X_i) on the
    training data and its final accuracy on the training sample."""
    import torch

    from calopt.simulation.surrogates.models import mlp

    full = s["disc_input"] == "full"
    n_in = (d.g.shape[1] + 1 if full else 1 + d.sections + min(4, d.crop // 2)) + d.c.shape[1]
    net = mlp(n_in, [256, 128] if full else [64, 64], 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4 if full else 1e-3)
    bce = torch.nn.BCEWithLogitsLoss()

    def logits(g: Any, r: Any, c: Any) -> Any:
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
        i = d.index(B)
        j = d.index(B)
        x = logits(torch.cat([d.g[i], g_fake[j]]), torch.cat([d.r[i], r_fake[j]]), torch.cat([d.c[i], d.c[j]]))
        y = torch.cat([torch.ones(B), torch.zeros(B)])
        loss = bce(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p_data = torch.sigmoid(logits(d.g, d.r, d.c)).numpy().astype(np.float64)
        p_fake = torch.sigmoid(logits(g_fake, r_fake, d.c)).numpy().astype(np.float64)
    acc = 0.5 * (float(np.mean(p_data > 0.5)) + float(np.mean(p_fake < 0.5)))
    out.update(p_data=torch.from_numpy(p_data), accuracy=acc)
    return p_data, acc


def _check_model_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        hint = " (a VAE is not implemented; the likelihood model is 'flow')" if model_type == "vae" else ""
        raise CaloptInputError(
            f"unknown surrogate model {model_type!r}{hint}; expected one of {', '.join(MODEL_TYPES)}"
        )


def total_work(model_type: str, steps: int, s: dict[str, Any]) -> int:
    """Units of work reported to ``progress``: regressor, generator and discriminator steps."""
    if model_type == "flow":
        return steps
    reg = s["reg_steps"] if s["lambda_reg"] > 0 else 0
    if model_type == "wgan":
        return reg + steps
    return reg + steps + (s["components"] - 1) * s["disc_steps"]


def train_on_set(
    model_type: str,
    ds: TrainingSet,
    *,
    steps: int,
    seed: int = 0,
    progress: Progress | None = None,
    settings: dict[str, Any] | None = None,
    training_state: TrainingState | None = None,
) -> dict[str, Any]:
    """Train a model on a loaded :class:`TrainingSet`; returns the checkpoint dictionary.
    ``training_state`` saves the training as it goes and resumes a saved one (default:
    neither)."""
    import torch

    from calopt.simulation.surrogates.models import FlowModel

    _check_model_type(model_type)
    if steps <= 0:
        raise CaloptInputError(f"--steps must be positive, got {steps}")
    s = {**DEFAULTS, **(settings or {})}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise CaloptInputError(f"unknown training settings: {sorted(unknown)}")
    if not s["hit_max_mev"] >= 0:
        raise CaloptInputError(f"hit_max_mev must be >= 0 (0: no hit model), got {s['hit_max_mev']}")
    if s["disc_input"] not in ("features", "full"):
        raise CaloptInputError(f"disc_input must be 'features' or 'full', got {s['disc_input']!r}")
    if model_type == "adagan" and not 1 <= s["components"] <= steps:
        raise CaloptInputError(f"adagan needs 1 <= components <= steps, got {s['components']} components")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    d = _Data(ds, gen)
    run = training_state or TrainingState()
    run.begin(gen, total_work(model_type, steps, s), progress)
    t0 = time.perf_counter()

    n_cond, n_out = d.c.shape[1], d.g.shape[1]
    arch: dict[str, Any] = {"n_cond": n_cond, "n_out": n_out}
    summary: dict[str, Any] = {}
    mixture: list[float] = []
    if model_type == "flow":
        if s["res_bins"] < 0 or s["res_bins"] > d.n // 2:
            raise CaloptInputError(f"res_bins must be in 0..{d.n // 2} for {d.n} showers, got {s['res_bins']}")
        arch.update(
            n_pca=min(s["n_pca"], n_out, d.n - 1),
            transforms=s["transforms"],
            flow_hidden=s["flow_hidden"],
            res_bins=s["res_bins"],
            n_species=len(ds.space.pdgs),
            sections=d.sections if s["profile"] else 0,
        )
        net = FlowModel(n_cond, n_out, arch["n_pca"], arch["transforms"], arch["flow_hidden"],
                        arch["res_bins"], arch["n_species"], arch["sections"])  # fmt: skip
        summary["pca_variance_kept"] = round(net.fit_pca(d.g), 5)
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
        state = net.state_dict()
    else:
        arch.update(nz=s["nz"], g_hidden=s["g_hidden"])
        use_reg = s["lambda_reg"] > 0 and s["reg_steps"] > 0
        reg = _train_regressor(run, d, s["reg_steps"], s["r_hidden"]) if use_reg else None
        if model_type == "wgan":
            G, _, hist = _train_wgan(run, "generator", d, steps, s, reg)
            summary["w_history"] = hist
            state = G.state_dict()
        else:
            T = s["components"]
            arch["components"] = T
            per = [steps // T + (1 if k < steps % T else 0) for k in range(T)]
            gens: list[Any] = []
            mixture = []
            comps: list[dict[str, Any]] = []
            weights = None
            init = None
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
            summary["components"] = comps
            state = torch.nn.ModuleList(gens).state_dict()
    seconds = time.perf_counter() - t0
    ck: dict[str, Any] = {
        "model_type": model_type,
        "technology": ds.technology,
        "calopt_version": __version__,
        "conditions": ds.space.to_dict(),
        "representation": ds.meta(),
        "normalisation": {"r_mean": d.r_mean, "r_std": d.r_std, "lnevis_mean": d.v_mean, "lnevis_std": d.v_std},
        "time_model": {
            "a": torch.from_numpy(ds.time_a),
            "b": torch.from_numpy(ds.time_b),
            "sigma": torch.from_numpy(ds.time_sigma),
            "lne": torch.from_numpy(ds.time_lne),
        },
        "architecture": arch,
        "training": {
            "steps": int(steps),
            "seed": int(seed),
            "settings": s,
            "files": list(ds.files),
            "n_train": len(ds),
            "seconds": round(seconds, 2),
            "torch_threads": torch.get_num_threads(),
            "torch_version": str(torch.__version__),
            "summary": summary,
        },
        "state": state,
    }
    if model_type == "adagan":
        ck["mixture_weights"] = [float(m) for m in mixture]
    ck.update(_calibrations(ck, ds, s))
    return ck


def _calibrations(ck: dict[str, Any], ds: TrainingSet, s: dict[str, Any]) -> dict[str, Any]:
    """The post-training calibrations, measured on the model's showers for the conditions of
    ``ds`` (seeds 0..N-1 of a fixed stream) against the showers of ``ds`` (the training
    showers, or those given to :func:`calibrate_surrogate`): the response
    (:mod:`calopt.simulation.surrogates.calibration`, if ``calibrate_response``) and then the
    hit model (:mod:`calopt.simulation.surrogates.hits`, if ``hit_max_mev`` > 0 and the
    training sample has enough tail deposits for it)."""
    import torch

    from calopt.simulation.surrogates.calibration import apply_response, calibrate_response
    from calopt.simulation.surrogates.hits import calibrate_hits
    from calopt.simulation.surrogates.noise import run_seeds
    from calopt.simulation.surrogates.simulator import SurrogateSimulator

    out: dict[str, Any] = {}
    sim = SurrogateSimulator(ck)
    g, r, _ = sim.generate(ds.model_cond, run_seeds(0x4341_4C49, 0, len(ds)))
    norm = ck["normalisation"]
    r_gen = r.astype(np.float64) * norm["r_std"] + norm["r_mean"]
    n_sp = len(ds.space.pdgs)
    rows = ds.space.species_rows(ds.cond)
    n_bins = max(int(s["res_bins"]), 1)
    le = ds.cond[:, 0].astype(np.float64)
    if s["calibrate_response"]:
        cal = calibrate_response(r_gen, ds.r, le, rows, n_sp, n_bins=n_bins, smooth=bool(s["smooth_response"]))
        r_gen = apply_response(r_gen, le, rows, cal)
        out["response_calibration"] = {k: torch.from_numpy(v) for k, v in cal.items()}
    if s["hit_max_mev"] > 0:
        gen_cells = g.astype(np.float64) ** 2 * (np.exp(r_gen) * ds.energies)[:, None]
        real_cells = ds.g.astype(np.float64) ** 2 * (np.exp(ds.r) * ds.energies)[:, None]
        try:
            hm = calibrate_hits(gen_cells, real_cells, le, rows, n_sp, n_bins=n_bins, max_mev=float(s["hit_max_mev"]))
            out["hit_model"] = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in hm.items()}
        except ValueError:  # too few tail deposits (tiny samples): no hit model
            pass
    return out


def train_surrogate(
    model_type: str,
    train_files: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    steps: int = 2000,
    seed: int = 0,
    progress: Progress | None = None,
    crop: int = DEFAULT_CROP,
    energy_range_gev: tuple[float, float] | None = None,
    theta_max: float | None = None,
    align: bool = True,
    settings: dict[str, Any] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    save_every: int = SAVE_EVERY,
) -> dict[str, Any]:
    """Train ``model_type`` (``wgan``, ``flow`` or ``adagan``) on calopt-showers files and save
    the checkpoint atomically to ``out``. ``steps`` counts generator steps (flow: gradient
    steps); ``progress(done, total)`` is called with units of work. Returns the checkpoint.

    The training state is saved to ``out.partial`` at the start of every phase and every
    ``save_every`` of its steps, and removed once the checkpoint is written. A training
    started with the settings and data of ``out.partial`` resumes from it (``log`` is told
    where); one with other settings is refused, unless ``overwrite``, which discards it."""
    from calopt.files import check_writable

    out = Path(out)
    check_writable(out)
    _check_model_type(model_type)
    job = {
        "model_type": model_type,
        "steps": steps,
        "seed": seed,
        "crop": crop,
        "energy_range_gev": [float(e) for e in energy_range_gev] if energy_range_gev else None,
        "theta_max": None if theta_max is None else float(theta_max),
        "align": bool(align),
        "settings": {**DEFAULTS, **(settings or {})},
        "files": data_identity(train_files),
        "calopt_version": __version__,
    }
    state = TrainingState.open(partial_path(out), job_key(job), overwrite=overwrite, every=save_every)
    if state.resumes_at is not None and log is not None:
        log(f"resuming the training saved in {str(state.path)!r} at {state.resumes_at}")
    ds = load_training_set(
        train_files, crop=crop, energy_range_gev=energy_range_gev, theta_max=theta_max, align=align
    )
    ck = train_on_set(
        model_type, ds, steps=steps, seed=seed, progress=progress, settings=settings, training_state=state
    )
    save_checkpoint(out, ck)
    state.remove()
    return ck


def calibrate_surrogate(
    model: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Measure the post-training calibrations of the checkpoint ``model`` (response, hit
    model) again on the cascade showers of ``files`` and save the recalibrated checkpoint
    atomically to ``out``; the networks are unchanged. The showers must be of the model's
    technology, grid and training range, and hold every species of the model with at least
    MIN_CALIBRATION_SHOWERS per ln E bin (``res_bins`` bins), so that no species is calibrated
    on another's showers. Returns the checkpoint."""
    from calopt.files import check_writable
    from calopt.simulation.surrogates.calibration import ln_e_bins
    from calopt.simulation.surrogates.checkpoint import load_checkpoint
    from calopt.simulation.surrogates.conditions import ConditionSpace, species_name

    out = Path(out)
    check_writable(out)
    if out.exists() and not overwrite:
        raise CaloptInputError(f"output {str(out)!r} already exists; use --overwrite to replace it")
    ck = load_checkpoint(model)
    rep = ck["representation"]
    space = ConditionSpace.from_dict(ck["conditions"])
    depths = rep.get("axis_depths_mm")
    ds = load_training_set(files, crop=int(rep["crop"]), space=space,
                           depths=None if depths is None else np.asarray(depths, dtype=np.float64))  # fmt: skip
    if ds.technology != ck["technology"] or ds.grid != int(rep["grid"]) or ds.sections != int(rep["sections"]):
        raise CaloptInputError(
            f"calibration showers are of {ds.technology!r} ({ds.sections} x {ds.grid} x {ds.grid}); the model "
            f"{str(model)!r} is of {ck['technology']!r} ({rep['sections']} x {rep['grid']} x {rep['grid']})"
        )
    s = {**DEFAULTS, **ck["training"]["settings"]}
    n_bins = max(int(s["res_bins"]), 1)
    which, _ = ln_e_bins(ds.cond[:, 0].astype(np.float64), n_bins)
    rows = space.species_rows(ds.cond)
    for p, pdg in enumerate(space.pdgs):
        fewest = min(int(((rows == p) & (which == b)).sum()) for b in range(n_bins))
        if fewest < MIN_CALIBRATION_SHOWERS:
            name = species_name(pdg)
            raise CaloptInputError(
                f"calibration showers hold {fewest} {name} in one of the {n_bins} ln E bins; the model's species "
                f"{name} needs at least {MIN_CALIBRATION_SHOWERS} in every bin"
            )
    ck = {k: v for k, v in ck.items() if k not in ("format", "format_version", "response_calibration", "hit_model")}
    ck["training"] = {
        **ck["training"],
        "calibration": {"files": list(ds.files), "n": len(ds), "calopt_version": __version__},
    }
    ck.update(_calibrations(ck, ds, s))
    save_checkpoint(out, ck)
    return ck
