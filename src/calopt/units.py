"""Internal units: MeV, mm, ns (the Geant4 convention). Multiply to convert *into* them.

>>> 10 * GeV   # a 10 GeV energy in internal units
10000.0
"""

__all__ = ["GeV", "MeV", "cm", "eV", "g_per_cm3", "keV", "m", "mm", "ns", "ps"]

MeV = 1.0
GeV = 1000.0
keV = 1.0e-3
eV = 1.0e-6
mm = 1.0
cm = 10.0
m = 1000.0
ns = 1.0
ps = 1.0e-3
g_per_cm3 = 1.0  # densities are kept in g/cm3, the unit every table quotes
