"""Readout of a design: particles at the ECAL face -> energies and times of its channels.

For each particle hitting the wall, the shower of the technology of the module it enters is
taken from that technology's shower library (:mod:`calopt.simulation.library`), aligned with
the fine grid (the library's fine pitch divides every cell size and module edges lie on the
grid, so cell sums are exact), rescaled in energy, and its fine cells are summed into the
design's channels, front and back separately in split modules (the technology's
``split_index``).

Showers spilling over a technology border: the shower is the one of the entry module's
technology; its visible energy is converted to deposited (EM-scale) energy with that
technology's calibration before it is summed, so a neighbouring module of another technology
receives the energy the shower deposits there, read out as if it were calibrated (its own
sampling fluctuations are not re-simulated). Deposits in the beam hole or outside the wall
are lost.

Per channel (``ReadoutSettings``): photo-statistics (Poisson in photo-electrons with the
technology's light yield), Gaussian electronic noise, zero suppression, and for channels
with timing the energy-weighted time smeared with sigma_t = a/sqrt(E) (+) b of the
technology. Times are calibrated to the arrival of the particle on the front face: the mean
energy-weighted delay of EM showers in the technology (from its library) is subtracted.
Noise-only channels above threshold are added (binomial count, Gaussian tail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.special import ndtr, ndtri

from calopt.arrays import ranges
from calopt.detector.design import Design
from calopt.detector.technologies import get_technology
from calopt.generation.events import FLAG, Events
from calopt.readout.cells import CellMap
from calopt.simulation.library import CLASSES, LibrarySpec, ShowerLibrary, get_library, species_class
from calopt.simulation.particles import BY_PDG

__all__ = ["READOUT_VERSION", "CellHits", "Readout", "ReadoutSettings"]

# Version of the readout: it enters the cache key of the regressors, which are trained on
# read-out photons (calopt.reconstruction.regression). Bump it whenever the same particles and
# settings read out into other channel energies or times: the placement of library showers, the
# calibrations, photo-statistics, noise, zero suppression or timing here, or the cell map.
READOUT_VERSION = 1


@dataclass(frozen=True)
class ReadoutSettings:
    """Per-channel effects. ``noise_mev``: electronic noise per channel (an assumption, of the
    order of LHCb's ~1 ADC count); ``threshold_mev``: zero suppression; ``photostatistics``:
    Poisson photo-electron statistics on/off; library grid: ``library_energies`` [GeV],
    ``library_angles`` [rad], ``library_n_per_point``; ``fastsim``: a fast-simulation backend
    that fills the EM libraries instead of the cascade MC (hadrons and muons stay cascade)."""

    noise_mev: float = 5.0
    threshold_mev: float = 15.0
    photostatistics: bool = True
    timing: bool = True
    library_energies: tuple[float, ...] = LibrarySpec.energies
    library_angles: tuple[float, ...] = LibrarySpec.angles
    library_n_per_point: int = LibrarySpec.n_per_point
    library_seed: int = 0
    fastsim: str | None = None

    def library_spec(self, technology: str, particle_class: str) -> LibrarySpec:
        """The library that reads out ``particle_class`` in ``technology``: the grid above, filled
        by ``fastsim`` for the EM class when set, else by the cascade MC."""
        generator = self.fastsim if self.fastsim is not None and particle_class == "em" else "cascade"
        return LibrarySpec(technology, particle_class, self.library_energies, self.library_angles,
                           self.library_n_per_point, self.library_seed, generator)  # fmt: skip


@dataclass
class CellHits:
    """Channels read out in one crossing: ``channel`` (K,) int64, ``energy`` (K,) [MeV, EM
    scale], ``time`` (K,) [ns] (NaN without timing), and ``true_energy`` (K,) before noise and
    photo-statistics."""

    channel: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    true_energy: np.ndarray


@dataclass
class Readout:
    """Reads out crossings for one design. Libraries are built or loaded on first use."""

    design: Design
    settings: ReadoutSettings = field(default_factory=ReadoutSettings)
    libraries: dict[tuple[str, str], ShowerLibrary] = field(default_factory=dict)

    @cached_property
    def cells(self) -> CellMap:
        return CellMap(self.design)

    def library(self, technology: str, particle_class: str) -> ShowerLibrary:
        key = (technology, particle_class)
        if key not in self.libraries:
            self.libraries[key] = get_library(self.settings.library_spec(technology, particle_class))
        return self.libraries[key]

    def calibration(self, technology: str) -> float:
        """Visible/deposited energy of EM showers in ``technology`` (from its EM library)."""
        return self.library(technology, "em").calibration

    @cached_property
    def _channel_tech(self) -> np.ndarray:
        return self.cells.table["tech"]

    def deposits(self, pdg: np.ndarray, energy: np.ndarray, p: np.ndarray, entry: np.ndarray) -> tuple[np.ndarray, ...]:
        """Noise-free deposits of particles: (channel, EM-scale energy [MeV], time [ns]) per
        fine cell. pdg (M,), energy (M,) [MeV], p (M, 3) momenta at the face, entry (M, 3) x, y
        [mm] and arrival time [ns]."""
        wall = self.design.wall
        x, y = entry[:, 0], entry[:, 1]
        i, j, ok = wall.slot_of(x, y)
        ic, jc = np.clip(i, 0, wall.nx - 1), np.clip(j, 0, wall.ny - 1)
        tech_of = np.where(ok, self.design.technology[jc, ic], "")
        cls = species_class(pdg)
        mass = np.array([BY_PDG[int(q)].mass if int(q) in BY_PDG else 939.6 for q in pdg])
        kinetic = np.where(cls == 0, energy, np.maximum(energy - mass, 0.0))
        out_ch, out_e, out_t = [], [], []
        class_names = list(CLASSES)
        for tech in np.unique(tech_of[ok]):
            t = get_technology(str(tech))
            calib = self.calibration(str(tech))
            t_offset = self.library(str(tech), "em").time_offset
            for c in range(3):
                sel = np.nonzero((tech_of == tech) & (cls == c))[0]
                if len(sel) == 0:
                    continue
                lib = self.library(str(tech), class_names[c])
                pitch = lib.pitch
                cx = np.round(x[sel] / pitch) * pitch
                cy = np.round(y[sel] / pitch) * pitch
                tx = p[sel, 0] / p[sel, 2]
                ty = p[sel, 1] / p[sel, 2]
                idx, scale, fx, fy = lib.lookup(kinetic[sel] / 1000.0, tx, ty, x[sel] - cx, y[sel] - cy)
                if c == 2:
                    scale = np.ones_like(scale)  # a muon's MIP deposit does not scale with energy
                flat, k = ranges(lib.o[idx], lib.o[idx + 1] - lib.o[idx])
                g = lib.grid
                b = np.where(fx[k], g - 1 - lib.b[flat], lib.b[flat])
                a = np.where(fy[k], g - 1 - lib.a[flat], lib.a[flat])
                X = cx[k] + (b - g / 2 + 0.5) * pitch
                Y = cy[k] + (a - g / 2 + 0.5) * pitch
                front = lib.s[flat] < t.split_index
                out_ch.append(self.cells.channel(X, Y, front))
                out_e.append(lib.e[flat] * scale[k] / calib)
                out_t.append(entry[sel, 2][k] + lib.t[flat] - t_offset)
        if not out_ch:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        ch, e, tt = np.concatenate(out_ch), np.concatenate(out_e), np.concatenate(out_t)
        keep = ch >= 0
        return ch[keep], e[keep], tt[keep]

    def read(self, pdg: np.ndarray, energy: np.ndarray, p: np.ndarray, entry: np.ndarray,
             rng: np.random.Generator) -> CellHits:  # fmt: skip
        """Read out one crossing (arrays as in :meth:`deposits`)."""
        ch, e, tt = self.deposits(pdg, energy, p, entry)
        uch, inv = np.unique(ch, return_inverse=True)
        e_true = np.bincount(inv, weights=e, minlength=len(uch))
        et = np.bincount(inv, weights=e * tt, minlength=len(uch))
        with np.errstate(invalid="ignore", divide="ignore"):
            t_true = np.where(e_true > 0, et / e_true, np.nan)
        return self._electronics(uch, e_true, t_true, rng)

    def read_crossing(self, events: Events, i: int, rng: np.random.Generator) -> CellHits:
        """Read out crossing ``i`` of ``events`` (only the particles that reach the ECAL)."""
        c = events.crossing(i)
        hit = (c["flags"] & FLAG.REACHES_ECAL) > 0
        return self.read(c["pdg"][hit], c["energy"][hit], c["p"][hit], c["entry"][hit], rng)

    def _electronics(self, ch: np.ndarray, e_true: np.ndarray, t_true: np.ndarray,
                     rng: np.random.Generator) -> CellHits:  # fmt: skip
        st = self.settings
        techs = [get_technology(n) for n in self.cells.technologies]
        ly = np.array([t.light_yield for t in techs])[self._channel_tech[ch]]  # p.e. per GeV
        e = e_true.copy()
        if st.photostatistics:
            e = rng.poisson(np.maximum(e_true, 0.0) / 1000.0 * ly) / ly * 1000.0
        e = e + rng.normal(0.0, st.noise_mev, size=len(e)) if st.noise_mev > 0 else e
        # noise-only channels above threshold
        extra_ch = np.zeros(0, dtype=np.int64)
        extra_e = np.zeros(0)
        n_ch = self.cells.n_channels
        if st.noise_mev > 0:
            p_over = float(1.0 - ndtr(st.threshold_mev / st.noise_mev))
            n_extra = rng.binomial(n_ch - len(ch), p_over)
            if n_extra:
                cand = rng.choice(n_ch, size=n_extra + len(ch), replace=False)
                extra_ch = np.setdiff1d(cand, ch)[:n_extra]
                u = rng.uniform(1.0 - p_over, 1.0, size=len(extra_ch))
                extra_e = ndtri(np.minimum(u, 1 - 1e-16)) * st.noise_mev
        all_ch = np.concatenate([ch, extra_ch])
        all_e = np.concatenate([e, extra_e])
        all_true = np.concatenate([e_true, np.zeros(len(extra_ch))])
        t = np.concatenate([t_true, np.full(len(extra_ch), np.nan)])
        timing = self.cells.table["timing"][all_ch] & st.timing
        if timing.any():
            a = np.array([tt.time_resolution[0] for tt in techs])[self._channel_tech[all_ch]]
            b = np.array([tt.time_resolution[1] for tt in techs])[self._channel_tech[all_ch]]
            egev = np.maximum(all_e, 1.0) / 1000.0
            sigma_ns = np.sqrt((a / np.sqrt(egev)) ** 2 + b**2) * 1e-3
            base = np.where(np.isnan(t), rng.uniform(-12.5, 12.5, size=len(t)), t)  # noise: random in the crossing
            t = np.where(timing, base + rng.normal(size=len(t)) * sigma_ns, np.nan)
        else:
            t = np.full(len(t), np.nan)
        keep = all_e > st.threshold_mev
        order = np.argsort(all_ch[keep])
        return CellHits(
            channel=all_ch[keep][order],
            energy=all_e[keep][order].astype(np.float32),
            time=t[keep][order].astype(np.float32),
            true_energy=all_true[keep][order].astype(np.float32),
        )
