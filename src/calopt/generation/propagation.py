"""Propagation of particles from their production vertex to the ECAL front face.

Neutral particles fly in straight lines. Charged particles get the LHCb dipole's bending as a
single transverse-momentum kick in the x-z plane at the magnet's centre (thin-lens model):
the field is vertical, with integral of B dl = 4 T m [M, LHCb JINST 3 (2008) S08005], i.e. a
kick of 0.2998 * 4 = 1.2 GeV/c, at z = 5.3 m [M, centre of the LHCb dipole]; the momentum
magnitude is kept, so particles with too little momentum curl out of the acceptance. Energy
loss and multiple scattering before the ECAL are neglected. The arrival time is the path
length over beta*c plus the production time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calopt.constants import SPEED_OF_LIGHT
from calopt.detector.wall import ECAL_FRONT_Z_MM

__all__ = ["LHCB_DIPOLE", "MagnetModel", "propagate_to_ecal"]


@dataclass(frozen=True)
class MagnetModel:
    """A thin-lens dipole: ``kick`` [MeV/c] of p_x for a unit positive charge at ``z_kick`` [mm];
    ``polarity`` +1 or -1 (MagUp/MagDown)."""

    kick: float = 0.299792458 * 4.0 * 1000.0
    z_kick: float = 5300.0
    polarity: int = 1


LHCB_DIPOLE = MagnetModel()


def propagate_to_ecal(
    p: np.ndarray,
    charge: np.ndarray,
    mass: np.ndarray,
    vertex: np.ndarray,
    *,
    z_front: float = ECAL_FRONT_Z_MM,
    magnet: MagnetModel = LHCB_DIPOLE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entry points at the ECAL face.

    p: (N, 3) momenta [MeV/c]; charge: (N,) in units of e; mass: (N,) [MeV/c^2];
    vertex: (N, 4) production (x, y, z [mm], t [ns]).
    Returns x, y [mm], t [ns] at z_front, the momentum there (N, 3), and ``ok``, False for
    particles that do not reach the face (moving backwards, produced behind it, or bent away).
    """
    p = np.asarray(p, dtype=float)
    vertex = np.asarray(vertex, dtype=float)
    charge = np.asarray(charge, dtype=float)
    px, py, pz = p[:, 0].copy(), p[:, 1].copy(), p[:, 2].copy()
    vx, vy, vz, vt = vertex.T
    pabs = np.sqrt(px**2 + py**2 + pz**2)
    ok = (pz > 0) & (vz < z_front)
    safe_pz = np.where(pz > 0, pz, 1.0)
    bend = (charge != 0) & (vz < magnet.z_kick)
    # first leg: to the magnet for charged particles produced before it, else to the ECAL
    z1 = np.where(bend, magnet.z_kick, z_front)
    dz1 = np.maximum(z1 - vz, 0.0)
    x1 = vx + px / safe_pz * dz1
    y1 = vy + py / safe_pz * dz1
    path = dz1 * pabs / safe_pz
    # kick: p_x changes, |p| is kept
    px2 = np.where(bend, px + charge * magnet.polarity * magnet.kick, px)
    pz2sq = pabs**2 - px2**2 - py**2
    ok &= ~bend | (pz2sq > 0)
    pz2 = np.where(bend, np.sqrt(np.maximum(pz2sq, 1e-12)), pz)
    dz2 = np.where(bend, z_front - magnet.z_kick, 0.0)
    x = x1 + px2 / pz2 * dz2
    y = y1 + py / pz2 * dz2
    path = path + dz2 * pabs / pz2
    energy = np.sqrt(pabs**2 + np.asarray(mass, dtype=float) ** 2)
    beta = np.where(energy > 0, pabs / np.where(energy > 0, energy, 1.0), 1.0)
    t = vt + path / (np.maximum(beta, 1e-9) * SPEED_OF_LIGHT)
    return x, y, t, np.stack([px2, py, pz2], axis=1), ok
