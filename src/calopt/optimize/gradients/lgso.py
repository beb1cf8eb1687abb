"""``lgso``: the gradient of a module objective through a local generative surrogate (L-GSO,
Shirobokov, Belavin, Kagan, Ustyuzhanin and Baydin, "Black-box optimization with local generative
surrogates", NeurIPS 2020, arXiv:2002.04632).

The cascade is a black box with no gradient; L-GSO learns, in a box around the design, a
conditional generative model of its output, x ~ g(z, theta), and differentiates the objective
through the model instead: with a fixed batch of noise z the objective of generated showers is a
deterministic, differentiable function of theta. As in the paper:

1. ``designs`` designs drawn uniformly in the box theta0 +- ``half_width`` of each parameter's
   value (:func:`step_of`; a layered module keeps its depth in X0, :func:`moved`), budget /
   ``designs`` cascade showers each, every design with its own seed;
2. the samples of earlier calls kept in this process (:data:`_STORE`) whose designs lie inside
   the box are added to the training set (the paper's reuse of the history inside the
   neighbourhood); they cost no budget (``showers`` counts only the new ones) and the diagnostics
   say how many were reused. A stored design lies inside the box when each differentiated
   parameter is inside its interval, every other continuous parameter equals the design's, and,
   with ``hold_depth_x0``, its depth is within a layer of the design's depth in X0; the beam, the
   materials, the cell size (and without ``hold_depth_x0`` the number of layers) must be the same.
   This call's own samples are not counted as reused, so a call repeated with its seed returns
   its result again;
3. x = (3 x 3-cell visible energy / E, window visible energy / E) per shower, what
   :meth:`CascadeSample.measured` reads of a shower besides its photo-statistics normal (drawn
   independently of the design; the surrogate's objective uses a fixed batch of standard normals
   for it);
4. the surrogate: a **conditional Wasserstein GAN with gradient penalty** (WGAN-GP, Gulrajani et
   al., arXiv:1704.00028): a generator MLP g(z, t) -> x (z: ``latent`` standard normals) and a
   critic MLP c(x, t), t = (theta - theta0) / half-widths, both with SiLU activations (smooth in
   t), trained for ``steps`` generator steps with ``critic_steps`` critic steps each (Adam). The
   Wasserstein loss rather than the standard GAN loss: it trains stably with small networks and
   few steps, where a standard GAN often collapses onto a narrow mode, which would shrink the
   r.m.s. that the objective measures;
5. the objective at theta: ``energy_resolution`` of ``generated`` showers g(z_j, theta) with a
   fixed z batch and fixed photo-statistics normals (:func:`weighted_resolution`, unweighted); its
   gradient at theta0 by autograd through the generator.

Errors: an ensemble of ``gans`` GANs, each trained with its own seed on a bootstrap resample of
the training showers; the estimate is their mean, its error their spread (the spread of one
bagged GAN, which holds the showers' noise and the training's). The value is the surrogate's
objective at theta0 +- the same spread: a GAN's estimate, not the showers' (the diagnostics give
the objective of each new sample next to the surrogate's at its design).

The networks are small and training short (one CPU thread: about 20 s for three GANs with the
defaults, on 2000 showers at 2 GeV, next to about 16 s for the showers themselves). The layout
optimiser :mod:`calopt.optimize.optimizers.lgso` uses a conditional Gaussian surrogate of a scalar
objective instead, which is not what is wanted here: the objective is a width, a property of the
distribution of showers that the GAN models.

Known weaknesses: a GAN trained briefly matches the bulk of the distribution better than its
tails, and the r.m.s. is sensitive to tails, so the surrogate's value can be biased (compare
``value`` with the diagnostics' sample values); and the ensemble's spread from a few GANs is
itself uncertain by tens of per cent: on a toy stand-in for the cascade whose gradient is known,
the error of a parameter that barely moves the objective came out up to about twice too small, the
GANs sharing a spurious dependence on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import GradientEstimate, moved_all, step_of
from calopt.optimize.gradients.finite import design_points, exact_gradient, showers_per_point
from calopt.optimize.gradients.networks import ConditionalMLP, seeded_torch
from calopt.optimize.gradients.objectives import Objective
from calopt.optimize.gradients.reweight import WEIGHTED_OBJECTIVES, features, weighted_resolution
from calopt.optimize.gradients.samples import cascade_sample

__all__ = ["clear_store", "lgso", "stored_samples"]

# Most samples kept per family of designs; the oldest go first.
MAX_STORED = 2000


@dataclass(frozen=True)
class _Stored:
    """A cascade sample kept for reuse: its design's continuous parameters, depth in X0 and x."""

    key: tuple[str, int, int]  # (technology key, showers, seed)
    values: dict[str, float]
    depth_x0: float
    period_x0: float
    x: np.ndarray  # (N, 2) features()
    normals: np.ndarray  # (N,) photo-statistics normals


# family (beam and what the box does not move) -> {sample key: stored sample}
_STORE: dict[tuple[Any, ...], dict[tuple[str, int, int], _Stored]] = {}


def clear_store() -> None:
    """Forget the samples kept for reuse in this process."""
    _STORE.clear()


def stored_samples() -> int:
    """How many cascade samples are kept for reuse in this process."""
    return sum(len(v) for v in _STORE.values())


def _family(design: ModuleSpec, obj: Objective, hold_depth_x0: bool) -> tuple[Any, ...]:
    fixed: tuple[Any, ...] = (design.base, design.structure, design.absorber, design.active,
                              round(design.cell_size_mm, 6))  # fmt: skip
    if design.structure == "fibres":
        fixed += (design.fibre_shape,)
    elif not hold_depth_x0:
        fixed += (design.n_layers,)
    return (obj.beam, hold_depth_x0, *fixed)


def _depth(design: ModuleSpec) -> tuple[float, float]:
    """(depth, one period's depth) in X0; the period is 0 for fibres, whose depth is continuous."""
    tech = design.technology()
    period = tech.depth_X0 / design.n_layers if design.structure == "layers" else 0.0
    return float(tech.depth_X0), float(period)


def _train_gan(x: torch.Tensor, t: torch.Tensor, latent: int, hidden: int, steps: int, critic_steps: int,
               batch: int, lr: float, gp: float) -> tuple[ConditionalMLP, float]:  # fmt: skip
    """A conditional WGAN-GP on rows (x, t); (generator, the critic's last Wasserstein estimate)."""
    gen, critic = ConditionalMLP(latent, t.shape[1], hidden, x.shape[1]), ConditionalMLP(x.shape[1], t.shape[1], hidden)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    n = len(x)
    batch = min(batch, n)
    w_dist = 0.0
    for _ in range(steps):
        for _ in range(critic_steps):
            rows = torch.randint(0, n, (batch,))
            xr, tr = x[rows], t[rows]
            with torch.no_grad():
                xf = gen(torch.randn(batch, latent), tr)
            eps = torch.rand(batch, 1)
            xi = (eps * xr + (1.0 - eps) * xf).requires_grad_(True)
            (gi,) = torch.autograd.grad(critic(xi, tr).sum(), xi, create_graph=True)
            dist = critic(xr, tr).mean() - critic(xf, tr).mean()
            loss_c = -dist + gp * ((gi.norm(dim=1) - 1.0) ** 2).mean()
            opt_c.zero_grad()
            loss_c.backward()
            opt_c.step()
            w_dist = float(dist.detach())
        rows = torch.randint(0, n, (batch,))
        loss_g = -critic(gen(torch.randn(batch, latent), t[rows]), t[rows]).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return gen, w_dist


def lgso(obj: Objective, design: ModuleSpec, params: tuple[str, ...], budget: int, seed: int, *,
         half_width: float = 0.15, designs: int | None = None, hold_depth_x0: bool = True, gans: int = 3,
         steps: int = 600, critic_steps: int = 5, latent: int = 4, hidden: int = 64, batch: int = 256,
         lr: float = 2e-3, gp: float = 1.0, generated: int = 8192, reuse: bool = True, rel_step: float = 0.15,
         **_: Any) -> GradientEstimate:  # fmt: skip
    """The objective and its gradient at ``design`` through an ensemble of ``gans`` conditional
    WGAN-GP surrogates trained in the box +- ``half_width`` (module docstring): ``designs``
    (default max(8, 4 P)) new designs of budget / ``designs`` showers, and the stored samples inside
    the box unless ``reuse`` is False. Options: ``steps`` (generator steps), ``critic_steps``,
    ``latent``, ``hidden``, ``batch``, ``lr``, ``gp`` (gradient-penalty weight), ``generated``
    (the fixed batch of generated showers the objective is measured on); ``rel_step`` serves only an
    exact objective (no showers), differentiated as ``fd`` does."""
    if obj.beam is None:
        return exact_gradient(obj, design, params, "lgso", rel_step, hold_depth_x0)
    if obj.name not in WEIGHTED_OBJECTIVES:
        raise CaloptInputError(f"lgso cannot model objective {obj.name!r}; expected one of "
                               f"{', '.join(WEIGHTED_OBJECTIVES)}")  # fmt: skip
    if not (isinstance(half_width, int | float) and 0.0 < half_width <= 0.5):
        raise CaloptInputError(f"lgso half_width {half_width!r} must be in (0, 0.5]")
    if not (isinstance(gans, int) and gans >= 2):
        raise CaloptInputError(f"lgso needs at least 2 GANs for an error, got {gans!r}")
    n_designs = design_points("lgso", len(params), designs=designs)
    if not (isinstance(n_designs, int) and n_designs >= 2):
        raise CaloptInputError(f"lgso needs at least 2 designs in its box, got {designs!r}")
    n = showers_per_point(budget, n_designs, "lgso")
    beam = obj.beam

    theta0 = np.array([float(getattr(design, p)) for p in params])
    limits = np.array([step_of(design, p, half_width) for p in params])  # (P, 2)
    scale = np.array([max(abs(v) * half_width, 1e-12) for v in theta0])
    rng = np.random.default_rng([seed, 0x1650])
    key0 = int(design.technology_key(), 16)
    family = _family(design, obj, hold_depth_x0)
    store = _STORE.setdefault(family, {})
    depth0, period0 = _depth(design)

    own: list[_Stored] = []
    for k in range(n_designs):
        spec = _draw(design, params, limits, rng, hold_depth_x0)
        s_seed = int(np.random.SeedSequence([seed, key0, k, 0x1650]).generate_state(1, dtype=np.uint32)[0])
        sample = cascade_sample(spec, beam, n, s_seed)
        depth, period = _depth(spec)
        values_all = {p: float(getattr(spec, p)) for p in design.continuous()}
        own.append(_Stored((spec.technology_key(), n, s_seed), values_all, depth, period, features(sample),
                           sample.photo_normal))  # fmt: skip
    own_keys = {s.key for s in own}
    reused = [s for s in store.values() if s.key not in own_keys and _inside(s, design, params, limits, depth0,
                                                                             period0)] if reuse else []  # fmt: skip
    for s in own:
        store.pop(s.key, None)
        store[s.key] = s
    while len(store) > MAX_STORED:
        store.pop(next(iter(store)))

    rows = own + reused
    x_np = np.concatenate([s.x for s in rows])
    t_np = np.concatenate([np.tile((np.array([s.values[p] for p in params]) - theta0) / scale, (len(s.x), 1))
                           for s in rows])  # fmt: skip
    mu, sd = x_np.mean(axis=0), x_np.std(axis=0) + 1e-12
    x_all = torch.as_tensor((x_np - mu) / sd, dtype=torch.float32)
    t_all = torch.as_tensor(t_np, dtype=torch.float32)
    energy, light_yield = beam.energy_gev * 1000.0, design.technology().light_yield
    fixed = np.random.default_rng([seed, 0x2A11])
    z = torch.as_tensor(fixed.standard_normal((generated, latent)), dtype=torch.float32)
    normals = torch.as_tensor(fixed.standard_normal(generated), dtype=torch.float64)
    mu_t, sd_t = torch.as_tensor(mu), torch.as_tensor(sd)
    theta0_t, scale_t = torch.as_tensor(theta0), torch.as_tensor(scale)

    def objective(gen: ConditionalMLP, theta: torch.Tensor) -> torch.Tensor:
        t = ((theta - theta0_t) / scale_t).float().expand(generated, -1)
        x = gen(z, t).double() * sd_t + mu_t
        return weighted_resolution(x, normals, None, energy, light_yield)

    members_v, members_g, w_dists, fidelity = [], [], [], []
    bag = np.random.default_rng([seed, 0xBA6])
    for _member in range(gans):
        idx = torch.as_tensor(bag.integers(0, len(x_all), len(x_all)))
        with seeded_torch(int(bag.integers(0, 2**62))):
            gen, w_dist = _train_gan(x_all[idx], t_all[idx], latent, hidden, steps, critic_steps, batch, lr, gp)
        theta = torch.as_tensor(theta0, dtype=torch.float64).requires_grad_(True)
        o = objective(gen, theta)
        (g,) = torch.autograd.grad(o, theta)
        members_v.append(float(o.detach()))
        members_g.append(g.numpy())
        w_dists.append(w_dist)
        with torch.no_grad():
            fidelity.append([float(objective(gen, torch.as_tensor([s.values[p] for p in params], dtype=torch.float64)))
                             for s in own])  # fmt: skip
    g_all = np.array(members_g)
    sample_values = [float(weighted_resolution(torch.as_tensor(s.x), torch.as_tensor(s.normals), None, energy,
                                               light_yield)) for s in own]  # fmt: skip
    gan_values = np.mean(fidelity, axis=0)
    return GradientEstimate(
        "lgso", obj.name, design.name,
        value=float(np.mean(members_v)), value_err=float(np.std(members_v, ddof=1)),
        gradient={name: float(g_all[:, i].mean()) for i, name in enumerate(params)},
        gradient_err={name: float(g_all[:, i].std(ddof=1)) for i, name in enumerate(params)},
        showers=n * n_designs, parameters=design.parameters(),
        diagnostics={
            "surrogate": "conditional WGAN-GP", "half_width": half_width, "box": dict(zip(params, limits.tolist())),
            "designs": n_designs, "showers_per_design": n,
            "reused_designs": len(reused), "reused_showers": int(sum(len(s.x) for s in reused)),
            "training_showers": len(x_all), "gans": gans,
            "value_per_gan": members_v,
            "gradient_per_gan": [dict(zip(params, map(float, g))) for g in g_all],
            "wasserstein_estimate": w_dists,
            "samples": [{"theta": {p: s.values[p] for p in params}, "sample_value": v, "surrogate_value": float(gv)}
                        for s, v, gv in zip(own, sample_values, gan_values)],
            "surrogate_minus_sample_mean": float(np.mean(gan_values - np.array(sample_values))),
        },
    )  # fmt: skip


def _draw(design: ModuleSpec, params: tuple[str, ...], limits: np.ndarray, rng: np.random.Generator,
          hold_depth_x0: bool) -> ModuleSpec:  # fmt: skip
    """A design drawn uniformly in the box; a draw outside the space (a fibre wider than its pitch,
    a module deeper than the ECAL) is drawn again."""
    for _attempt in range(100):
        u = limits[:, 0] + rng.random(len(params)) * (limits[:, 1] - limits[:, 0])
        try:
            return moved_all(design, dict(zip(params, map(float, u))), hold_depth_x0)
        except CaloptInputError:
            continue
    raise CaloptInputError(f"lgso: no valid design in 100 draws from the box around {design.name}; "
                           f"reduce half_width")  # fmt: skip


def _inside(s: _Stored, design: ModuleSpec, params: tuple[str, ...], limits: np.ndarray, depth0: float,
            period0: float) -> bool:  # fmt: skip
    """Whether stored sample ``s`` lies in the box (module docstring, 2)."""
    for name in design.continuous():
        v, ref = s.values[name], float(getattr(design, name))
        if name in params:
            lo, hi = limits[params.index(name)]
            if not lo - 1e-9 * abs(lo) <= v <= hi + 1e-9 * abs(hi):
                return False
        elif abs(v - ref) > 1e-9 * max(abs(ref), 1.0):
            return False
    return abs(s.depth_x0 - depth0) <= max(period0, s.period_x0) + 1e-9
