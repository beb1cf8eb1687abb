"""``reweight``: the gradient of a module objective by the classifier likelihood-ratio trick.

A classifier trained to tell showers of a design theta (label 1) from showers of the design
theta0 (label 0) estimates f(x, theta) = p(x|theta) / (p(x|theta) + p(x|theta0)), so that
w(x; theta) = f / (1 - f) is the likelihood ratio p(x|theta) / p(x|theta0) (Cranmer, Pavez and
Louppe, "Approximating likelihood ratios with calibrated discriminative classifiers",
arXiv:1506.02169). A classifier that takes theta as an input as well (a parametrised classifier,
Baldi, Cranmer, Faucett, Sadowski and Whiteson, arXiv:1601.07913) gives w for every theta of the
region it was trained on, smoothly in theta. The objective at theta is then the w-weighted
objective on the showers of theta0 alone,

    O(theta) = O[theta0 sample weighted by w(x_i; theta)],

and its gradient at theta0 comes by autograd through the classifier. No shower is simulated at
theta itself once the classifier is trained, which is what makes the trick attractive: one
sample, any number of nearby designs.

What is done here:

1. a cascade sample at the design theta0 (``seed``) and one at each of 2 P designs on the axes of
   a box around it, theta0 +- ``half_width`` of each parameter's value (:func:`step_of`; a
   layered module keeps its depth in X0, :func:`moved`), each with its own seed: budget / (2 P + 1)
   showers per point (every point the same, as ``fd`` splits its budget);
2. x = (3 x 3-cell visible energy / E, window visible energy / E) per shower: what
   :meth:`CascadeSample.measured` reads of a shower besides its photo-statistics normal, which is
   drawn independently of the design (:mod:`calopt.optimize.gradients.samples`), so its
   likelihood ratio is 1 and it is not a classifier input;
3. an ensemble of ``classifiers`` small MLPs f(x, theta) (two hidden SiLU layers: smooth in
   theta), each with its own seed: label 0 the theta0 showers, each paired with the theta of every
   box point, label 1 the box showers with their theta; binary cross-entropy, full-batch Adam with
   weight decay. Each member is two networks, cross-fitted: one trained on half of the theta0
   showers and applied to the other half, and the reverse, so that no shower's weight comes from a
   classifier that has seen it (one that has learns the sample's own fluctuations as "theta0");
   and bagged: every sample's showers resampled for its training (the class sizes then differ by a
   factor constant in x, which the self-normalised weights ignore);
4. log w(x; theta) = logit f(x, theta) - logit f(x, theta0): a term that does not depend on
   theta leaves d log w / d theta as it is, and makes w exactly 1 at theta0, so that the weighted
   objective at theta0 is the objective of the theta0 sample itself;
5. ``energy_resolution`` with weights (:func:`weighted_resolution`): the calibration (the
   weighted mean window energy), the photo-statistics, the weighted mean and the weighted r.m.s.
   of the measured energy (reliability-weights correction, = ddof 1 at equal weights), in torch;
   its gradient in theta at theta0 by autograd, through the ensemble's mean d log w / d theta.

Errors: a bootstrap over the theta0 showers (resampled showers are integer weights times w) with
the ensemble's mean d log w / d theta, and the spread of the members' gradients (bagging puts the
noise of the box samples and of the training in it), added in quadrature. The value is the
objective of the theta0 sample +- its bootstrap error, as ``fd`` reports it.

Diagnostics: the effective sample size (sum w)^2 / sum w^2 of the theta0 sample weighted to each
box point (at most the theta0 sample size; a small one says the box reaches designs whose showers
the theta0 sample does not cover, and that the weighted objective there rests on few showers);
a closure test at each box point: the weighted theta0 sample's mean x and objective next to those
of the box sample itself; the classifiers' training loss against log 2 (a loss near log 2 is a
classifier that cannot tell the designs apart).

Weaknesses to know. No common random numbers: the objective is an r.m.s., sensitive to the tails
of few showers, and a sample's width fluctuates by several per cent from sample to sample, which a
classifier learns as a difference between the designs; the errors are then several times those of
``fd`` for the same budget (Shashlik at 2 GeV, 2000 showers: about 0.02 against 0.005 per mm of
absorber). In three seeds there the absorber gradient came out at -0.012, -0.002 and -0.032 where
``fd`` has about +0.016: each within 2.3 errors, but all on one side, a bias suspected (on a
Gaussian toy stand-in for the cascade it recovers the known gradient). A classifier trained on a
few hundred showers per design learns the shift of a skewed distribution better than the change
of its width, and an exponential tilt of a right-skewed distribution widens it as it moves its
mean up, the opposite of what a thinner absorber does. And the gradient is only as good as the
classifier's d log w / d theta at theta0: an under-trained or over-regularised classifier shrinks
it towards zero, a bias the errors do not hold; :func:`calopt.optimize.gradients.check` is there
to catch it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import GradientEstimate, moved, step_of
from calopt.optimize.gradients.finite import N_BOOTSTRAP, design_points, exact_gradient, showers_per_point
from calopt.optimize.gradients.networks import ConditionalMLP, seeded_torch
from calopt.optimize.gradients.objectives import Objective
from calopt.optimize.gradients.samples import CascadeSample, cascade_sample

__all__ = ["features", "reweight", "weighted_resolution"]

# Objectives that the torch code below can weight; others are refused in one line.
WEIGHTED_OBJECTIVES = ("energy_resolution",)


def features(sample: CascadeSample) -> np.ndarray:
    """(N, 2): the 3 x 3-cell and window visible energies of each shower over the beam energy."""
    return np.stack([sample.cluster, sample.window], axis=1) / sample.energy_mev


def weighted_resolution(x: torch.Tensor, normals: torch.Tensor, weights: torch.Tensor | None, energy_mev: float,
                        light_yield: float) -> torch.Tensor:  # fmt: skip
    """``energy_resolution`` of showers ``x`` = (cluster / E, window / E) with photo-statistics
    normals ``normals`` and (unnormalised) ``weights`` (None: all 1): :meth:`CascadeSample.measured`
    and :meth:`Objective.of_sample` with weights, in torch (differentiable in x and weights). The
    r.m.s. uses the reliability-weights correction V1^2 / (V1^2 - V2), which is n / (n - 1), the
    ddof 1 of ``of_sample``, at equal weights."""
    w = torch.ones_like(x[:, 0]) if weights is None else weights
    v1 = w.sum()
    calib = (w * x[:, 1]).sum() / v1  # mean visible fraction of the window
    e = x[:, 0] * energy_mev / calib
    n_pe = torch.clamp(e / 1000.0 * light_yield, min=1e-9)
    m = e * (1.0 + normals / torch.sqrt(n_pe))
    mean = (w * m).sum() / v1
    var = (w * (m - mean) ** 2).sum() / v1 * v1**2 / (v1**2 - (w * w).sum())
    return torch.sqrt(var) / mean


def _train(xs: torch.Tensor, ts: torch.Tensor, ys: torch.Tensor, hidden: int, epochs: int, lr: float,
           weight_decay: float) -> tuple[ConditionalMLP, float]:  # fmt: skip
    """A classifier trained by full-batch Adam on binary cross-entropy; (net, final loss)."""
    net = ConditionalMLP(xs.shape[1], ts.shape[1], hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loss = torch.tensor(math.log(2.0))
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(net(xs, ts), ys)
        loss.backward()
        opt.step()
    return net, float(loss.detach())


def reweight(obj: Objective, design: ModuleSpec, params: tuple[str, ...], budget: int, seed: int, *,
             half_width: float = 0.05, hold_depth_x0: bool = True, classifiers: int = 5, hidden: int = 32,
             epochs: int = 400, lr: float = 0.01, weight_decay: float = 1e-3, rel_step: float = 0.15,
             **_: Any) -> GradientEstimate:  # fmt: skip
    """The objective and its gradient at ``design`` from the theta0 showers reweighted by an
    ensemble of ``classifiers`` parametrised classifiers (module docstring): 2 P box points at
    +- ``half_width`` of each parameter's value, budget / (2 P + 1) showers per point. Options:
    ``hidden`` (width of the two hidden layers), ``epochs``, ``lr`` and ``weight_decay`` (full-batch
    Adam). ``rel_step``, the step of ``fd``, serves only an exact objective (no showers), which is
    differentiated as ``fd`` does: the box is ``half_width``, smaller, because a classifier needs
    overlapping showers, which a box of +- 15 % does not give for a Shashlik's sampling fraction."""
    if obj.beam is None:
        return exact_gradient(obj, design, params, "reweight", rel_step, hold_depth_x0)
    if obj.name not in WEIGHTED_OBJECTIVES:
        raise CaloptInputError(f"reweight cannot weight objective {obj.name!r}; expected one of "
                               f"{', '.join(WEIGHTED_OBJECTIVES)}")  # fmt: skip
    if not (isinstance(half_width, int | float) and 0.0 < half_width <= 0.5):
        raise CaloptInputError(f"reweight half_width {half_width!r} must be in (0, 0.5]")
    if not (isinstance(classifiers, int) and classifiers >= 2):
        raise CaloptInputError(f"reweight needs at least 2 classifiers for an error, got {classifiers!r}")
    n = showers_per_point(budget, design_points("reweight", len(params)), "reweight")
    beam = obj.beam
    theta0 = np.array([float(getattr(design, p)) for p in params])
    box: list[tuple[np.ndarray, ModuleSpec]] = []
    for i, name in enumerate(params):
        for v in step_of(design, name, half_width):
            theta = theta0.copy()
            theta[i] = v
            box.append((theta, moved(design, name, v, hold_depth_x0)))
    scale = np.array([max(abs(v) * half_width, 1e-12) for v in theta0])
    centre = cascade_sample(design, beam, n, seed)
    samples = [cascade_sample(spec, beam, n, seed + 1 + k) for k, (_, spec) in enumerate(box)]

    x0 = features(centre)
    mu, sd = x0.mean(axis=0), x0.std(axis=0) + 1e-12
    std_x0 = torch.as_tensor((x0 - mu) / sd, dtype=torch.float32)
    t_box = torch.as_tensor(np.array([(th - theta0) / scale for th, _ in box]), dtype=torch.float32)
    k_box = len(box)
    std_box = [torch.as_tensor((features(s) - mu) / sd, dtype=torch.float32) for s in samples]
    normals = torch.as_tensor(centre.photo_normal, dtype=torch.float64)
    x_centre = torch.as_tensor(x0, dtype=torch.float64)
    energy, light_yield = centre.energy_mev, centre.light_yield
    rng = np.random.default_rng([seed, 0x12E5])
    folds = np.array_split(rng.permutation(n), 2)

    scores, losses = [], []  # per member: (n, P) d log w_i / d theta at theta0
    log_w_box = []  # per member: (k_box, n) log w at the box points
    for _member in range(classifiers):
        score, log_w = np.zeros((n, len(params))), np.zeros((k_box, n))
        for f in range(2):
            # cross-fitting: trained on the other fold's theta0 showers, applied to this fold's; bagging: every
            # sample's showers resampled. Label 0: theta0 showers, each with the theta of every box point;
            # label 1: each box sample with its theta (the classes' sizes differ by a factor constant in x, which
            # the self-normalised weights ignore)
            train, apply = folds[1 - f], folds[f]
            idx0 = torch.as_tensor(train[rng.integers(0, len(train), len(train))])
            idx = [torch.as_tensor(rng.integers(0, n, n)) for _ in range(k_box)]
            xs = torch.cat([std_x0[idx0].repeat(k_box, 1)] + [std_box[k][idx[k]] for k in range(k_box)])
            ts = torch.cat([t_box.repeat_interleave(len(idx0), dim=0), t_box.repeat_interleave(n, dim=0)])
            ys = torch.cat([torch.zeros(k_box * len(idx0)), torch.ones(k_box * n)])
            with seeded_torch(int(rng.integers(0, 2**62))):
                net, loss = _train(xs, ts, ys, hidden, epochs, lr, weight_decay)
            losses.append(loss)
            xa = std_x0[torch.as_tensor(apply)]
            t = torch.zeros(len(apply), len(params), requires_grad=True)
            (g,) = torch.autograd.grad(net(xa, t).sum(), t)  # rows are independent: row i's derivative
            score[apply] = g.numpy() / scale
            with torch.no_grad():
                base = net(xa, torch.zeros(len(apply), len(params)))
                log_w[:, apply] = torch.stack([net(xa, t_box[k].expand(len(apply), -1)) - base
                                               for k in range(k_box)]).numpy()  # fmt: skip
        scores.append(score)
        log_w_box.append(log_w)

    def gradient(score: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        """d O / d theta at theta0 with the showers' (bootstrap) multiplicities ``counts``."""
        w = torch.ones(n, dtype=torch.float64) if counts is None else torch.as_tensor(counts, dtype=torch.float64)
        w.requires_grad_(True)
        o = weighted_resolution(x_centre, normals, w, energy, light_yield)
        (dw,) = torch.autograd.grad(o, w)
        # d/dtheta O(counts * w(theta)) = sum_i dO/dw_i * counts_i * d log w_i / d theta  (w = 1 at theta0)
        return (dw.numpy() * w.detach().numpy()) @ score

    per_member = np.array([gradient(s, None) for s in scores])  # (classifiers, P)
    mean_score = np.mean(scores, axis=0)
    g_mean = gradient(mean_score, None)
    boot_rng = np.random.default_rng([seed, 0xB007])
    boot = np.array([gradient(mean_score, np.bincount(boot_rng.integers(0, n, n), minlength=n))
                     for _ in range(N_BOOTSTRAP)])  # fmt: skip
    err = np.sqrt(boot.std(axis=0, ddof=1) ** 2 + per_member.std(axis=0, ddof=1) ** 2)
    values = _bootstrap_values(obj, centre, n, np.random.default_rng([seed, 0xFD]))

    lw = np.mean(log_w_box, axis=0)  # (k_box, n): the ensemble's log w at each box point
    ess, box_values, box_means = [], [], []  # closure: the weighted theta0 sample against the box sample itself
    for row in lw:
        w = np.exp(row - row.max())
        ess.append(float(w.sum() ** 2 / (w * w).sum()))
        with torch.no_grad():
            box_values.append(float(weighted_resolution(x_centre, normals, torch.as_tensor(w),
                                                        energy, light_yield)))  # fmt: skip
        box_means.append((w @ x0 / w.sum()).tolist())
    return GradientEstimate(
        "reweight", obj.name, design.name,
        value=float(values[0]), value_err=float(values[1:].std(ddof=1)),
        gradient={name: float(g_mean[i]) for i, name in enumerate(params)},
        gradient_err={name: float(err[i]) for i, name in enumerate(params)},
        showers=n * (k_box + 1), parameters=design.parameters(),
        diagnostics={
            "showers_per_point": n, "half_width": half_width, "classifiers": classifiers,
            "box": [{"theta": dict(zip(params, map(float, th))), "showers": n, "ess": e, "weighted_value": v,
                     "simulated_value": float(obj.of_sample(s)), "weighted_mean_x": m,
                     "simulated_mean_x": features(s).mean(axis=0).tolist()}
                    for (th, _), e, v, m, s in zip(box, ess, box_values, box_means, samples)],
            "theta0_mean_x": x0.mean(axis=0).tolist(),
            "ess_min": min(ess), "theta0_showers": n,
            "classifier_loss": losses, "log2": math.log(2.0),
            "gradient_per_member": [dict(zip(params, map(float, g))) for g in per_member],
            "gradient_bootstrap_err": dict(zip(params, map(float, boot.std(axis=0, ddof=1)))),
            "gradient_member_err": dict(zip(params, map(float, per_member.std(axis=0, ddof=1)))),
        },
    )  # fmt: skip


def _bootstrap_values(obj: Objective, sample: CascadeSample, n: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + N_BOOTSTRAP,): the objective of ``sample``, then of its bootstrap resamples."""
    return np.array([obj.of_sample(sample)] + [obj.of_sample(sample, rng.integers(0, n, n))
                                               for _ in range(N_BOOTSTRAP)])  # fmt: skip
