"""A differentiable reconstruction conditioned on the design: a small torch regressor of a
photon's energy and entry point from its 3 x 3 readout cells and the module's continuous
parameters, for the objectives that a calibrated cell sum cannot give (``energy_resolution_ml``,
``position_resolution``; :mod:`calopt.optimize.gradients.objectives`).

Why conditioned on the design: the energy a cluster misses (lateral and rear leakage) and the
S-shaped bias of a centre of gravity depend on the Moliere radius and the depth, so the
reconstruction that a physicist tunes for each design is itself a function of the design. A
regressor that takes the design as an input is one function for the whole box; the objective
it defines is smooth in the design, and its derivative includes how the optimal
reconstruction changes with the design (as the reconstructed quantity of AIDO's surrogate,
arXiv:2502.02152, does).

Inputs: the 9 cell energies over their sum, the log of the sum over the beam energy, and the
design's features, log(value / centre) / log(BOX_FACTOR) per continuous parameter (within [-1,
1] in the training box). Outputs: log(E_true / sum) and the entry point (x, y) over the cell
size. The regressor is trained once per (base technology, materials, cell size, beam energy and
tilt; a layered module at the base's depth in X0) on showers of the differentiable shower
(:mod:`calopt.simulation.differentiable`; cheap, and every design of the box at once):
TRAIN_DESIGNS designs drawn log-uniformly within a factor BOX_FACTOR of the base technology's
values, energies log-uniform within a factor ENERGY_FACTOR of the beam's. The same fixed
regressor reconstructs the cascade's showers and the model's, so ``fd`` on the cascade and
``pathwise`` through the model estimate the gradient of one objective. A design outside the
training box is refused (an extrapolated reconstruction is not one a physicist would use).
Trained regressors are kept in the calopt cache.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from calopt.detector.module import ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients.networks import ConditionalMLP, one_thread, seeded_torch

__all__ = ["RECONSTRUCTION_VERSION", "Reconstructor", "reconstructor"]

RECONSTRUCTION_VERSION = 1
BOX_FACTOR = 3.0
ENERGY_FACTOR = 2.0
TRAIN_DESIGNS = 48
SHOWERS_PER_DESIGN = 800
STEPS = 1500
HIDDEN = 64


@dataclass
class Reconstructor:
    """The trained regressor of one (base, materials, cell size, beam) and its training box."""

    centre: dict[str, float]  # the continuous parameters of the box's centre
    cell_size_mm: float
    energy_mev: float
    net: ConditionalMLP

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.centre)

    def features(self, values: Mapping[str, Any]) -> torch.Tensor:
        """(P,) design features of ``values`` (floats or torch scalars, kept differentiable)."""
        return torch.stack([torch.log(torch.as_tensor(values[p], dtype=torch.float64) / c) / math.log(BOX_FACTOR)
                            for p, c in self.centre.items()])  # fmt: skip

    def __call__(self, cells: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies (N,) [MeV] and entry points (N, 2) [mm from the hit-cell centre] of showers
        with 3 x 3 cells ``cells`` (N, 3, 3) [MeV], at the design of ``features``."""
        n = cells.shape[0]
        s = cells.sum(dim=(1, 2)).clamp(min=1e-6)
        x = torch.cat([cells.reshape(n, 9) / s[:, None], torch.log(s / self.energy_mev)[:, None]], dim=1)
        with one_thread():  # a small network: fastest on one thread, and the machine is shared
            y = self.net(x.to(torch.float32), features.to(torch.float32).expand(n, -1)).to(torch.float64)
        return s * torch.exp(y[:, 0]), y[:, 1:] * self.cell_size_mm


def _check_inside(centre: dict[str, float], spec: ModuleSpec) -> None:
    """Refuse a design outside the training box around ``centre`` (one line naming the parameter)."""
    for p, c in centre.items():
        v = float(getattr(spec, p))
        if not c / BOX_FACTOR * (1 - 1e-9) <= v <= c * BOX_FACTOR * (1 + 1e-9):
            raise CaloptInputError(f"{p} = {v:g} is outside the range [{c / BOX_FACTOR:.4g}, {c * BOX_FACTOR:.4g}] "
                                   "the design-conditioned reconstruction was trained on")  # fmt: skip


def _centre(spec: ModuleSpec) -> dict[str, float]:
    """The base technology's values of the continuous parameters (the materials and cell size of
    ``spec``): one training box for every design of a descent or campaign from that base."""
    base = ModuleSpec.from_technology(spec.base, spec.cell_size_mm)
    return {p: float(getattr(base, p)) for p in spec.continuous()}


def _base_depth_x0(spec: ModuleSpec) -> float | None:
    """The depth in X0 of the base technology, at which a layered module's regressor is trained
    (the points of a descent hold their depth to within half a layer of it); None for fibres,
    whose depth is a continuous parameter."""
    if spec.structure != "layers":
        return None
    return float(ModuleSpec.from_technology(spec.base, spec.cell_size_mm).technology().depth_X0)


def _training_set(spec: ModuleSpec, centre: dict[str, float], energy_mev: float, tilt_deg: float,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(cells (N, 3, 3), energies (N,), entry points (N, 2) [mm], features (N, P)) of model
    showers over the training box."""
    from calopt.optimize.gradients.pathwise import model_values
    from calopt.simulation.differentiable import BaseNoise, DifferentiableShower

    ds = DifferentiableShower(spec)
    rng = np.random.default_rng([seed, 0x2EC0])
    slope = math.tan(math.radians(tilt_deg))
    cells, energies, impacts, feats = [], [], [], []
    made = 0
    while made < TRAIN_DESIGNS:
        u = rng.uniform(-1.0, 1.0, len(centre))
        values = {p: c * BOX_FACTOR**ui for (p, c), ui in zip(centre.items(), u)}
        depth = _base_depth_x0(spec)
        try:
            point = spec.replace(**values, **({"depth_x0": depth} if depth is not None else {}))
        except CaloptInputError:  # e.g. a fibre wider than its pitch: not a design
            continue
        e = energy_mev * ENERGY_FACTOR ** rng.uniform(-1.0, 1.0, SHOWERS_PER_DESIGN)
        noise = BaseNoise.draw(SHOWERS_PER_DESIGN, 5, int(rng.integers(2**31)))
        with torch.no_grad():
            out = ds(model_values(ds, point, dict(values), True), torch.as_tensor(e), noise, slopes=(slope, slope))
        cells.append(out.cells[:, 1:4, 1:4])
        energies.append(torch.as_tensor(e))
        impacts.append(out.impact_mm)
        feats.append(torch.as_tensor(u, dtype=torch.float64).expand(SHOWERS_PER_DESIGN, -1))
        made += 1
    return torch.cat(cells), torch.cat(energies), torch.cat(impacts), torch.cat(feats)


def _train(spec: ModuleSpec, energy_mev: float, tilt_deg: float, seed: int) -> dict[str, torch.Tensor]:
    """The trained network's weights (its state dict)."""
    with seeded_torch(seed):
        return _train_seeded(spec, energy_mev, tilt_deg, seed)


def _train_seeded(spec: ModuleSpec, energy_mev: float, tilt_deg: float, seed: int) -> dict[str, torch.Tensor]:
    centre = _centre(spec)
    net = ConditionalMLP(10, len(centre), HIDDEN, n_out=3)
    cells, e, impact, feats = _training_set(spec, centre, energy_mev, tilt_deg, seed)
    s = cells.sum(dim=(1, 2)).clamp(min=1e-6)
    n = cells.shape[0]
    x = torch.cat([cells.reshape(n, 9) / s[:, None], torch.log(s / energy_mev)[:, None]], dim=1).float()
    target = torch.cat([torch.log(e / s)[:, None], impact / spec.cell_size_mm], dim=1).float()
    t = feats.float()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    g = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        idx = torch.randint(0, n, (2048,), generator=g)
        loss = ((net(x[idx], t[idx]) - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.state_dict()


_MEMO: dict[str, Reconstructor] = {}
_BY_POINT: dict[tuple[ModuleSpec, float, float, int], Reconstructor] = {}


def reconstructor(spec: ModuleSpec, energy_mev: float, tilt_deg: float, seed: int = 0) -> Reconstructor:
    """The trained regressor for ``spec``'s base, materials and cell size at a beam of
    ``energy_mev`` and ``tilt_deg`` (from memory, the calopt cache, or trained now: about a
    minute on 2 cores); ``spec`` must lie inside its training box."""
    from calopt.cache import build_once, cache_key, stage_dir

    known = _BY_POINT.get((spec, energy_mev, tilt_deg, seed))
    if known is not None:  # the objectives ask once per bootstrap resample
        return known
    centre = _centre(spec)
    doc: dict[str, Any] = {"version": RECONSTRUCTION_VERSION, "base": spec.base, "structure": spec.structure,
           "absorber": spec.absorber, "active": spec.active, "fibre_shape": spec.fibre_shape,
           "cell_size_mm": round(spec.cell_size_mm, 6), "centre": centre, "energy_mev": energy_mev,
           "tilt_deg": tilt_deg, "seed": seed, "depth_x0": _base_depth_x0(spec),
           "box": BOX_FACTOR, "energies": ENERGY_FACTOR, "designs": TRAIN_DESIGNS,
           "showers": SHOWERS_PER_DESIGN, "steps": STEPS, "hidden": HIDDEN}  # fmt: skip
    _check_inside(centre, spec)  # before anything is trained
    key = cache_key("reconstructions", doc)
    reco = _MEMO.get(key)
    if reco is None:
        folder = stage_dir("reconstructions")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{spec.base}-{spec.cell_size_mm:.4g}-{key}.pt"

        def build() -> None:
            from calopt.files import atomic_path

            weights = _train(spec, energy_mev, tilt_deg, seed)
            with atomic_path(path) as tmp:
                torch.save(weights, tmp)

        build_once(path, build)  # then loaded from the file, as by every later process
        net = ConditionalMLP(10, len(centre), HIDDEN, n_out=3)
        net.load_state_dict(torch.load(path, weights_only=True))
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        reco = Reconstructor(centre, spec.cell_size_mm, energy_mev, net)
        _MEMO[key] = reco
    _BY_POINT[(spec, energy_mev, tilt_deg, seed)] = reco
    return reco
