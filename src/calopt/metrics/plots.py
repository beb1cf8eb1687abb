"""Figures of an evaluation: mass peaks with their fits, and the energy resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_evaluation"]


def _curves(fit: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total, background) [candidates / MeV] of a fit as ``evaluate`` writes it."""
    from calopt.metrics.shapes import DoubleCrystalBall, bernstein_density

    par = fit["signal_shape"]["parameters"]
    shape = DoubleCrystalBall(**par)
    bkg = fit["n_background"] * bernstein_density(x, np.asarray(fit["coefficients"]), par["lo"], par["hi"])
    return fit["n_signal"] * shape.pdf(x) + bkg, bkg


def _peak(ax: Any, hist: dict[str, list[float]], signal: dict[str, list[float]] | None, fit: dict[str, Any],
          title: str) -> None:  # fmt: skip
    edges = np.asarray(hist["edges"])
    counts = np.asarray(hist["counts"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, counts, yerr=np.sqrt(np.maximum(counts, 1)), fmt="o", ms=3, color="black", label="candidates")
    if signal is not None:
        ax.stairs(signal["counts"], edges, color="tab:green", label="truth-matched signal")
    if fit.get("n_signal") is not None and fit.get("signal_shape", {}).get("parameters"):
        width = edges[1] - edges[0]
        x = np.linspace(edges[0], edges[-1], 400)
        total, bkg = _curves(fit, x)
        label = f"fit: sigma_eff = {fit['signal_shape']['sigma_eff']:.1f} MeV"
        ax.plot(x, total * width, color="tab:red", ls="-" if fit.get("valid") else ":", label=label)
        ax.plot(x, bkg * width, color="tab:blue", ls="--", label="combinatorial background")
    if fit.get("valid"):
        ax.set_title(f"{title}\nS/sqrt(S+B) = {fit['significance']:.2f} +- {fit['significance_err']:.2f}", fontsize=9)
    else:
        ax.set_title(f"{title}\nfit failed: {fit.get('reason')}", fontsize=8)
    ax.set_xlabel("mass [MeV]")
    ax.set_ylabel("candidates / bin")
    ax.legend(fontsize=8)


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
            result["histograms"].get(f"{key}_signal"),
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
