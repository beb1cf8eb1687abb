"""Stage 2 of the cycle: showers of particles in one module technology, on a fine grid."""

from calopt.simulation.base import ShowerSimulator, get_simulator
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import Showers, read_showers, write_showers

__all__ = ["Particles", "ShowerSimulator", "Showers", "get_simulator", "read_showers", "species", "write_showers"]
