"""The detailed, particle-level electromagnetic-cascade Monte Carlo (calopt's ground truth)."""

from calopt.simulation.cascade.physics import Cuts
from calopt.simulation.cascade.simulator import CascadeSimulator

__all__ = ["CascadeSimulator", "Cuts"]
