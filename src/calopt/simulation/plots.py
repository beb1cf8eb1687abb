"""Shower images of a shower file, as a physicist shows them: the mean shower and single
showers, on linear and logarithmic colour scales (the log scale shows the lateral tails that
decide containment and the linear one the core), summed over the longitudinal sections, and the
mean energy per section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from calopt.simulation.showers import Showers

__all__ = ["plot_shower_images"]

SINGLE_SHOWERS = 3
"""Single showers drawn beside the mean."""
LINEAR_HALF_WIDTH_MM = 100.0
"""Half-width of the linear images: the core (a few Moliere radii); the log images show the whole window."""


def plot_shower_images(showers: Showers, path: Path, style: str | None = None) -> Path:
    """Write the images of ``showers`` to ``path`` (PNG) in plot ``style``
    (:mod:`calopt.plotting`): a grid of (mean, first SINGLE_SHOWERS showers) x (linear core,
    log whole window) of the visible energy per fine cell [MeV], summed over sections, axes in
    mm from the window centre, and the mean visible energy per section."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from calopt.files import atomic_path
    from calopt.plotting import plot_style

    e = showers.showers.sum(axis=1, dtype=np.float64)  # (N, H, W)
    pitch = float(showers.attrs["fine_pitch_mm"])
    h, w = e.shape[1:]
    extent = (-w * pitch / 2, w * pitch / 2, -h * pitch / 2, h * pitch / 2)
    images = [("mean", e.mean(axis=0))] + [(f"shower {i}", e[i]) for i in range(min(SINGLE_SHOWERS, len(e)))]
    energy = float(np.median(showers.incident_energies)) / 1000.0
    with plot_style(style):
        fig, axes = plt.subplots(2, len(images) + 1, figsize=(3.4 * (len(images) + 1), 6.6), squeeze=False)
        for col, (label, img) in enumerate(images):
            for row, log in enumerate((False, True)):
                ax = axes[row, col]
                positive = img[img > 0]
                norm: Any = (LogNorm(vmin=max(positive.min(), positive.max() * 1e-5), vmax=positive.max())
                             if log and positive.size else None)  # fmt: skip
                im = ax.imshow(np.where(img > 0, img, np.nan) if log else img, origin="lower", extent=extent,
                               cmap="viridis", norm=norm)  # fmt: skip
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="MeV" if col == len(images) - 1 else None)
                if not log:  # the core: the central LINEAR_HALF_WIDTH_MM
                    half = min(LINEAR_HALF_WIDTH_MM, extent[1])
                    ax.set_xlim(-half, half)
                    ax.set_ylim(-half, half)
                ax.set_title(f"{label}, {'log' if log else 'linear'}", fontsize=9)
                ax.set_xlabel("x [mm]")
                if col == 0:
                    ax.set_ylabel("y [mm]")
        sections = showers.showers.sum(axis=(2, 3), dtype=np.float64).mean(axis=0)
        edges = np.asarray(showers.attrs["section_edges_mm"], dtype=float)
        for row in range(2):
            ax = axes[row, -1]
            ax.stairs(sections, edges, color="black")
            ax.set_xlabel("depth [mm]")
            ax.set_ylabel("mean visible energy [MeV]")
            if row == 1:
                ax.set_yscale("log")
        fig.suptitle(f"{showers.attrs['technology']}: {len(e)} showers of {energy:.3g} GeV "
                     f"({showers.attrs['generator']})", fontsize=11)  # fmt: skip
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return path
