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
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from calopt.simulation.surrogates.conditions import N_KINEMATIC

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
    """Conditional NSF on (whitened PCA of g, r), plus the per-cell residual model
    (``res_bins`` > 0; ``n_species`` rows of statistics)."""

    pca_mean: Tensor
    pca_components: Tensor
    pca_scale: Tensor
    res_centres: Tensor
    res_mean: Tensor
    res_std: Tensor

    def __init__(
        self,
        n_cond: int,
        n_in: int,
        n_pca: int = 64,
        transforms: int = 4,
        hidden: list[int] | None = None,
        res_bins: int = 0,
        n_species: int = 1,
    ) -> None:
        import zuko

        super().__init__()
        self.n_pca = n_pca
        self.n_in = n_in
        self.n_cond = n_cond
        self.res_bins = res_bins
        self.n_species = n_species
        self.register_buffer("pca_mean", torch.zeros(n_in))
        self.register_buffer("pca_components", torch.zeros(n_pca, n_in))
        self.register_buffer("pca_scale", torch.ones(n_pca))
        if res_bins > 0:
            self.register_buffer("res_centres", torch.zeros(res_bins))
            self.register_buffer("res_mean", torch.zeros(n_species, res_bins, n_in))
            self.register_buffer("res_std", torch.zeros(n_species, res_bins, n_in))
        self.flow: Any = zuko.flows.NSF(
            features=n_pca + 1, context=n_cond, transforms=transforms, hidden_features=hidden or [128, 128], passes=2
        )

    @property
    def noise_dim(self) -> int:
        return self.n_pca + 1 + (self.n_in if self.res_bins > 0 else 0)

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

    def residual(self, c: Tensor, eps: Tensor) -> Tensor:
        """``mean + std * eps`` interpolated linearly in ln E between the bin centres (as one
        matrix product with the interpolation weights of the (species, bin) rows)."""
        x = self.res_centres
        k = len(x)
        rows = self.species_row(c)
        w = torch.zeros(len(c), self.n_species * k)
        if k == 1:
            w[torch.arange(len(c)), rows] = 1.0
        else:
            le = torch.clamp(c[:, 0], float(x[0]), float(x[-1]))
            hi = torch.clamp(torch.searchsorted(x.contiguous(), le.contiguous()), 1, k - 1)
            lo = hi - 1
            t = (le - x[lo]) / torch.clamp(x[hi] - x[lo], min=1e-9)
            i = torch.arange(len(c))
            w[i, rows * k + lo] = 1 - t
            w[i, rows * k + hi] = t
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

    def encode(self, g: Tensor, r: Tensor) -> Tensor:
        y = (g - self.pca_mean) @ self.pca_components.T / self.pca_scale
        return torch.cat([y, r[:, None]], dim=1)

    def decode(self, x: Tensor, c: Tensor | None = None, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        g = self.pca_mean + (x[:, :-1] * self.pca_scale) @ self.pca_components
        if self.res_bins > 0 and c is not None and eps is not None:
            g = g + self.residual(c, eps)
        return normalise_g(g), x[:, -1]

    def log_prob(self, g: Tensor, r: Tensor, c: Tensor) -> Tensor:
        return self.flow(c).log_prob(self.encode(g, r))

    def forward(self, c: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        k = self.n_pca + 1
        x = self.flow(c).transform.inv(z[:, :k])
        return self.decode(x, c, z[:, k:] if self.res_bins > 0 else None)


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
        )
    if model_type == "adagan":
        return nn.ModuleList(
            [Generator(arch["n_cond"], arch["n_out"], arch["nz"], arch["g_hidden"]) for _ in range(arch["components"])]
        )
    raise ValueError(model_type)
