"""The ``surrogate`` backend: a trained generative model as a
:class:`~calopt.simulation.base.ShowerSimulator`.

For each chunk of particles: the conditions (and, for a model of aligned showers, the sub-cell
offsets of the shower axis) go through the model type's sampling
(:mod:`calopt.simulation.surrogates.registry`), which gives the cell energy fractions and the
response; the response calibration (:mod:`calopt.simulation.surrogates.calibration`) makes the
visible energy, the hit model (:mod:`calopt.simulation.surrogates.hits`) the discrete tail
deposits, the time model the section times, and the sections are placed back on the grid.
Every shower draws its random numbers from its own generator, seeded by its seed
(:mod:`calopt.simulation.surrogates.noise`), so a shower depends only on its seed; the same
shower generated in chunks of different size agrees to float rounding (the networks' sums).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.technologies import Technology
from calopt.errors import CaloptInputError, FileFormatError
from calopt.simulation.base import SimulatorDefaults, shower_seeds
from calopt.simulation.particles import Particles, species
from calopt.simulation.showers import Showers, shower_attrs
from calopt.simulation.surrogates.calibration import apply_response
from calopt.simulation.surrogates.checkpoint import load_checkpoint
from calopt.simulation.surrogates.conditions import ConditionSpace
from calopt.simulation.surrogates.dataset import axis_context, axis_offsets, shift_sections, time_of
from calopt.simulation.surrogates.hits import apply_hits
from calopt.simulation.surrogates.noise import normals, shower_rngs
from calopt.simulation.surrogates.registry import get_type
from calopt.simulation.surrogates.types import Sample

__all__ = ["CHUNK", "DEFAULT_MODEL", "SurrogateSimulator", "load_surrogate", "place_sections"]

# The shipped default (``get_simulator("surrogate")``); how it was made: its model card,
# data/lhcb-shashlik-default.md.
DEFAULT_MODEL = Path(__file__).parent / "data" / "lhcb-shashlik-default.pt"
CHUNK = 2048  # showers through the networks and the cell steps at once


def place_sections(inner: np.ndarray, k: np.ndarray, t_sec: np.ndarray, showers: np.ndarray,
                   times: np.ndarray) -> None:  # fmt: skip
    """Write generated showers onto the grid: the central crop (N, S, C, C) of the model's frame,
    section s of shower i moved by ``k[i, s]`` cells (x, y; the shift back from the aligned
    frame, 0 for a model on the grid; what falls off the grid is dropped), into ``showers``
    (N, S, H, H), zeros elsewhere; ``times`` gets ``t_sec[i, s]`` in every non-empty cell and 0
    elsewhere."""
    C, H = inner.shape[2], showers.shape[2]
    if C != H:
        grid = np.zeros(showers.shape, dtype=np.float32)
        a = (H - C) // 2
        grid[:, :, a : a + C, a : a + C] = inner
        inner = grid
    shift_sections(inner, k, -1, out=showers)
    np.multiply(showers > 0, t_sec.astype(np.float32)[:, :, None, None], out=times)


class SurrogateSimulator(SimulatorDefaults):
    """Generates showers with the model of a ``calopt-surrogate`` checkpoint ``ck``. A model
    never extrapolates: species, energies, angles, entry points and technologies outside its
    training range are refused (:meth:`check_particles`, :meth:`check_run`, and every
    :meth:`simulate`)."""

    name = "surrogate"

    def __init__(self, ck: dict[str, Any], source: str = "") -> None:
        self.ck = ck
        self.source = source
        self.model_type = get_type(ck["model_type"])
        self.technology: str = ck["technology"]
        self.space = ConditionSpace.from_dict(ck["conditions"])
        self.rep: dict[str, Any] = ck["representation"]
        self.norm: dict[str, float] = ck["normalisation"]
        self.net = self.model_type.build(ck["architecture"])
        self.model_type.load(self.net, ck)
        self.net.eval()
        self.hit_model: dict[str, Any] | None = ck.get("hit_model")
        self.response_calibration: dict[str, Any] | None = ck.get("response_calibration")
        depths = self.rep.get("axis_depths_mm")  # showers aligned on their axis (None: on the grid)
        self.axis_depths = None if depths is None else np.asarray(depths, dtype=np.float64)

    def generate(self, cond: np.ndarray, rngs: list[np.random.Generator]) -> Sample:
        """Model-space samples for the networks' conditions ``cond`` (with the axis offsets of
        an aligned model), each shower's noise from ``rngs[i]``."""
        return self.model_type.sample(self.net, self.ck, cond, rngs)

    def check_conditions(self, particles: Particles, tech: Technology) -> None:
        self._check_technology(tech.name)
        self.space.check(particles)

    def check_particles(self, pdg: np.ndarray) -> None:
        """Refuse species the model was not trained on."""
        self.space.check_species(pdg)

    def check_run(self, technology: str, particle: str, e_lo_gev: float, e_hi_gev: float, theta_max: float) -> None:
        """Refuse the settings of a run outside the training range before simulating anything."""
        self._check_technology(technology)
        self.space.check_run(species(particle).pdg, e_lo_gev * 1000.0, e_hi_gev * 1000.0, theta_max)

    def _check_technology(self, technology: str) -> None:
        if technology != self.technology:
            raise CaloptInputError(f"surrogate {self.source or self.model_type.name!r} was trained for technology "
                                   f"{self.technology!r}, not {technology!r}")  # fmt: skip

    def attrs(self, tech: Technology, seed: int) -> dict[str, Any]:
        """The standard attributes, the model type in ``generator`` and the checkpoint's file
        name (``surrogate_model``)."""
        return shower_attrs(tech, f"surrogate-{self.model_type.name}", seed, surrogate_model=self.source)

    def _fill(self, particles: Particles, rngs: list[np.random.Generator], showers: np.ndarray,
              times: np.ndarray) -> None:  # fmt: skip
        """Generate the showers of ``particles`` into ``showers`` and ``times`` (N, S, H, H)."""
        n, S = len(particles), int(self.rep["sections"])
        e, d = particles.energies, particles.directions
        cond = self.space.encode(e, d, particles.points, particles.pdg)
        net_cond, k = cond, np.zeros((n, S, 2), dtype=np.int64)
        if self.axis_depths is not None:
            k, u = axis_offsets(self.axis_depths, d, particles.points, float(self.rep["fine_pitch_mm"]))
            net_cond = np.hstack([cond, axis_context(u)])
        sample = self.generate(net_cond, rngs)
        rows = self.space.species_rows(cond)
        r_raw = sample.r.astype(np.float64) * self.norm["r_std"] + self.norm["r_mean"]
        if self.response_calibration is not None:
            r_raw = apply_response(r_raw, cond[:, 0], rows, self.response_calibration)
        cells = sample.fractions
        cells *= (np.exp(r_raw) * e).astype(np.float32)[:, None]
        tm = self.ck["time_model"]
        ta, tb = np.asarray(tm["a"], dtype=np.float64)[rows], np.asarray(tm["b"], dtype=np.float64)[rows]
        if "sigma" in tm:  # a per-shower scatter: the flow's learnt section-time normals, or independent ones
            z = sample.tau.astype(np.float64) if sample.tau is not None else normals(rngs, S, np.float64)
            t_sec = time_of(ta, tb, e, d[:, 2], np.asarray(tm["sigma"], dtype=np.float64)[rows],
                            np.asarray(tm["lne"], dtype=np.float64), z)  # fmt: skip
        else:  # checkpoints without a time scatter
            t_sec = time_of(ta, tb, e, d[:, 2])
        if self.hit_model is not None:  # a flow's section fractions are kept through the hits
            apply_hits(cells, rngs, cond[:, 0], rows, self.hit_model, sections=S if sample.tau is not None else 1)
        C = int(self.rep["crop"])
        place_sections(cells.reshape(n, S, C, C), k, t_sec, showers, times)

    def simulate(self, particles: Particles, tech: Technology, seed: int, *,
                 seeds: np.ndarray | None = None) -> Showers:  # fmt: skip
        """Showers of ``particles`` in ``tech`` (the model's technology and grid), shower i from
        ``seeds[i]`` (default: derived from (``seed``, i))."""
        self.check_conditions(particles, tech)
        n = len(particles)
        seeds = shower_seeds(seed, 0, n) if seeds is None else np.asarray(seeds)
        if len(seeds) != n:
            raise CaloptInputError(f"got {len(seeds)} seeds for {n} particles")
        S, H = int(self.rep["sections"]), int(tech.grid)
        if tech.grid != int(self.rep["grid"]) or len(tech.section_edges) - 1 != S:
            raise CaloptInputError(f"technology {tech.name!r} grid differs from the surrogate's training grid")
        showers = np.empty((n, S, H, H), dtype=np.float32)
        times = np.empty_like(showers)
        for a in range(0, n, CHUNK):
            b = min(a + CHUNK, n)
            self._fill(particles[a:b], shower_rngs(seeds[a:b]), showers[a:b], times[a:b])
        return Showers.of_particles(particles, showers, times, self.attrs(tech, seed))


def load_surrogate(path: str | os.PathLike[str] | None = None) -> SurrogateSimulator:
    """The simulator of a checkpoint file (the shipped default when ``path`` is None). A
    checkpoint whose networks cannot be rebuilt from it (settings or weights that do not fit)
    is refused with a one-line :class:`~calopt.errors.FileFormatError` naming the file."""
    p = DEFAULT_MODEL if path is None else Path(path)
    if path is None and not p.is_file():
        raise CaloptInputError("the default surrogate model is not installed with this calopt")
    ck = load_checkpoint(p)
    try:
        return SurrogateSimulator(ck, source=p.name)
    except CaloptInputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        text = " ".join(str(exc).split())  # torch's messages run over several lines
        raise FileFormatError(f"{str(p)!r} is a broken calopt-surrogate checkpoint: its model cannot be rebuilt "
                              f"({type(exc).__name__}: {text[:200]})") from None  # fmt: skip
