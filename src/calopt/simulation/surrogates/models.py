"""Networks of the generative surrogates (all sized for a CPU).

Every model maps (condition vector c, noise z) to a shower in the representation of
:mod:`calopt.simulation.surrogates.dataset`: ``g`` (N, D) non-negative square-root cell
fractions of unit L2 norm and ``r`` (N,) the standardised ln(E_vis / E).

* :class:`Generator` (``wgan``, and each ``adagan`` component): an MLP
  ``[z, c] -> 256 -> 512 -> 512 -> (D + 1)`` with LeakyReLU(0.2); the first D outputs go
  through a ReLU and are normalised to unit L2 norm (exact zeros are possible, like in
  real showers), the last one is ``r``.
* :class:`Critic`: an MLP ``[g, r, c] -> 256 -> 256 -> 1`` with LeakyReLU(0.2), no
  normalisation layers (the gradient penalty is per sample).
* :class:`Regressor`: the LHCb GAN's auxiliary network, an MLP ``[g, ln E_vis] -> 256 -> 128
  -> 5`` predicting the kinematic conditions (ln E, tan theta_x, tan theta_y, x, y) from a
  shower. Trained on real showers, frozen, its error on generated showers is added to the
  generator loss (seeds/002).
* :class:`FlowModel` (``flow``): PCA of ``g`` (``n_pca`` = 64 whitened components, 91 % of
  the variance for lhcb-shashlik) plus ``r`` -> a conditional neural spline flow (zuko NSF,
  4 coupling transforms, hyper-networks 128 x 128, 8 bins; coupling so that sampling is one
  pass). Decoding: inverse PCA, negative square-root fractions set to 0, renormalised.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Critic", "FlowModel", "Generator", "Regressor", "mlp", "normalise_g"]


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


class Generator(nn.Module):
    def __init__(self, n_cond: int, n_out: int, nz: int = 32, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.nz = nz
        self.net = mlp(nz + n_cond, hidden or [256, 512, 512], n_out + 1)

    @property
    def noise_dim(self) -> int:
        return self.nz

    def forward(self, c: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(torch.cat([z, c], dim=1))
        return normalise_g(out[:, :-1]), out[:, -1]


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


class FlowModel(nn.Module):
    """Conditional NSF on (whitened PCA of g, r)."""

    pca_mean: Tensor
    pca_components: Tensor
    pca_scale: Tensor

    def __init__(
        self, n_cond: int, n_in: int, n_pca: int = 64, transforms: int = 4, hidden: list[int] | None = None
    ) -> None:
        import zuko

        super().__init__()
        self.n_pca = n_pca
        self.register_buffer("pca_mean", torch.zeros(n_in))
        self.register_buffer("pca_components", torch.zeros(n_pca, n_in))
        self.register_buffer("pca_scale", torch.ones(n_pca))
        self.flow: Any = zuko.flows.NSF(
            features=n_pca + 1, context=n_cond, transforms=transforms, hidden_features=hidden or [128, 128], passes=2
        )

    @property
    def noise_dim(self) -> int:
        return self.n_pca + 1

    def fit_pca(self, g: Tensor) -> float:
        """Set the PCA from training ``g``; returns the fraction of variance kept."""
        mean = g.mean(dim=0)
        _, s, vh = torch.linalg.svd(g - mean, full_matrices=False)
        k = self.n_pca
        self.pca_mean.copy_(mean)
        self.pca_components.copy_(vh[:k])
        self.pca_scale.copy_(s[:k] / (len(g) - 1) ** 0.5)
        return float((s[:k] ** 2).sum() / (s**2).sum())

    def encode(self, g: Tensor, r: Tensor) -> Tensor:
        y = (g - self.pca_mean) @ self.pca_components.T / self.pca_scale
        return torch.cat([y, r[:, None]], dim=1)

    def decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        g = self.pca_mean + (x[:, :-1] * self.pca_scale) @ self.pca_components
        return normalise_g(g), x[:, -1]

    def log_prob(self, g: Tensor, r: Tensor, c: Tensor) -> Tensor:
        return self.flow(c).log_prob(self.encode(g, r))

    def forward(self, c: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        x = self.flow(c).transform.inv(z)
        return self.decode(x)


def build_sampler(model_type: str, arch: dict[str, Any]) -> nn.Module:
    """The sampling network(s) of a model type from its stored architecture settings."""
    if model_type == "wgan":
        return Generator(arch["n_cond"], arch["n_out"], arch["nz"], arch["g_hidden"])
    if model_type == "flow":
        return FlowModel(arch["n_cond"], arch["n_out"], arch["n_pca"], arch["transforms"], arch["flow_hidden"])
    if model_type == "adagan":
        return nn.ModuleList(
            [Generator(arch["n_cond"], arch["n_out"], arch["nz"], arch["g_hidden"]) for _ in range(arch["components"])]
        )
    raise ValueError(model_type)
