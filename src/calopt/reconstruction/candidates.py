"""Photons, pi0 -> gamma gamma and B0 -> J/psi pi0 candidates of one crossing.

Photons point from the signal primary vertex (0, 0, z_pv) to the reconstructed position on the
ECAL face. Muons are the generated ones smeared with a tracker resolution dp/p = 0.5 % and
1 mrad in angle [assumption, of the order of LHCb's long tracks]. The B mass uses the J/psi
mass constraint, m(B) = m(mu mu gamma gamma) - m(mu mu) + m(J/psi) (PDG J/psi mass).
"""

from __future__ import annotations

import numpy as np

from calopt.constants import SPEED_OF_LIGHT

__all__ = ["JPSI_MASS", "PI0_MASS", "b_masses", "pair_masses", "photon_momenta", "smear_muon"]

PI0_MASS = 134.9768  # MeV, PDG
JPSI_MASS = 3096.900  # MeV, PDG
B0_MASS = 5279.66  # MeV, PDG


def photon_momenta(energy: np.ndarray, x: np.ndarray, y: np.ndarray, z_front: float, z_pv: float) -> np.ndarray:
    """(K, 3) momenta [MeV/c] of photons from (0, 0, z_pv) to (x, y, z_front)."""
    d = np.stack([x, y, np.full(len(x), z_front - z_pv)], axis=1)
    return d / np.linalg.norm(d, axis=1, keepdims=True) * np.asarray(energy)[:, None]


def expected_time(x: np.ndarray, y: np.ndarray, z_front: float, z_pv: float, t_pv: float) -> np.ndarray:
    """Arrival time [ns] of a photon from the primary vertex at (x, y) on the face."""
    return t_pv + np.sqrt(x**2 + y**2 + (z_front - z_pv) ** 2) / SPEED_OF_LIGHT


def pair_masses(p: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invariant masses [MeV] of all photon pairs i < j, and the index arrays (i, j)."""
    i, j = np.triu_indices(len(e), k=1)
    ptot = p[i] + p[j]
    etot = e[i] + e[j]
    m2 = etot**2 - (ptot**2).sum(axis=1)
    return np.sqrt(np.maximum(m2, 0.0)), i, j


def smear_muon(p: np.ndarray, rng: np.random.Generator, dp_over_p: float = 0.005, dtheta: float = 1e-3) -> np.ndarray:
    """A muon momentum (3,) [MeV/c] measured with the tracker resolution."""
    pabs = np.linalg.norm(p) * (1.0 + dp_over_p * rng.normal())
    d = p / np.linalg.norm(p) + dtheta * rng.normal(size=3)
    return d / np.linalg.norm(d) * pabs


def b_masses(mu_plus: np.ndarray, mu_minus: np.ndarray, pi0_p: np.ndarray, pi0_e: np.ndarray) -> np.ndarray:
    """B masses [MeV] with the J/psi mass constraint, for (K, 3) pi0 momenta and (K,) energies."""
    m_mu = 105.6583755
    e_mu = np.sqrt((mu_plus**2).sum() + m_mu**2) + np.sqrt((mu_minus**2).sum() + m_mu**2)
    p_mu = mu_plus + mu_minus
    m_mumu = np.sqrt(max(e_mu**2 - (p_mu**2).sum(), 0.0))
    e = e_mu + pi0_e
    p = p_mu[None, :] + pi0_p
    m = np.sqrt(np.maximum(e**2 - (p**2).sum(axis=1), 0.0))
    return m - m_mumu + JPSI_MASS
