"""Figures of a waveform timing study (:func:`calopt.readout.waveform_timing.run_timing_study`):
resolution against energy per sampling rate and estimator, with each estimator's fit and the
technology's published parametrisation (the catalogue readout uses by default); against
sampling rate at each energy; and the two-pulse figures against the second pulse's delay and
amplitude ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.technologies import get_technology
from calopt.files import atomic_path

__all__ = ["plot_timing_study"]


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def plot_timing_study(doc: dict[str, Any], folder: Path) -> list[Path]:
    """Write the study's figures into ``folder`` (PNG, atomically); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = doc["results"]
    rates = sorted({r["sampling_rate_gsps"] for r in res})
    energies = sorted({r["energy_gev"] for r in res})
    estimators = sorted({r["estimator"] for r in res})
    tech = doc["technology"]
    out = []
    fig, axes = plt.subplots(1, len(rates), figsize=(4 * len(rates), 3.5), squeeze=False, sharey=True)
    for ax, rate in zip(axes[0], rates):
        for est in estimators:
            rows = [r for r in res if r["sampling_rate_gsps"] == rate and r["estimator"] == est]
            ax.errorbar([r["energy_gev"] for r in rows], [r["sigma_ps"] for r in rows],
                        [r["sigma_ps_err"] for r in rows], marker="o", label=est)  # fmt: skip
        # the published parametrisation readout uses by default, beside the fits of this study
        e_line = np.geomspace(min(energies), max(energies), 50)
        a_pub, b_pub = get_technology(tech).time_resolution
        ax.plot(e_line, np.hypot(a_pub / np.sqrt(e_line), b_pub), "k--",
                label=f"catalogue (published) {a_pub:g}/sqrt(E) (+) {b_pub:g}")  # fmt: skip
        for f in doc.get("fits", []):
            if f["sampling_rate_gsps"] == rate and f["valid"] and f["estimator"] in estimators:
                ax.plot(e_line, np.hypot(f["a_ps"] / np.sqrt(e_line), f["b_ps"]), ":",
                        color=f"C{estimators.index(f['estimator'])}",
                        label=f"fit {f['estimator']} {f['a_ps']:.0f}/sqrt(E) (+) {f['b_ps']:.0f}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"{tech}, {rate:g} GS/s")
        ax.set_xlabel("E [GeV]")
    axes[0][0].set_ylabel("sigma_t [ps]")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    out.append(folder / "timing_vs_energy.png")
    _save(fig, out[-1])
    plt.close(fig)
    fig, axes = plt.subplots(1, len(energies), figsize=(4 * len(energies), 3.5), squeeze=False, sharey=True)
    for ax, e in zip(axes[0], energies):
        for est in estimators:
            rows = [r for r in res if r["energy_gev"] == e and r["estimator"] == est]
            ax.errorbar([r["sampling_rate_gsps"] for r in rows], [r["sigma_ps"] for r in rows],
                        [r["sigma_ps_err"] for r in rows], marker="o", label=est)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{tech}, {e:g} GeV")
        ax.set_xlabel("sampling rate [GS/s]")
    axes[0][0].set_ylabel("sigma_t [ps]")
    axes[0][0].legend()
    fig.tight_layout()
    out.append(folder / "timing_vs_rate.png")
    _save(fig, out[-1])
    plt.close(fig)
    for two in doc.get("two_signal", []):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for ax, var, label in zip(axes, ("abs_dt_ns", "ratio"), ("|dt| [ns]", "amplitude ratio r")):
            rows = [b for b in two["bins"] if b["variable"] == var]
            mid = [(b["low"] + b["high"]) / 2 for b in rows]
            ax.errorbar(mid, [b["sigma_ps"] for b in rows], [b["sigma_ps_err"] for b in rows], marker="o",
                        label="sigma_t of the bigger pulse [ps]")  # fmt: skip
            ax2 = ax.twinx()
            ax2.plot(mid, [b["efficiency"] for b in rows], "s--", color="C1", label="two-pulse flag efficiency")
            ax2.set_ylim(0, 1.05)
            ax.set_xlabel(label)
            ax.set_ylabel("sigma_t [ps]")
        axes[0].set_title(f"{tech}, {two['sampling_rate_gsps']:g} GS/s, AUC {two['classifier_auc']:.3f}")
        fig.tight_layout()
        out.append(folder / f"two_signal_{two['sampling_rate_gsps']:g}gsps.png")
        _save(fig, out[-1])
        plt.close(fig)
    return out
