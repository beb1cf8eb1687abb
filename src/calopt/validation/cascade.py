"""Validation of the cascade Monte Carlo against published numbers.

Each check simulates particle guns in-process and compares with the reference values of
physics-reference.md (cited next to each):

* response linearity and energy resolution (fit sigma/E = a/sqrt(E) (+) b, sigma the
  Gaussian-core width -- half the central 68 % interval -- as test beams fit it) for photons and
  electrons, with the photo-statistics term of the technology's light yield added
  analytically;
* longitudinal shower maximum against t_max = ln(E/E_c) + C (PDG: C_e = -0.5, C_gamma = +0.5;
  Longo-Sestili/Rossi B: C_e = -1.0, C_gamma = -0.5);
* lateral containment within one and 3.5 Moliere radii (PDG: ~90 % and ~99 %);
* pions: fraction interacting in the module and E_vis/E against electrons;
* the resolution through the readout: photons read out by :class:`calopt.readout.Readout`
  on a wall of the technology with its full detector response (light-collection
  non-uniformity, gain errors, photo-statistics, coherent and incoherent noise, zero
  suppression), the energy summed over the 5 x 5 cells around the hit, per cell size --
  the figure a test beam measures, beside the cascade's intrinsic (sampling-only) term.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

from calopt.detector.technologies import Technology, get_technology
from calopt.simulation.cascade.kernel import DIAG
from calopt.simulation.cascade.simulator import CascadeSimulator
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import Showers
from calopt.stats import fit_energy_resolution, robust_sigma, robust_sigma_error

__all__ = ["PUBLISHED", "ValidationSettings", "shower_maximum", "validate_technology"]

# Published resolutions (stochastic a [fraction at 1 GeV], constant b); sources in
# physics-reference.md §1-2.
PUBLISHED: dict[str, dict[str, Any]] = {
    "lhcb-shashlik": {
        "a": (0.085, 0.095),
        "b": 0.008,
        "includes_photostatistics": True,
        "source": "LHCb test beam (8.5-9.5)%/sqrt(E) (+) 0.8% [M, JINST 3 (2008) S08005]; design 10%/sqrt(E) (+) 1%",
    },
    "spacal-w": {
        "a": (0.09, 0.11),
        "b": 0.01,
        "includes_photostatistics": True,
        "source": "~10%/sqrt(E) (+) 1% met in test beam [V, PoS(485)520]",
    },
    "spacal-pb": {
        "a": (0.09, 0.11),
        "b": 0.01,
        "includes_photostatistics": True,
        "source": "~10%/sqrt(E) (+) 1% met in test beam [V, PoS(485)520]",
    },
}

# Test beams of SpaCal modules tilt the beam to avoid channelling along the fibres.
TILT_DEG = {"lhcb-shashlik": 0.0, "spacal-w": 3.0, "spacal-pb": 3.0}


@dataclass(frozen=True)
class ValidationSettings:
    """Energies [GeV] and numbers of showers per energy."""

    energies: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    n_per_energy: int = 300
    profile_energies: tuple[float, ...] = (1.0, 10.0, 100.0)
    n_profile: int = 100
    pion_energy: float = 10.0
    n_pions: int = 1000
    seed: int = 1
    # shower libraries of the readout check (energies [GeV], angles [rad], showers per point);
    # None: the readout's defaults (those of calopt evaluate)
    readout_library: tuple[tuple[float, ...], tuple[float, ...], int] | None = None

    @classmethod
    def quick(cls) -> ValidationSettings:
        return cls(energies=(1.0, 5.0, 20.0), n_per_energy=60, profile_energies=(2.0, 20.0), n_profile=30, n_pions=100,
                   readout_library=((0.2, 1.0, 5.0, 20.0, 100.0), (0.0, 0.15, 0.3), 3))  # fmt: skip


def _gun(tech: Technology, particle: str, e_gev: float, n: int, rng: np.random.Generator) -> Particles:
    tilt = math.radians(TILT_DEG.get(tech.name, 0.0))
    d = np.array([math.tan(tilt), math.tan(tilt), 1.0])
    d /= np.linalg.norm(d)
    half = tech.fine_pitch / 2.0
    return Particles(
        np.full(n, species(particle).pdg),
        np.full(n, e_gev * 1000.0),
        np.tile(d, (n, 1)),
        rng.uniform(-half, half, size=(n, 2)),
    )


def shower_maximum(profile: np.ndarray, depth_x0: float) -> float:
    """Depth of the maximum [X0] of a mean longitudinal profile (bins spanning ``depth_x0``),
    from a fit of the gamma-distribution form dE/dt ~ t^(a-1) e^(-b t) (PDG)."""
    n = profile.shape[0]
    t = (np.arange(n) + 0.5) * depth_x0 / n
    y = profile / profile.sum() / (depth_x0 / n)

    def gamma_pdf(t: np.ndarray, a: float, b: float) -> np.ndarray:
        return b * (b * t) ** (a - 1) * np.exp(-b * t) / math.gamma(a)

    (a, b), _ = curve_fit(gamma_pdf, t, y, p0=(4.0, 0.5), bounds=([1.01, 0.05], [30.0, 3.0]))
    return float((a - 1.0) / b)


def _response(
    sim: CascadeSimulator,
    tech: Technology,
    particle: str,
    st: ValidationSettings,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    rows = []
    for e in st.energies:
        if progress:
            progress(f"{tech.name}: {particle} {e:g} GeV")
        sh = sim.simulate(_gun(tech, particle, e, st.n_per_energy, rng), tech, int(rng.integers(2**31)))
        vis = sh.diagnostics["energy_balance"][:, DIAG.VISIBLE_WINDOW] / (e * 1000.0)
        m, s = float(vis.mean()), float(vis.std(ddof=1))
        core = robust_sigma(vis)  # Gaussian-core width, as test beams quote from a Gaussian fit
        n = len(vis)
        rows.append(
            {
                "energy_gev": e,
                "response": m,
                "response_err": s / math.sqrt(n),
                "rel_sigma": core / m,
                "rel_sigma_err": robust_sigma_error(core / m, n),
                "rel_rms": s / m,
                "rear_leakage": float(sh.diagnostics["energy_balance"][:, DIAG.REAR].mean() / (e * 1000.0)),
            }
        )
    e_arr = np.array([r["energy_gev"] for r in rows])
    resp = np.array([r["response"] for r in rows])
    calib = float(np.average(resp, weights=1.0 / np.array([r["response_err"] for r in rows]) ** 2))
    fit = fit_energy_resolution(
        e_arr, np.array([r["rel_sigma"] for r in rows]), np.array([r["rel_sigma_err"] for r in rows]), noise=False
    )
    a_pe = 1.0 / math.sqrt(tech.light_yield)  # Poisson photo-statistics term at 1 GeV
    return {
        "points": rows,
        "sampling_fraction": calib,
        "linearity_max_dev": float(np.max(np.abs(resp / calib - 1.0))),
        "resolution_fit": fit,
        "photostatistics_term": a_pe,
        "stochastic_with_photostatistics": math.hypot(fit["a"], a_pe),
    }


def _profiles(
    sim: CascadeSimulator,
    tech: Technology,
    st: ValidationSettings,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    eff = tech.effective_material
    ec = eff.critical_energy
    out: dict[str, Any] = {"critical_energy_mev": ec, "moliere_radius_mm": eff.moliere_radius_mm, "points": []}
    for e in st.profile_energies:
        row: dict[str, Any] = {"energy_gev": e}
        for particle in ("gamma", "e-"):
            if progress:
                progress(f"{tech.name}: profile {particle} {e:g} GeV")
            sh: Showers = sim.simulate(_gun(tech, particle, e, st.n_profile, rng), tech, int(rng.integers(2**31)))
            prof = sh.diagnostics["longitudinal_profile"].mean(axis=0)
            tmax = shower_maximum(prof, tech.depth_X0)
            rad = sh.diagnostics["radial_profile"].mean(axis=0)
            cum = np.cumsum(rad) / max(sh.diagnostics["energy_balance"][:, DIAG.VISIBLE_ALL].mean(), 1e-12)
            r = np.arange(1, len(cum) + 1)  # upper bin edges, mm
            rm = eff.moliere_radius_mm
            key = "gamma" if particle == "gamma" else "electron"
            lny = math.log(e * 1000.0 / ec)
            row[key] = {
                "t_max_x0": tmax,
                "pdg_prediction": lny + (0.5 if particle == "gamma" else -0.5),
                "longo_prediction": lny + (-0.5 if particle == "gamma" else -1.0),
                "containment_1RM": float(np.interp(rm, r, cum)),
                "containment_3.5RM": float(np.interp(3.5 * rm, r, cum)) if 3.5 * rm <= r[-1] else None,
                "mean_profile": prof.tolist(),
            }
        row["gamma_minus_electron_x0"] = row["gamma"]["t_max_x0"] - row["electron"]["t_max_x0"]
        out["points"].append(row)
    return out


def _pions(
    sim: CascadeSimulator,
    tech: Technology,
    st: ValidationSettings,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    if progress:
        progress(f"{tech.name}: pi- and e- {st.pion_energy:g} GeV")
    e = st.pion_energy
    pi = sim.simulate(_gun(tech, "pi-", e, st.n_pions, rng), tech, int(rng.integers(2**31)))
    el = sim.simulate(_gun(tech, "e-", e, max(st.n_pions // 4, 20), rng), tech, int(rng.integers(2**31)))
    d_pi = pi.diagnostics["energy_balance"]
    sf = el.diagnostics["energy_balance"][:, DIAG.VISIBLE_WINDOW].mean() / (e * 1000.0)
    r_pi = d_pi[:, DIAG.VISIBLE_WINDOW] / (e * 1000.0) / sf
    r_el = el.diagnostics["energy_balance"][:, DIAG.VISIBLE_WINDOW] / (e * 1000.0) / sf
    interacting = float((d_pi[:, DIAG.INTERACTION_DEPTH] >= 0).mean())
    lam_pi = tech.depth_lambda / species("pi-").lambda_scale
    hist_edges = np.linspace(0.0, 1.4, 29)
    return {
        "energy_gev": e,
        "interacting_fraction": interacting,
        "expected_interacting_fraction": 1.0 - math.exp(-lam_pi),
        "pion_evis_over_e_mean": float(r_pi.mean()),
        "pion_evis_over_e_median": float(np.median(r_pi)),
        "pion_fraction_above_0.8": float((r_pi > 0.8).mean()),
        "electron_evis_over_e_mean": float(r_el.mean()),
        "electron_evis_over_e_sigma": float(r_el.std()),
        "hist_edges": hist_edges.tolist(),
        "pion_hist": np.histogram(r_pi, hist_edges)[0].tolist(),
        "electron_hist": np.histogram(r_el, hist_edges)[0].tolist(),
    }


def _readout_resolution(tech: Technology, st: ValidationSettings, rng: np.random.Generator,
                        progress: Callable[[str], None] | None) -> dict[str, Any]:  # fmt: skip
    """sigma/E = a/sqrt(E) (+) b (+) c/E of photons read out with the full detector response on a
    wall of ``tech``, per allowed cell size: the Gaussian-core width of the 5 x 5-cell energy
    sum, calibrated by its mean at each energy (as a test beam calibrates), photons at normal
    incidence (tilted like the cascade checks) uniform over one module."""
    from calopt.detector.design import homogeneous_design
    from calopt.readout import Readout, ReadoutSettings

    settings = ReadoutSettings()
    if st.readout_library is not None:
        energies, angles, n_per = st.readout_library
        settings = replace(settings, library_energies=energies, library_angles=angles, library_n_per_point=n_per)
    out: dict[str, Any] = {}
    tilt = math.tan(math.radians(TILT_DEG.get(tech.name, 0.0)))
    for size in tech.cell_sizes:
        ro = Readout(homogeneous_design(tech.name, size), settings)
        if progress:
            progress(f"{tech.name}: photons through the readout, {size:g} mm cells")
        t = ro.cells.table
        x0 = 12 * ro.design.wall.pitch  # a module right of the beam hole, on the x axis
        centres, sig, err = [], [], []
        for e in st.energies:
            sums = []
            for _ in range(st.n_per_energy):
                x, y = x0 + rng.uniform(-0.5, 0.5) * ro.design.wall.pitch, rng.uniform(-0.5, 0.5) * ro.design.wall.pitch
                d = np.array([tilt, tilt, 1.0]) / math.sqrt(1 + 2 * tilt**2)
                hits = ro.read(np.array([22]), np.array([e * 1000.0]), (d * e * 1000.0)[None, :],
                               np.array([[x, y, 0.0]]), rng)  # fmt: skip
                near = (np.abs(t["x"][hits.channel] - x) < 2.5 * size) & (np.abs(t["y"][hits.channel] - y) < 2.5 * size)
                sums.append(float(hits.energy[near].sum()))
            v = np.asarray(sums) / (e * 1000.0)
            core = robust_sigma(v)
            centres.append(e)
            sig.append(core / v.mean())
            err.append(robust_sigma_error(core / v.mean(), len(v)))
        fit = fit_energy_resolution(np.array(centres), np.array(sig), np.array(err))
        out[f"{size:g}"] = {"resolution_fit": fit, "energy_gev": centres, "rel_sigma": sig}
    return out


def validate_technology(
    name: str,
    settings: ValidationSettings | None = None,
    *,
    sim: CascadeSimulator | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every check for one technology; returns a JSON-ready dictionary."""
    st = settings or ValidationSettings()
    tech = get_technology(name)
    sim = sim or CascadeSimulator()
    # a stream per technology: technologies validated in one run must not share random numbers
    rng = np.random.default_rng(np.random.SeedSequence([st.seed, *name.encode()]))
    result: dict[str, Any] = {
        "technology": name,
        "incidence_tilt_deg": TILT_DEG.get(name, 0.0),
        "nominal_sampling_fraction": tech.sampling_fraction,
        "published": PUBLISHED.get(name),
    }
    for particle in ("gamma", "e-"):
        result[f"response_{'gamma' if particle == 'gamma' else 'electron'}"] = _response(
            sim, tech, particle, st, rng, progress
        )
    result["profiles"] = _profiles(sim, tech, st, rng, progress)
    result["pions"] = _pions(sim, tech, st, rng, progress)
    result["readout"] = _readout_resolution(tech, st, rng, progress)
    return result
