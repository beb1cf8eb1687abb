"""Cross sections and stopping powers of the cascade Monte Carlo, tabulated per material.

Everything is tabulated on one logarithmic energy grid (:data:`E_GRID`, kinetic energy for
e+-, energy for photons) so that the compiled transport only interpolates. Formulas and
their sources (physics-reference.md section in brackets):

* pair production: the Urban fit of the Bethe-Heitler cross section with screening used by
  Geant4's G4BetheHeitlerModel [3.4];
* Compton scattering: Klein-Nishina per electron times Z [3.5];
* photo-electric absorption: a lead reference curve derived from NIST XCOM / Hubbell-Seltzer
  total attenuation minus Klein-Nishina and coherent scattering, scaled to other elements by
  Z^4.5 with K-edge jumps [3.6, U: good to ~10 % for W/Pb, a factor ~1.5 for C];
* bremsstrahlung: Tsai's complete-screening cross section; discrete photons above k_cut,
  continuous loss below [3.3];
* ionisation: restricted Berger-Seltzer collision stopping power (as in Geant4's
  G4MollerBhabhaModel) with the Sternheimer-Peierls density effect, discrete Moller/Bhabha
  delta rays above T_cut [3.7];
* heavy particles: Bethe (see :mod:`calopt.materials`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from calopt.constants import CLASSICAL_ELECTRON_RADIUS, ELECTRON_MASS
from calopt.materials import Element, Material

__all__ = [
    "BG_GRID",
    "E_GRID",
    "LOG_E_MIN",
    "LOG_E_STEP",
    "Cuts",
    "Q",
    "S",
    "build_tables",
    "klein_nishina_per_electron",
    "pair_per_atom",
    "photo_electric_per_atom",
]

ME = ELECTRON_MASS
TWO_PI_MC2_RE2 = 2.0 * math.pi * ME * CLASSICAL_ELECTRON_RADIUS**2  # MeV mm^2
BARN = 1e-22  # mm^2

LOG_E_MIN = math.log(1e-3)  # 1 keV
LOG_E_MAX = math.log(1e6)  # 1 TeV
N_E = 541
E_GRID = np.exp(np.linspace(LOG_E_MIN, LOG_E_MAX, N_E))
LOG_E_STEP = (LOG_E_MAX - LOG_E_MIN) / (N_E - 1)

BG_GRID_LOG_MIN = math.log(0.05)
BG_GRID_LOG_MAX = math.log(1e5)
N_BG = 301
BG_GRID = np.exp(np.linspace(BG_GRID_LOG_MIN, BG_GRID_LOG_MAX, N_BG))
LOG_BG_STEP = (BG_GRID_LOG_MAX - BG_GRID_LOG_MIN) / (N_BG - 1)


class Q:
    """Row indices of the per-material energy tables (all lengths in mm, energies in MeV)."""

    MU_PE = 0  # photo-electric attenuation [1/mm]
    MU_COMPT = 1  # Compton [1/mm]
    MU_PAIR = 2  # pair production [1/mm]
    MU_TOT = 3
    DEDX_EM = 4  # restricted collision stopping power of e- [MeV/mm]
    DEDX_EP = 5  # same for e+
    DEDX_RAD = 6  # radiative loss below k_cut [MeV/mm]
    LINV_BREM = 7  # inverse mean free path for brems photons above k_cut [1/mm]
    LINV_MOLLER = 8  # delta rays above T_cut from e- [1/mm]
    LINV_BHABHA = 9  # delta rays above T_cut from e+ [1/mm]
    RANGE_EM = 10  # restricted CSDA range of e- [mm]
    RANGE_EP = 11
    N = 12


class S:
    """Columns of the per-material scalar table."""

    X0 = 0  # radiation length [mm]
    NEL = 1  # electron density [1/mm^3]
    KB = 2  # Birks constant [mm/MeV]
    ACTIVE = 3  # 1 if the material is read out
    LAMBDA_I = 4  # nuclear interaction length [mm]
    XI = 5  # Landau xi per mm at beta = 1: (K/2)(Z/A) rho [MeV/mm]
    N = 6


@dataclass(frozen=True)
class Cuts:
    """Production and tracking thresholds [MeV].

    ``photon``: brems photons are produced, and photons tracked, above it;
    ``delta``: delta rays are produced above it; ``electron``: e+- are tracked above it
    (kinetic energy) and deposit the rest locally. Photons and electrons below the cuts
    deposit their energy where they are; positrons annihilate at rest.
    """

    photon: float = 0.1
    delta: float = 1.0
    electron: float = 0.1

    def __post_init__(self) -> None:
        if not (0.001 <= self.photon and 0.001 <= self.electron <= self.delta):
            raise ValueError(f"invalid cuts {self}: need 1 keV <= electron <= delta, photon >= 1 keV")


# ---------------------------------------------------------------------------------------
# Photon cross sections
# ---------------------------------------------------------------------------------------

# Lead photo-electric mass attenuation [cm^2/g] above the K edge (the K-shell included; below
# 88 keV the values are those just above the edge extrapolated, i.e. times the K jump).
# Derived from NIST XCOM total attenuation minus Klein-Nishina and coherent scattering
# (physics-reference §3.6) [M/D].
_PB_PE_E = np.array(
    [
        0.020,
        0.030,
        0.040,
        0.050,
        0.060,
        0.080,
        0.100,
        0.150,
        0.200,
        0.300,
        0.400,
        0.500,
        0.600,
        0.800,
        1.000,
        1.500,
        2.000,
        5.000,
        10.00,
        100.0,
    ]
)
_PB_PE_MU = np.array(
    [
        420.0,
        144.0,
        66.5,
        36.5,
        22.0,
        9.75,
        5.23,
        1.79,
        0.84,
        0.294,
        0.142,
        0.083,
        0.0545,
        0.0289,
        0.0183,
        0.0087,
        0.0060,
        0.0020,
        0.0009,
        0.00008,
    ]
)
_PB = (82, 207.2, 0.088005)


def _k_jump(Z: int) -> float:
    """Ratio of the photo-electric cross section just above / below the K edge; an empirical
    fit (about 5 for heavy, 8-10 for light elements) [U]."""
    return 4.2 + 125.0 / max(Z, 1) ** 1.0 if Z > 10 else 10.0


def photo_electric_per_atom(el: Element, e: np.ndarray) -> np.ndarray:
    """Photo-electric cross section per atom [mm^2] at photon energies ``e`` [MeV]."""
    zr, ar, _ = _PB
    per_atom_pb = np.exp(np.interp(np.log(e), np.log(_PB_PE_E), np.log(_PB_PE_MU))) * ar / 6.02214076e23  # cm^2
    # extrapolate as E^-3 below 20 keV and E^-1 above 100 MeV
    per_atom_pb = np.where(e < _PB_PE_E[0], per_atom_pb * (_PB_PE_E[0] / e) ** 3, per_atom_pb)
    per_atom_pb = np.where(e > _PB_PE_E[-1], per_atom_pb * (_PB_PE_E[-1] / e), per_atom_pb)
    sigma = per_atom_pb * (el.Z / zr) ** 4.5
    sigma = np.where(e < el.k_edge, sigma / _k_jump(el.Z), sigma)
    return sigma * 100.0  # cm^2 -> mm^2


_PAIR_A = (8.7842e2, -1.9625e3, 1.2949e3, -2.0028e2, 1.2575e1, -2.8333e-1)
_PAIR_B = (-1.0342e1, 1.7692e1, -8.2381, 1.3063, -9.0815e-2, 2.3586e-3)
_PAIR_C = (-4.5263e2, 1.1161e3, -8.6749e2, 2.1773e2, -2.0467e1, 6.5372e-1)


def pair_per_atom(Z: int, k: np.ndarray) -> np.ndarray:
    """Pair-production cross section per atom [mm^2]: Urban's fit (Geant4 G4BetheHeitlerModel,
    physics-reference §3.4), valid 1.5 MeV - 100 GeV, held constant above 100 GeV and scaled
    by ((k - 2m)/(1.5 MeV - 2m))^2 below 1.5 MeV."""
    k = np.asarray(k, dtype=float)
    kk = np.clip(k, 1.5, 1.0e5)
    X = np.log(kk / ME)
    f1 = sum(c * X**i for i, c in enumerate(_PAIR_A))
    f2 = sum(c * X**i for i, c in enumerate(_PAIR_B))
    f3 = sum(c * X**i for i, c in enumerate(_PAIR_C))
    sigma = (Z + 1.0) * (f1 * Z + f2 * Z * Z + f3) * 1e-6 * BARN  # microbarn
    low = np.clip((k - 2.0 * ME) / (1.5 - 2.0 * ME), 0.0, 1.0) ** 2
    sigma = np.where(k < 1.5, sigma * low, sigma)
    return np.where(k <= 2.0 * ME, 0.0, np.maximum(sigma, 0.0))


def klein_nishina_per_electron(k: np.ndarray) -> np.ndarray:
    """Klein-Nishina total cross section per free electron [mm^2] (physics-reference §3.5)."""
    x = np.asarray(k, dtype=float) / ME
    l2 = np.log1p(2.0 * x)
    t = (
        (1.0 + x) / x**2 * (2.0 * (1.0 + x) / (1.0 + 2.0 * x) - l2 / x)
        + l2 / (2.0 * x)
        - (1.0 + 3.0 * x) / (1.0 + 2.0 * x) ** 2
    )
    return 2.0 * math.pi * CLASSICAL_ELECTRON_RADIUS**2 * t


# ---------------------------------------------------------------------------------------
# Electrons and positrons
# ---------------------------------------------------------------------------------------


def restricted_dedx(mat: Material, T: np.ndarray, cut: float, positron: bool) -> np.ndarray:
    """Restricted collision stopping power [MeV/mm] for delta rays below ``cut`` (Berger-Seltzer
    formula as written in Geant4's G4MollerBhabhaModel::ComputeDEDXPerVolume, physics-reference
    §3.7), with the Sternheimer-Peierls density effect."""
    tau = T / ME
    gam = tau + 1.0
    gamma2 = gam * gam
    bg2 = tau * (tau + 2.0)
    beta2 = bg2 / gamma2
    eexc = mat.mean_excitation * 1e-6 / ME
    eexc2 = eexc * eexc
    tmax = T if positron else 0.5 * T
    d = np.minimum(cut, tmax) / ME
    if positron:
        d2 = d * d * 0.5
        d3 = d2 * d / 1.5
        d4 = d3 * d * 0.75
        y = 1.0 / (1.0 + gam)
        dedx = (
            np.log(2.0 * (tau + 2.0) / eexc2)
            + np.log(tau * d)
            - beta2 * (tau + 2.0 * d - y * (3.0 * d2 + y * (d - d3 + y * (d2 - tau * d3 + d4)))) / tau
        )
    else:
        dedx = (
            np.log(2.0 * (tau + 2.0) / eexc2)
            - 1.0
            - beta2
            + np.log((tau - d) * d)
            + tau / (tau - d)
            + (0.5 * d * d + (2.0 * tau + 1.0) * np.log(1.0 - d / tau)) / gamma2
        )
    dedx = dedx - mat.density_effect(np.sqrt(bg2))
    dedx = dedx * TWO_PI_MC2_RE2 * mat.electron_density / beta2
    return np.maximum(dedx, 0.0)


def moller_bhabha_inverse_mfp(mat: Material, T: np.ndarray, cut: float, positron: bool) -> np.ndarray:
    """Inverse mean free path [1/mm] for delta rays above ``cut`` (Moller for e-, Bhabha for
    e+), as in Geant4's G4MollerBhabhaModel::ComputeCrossSectionPerElectron."""
    T = np.asarray(T, dtype=float)
    out = np.zeros_like(T)
    tmax = T if positron else 0.5 * T
    ok = cut < tmax
    Tk = T[ok]
    xmin = cut / Tk
    xmax = tmax[ok] / Tk
    gam = Tk / ME + 1.0
    gamma2 = gam * gam
    beta2 = 1.0 - 1.0 / gamma2
    if positron:
        y = 1.0 / (1.0 + gam)
        y2 = y * y
        y12 = 1.0 - 2.0 * y
        b1 = 2.0 - y2
        b2 = y12 * (3.0 + y2)
        y122 = y12 * y12
        b4 = y122 * y12
        b3 = b4 + y122
        cross = (xmax - xmin) * (
            1.0 / (beta2 * xmin * xmax)
            + b2
            - 0.5 * b3 * (xmin + xmax)
            + b4 * (xmin * xmin + xmin * xmax + xmax * xmax) / 3.0
        ) - b1 * np.log(xmax / xmin)
    else:
        gg = (2.0 * gam - 1.0) / gamma2
        cross = (
            (xmax - xmin) * (1.0 - gg + 1.0 / (xmin * xmax) + 1.0 / ((1.0 - xmin) * (1.0 - xmax)))
            - gg * np.log(xmax * (1.0 - xmin) / (xmin * (1.0 - xmax)))
        ) / beta2
    out[ok] = np.maximum(cross, 0.0) * TWO_PI_MC2_RE2 / Tk * mat.electron_density
    return out


def brems_tables(mat: Material, T: np.ndarray, k_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """(inverse mean free path [1/mm] for photons k > k_cut, radiative loss below k_cut [MeV/mm])
    from Tsai's complete-screening cross section (physics-reference §3.3)."""
    E = T + ME
    x0 = mat.X0_mm
    yc = np.minimum(k_cut / E, 1.0)
    ymax = T / E
    n = np.where(
        T > k_cut,
        4.0 / 3.0 * np.log(np.maximum(ymax / yc, 1.0)) - 4.0 / 3.0 * (ymax - yc) + 0.5 * (ymax**2 - yc**2),
        0.0,
    )
    yl = np.minimum(yc, ymax)
    sub = E / x0 * (4.0 / 3.0 * yl - 2.0 / 3.0 * yl**2 + yl**3 / 3.0)
    return np.maximum(n, 0.0) / x0, sub


def csda_range(T: np.ndarray, dedx: np.ndarray) -> np.ndarray:
    """Range [mm] by integrating 1/dedx over the log grid (R ~ T/dedx at the lowest energy)."""
    inv = 1.0 / np.maximum(dedx, 1e-12)
    r = np.empty_like(T)
    r[0] = T[0] * inv[0]
    r[1:] = r[0] + np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(T))
    return r


def build_tables(
    materials: list[Material], active: list[bool], cuts: Cuts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tabulate everything the transport needs.

    Returns ``(tables, scalars, heavy)``: ``tables`` (M, Q.N, N_E) on :data:`E_GRID`,
    ``scalars`` (M, S.N), ``heavy`` (M, N_BG): Bethe dE/dx [MeV/mm] of a singly charged
    heavy particle versus beta*gamma on :data:`BG_GRID` (muon mass for W_max).
    """
    M = len(materials)
    tables = np.zeros((M, Q.N, N_E))
    scalars = np.zeros((M, S.N))
    heavy = np.zeros((M, N_BG))
    E = E_GRID
    for i, mat in enumerate(materials):
        pe = np.zeros(N_E)
        pair = np.zeros(N_E)
        for el, n_atoms in mat.atom_densities:
            pe += n_atoms * photo_electric_per_atom(el, E)
            pair += n_atoms * pair_per_atom(el.Z, E)
        compton = mat.electron_density * klein_nishina_per_electron(E)
        tables[i, Q.MU_PE] = pe
        tables[i, Q.MU_COMPT] = compton
        tables[i, Q.MU_PAIR] = pair
        tables[i, Q.MU_TOT] = pe + compton + pair
        linv_b, rad = brems_tables(mat, E, cuts.photon)
        dedx_m = restricted_dedx(mat, E, cuts.delta, positron=False)
        dedx_p = restricted_dedx(mat, E, cuts.delta, positron=True)
        tables[i, Q.DEDX_EM] = dedx_m
        tables[i, Q.DEDX_EP] = dedx_p
        tables[i, Q.DEDX_RAD] = rad
        tables[i, Q.LINV_BREM] = linv_b
        tables[i, Q.LINV_MOLLER] = moller_bhabha_inverse_mfp(mat, E, cuts.delta, positron=False)
        tables[i, Q.LINV_BHABHA] = moller_bhabha_inverse_mfp(mat, E, cuts.delta, positron=True)
        tables[i, Q.RANGE_EM] = csda_range(E, dedx_m + rad)
        tables[i, Q.RANGE_EP] = csda_range(E, dedx_p + rad)
        scalars[i, S.X0] = mat.X0_mm
        scalars[i, S.NEL] = mat.electron_density
        scalars[i, S.KB] = mat.birks_kB
        scalars[i, S.ACTIVE] = 1.0 if active[i] else 0.0
        scalars[i, S.LAMBDA_I] = mat.lambda_I_mm
        scalars[i, S.XI] = 0.5 * 0.307075 * mat.z_over_a * mat.density / 10.0
        heavy[i] = mat.bethe_dedx(BG_GRID) * mat.density / 10.0
    return tables, scalars, np.maximum(heavy, 0.0)
