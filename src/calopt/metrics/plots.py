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


def _peak(fig: Any, hist_doc: dict[str, list[float]], signal: dict[str, list[float]] | None, fit: dict[str, Any],
          title: str) -> None:  # fmt: skip
    """The mass peak (a :mod:`hist` histogram with Poisson errors), the fit and its components
    (signal, background, total), and below it the pulls (data - fit) / error per bin."""
    import mplhep

    from calopt.plotting import histogram

    ax, pull_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    edges = np.asarray(hist_doc["edges"])
    counts = np.asarray(hist_doc["counts"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    mplhep.histplot(histogram(edges, counts), ax=ax, histtype="errorbar", color="black", label="candidates")
    if signal is not None:
        mplhep.histplot(histogram(edges, np.asarray(signal["counts"])), ax=ax, histtype="step", color="tab:green",
                        label="truth-matched signal")  # fmt: skip
    has_fit = fit.get("n_signal") is not None and bool(fit.get("signal_shape", {}).get("parameters"))
    if has_fit:
        width = edges[1] - edges[0]
        x = np.linspace(edges[0], edges[-1], 400)
        total, bkg = _curves(fit, x)
        label = f"fit: sigma_eff = {fit['signal_shape']['sigma_eff']:.1f} MeV"
        ax.plot(x, total * width, color="tab:red", ls="-" if fit.get("valid") else ":", label=label)
        ax.plot(x, (total - bkg) * width, color="tab:orange", ls="-.", label="signal (double Crystal Ball)")
        ax.plot(x, bkg * width, color="tab:blue", ls="--", label="combinatorial background")
        expected = _curves(fit, centres)[0] * width
        err = np.sqrt(np.maximum(counts, 1.0))
        pulls = (counts - expected) / err
        pull_ax.bar(centres, pulls, width=np.diff(edges), color="0.6", edgecolor="0.3", linewidth=0.3)
        chi2 = float(np.sum(pulls**2))
        pull_ax.text(0.02, 0.8, f"chi2/bins = {chi2:.0f}/{len(pulls)}", transform=pull_ax.transAxes, fontsize=8)
    pull_ax.axhline(0.0, color="black", lw=0.8)
    pull_ax.set_ylim(-4.5, 4.5)
    pull_ax.set_ylabel("pull")
    if fit.get("valid"):
        ax.set_title(f"{title}\nS/sqrt(S+B) = {fit['significance']:.2f} +- {fit['significance_err']:.2f}", fontsize=9)
    else:
        ax.set_title(f"{title}\nfit failed: {fit.get('reason')}", fontsize=8)
    pull_ax.set_xlabel("mass [MeV]")
    ax.set_xlabel("")
    ax.set_ylabel("candidates / bin")
    ax.legend(fontsize=8)


def plot_evaluation(result: dict[str, Any], folder: Path, published: dict[str, dict[str, Any]] | None = None,
                    style: str | None = None) -> list[Path]:  # fmt: skip
    """Write pi0.png, b.png (mass peaks, fits, components and pulls) and energy_resolution.png
    (points, fits and a band per technology of ``published``: {technology: {"a": (low, high),
    "b": constant, "source": text}}, e.g. :data:`calopt.validation.cascade.PUBLISHED`) into
    ``folder`` in the plot ``style`` (:mod:`calopt.plotting`); returns the paths."""
    import matplotlib.pyplot as plt

    from calopt.plotting import plot_style

    paths = []
    with plot_style(style):
        for key, title in (("pi0", "pi0 -> gamma gamma"), ("b", "B0 -> J/psi pi0")):
            fig = plt.figure(figsize=(7, 6))
            _peak(fig, result["histograms"][key], result["histograms"].get(f"{key}_signal"), result["fits"][key],
                  f"{result['design']}, mu = {result['pileup']:g}: {title}")  # fmt: skip
            path = folder / f"{key}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
        fig, ax = plt.subplots(figsize=(7, 5.5))
        _resolution(ax, result, published or {})
        path = folder / "energy_resolution.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _resolution(ax: Any, result: dict[str, Any], published: dict[str, dict[str, Any]]) -> None:
    e_all = []
    for k, method in enumerate(("xgb", "parametric")):
        r = result["resolution"][method]
        pts = r["energy_points"]
        e = np.asarray(pts["energy_gev"])
        e_all.append(e)
        err = pts.get("sigma_over_e_err")
        ax.errorbar(e, 100 * np.asarray(pts["sigma_over_e"]), yerr=None if err is None else 100 * np.asarray(err),
                    fmt="o", color=f"C{k}", label=f"calopt, {method}")  # fmt: skip
        f = r["energy_fit"]
        if f.get("valid"):
            ee = np.geomspace(e.min(), e.max(), 100)
            label = f"fit: {100 * f['a']:.1f}%/sqrt(E) (+) {100 * f['b']:.1f}% (+) {100 * f['c']:.1f}%/E"
            ax.plot(ee, 100 * np.sqrt(f["a"] ** 2 / ee + f["b"] ** 2 + f["c"] ** 2 / ee**2), color=f"C{k}", label=label)
    if e_all and published:
        ee = np.geomspace(min(x.min() for x in e_all), max(x.max() for x in e_all), 100)
        for k, (tech, pub) in enumerate(published.items()):
            lo, hi = (100 * np.hypot(a / np.sqrt(ee), pub["b"]) for a in pub["a"])
            ax.fill_between(ee, lo, hi, color=f"C{k + 2}", alpha=0.25,
                            label=f"published {tech}: {pub['source'].split('[')[0].strip()}")  # fmt: skip
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="sigma/E [%]", title=f"{result['design']}: photon energy resolution")
    ax.legend(fontsize=7)
