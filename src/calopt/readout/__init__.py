"""Stage 3 of the cycle: a design's channels from particles at the ECAL face."""

from calopt.readout.cells import CellMap
from calopt.readout.readout import CellHits, Readout, ReadoutSettings

__all__ = ["CellHits", "CellMap", "Readout", "ReadoutSettings"]
