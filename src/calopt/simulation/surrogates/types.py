"""What a surrogate model type is: how it is built, trained, loaded and sampled.

A model type (``wgan``, ``flow``, ``adagan``: :mod:`.registry`) is a :class:`SurrogateType`,
functions over the shared pieces defined here:

* ``build(arch) -> nn.Module``: the sampling network(s) from the architecture settings stored in
  the checkpoint;
* ``train(run, data, steps, settings) -> Trained``: training on a :class:`TrainingData`, as
  resumable phases of ``run`` (:class:`~calopt.simulation.surrogates.resume.TrainingState`);
* ``load(net, ck)``: the checkpoint's state into the network (older layouts converted);
* ``sample(net, ck, cond, rngs) -> Sample``: model-space showers for the networks' conditions,
  every shower's random numbers drawn from its own generator ``rngs[i]``
  (:func:`~calopt.simulation.surrogates.noise.shower_rngs`);
* ``work(steps, settings) -> int``: the units of work its training reports as progress.

Every model maps conditions and noise to the representation of
:mod:`~calopt.simulation.surrogates.dataset`: the cell energy fractions of a shower and its
standardised response ``r`` = (ln(E_vis/E) - mean) / std.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from calopt.simulation.surrogates.dataset import TrainingSet
from calopt.simulation.surrogates.resume import TrainingState

__all__ = ["RunningMean", "Sample", "SurrogateType", "Trained", "TrainingData", "mlp", "normalise_g"]


@dataclass
class Sample:
    """Model-space showers: ``fractions`` (N, D) float32 cell energy fractions of the crop (each
    row sums to 1), ``r`` (N,) float32 standardised ln(E_vis/E), and ``tau`` (N, S) float32 the
    section-time normals of a model that learns them (None otherwise)."""

    fractions: np.ndarray
    r: np.ndarray
    tau: np.ndarray | None = None


@dataclass
class Trained:
    """What a type's training returns: the network(s), the architecture entries it adds to the
    checkpoint, the training summary, and extra checkpoint entries (e.g. mixture weights)."""

    net: nn.Module
    arch: dict[str, Any]
    summary: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SurrogateType:
    """A model type: its ``name`` (the checkpoint's ``model_type``) and its functions (module
    docstring)."""

    name: str
    build: Callable[[dict[str, Any]], nn.Module]
    train: Callable[[TrainingState, TrainingData, int, dict[str, Any]], Trained]
    sample: Callable[[nn.Module, dict[str, Any], np.ndarray, list[np.random.Generator]], Sample]
    work: Callable[[int, dict[str, Any]], int] = lambda steps, settings: steps
    load: Callable[[nn.Module, dict[str, Any]], None] = lambda net, ck: load_state(net, ck["state"])


def load_state(net: nn.Module, state: dict[str, Any]) -> None:
    """``net.load_state_dict(state)``: the default ``load`` of a type whose layout never changed."""
    net.load_state_dict(state)


def mlp(n_in: int, hidden: list[int], n_out: int, slope: float = 0.2) -> nn.Sequential:
    """Linear layers with LeakyReLU(``slope``) between them."""
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.LeakyReLU(slope)]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def normalise_g(raw: Tensor) -> Tensor:
    """Non-negative, unit-L2-norm square-root fractions from any real vector (exact zeros are
    possible, as in real showers)."""
    g = torch.relu(raw)
    return g / torch.sqrt((g * g).sum(dim=1, keepdim=True) + 1e-12)


class RunningMean:
    """Means of a loss over windows of ``window`` steps (the histories of the summary), saved
    with the training state."""

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


class TrainingData:
    """A :class:`~calopt.simulation.surrogates.dataset.TrainingSet` as tensors: ``g`` (N, D)
    square-root fractions, ``r`` (N,) standardised response (mean ``r_mean``, std ``r_std``),
    ``c`` (N, n_cond) the networks' conditions, ``tau`` (N, S) section-time normals, ``lne``
    (N,) ln E; and the data generator ``gen`` from which every minibatch and noise is drawn."""

    def __init__(self, ds: TrainingSet, gen: torch.Generator) -> None:
        self.ds = ds
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

    def index(self, batch: int, weights: Tensor | None = None) -> Tensor:
        """A minibatch of indices, uniform or drawn with ``weights``."""
        if weights is None:
            return torch.randint(0, self.n, (batch,), generator=self.gen)
        return torch.multinomial(weights, batch, replacement=True, generator=self.gen)

    def lnevis(self, r: Tensor, idx: Tensor) -> Tensor:
        """Standardised ln E_vis from standardised r of showers with conditions ``idx``."""
        return (r * self.r_std + self.r_mean + self.lne[idx] - self.v_mean) / self.v_std
