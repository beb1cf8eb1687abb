"""Stage 1 of the cycle: particles at the ECAL front face (guns, Pythia 8 signal and pile-up)."""

from calopt.generation.events import FLAG, Events, crossing_particles, read_events, write_events
from calopt.generation.runner import EventSpec, cached_events, generate_events

__all__ = ["FLAG", "EventSpec", "Events", "cached_events", "crossing_particles", "generate_events", "read_events",
           "write_events"]
