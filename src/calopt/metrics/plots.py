"""Figures of an evaluation: mass peaks with their fits, and the energy resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_evaluation"]


def _peak(ax: Any, hist: dict[str, list[float]], fit: dict[str, Any], title: str) -> None:
    from scipy.stats import norm

    edges = np.asarray(hist["edges"])
    counts = np.asarray(hist["counts"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, counts, yerr=np.sqrt(np.maximum(counts, 1)), fmt="o", ms=3, color="black", label="candidates")
    if fit.get("valid"):
        lo, hi = edges[0], edges[-1]
        width = edges[1] - edges[0]
        x = np.linspace(lo, hi, 400)
        mu, sigma, ns, nb = fit["mean"], fit["sigma"], fit["n_signal"], fit["n_background"]
        gnorm = norm.cdf(hi, mu, sigma) - norm.cdf(lo, mu, sigma)
        sig = ns * norm.pdf(x, mu, sigma) / gnorm * width
        bkg = nb * (1 + fit["slope"] * (2 * (x - lo) / (hi - lo) - 1)) / (hi - lo) * width
        ax.plot(x, sig + bkg, color="tab:red", label=f"fit: sigma = {sigma:.1f} MeV")
        ax.plot(x, bkg, color="tab:blue", ls="--", label="combinatorial background")
    else:
        ax.set_title(f"{title}: fit failed ({fit.get('reason')})", fontsize=9)
    ax.set_xlabel("mass [MeV]")
    ax.set_ylabel("candidates / bin")
    ax.legend(fontsize=8)
    if fit.get("valid"):
        ax.set_title(title)


def plot_evaluation(result: dict[str, Any], folder: Path) -> list[Path]:
    """Write pi0.png, b.png and energy_resolution.png into ``folder``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, title in (("pi0", "pi0 -> gamma gamma"), ("b", "B0 -> J/psi pi0")):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        _peak(
            ax,
            result["histograms"][key],
            result["fits"][key],
            f"{result['design']}, mu = {result['pileup']:g}: {title}",
        )
        path = folder / f"{key}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method in ("xgb", "parametric"):
        r = result["resolution"][method]
        pts = r["energy_points"]
        e = np.asarray(pts["energy_gev"])
        ax.plot(e, 100 * np.asarray(pts["sigma_over_e"]), "o", label=f"{method}")
        f = r["energy_fit"]
        if f.get("valid"):
            ee = np.geomspace(e.min(), e.max(), 100)
            label = f"{method}: {100 * f['a']:.1f}%/sqrt(E) + {100 * f['b']:.1f}% + {100 * f['c']:.1f}%/E"
            ax.plot(ee, 100 * np.sqrt(f["a"] ** 2 / ee + f["b"] ** 2 + f["c"] ** 2 / ee**2), label=label)
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="sigma/E [%]", title=f"{result['design']}: photon energy resolution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = folder / "energy_resolution.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths
