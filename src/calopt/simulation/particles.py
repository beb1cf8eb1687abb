"""Particle species known to the simulation and the primaries handed to a simulator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calopt.constants import ELECTRON_MASS, KAON_MASS, MUON_MASS, NEUTRON_MASS, PION_MASS, PROTON_MASS
from calopt.errors import CaloptInputError

__all__ = ["BY_PDG", "MAX_ENERGY_GEV", "SPECIES", "Particles", "Species", "species"]

# The largest particle energy calopt takes [GeV]: above the LHC's 6.8 TeV beams, so every
# particle an LHC experiment sees; beyond it a cascade shower runs for minutes and the
# cross-section tables are extrapolated.
MAX_ENERGY_GEV = 10_000.0


@dataclass(frozen=True)
class Species:
    """A particle species: ``kind`` is the transport class (0 photon, 1 e-, 2 e+, 3 muon,
    4 charged hadron, 5 neutral hadron); ``lambda_scale`` the nuclear interaction length in
    units of the nucleon lambda_I (0 = no nuclear interaction); ``em_e0`` [GeV] the scale of
    Groom's electromagnetic-fraction formula (see :mod:`calopt.simulation.cascade.simulator`)."""

    name: str
    pdg: int
    mass: float
    kind: int
    lambda_scale: float = 0.0
    em_e0: float = 1.0
    charge: int = 0


# Pion and kaon interaction lengths relative to lambda_I: ~1.13 for pions (PDG pion interaction
# length of Pb, 226 g/cm2 vs 199.6; physics-reference §5 [U]); kaons 1.2 [assumption].
# Groom's E0: 1 GeV for pions, 2.6 GeV for baryons (D. Groom, NIM A 572 (2007) 633) [M].
SPECIES: dict[str, Species] = {
    s.name: s
    for s in [
        Species("gamma", 22, 0.0, 0),
        Species("e-", 11, ELECTRON_MASS, 1, charge=-1),
        Species("e+", -11, ELECTRON_MASS, 2, charge=1),
        Species("mu-", 13, MUON_MASS, 3, charge=-1),
        Species("mu+", -13, MUON_MASS, 3, charge=1),
        Species("pi+", 211, PION_MASS, 4, 1.13, 1.0, 1),
        Species("pi-", -211, PION_MASS, 4, 1.13, 1.0, -1),
        Species("K+", 321, KAON_MASS, 4, 1.2, 1.0, 1),
        Species("K-", -321, KAON_MASS, 4, 1.2, 1.0, -1),
        Species("p", 2212, PROTON_MASS, 4, 1.0, 2.6, 1),
        Species("pbar", -2212, PROTON_MASS, 4, 1.0, 2.6, -1),
        Species("n", 2112, NEUTRON_MASS, 5, 1.0, 2.6),
        Species("nbar", -2112, NEUTRON_MASS, 5, 1.0, 2.6),
        Species("K0L", 130, KAON_MASS, 5, 1.2, 1.0),
    ]
}
BY_PDG: dict[int, Species] = {s.pdg: s for s in SPECIES.values()}
CLI_PARTICLES = ("gamma", "e-", "e+", "pi+", "pi-", "p", "n", "mu-", "mu+")


def species(name_or_pdg: str | int) -> Species:
    """Look up a species by name (``gamma``, ``e-``, ...) or PDG id."""
    if isinstance(name_or_pdg, str):
        if name_or_pdg in SPECIES:
            return SPECIES[name_or_pdg]
        raise CaloptInputError(f"unknown particle {name_or_pdg!r}; expected one of {', '.join(CLI_PARTICLES)}")
    try:
        return BY_PDG[int(name_or_pdg)]
    except KeyError:
        raise CaloptInputError(f"unknown PDG id {name_or_pdg}; known: {sorted(BY_PDG)}") from None


@dataclass
class Particles:
    """Primaries entering one module.

    pdg: (N,) int32; energies: (N,) total energy [MeV]; directions: (N, 3) unit vectors with
    positive z (the module axis); points: (N, 2) entry point on the front face [mm], relative
    to the centre of the scoring window.
    """

    pdg: np.ndarray
    energies: np.ndarray
    directions: np.ndarray
    points: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.pdg)
        self.pdg = np.asarray(self.pdg, dtype=np.int32)
        self.energies = np.asarray(self.energies, dtype=np.float64)
        self.directions = np.asarray(self.directions, dtype=np.float64).reshape(n, 3)
        self.points = np.asarray(self.points, dtype=np.float64).reshape(n, 2)
        if self.energies.shape != (n,):
            raise CaloptInputError("particles: energies must have one value per particle")
        if n and not np.all(self.energies > 0):
            raise CaloptInputError(f"particles: energies must be positive, got min {self.energies.min()} MeV")
        if n and not np.all(self.directions[:, 2] > 0):
            raise CaloptInputError("particles: directions must point into the module (u_z > 0)")
        norm = np.linalg.norm(self.directions, axis=1, keepdims=True)
        self.directions = self.directions / np.where(norm > 0, norm, 1.0)
        for p in np.unique(self.pdg):
            species(int(p))
        masses = np.array([BY_PDG[int(p)].mass for p in self.pdg])
        if n and np.any(self.energies < masses):
            raise CaloptInputError("particles: total energy below the particle mass")

    def __len__(self) -> int:
        return len(self.pdg)

    @property
    def masses(self) -> np.ndarray:
        return np.array([BY_PDG[int(p)].mass for p in self.pdg])

    @property
    def momenta(self) -> np.ndarray:
        """(N, 3) momenta [MeV/c]."""
        p = np.sqrt(np.maximum(self.energies**2 - self.masses**2, 0.0))
        return self.directions * p[:, None]

    def __getitem__(self, sl: slice | np.ndarray) -> Particles:
        return Particles(self.pdg[sl], self.energies[sl], self.directions[sl], self.points[sl])
