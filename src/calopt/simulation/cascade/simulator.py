"""The detailed cascade Monte Carlo as a :class:`~calopt.simulation.base.ShowerSimulator`.

Hadron and muon model (physics-reference §5), all parameters documented here:

* muons and charged hadrons ionise along a straight line with the Bethe mean loss and
  Landau fluctuations (width xi, physics-reference §3.7) in the active material;
* hadrons interact after an exponentially distributed number of interaction lengths, with
  the material's lambda_I scaled per species (pions 1.13, kaons 1.2);
* at the interaction, a fraction f_em of the kinetic energy goes to pi0 photons that the EM
  cascade transports; <f_em> = 1 - (E/E0)^(k-1) (Groom, NIM A 572 (2007) 633 [M]) with
  k = 0.82 and E0 = 1 GeV (mesons) or 2.6 GeV (baryons), event by event from a Beta
  distribution of concentration 6 [assumption]; photons share the energy with flat
  (Dirichlet) weights and get exponential p_T of mean 170 MeV [assumption];
* the rest is hadronic: a fraction h/e = 0.75 of it is visible at the nominal EM sampling
  fraction [U, physics-reference §5], spread in 40 spots along the hadronic component of the
  Bock et al. profile (NIM 186 (1981) 533; parameters [U]) and laterally as
  r ~ Gamma(2, 0.2 lambda_eff) [assumption: 95 % within one lambda].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calopt.detector.technologies import Technology
from calopt.materials import get_material
from calopt.simulation.base import SimulatorDefaults, shower_seeds
from calopt.simulation.cascade.kernel import DIAG, simulate_batch
from calopt.simulation.cascade.physics import Cuts, build_tables
from calopt.simulation.particles import BY_PDG, Particles
from calopt.simulation.showers import Showers, shower_attrs

__all__ = ["CASCADE_VERSION", "DIAG", "EM_FRACTION_K", "H_OVER_E", "CascadeSimulator"]

# Version of the showers the cascade MC makes; it enters the cache key of every library it
# fills (calopt.cache). Bump it whenever the showers for the same particles, technology and seeds
# change: physics, parameters or cuts here or in kernel.py / physics.py, or the materials and
# technologies they read.
CASCADE_VERSION = 1
H_OVER_E = 0.75
EM_FRACTION_K = 0.82  # Groom's exponent k [M]
N_PROFILE = 100  # longitudinal profile bins over the module depth (one per period for layers)
N_RADIAL = 200  # radial profile, 1 mm bins


@dataclass
class _Prepared:
    tables: np.ndarray
    scalars: np.ndarray
    heavy: np.ndarray
    geo_z: np.ndarray
    mat_map: np.ndarray
    has_fibres: bool
    fp: float
    fs: float


def _landau_quantiles(n: int = 2001, u_max: float = 0.98) -> tuple[np.ndarray, float]:
    """Quantile table of the standard Landau distribution truncated at ``u_max`` (the long
    tail is carried by explicit delta rays in a full simulation; truncation keeps the mean
    finite so that the Bethe mean is restored exactly by subtracting it)."""
    from scipy.stats import landau

    u = np.linspace(1e-4, u_max, n)
    q = landau.ppf(u)
    return q, float(q.mean())


@dataclass
class CascadeSimulator(SimulatorDefaults):
    """Particle-level EM cascade with parametrised hadrons; see the package documentation.
    It simulates every species at any energy and angle, so it refuses nothing.

    ``cuts`` are the production/tracking thresholds (MeV); the defaults keep the validation
    of ``calopt validate`` (sampling fraction, resolution, profiles) while a 10 GeV photon
    takes tens of ms.
    """

    cuts: Cuts = field(default_factory=Cuts)
    name: str = "cascade"
    _cache: dict[str, _Prepared] = field(default_factory=dict, init=False, repr=False)
    _landau: tuple[np.ndarray, float] | None = field(default=None, init=False, repr=False)

    def prepare(self, tech: Technology) -> _Prepared:
        if tech.name in self._cache:
            return self._cache[tech.name]
        if tech.structure == "layers":
            names = [la.material for la in tech.layers]
            active = [la.active for la in tech.layers]
            uniq: list[str] = []
            act: list[bool] = []
            for nm, a in zip(names, active):
                if nm not in uniq:
                    uniq.append(nm)
                    act.append(a)
            geo_z = np.concatenate([[0.0], np.cumsum([la.thickness for la in tech.layers])])
            idx = [uniq.index(nm) for nm in names]
            mat_map = np.array([[i, i] for i in idx], dtype=np.int64)
            has_fibres, fp, fs = False, 1.0, 0.0
        else:
            uniq = [tech.absorber, tech.fibre]
            act = [False, True]
            geo_z = np.array([0.0, tech.depth_mm])
            mat_map = np.array([[0, 1]], dtype=np.int64)
            has_fibres, fp, fs = True, tech.fibre_pitch, tech.fibre_side
        mats = [get_material(nm) for nm in uniq]
        tables, scalars, heavy = build_tables(mats, act, self.cuts)
        prep = _Prepared(tables, scalars, heavy, geo_z, mat_map, has_fibres, fp, fs)
        self._cache[tech.name] = prep
        return prep

    def attrs(self, tech: Technology, seed: int) -> dict[str, Any]:
        """The standard attributes plus the production/tracking cuts (``cuts_MeV``)."""
        cuts = np.array([self.cuts.photon, self.cuts.delta, self.cuts.electron])
        return shower_attrs(tech, self.name, seed, cuts_MeV=cuts)

    def run(self, particles: Particles, tech: Technology, seeds: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run the kernel; returns (showers, times, diag, long_profile, radial_profile)."""
        prep = self.prepare(tech)
        if self._landau is None:
            self._landau = _landau_quantiles()
        lq, lmean = self._landau
        sp = [BY_PDG[int(p)] for p in particles.pdg]
        kinds = np.array([s.kind for s in sp], dtype=np.int64)
        masses = np.array([s.mass for s in sp])
        kin = np.where(kinds == 0, particles.energies, particles.energies - masses)
        lam_scale = np.array([s.lambda_scale for s in sp])
        em_e0 = np.array([s.em_e0 for s in sp])
        eff = tech.effective_material
        geo = (prep.geo_z, prep.mat_map, np.array([float(prep.has_fibres), prep.fp, prep.fs, float(tech.depth_mm)]))
        hadpar = np.array([H_OVER_E, float(tech.sampling_fraction), float(eff.lambda_I_mm), EM_FRACTION_K])
        out = simulate_batch(
            np.asarray(seeds, dtype=np.uint32).astype(np.int64),
            kinds,
            kin,
            particles.directions,
            particles.points,
            np.maximum(masses, 1e-9),
            lam_scale,
            em_e0,
            prep.tables,
            prep.scalars,
            prep.heavy,
            geo,
            np.array([self.cuts.photon, self.cuts.delta, self.cuts.electron]),
            float(tech.fine_pitch),
            int(tech.grid),
            np.asarray(tech.section_edges, dtype=np.float64),
            (lq, lmean),
            hadpar,
            n_profile_bins(tech),
            N_RADIAL,
        )
        showers, times, diag, prof, rad, n_overflow = out
        if n_overflow:
            raise RuntimeError(f"cascade particle stack overflowed in {n_overflow} showers")
        return showers, times, diag, prof, rad

    def simulate(
        self, particles: Particles, tech: Technology, seed: int, *, seeds: np.ndarray | None = None
    ) -> Showers:
        """Simulate ``particles`` in ``tech``. Each shower gets its own seed derived from
        (``seed``, index) unless ``seeds`` is given, so results do not depend on batching."""
        if seeds is None:
            seeds = shower_seeds(seed, 0, len(particles))
        showers, times, diag, prof, rad = self.run(particles, tech, seeds)
        diagnostics = {"energy_balance": diag.astype(np.float32), "longitudinal_profile": prof, "radial_profile": rad}
        return Showers.of_particles(particles, showers, times, self.attrs(tech, seed), diagnostics)


def n_profile_bins(tech: Technology) -> int:
    """Bins of the longitudinal-profile diagnostic: one per period of a layered module (so that
    every bin holds one active layer), else :data:`N_PROFILE`."""
    return tech.n_periods if tech.structure == "layers" else N_PROFILE
