"""Elements, compounds and mixtures with the properties a calorimeter designer needs.

Every property is computed from the composition with the formula cited next to it;
the tests compare the results with the PDG "Atomic and Nuclear Properties" tables
(physics-reference.md §3.1):

* radiation length: Tsai's formula (PDG review "Passage of particles through matter",
  eq. 34.25), mixtures by 1/X0 = sum w_j / X0_j (mass fractions);
* critical energy: the PDG fit for solids and liquids, E_c = 610 MeV / (Z + 1.24)
  (Rossi definition), mixtures by E_c = X0 * sum w_j E_cj / X0_j;
* Moliere radius: R_M = X0 E_s / E_c with E_s = 21.2 MeV, i.e.
  1/R_M = (1/E_s) sum w_j E_cj / X0_j for mixtures;
* nuclear interaction length: PDG values for the elements listed there, otherwise the
  fit lambda_I = 33.8 A^(1/3) g/cm^2 to the PDG values of W and Pb [D]; mixtures by
  1/lambda = sum w_j / lambda_j;
* mean excitation energy: Bragg additivity, ln I = sum w_j (Z/A)_j ln I_j / (Z/A),
  unless a measured value (PDG) is given;
* dE/dx: the Bethe formula with the Sternheimer-Peierls (1971) general density-effect
  parametrisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from calopt.constants import (
    AVOGADRO,
    BETHE_K,
    CLASSICAL_ELECTRON_RADIUS,
    ELECTRON_MASS,
    FINE_STRUCTURE,
    MOLIERE_ES,
    MUON_MASS,
)
from calopt.errors import CaloptInputError

__all__ = ["ELEMENTS", "MATERIALS", "Element", "Material", "get_material", "radiation_length_tsai"]


@dataclass(frozen=True)
class Element:
    """A chemical element.

    Attributes: ``Z``; ``A`` [g/mol]; ``I`` mean excitation energy [eV] (PDG);
    ``density`` [g/cm^3] of the elemental solid (or STP gas); ``lambda_I`` nuclear
    interaction length [g/cm^2] from the PDG tables where known; ``k_edge`` K-shell
    binding energy [MeV] (NIST X-ray transition energies).
    """

    symbol: str
    Z: int
    A: float
    I: float
    density: float
    lambda_I: float | None
    k_edge: float


# Z, A, I and densities: PDG "Atomic and Nuclear Properties" [M]; lambda_I: same tables [M];
# K edges: NIST X-ray transition energies database [M].
ELEMENTS: dict[str, Element] = {
    e.symbol: e
    for e in [
        Element("H", 1, 1.008, 19.2, 8.375e-5, 52.0, 13.6e-6),
        Element("C", 6, 12.011, 78.0, 2.0, 85.8, 0.284e-3),
        Element("N", 7, 14.007, 82.0, 1.165e-3, 89.7, 0.410e-3),
        Element("O", 8, 15.999, 95.0, 1.332e-3, 90.2, 0.543e-3),
        Element("Al", 13, 26.9815, 166.0, 2.699, 107.2, 1.560e-3),
        Element("Si", 14, 28.0855, 173.0, 2.329, 108.4, 1.839e-3),
        Element("Fe", 26, 55.845, 286.0, 7.874, 132.1, 7.112e-3),
        Element("Cu", 29, 63.546, 322.0, 8.960, 137.3, 8.979e-3),
        Element("Ga", 31, 69.723, 334.0, 5.904, None, 10.367e-3),
        Element("Gd", 64, 157.25, 591.0, 7.900, None, 50.239e-3),
        Element("W", 74, 183.84, 727.0, 19.30, 191.9, 69.525e-3),
        Element("Pb", 82, 207.2, 823.0, 11.35, 199.6, 88.005e-3),
    ]
}


def _tsai_f(Z: int) -> float:
    """Coulomb correction f(Z) of Tsai, PDG eq. 34.26 (physics-reference §3.2)."""
    a2 = (FINE_STRUCTURE * Z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


def radiation_length_tsai(el: Element) -> float:
    """Radiation length of an element [g/cm^2], Tsai's formula (PDG eq. 34.25).

    L_rad and L'_rad for Z <= 4 are Tsai's tabulated values (PDG table 34.2).
    """
    Z = el.Z
    special = {1: (5.31, 6.144), 2: (4.79, 5.621), 3: (4.74, 5.805), 4: (4.71, 5.924)}
    if Z in special:
        l_rad, l_rad_p = special[Z]
    else:
        l_rad = math.log(184.15 * Z ** (-1.0 / 3.0))
        l_rad_p = math.log(1194.0 * Z ** (-2.0 / 3.0))
    r_e_cm = CLASSICAL_ELECTRON_RADIUS / 10.0
    inv = 4.0 * FINE_STRUCTURE * r_e_cm**2 * AVOGADRO / el.A * (Z * Z * (l_rad - _tsai_f(Z)) + Z * l_rad_p)
    return 1.0 / inv


def critical_energy_element(el: Element) -> float:
    """Critical energy [MeV], PDG fit for solids and liquids, 610 MeV / (Z + 1.24)."""
    return 610.0 / (el.Z + 1.24)


def interaction_length_element(el: Element) -> float:
    """Nuclear interaction length [g/cm^2]: PDG value, or 33.8 A^(1/3) (fit to W and Pb) [D]."""
    if el.lambda_I is not None:
        return el.lambda_I
    return 33.8 * el.A ** (1.0 / 3.0)


@dataclass(frozen=True)
class Material:
    """A homogeneous material given by its mass fractions of elements.

    ``density`` in g/cm^3; ``I_override`` a measured mean excitation energy [eV];
    ``birks_kB`` Birks' constant [mm/MeV] for scintillators (0 for non-scintillating).
    Lengths returned by properties ending in ``_mm`` are in mm.
    """

    name: str
    density: float
    fractions: dict[str, float]
    I_override: float | None = None
    birks_kB: float = 0.0
    description: str = ""
    _norm: tuple[tuple[Element, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.density <= 0:
            raise CaloptInputError(f"material {self.name!r}: density {self.density} must be positive")
        unknown = [s for s in self.fractions if s not in ELEMENTS]
        if unknown:
            raise CaloptInputError(f"material {self.name!r}: unknown element(s) {unknown}; known: {sorted(ELEMENTS)}")
        total = sum(self.fractions.values())
        if total <= 0 or any(w < 0 for w in self.fractions.values()):
            raise CaloptInputError(f"material {self.name!r}: mass fractions must be non-negative and sum > 0")
        norm = tuple((ELEMENTS[s], w / total) for s, w in self.fractions.items() if w > 0)
        object.__setattr__(self, "_norm", norm)

    @classmethod
    def from_formula(cls, name: str, density: float, atoms: dict[str, float], **kw: object) -> Material:
        """Build a compound from its atom counts, e.g. ``{"C": 8, "H": 8}`` for polystyrene."""
        masses = {s: n * ELEMENTS[s].A for s, n in atoms.items()}
        return cls(name, density, masses, **kw)  # type: ignore[arg-type]

    @classmethod
    def mix(cls, name: str, parts: list[tuple[Material, float]], **kw: object) -> Material:
        """Homogenise materials given as (material, volume fraction) pairs."""
        mass: dict[str, float] = {}
        rho = 0.0
        for mat, vol in parts:
            rho += mat.density * vol
            for el, w in mat.composition:
                mass[el.symbol] = mass.get(el.symbol, 0.0) + w * mat.density * vol
        total_vol = sum(v for _, v in parts)
        return cls(name, rho / total_vol, mass, **kw)  # type: ignore[arg-type]

    @property
    def composition(self) -> tuple[tuple[Element, float], ...]:
        """(element, mass fraction) pairs, normalised to 1."""
        return self._norm

    @cached_property
    def z_over_a(self) -> float:
        """<Z/A> [mol/g]."""
        return sum(w * el.Z / el.A for el, w in self._norm)

    @cached_property
    def electron_density(self) -> float:
        """Electrons per mm^3."""
        return self.density * AVOGADRO * self.z_over_a / 1000.0

    @cached_property
    def atom_densities(self) -> tuple[tuple[Element, float], ...]:
        """(element, atoms per mm^3) pairs."""
        return tuple((el, self.density * w / el.A * AVOGADRO / 1000.0) for el, w in self._norm)

    @cached_property
    def mean_excitation(self) -> float:
        """Mean excitation energy I [eV] (measured value if given, else Bragg additivity)."""
        if self.I_override is not None:
            return self.I_override
        lnI = sum(w * el.Z / el.A * math.log(el.I) for el, w in self._norm) / self.z_over_a
        return math.exp(lnI)

    @cached_property
    def X0(self) -> float:
        """Radiation length [g/cm^2]."""
        return 1.0 / sum(w / radiation_length_tsai(el) for el, w in self._norm)

    @property
    def X0_mm(self) -> float:
        """Radiation length [mm]."""
        return self.X0 / self.density * 10.0

    @cached_property
    def critical_energy(self) -> float:
        """Critical energy E_c [MeV] (Rossi definition, PDG fit; mixture rule in module doc)."""
        return self.X0 * sum(w * critical_energy_element(el) / radiation_length_tsai(el) for el, w in self._norm)

    @property
    def moliere_radius_mm(self) -> float:
        """Moliere radius [mm], R_M = X0 E_s / E_c."""
        return self.X0_mm * MOLIERE_ES / self.critical_energy

    @cached_property
    def lambda_I(self) -> float:
        """Nuclear interaction length [g/cm^2]."""
        return 1.0 / sum(w / interaction_length_element(el) for el, w in self._norm)

    @property
    def lambda_I_mm(self) -> float:
        """Nuclear interaction length [mm]."""
        return self.lambda_I / self.density * 10.0

    @cached_property
    def _sternheimer(self) -> tuple[float, float, float, float]:
        """Sternheimer-Peierls general parameters (C, x0, x1, a) for a condensed material, m = 3."""
        plasma_ev = 28.816 * math.sqrt(self.density * self.z_over_a)  # PDG eq. 34.7
        C = 2.0 * math.log(self.mean_excitation / plasma_ev) + 1.0
        if self.mean_excitation < 100.0:
            x0, x1 = (0.2 if C < 3.681 else 0.326 * C - 1.0), 2.0
        else:
            x0, x1 = (0.2 if C < 5.215 else 0.326 * C - 1.5), 3.0
        a = (C - 2.0 * math.log(10.0) * x0) / (x1 - x0) ** 3
        return C, x0, x1, a

    def density_effect(self, betagamma: float | np.ndarray) -> np.ndarray:
        """Density-effect correction delta(beta gamma), Sternheimer-Peierls general formula."""
        C, x0, x1, a = self._sternheimer
        x = np.log10(np.asarray(betagamma, dtype=float))
        two_ln10 = 2.0 * math.log(10.0)
        return np.where(x >= x1, two_ln10 * x - C, np.where(x >= x0, two_ln10 * x - C + a * (x1 - x) ** 3, 0.0))

    def bethe_dedx(self, betagamma: float | np.ndarray, mass: float = MUON_MASS) -> np.ndarray:
        """Mean energy loss of a singly charged heavy particle [MeV cm^2/g], Bethe (PDG eq. 34.5)."""
        bg = np.asarray(betagamma, dtype=float)
        gamma = np.sqrt(1.0 + bg**2)
        beta2 = bg**2 / gamma**2
        me = ELECTRON_MASS
        wmax = 2.0 * me * bg**2 / (1.0 + 2.0 * gamma * me / mass + (me / mass) ** 2)
        I_mev = self.mean_excitation * 1e-6
        log_term = 0.5 * np.log(2.0 * me * bg**2 * wmax / I_mev**2)
        return BETHE_K * self.z_over_a / beta2 * (log_term - beta2 - 0.5 * self.density_effect(bg))

    @cached_property
    def dedx_min(self) -> float:
        """Minimum ionisation of a muon [MeV cm^2/g], minimised over beta gamma."""
        bg = np.logspace(0, 1.5, 400)
        return float(np.min(self.bethe_dedx(bg)))

    @property
    def dedx_min_mm(self) -> float:
        """Minimum ionisation [MeV/mm]."""
        return self.dedx_min * self.density / 10.0

    @property
    def Z_eff(self) -> float:
        """Electron-weighted mean Z (used by the GFlash-style e/mip estimate)."""
        return sum(w * el.Z / el.A * el.Z for el, w in self._norm) / self.z_over_a

    def summary(self) -> dict[str, float]:
        """Derived properties in the units a physicist quotes (cm, MeV, g/cm^2)."""
        return {
            "density_g_cm3": self.density,
            "X0_g_cm2": self.X0,
            "X0_cm": self.X0_mm / 10.0,
            "critical_energy_MeV": self.critical_energy,
            "moliere_radius_cm": self.moliere_radius_mm / 10.0,
            "lambda_I_g_cm2": self.lambda_I,
            "lambda_I_cm": self.lambda_I_mm / 10.0,
            "dedx_min_MeV_cm2_g": self.dedx_min,
            "mean_excitation_eV": self.mean_excitation,
        }


def _element_material(symbol: str) -> Material:
    el = ELEMENTS[symbol]
    return Material(symbol, el.density, {symbol: 1.0})


MATERIALS: dict[str, Material] = {
    "Pb": _element_material("Pb"),
    "W": _element_material("W"),
    "Al": _element_material("Al"),
    "Fe": _element_material("Fe"),
    "Cu": _element_material("Cu"),
    # Polystyrene scintillator (C8H8)n, PDG: rho = 1.06, I = 68.7 eV. Birks kB = 0.126 mm/MeV
    # for polystyrene [U] (physics-reference §3.7).
    "polystyrene": Material.from_formula(
        "polystyrene",
        1.06,
        {"C": 8, "H": 8},
        I_override=68.7,
        birks_kB=0.126,
        description="polystyrene-based plastic scintillator",
    ),
    # TiO2-free paper/Tyvek separators of the LHCb module approximated as cellulose (C6H10O5)n at
    # 0.8 g/cm^3 [assumption]; 2 x 0.12 mm per layer, physics-reference §1 [M].
    "paper": Material.from_formula("paper", 0.8, {"C": 6, "H": 10, "O": 5}, description="cellulose paper"),
    # GAGG:Ce, Gd3Al2Ga3O12, rho = 6.63 g/cm^3 [U] (physics-reference §3.1). Birks quenching in
    # inorganic crystals is small; kB = 0 [assumption].
    "GAGG": Material.from_formula(
        "GAGG", 6.63, {"Gd": 3, "Al": 2, "Ga": 3, "O": 12}, description="GAGG:Ce garnet crystal"
    ),
}


def get_material(name: str) -> Material:
    """Look a material up by name, with a clear error for an unknown one."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise CaloptInputError(f"unknown material {name!r}; expected one of {sorted(MATERIALS)}") from None
