"""Text summary and figure of a cascade validation result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_validation", "summary_lines"]


def summary_lines(res: dict[str, Any]) -> list[str]:
    """Human-readable lines with the validation figures of one technology."""
    name = res["technology"]
    lines = [f"== {name} (incidence tilt {res['incidence_tilt_deg']:g} deg)"]
    for key in ("response_gamma", "response_electron"):
        r = res[key]
        f = r["resolution_fit"]
        lines.append(
            f"{key[9:]:>8}: sampling fraction {r['sampling_fraction']:.4f} "
            f"(nominal {res['nominal_sampling_fraction']:.4f}), "
            f"linearity within {100 * r['linearity_max_dev']:.2f}%, sigma/E = {100 * f['a']:.2f}%/sqrt(E) (+) "
            f"{100 * f['b']:.2f}% intrinsic; with photo-statistics "
            f"{100 * r['stochastic_with_photostatistics']:.2f}%/sqrt(E)"
        )
    for size, r in res.get("readout", {}).items():
        f = r["resolution_fit"]
        terms = "fit failed" if not f.get("valid", True) or f.get("a") is None else (
            f"sigma/E = {100 * f['a']:.2f}%/sqrt(E) (+) {100 * f['b']:.2f}% (+) {f.get('c') or 0:.3f}/E")  # fmt: skip
        lines.append(f"  readout: {size} mm cells, full detector response, 5x5 cells: {terms}")
    pub = res.get("published")
    if pub:
        lines.append(f"published: {pub['source']}")
    for p in res["profiles"]["points"]:
        g, e = p["gamma"], p["electron"]
        lines.append(
            f"{p['energy_gev']:>6g} GeV t_max [X0]: gamma {g['t_max_x0']:.2f} (PDG {g['pdg_prediction']:.2f}, Longo "
            f"{g['longo_prediction']:.2f}), e {e['t_max_x0']:.2f} (PDG {e['pdg_prediction']:.2f}, Longo "
            f"{e['longo_prediction']:.2f}); gamma-e {p['gamma_minus_electron_x0']:.2f}; within 1 R_M "
            f"{100 * e['containment_1RM']:.1f}%"
        )
    pi = res["pions"]
    lines.append(
        f"pi- {pi['energy_gev']:g} GeV: interacting {100 * pi['interacting_fraction']:.1f}% (expected "
        f"{100 * pi['expected_interacting_fraction']:.1f}%), E_vis/E mean {pi['pion_evis_over_e_mean']:.3f} vs "
        f"electrons {pi['electron_evis_over_e_mean']:.3f} +- {pi['electron_evis_over_e_sigma']:.3f}"
    )
    return lines


def plot_validation(res: dict[str, Any], path: Path) -> list[Any]:
    """A 2x2 figure: response, resolution with fit, longitudinal profiles, pion vs electron
    E_vis/E. Returns the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    for key, label in (("response_gamma", "gamma"), ("response_electron", "e-")):
        pts = res[key]["points"]
        e = np.array([p["energy_gev"] for p in pts])
        r = np.array([p["response"] for p in pts]) / res[key]["sampling_fraction"]
        ax.errorbar(
            e,
            r,
            yerr=[p["response_err"] / res[key]["sampling_fraction"] for p in pts],
            marker="o",
            label=label,
            ls="none",
        )
    ax.axhspan(0.98, 1.02, color="grey", alpha=0.2, label="+-2 %")
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="response / mean", title=f"{res['technology']}: linearity")
    ax.legend()
    ax = axes[0, 1]
    for key, label in (("response_gamma", "gamma"), ("response_electron", "e-")):
        pts = res[key]["points"]
        e = np.array([p["energy_gev"] for p in pts])
        s = np.array([p["rel_sigma"] for p in pts])
        ax.errorbar(e, 100 * s, yerr=[100 * p["rel_sigma_err"] for p in pts], marker="o", ls="none", label=label)
        f = res[key]["resolution_fit"]
        ee = np.logspace(np.log10(e.min()), np.log10(e.max()), 50)
        ax.plot(
            ee,
            100 * np.sqrt(f["a"] ** 2 / ee + f["b"] ** 2),
            label=f"{label}: {100 * f['a']:.1f}%/sqrt(E) + {100 * f['b']:.1f}%",
        )
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="sigma/E [%] (intrinsic)", title="energy resolution")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for p in res["profiles"]["points"]:
        for key, ls in (("gamma", "-"), ("electron", "--")):
            prof = np.array(p[key]["mean_profile"])
            ax.plot(np.arange(len(prof)) / len(prof), prof / prof.sum(), ls=ls, label=f"{key} {p['energy_gev']:g} GeV")
    ax.set(xlabel="depth / module depth", ylabel="visible fraction per bin", title="longitudinal profile")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    pi = res["pions"]
    edges = np.array(pi["hist_edges"])
    ax.stairs(pi["pion_hist"], edges, label="pi-")
    ax.stairs(pi["electron_hist"], edges, label="e-")
    ax.set(
        xlabel="E_vis / E (EM scale)",
        ylabel="showers",
        title=f"{pi['energy_gev']:g} GeV pions vs electrons",
        yscale="log",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return list(axes.ravel())
