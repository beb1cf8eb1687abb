"""Physical constants, in MeV, mm and ns, with their sources.

Values are CODATA 2018 as printed in the PDG Review of Particle Physics,
"Physical constants" table (R.L. Workman et al., PTEP 2022, 083C01).
"""

__all__ = [
    "AVOGADRO",
    "BETHE_K",
    "CLASSICAL_ELECTRON_RADIUS",
    "ELECTRON_MASS",
    "FINE_STRUCTURE",
    "HIGHLAND_CONSTANT",
    "KAON_MASS",
    "MOLIERE_ES",
    "MUON_MASS",
    "NEUTRON_MASS",
    "PION_MASS",
    "PROTON_MASS",
    "SPEED_OF_LIGHT",
]

ELECTRON_MASS = 0.51099895  # MeV/c^2, PDG
MUON_MASS = 105.6583755  # MeV/c^2, PDG
PION_MASS = 139.57039  # MeV/c^2, charged pion, PDG
KAON_MASS = 493.677  # MeV/c^2, charged kaon, PDG
PROTON_MASS = 938.27208816  # MeV/c^2, PDG
NEUTRON_MASS = 939.56542052  # MeV/c^2, PDG
CLASSICAL_ELECTRON_RADIUS = 2.8179403262e-12  # mm (2.8179403262 fm), PDG
FINE_STRUCTURE = 1.0 / 137.035999084  # PDG
AVOGADRO = 6.02214076e23  # 1/mol, exact (SI 2019)
SPEED_OF_LIGHT = 299.792458  # mm/ns, exact
BETHE_K = 0.307075  # MeV cm^2/mol, K = 4 pi N_A r_e^2 m_e c^2, PDG (RPP 2018, "Passage of particles")
MOLIERE_ES = 21.2052  # MeV, E_s = m_e c^2 sqrt(4 pi / alpha), PDG; physics-reference §3.2 uses 21.2
HIGHLAND_CONSTANT = 13.6  # MeV, Highland formula, PDG eq. 34.15 (physics-reference §3.8)
