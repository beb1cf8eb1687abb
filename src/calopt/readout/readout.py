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

The detector response follows LHCb's own simulation and digitisation (physics-reference §2b):

* light-collection non-uniformity (:class:`calopt.detector.technologies.LightCollection`,
  Gauss ``EcalSensDet``): every fine-grid deposit is weighted by the mean of the cell's
  response over the area of its fine cell (a map of the wall's fine cells, made once per
  pitch) -- exact for deposits spread evenly over the fine cell, which the library's grid
  (5-20 mm) cannot resolve further. The dome and the edge reflection vary over tens of mm and
  are kept; a fibre-hole pattern of pitch d averages over a fine cell to a constant when the
  fine pitch is a multiple of d (Shashlik inner and middle cells: 20.2 mm = 2 x 10.1 mm), so
  only its remainder (outer cells, d = 15.25 mm) survives: structure finer than the grid is
  not invented;
* per channel, as Boole's ``CaloDigitAlg`` does: Poisson photo-statistics with the
  technology's light yield; a per-cell gain (calibration) error, Gaussian of
  ``gain_spread``, fixed per design and ``calibration_seed`` (a calibrated detector's residual
  miscalibration; Boole draws it per event); incoherent noise per channel and one coherent
  noise offset per crossing shared by every channel; spill-over: the fraction
  exp(-25 ns / tau) of the previous crossing's pile-up signal (the technology's pulse decay
  time tau) is added to the next crossing (:meth:`Readout.read_crossing`); zero suppression;
* cell times, for channels with timing: the arrival time on the front face of the particles
  whose showers deposit in the cell (energy-weighted where several do, as when a pile-up
  shower overlaps a signal one), smeared with sigma_t(E) = a/sqrt(E) (+) b at the cell's
  energy: the technology's a and the constant term b of the region's timing option (the
  published one or a tier, :attr:`calopt.detector.design.Design.time_constant_ps`). The
  published resolutions are test-beam measurements of whole showers, so they already hold the
  shower's own fluctuations (PicoCal: the constant-fraction time is biased by longitudinal
  shower fluctuations and corrected with the rise time, physics-reference §2b); the cascade's
  energy-weighted deposit times, whose spread is that bias uncorrected (~100 ps per cell), are
  therefore not added on top. Times are calibrated: the arrival on the face is the zero.

Noise-only channels above threshold are added (binomial count, Gaussian tail above the
threshold less the crossing's coherent offset).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from calopt.arrays import ranges
from calopt.detector.design import Design
from calopt.detector.technologies import Technology, get_technology
from calopt.errors import CaloptInputError
from calopt.generation.events import FLAG, Events, crossing_particles
from calopt.readout.cells import CellMap
from calopt.simulation.library import CLASSES, LibrarySpec, ShowerLibrary, get_library, species_class
from calopt.simulation.particles import BY_PDG

__all__ = ["READOUT_VERSION", "CellHits", "Readout", "ReadoutSettings", "time_resolution"]

# Version of the readout: it enters the cache key of the regressors, which are trained on
# read-out photons (calopt.reconstruction.regression). Bump it whenever the same particles and
# settings read out into other channel energies or times: the placement of library showers, the
# calibrations, photo-statistics, noise, zero suppression or timing here, or the cell map.
READOUT_VERSION = 4
TIMING_MODELS = ("catalogue", "waveform")


@dataclass(frozen=True)
class ReadoutSettings:
    """Detector response. ``noise_mev``: incoherent electronic noise per channel (an
    assumption, of the order of LHCb's 1.2 ADC counts); ``coherent_noise_mev``: the noise
    common to every channel of a crossing, in Boole's ratio to the incoherent one (0.3 / 1.2
    ADC counts, physics-reference §2b); ``gain_spread``: relative per-cell gain error (1 %,
    Boole's ``GainError``), fixed per design and ``calibration_seed``; ``threshold_mev``: zero
    suppression; ``photostatistics``: Poisson photo-electron statistics; ``light_collection``:
    the non-uniformity of the technologies; ``spillover``: the previous crossing's pile-up
    signal in the next one; ``timing``: cell times where the design has timing; library grid:
    ``library_energies`` [GeV], ``library_angles`` [rad], ``library_n_per_point``;
    ``fastsim``: a fast-simulation backend that fills the EM libraries instead of the cascade
    MC (hadrons and muons stay cascade); ``timing_model``: ``"catalogue"`` (the technologies'
    sourced sigma_t parametrisation) or ``"waveform"`` (a and b fitted to the waveform study at
    ``waveform_sampling_gsps``, :func:`calopt.readout.waveform_timing.waveform_time_resolution`;
    a region at a timing tier other than the published constant term keeps its tier)."""

    noise_mev: float = 5.0
    coherent_noise_mev: float = 1.25
    gain_spread: float = 0.01
    calibration_seed: int = 0
    threshold_mev: float = 15.0
    photostatistics: bool = True
    light_collection: bool = True
    spillover: bool = True
    timing: bool = True
    library_energies: tuple[float, ...] = LibrarySpec.energies
    library_angles: tuple[float, ...] = LibrarySpec.angles
    library_n_per_point: int = LibrarySpec.n_per_point
    library_seed: int = 0
    fastsim: str | None = None
    timing_model: str = "catalogue"
    waveform_sampling_gsps: float = 5.0

    def __post_init__(self) -> None:
        if self.timing_model not in TIMING_MODELS:
            known = ", ".join(TIMING_MODELS)
            raise CaloptInputError(f"unknown timing model {self.timing_model!r}; expected one of {known}")

    def key_doc(self) -> dict[str, Any]:
        """The settings as they enter cache keys: the timing-model fields only when they differ
        from the catalogue default, so that the keys of the default settings stay those made
        before the waveform model existed."""
        doc = asdict(self)
        if self.timing_model == "catalogue":
            doc.pop("timing_model")
            doc.pop("waveform_sampling_gsps")
        return doc

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
    _pileup_sums: dict[tuple[int, int], tuple[Events, ChannelSums]] = field(default_factory=dict, repr=False)
    _light_maps: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

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

    def _per_channel(self, value: Callable[[Technology], float]) -> np.ndarray:
        """(n_channels,) ``value`` of each channel's technology."""
        techs = [get_technology(n) for n in self.cells.technologies]
        return np.array([value(t) for t in techs], dtype=float)[self._channel_tech]

    @cached_property
    def gains(self) -> np.ndarray:
        """(n_channels,) relative gain of every channel: 1 + N(0, gain_spread), fixed per layout
        of channels (the digest of their positions, sizes, parts and technologies: not of the
        design's name or timing, so that the same channels keep their gains) and
        ``calibration_seed``."""
        t = self.cells.table
        h = hashlib.sha256(",".join(self.cells.technologies).encode())
        for k in ("x", "y", "size", "part", "tech"):
            h.update(np.ascontiguousarray(t[k], dtype=np.float64).tobytes())
        digest = int(h.hexdigest()[:15], 16)
        rng = np.random.default_rng(np.random.SeedSequence([self.settings.calibration_seed, digest, 0x6A1]))
        return 1.0 + self.settings.gain_spread * rng.standard_normal(self.cells.n_channels)

    @cached_property
    def _light_parameters(self) -> dict[str, np.ndarray]:
        """Per channel: the light-collection parameters of its technology and cell size, and the
        mean response over the whole cell (the calibration divides it out)."""
        t = self.cells.table
        out = {k: np.zeros(self.cells.n_channels) for k in ("A_local", "d", "A_global", "A_refl", "w")}
        out["d"][:] = out["w"][:] = 1.0
        for ti, name in enumerate(self.cells.technologies):
            lc = get_technology(name).light_collection
            if lc is None:
                continue
            for size in np.unique(t["size"][t["tech"] == ti]):
                sel = (t["tech"] == ti) & (t["size"] == size)
                a_local, d, a_global = lc.parameters(float(size))
                out["A_local"][sel], out["d"][sel], out["A_global"][sel] = a_local, d, a_global
                out["A_refl"][sel], out["w"][sel] = lc.reflection_height, lc.reflection_width_mm
        h = t["size"] / 2.0
        out["norm"] = _light_response(-h, h, -h, h, h, out)
        return out

    def _light_weights(self, ch: np.ndarray, X: np.ndarray, Y: np.ndarray, half_pitch: float) -> np.ndarray:
        """Response of channel ``ch`` to deposits spread over the fine cells centred at (X, Y)
        of half-size ``half_pitch`` [mm], relative to its mean over the cell."""
        t = self.cells.table
        par = {k: v[ch] for k, v in self._light_parameters.items()}
        h = t["size"][ch] / 2.0
        u, v = X - t["x"][ch], Y - t["y"][ch]
        x1, x2 = np.clip(u - half_pitch, -h, h), np.clip(u + half_pitch, -h, h)
        y1, y2 = np.clip(v - half_pitch, -h, h), np.clip(v + half_pitch, -h, h)
        return _light_response(x1, x2, y1, y2, h, par) / par["norm"]

    def _light_map(self, pitch: float) -> np.ndarray:
        """(rows, columns) light-collection response of every fine cell of ``pitch`` [mm] on the
        wall (1 outside it), computed once per pitch: fine grids are aligned with the wall's
        edges, so a deposit's fine cell is an index into it."""
        if pitch not in self._light_maps:
            wall = self.design.wall
            nx, ny = round(wall.nx * wall.pitch / pitch), round(wall.ny * wall.pitch / pitch)
            xc = -wall.nx * wall.pitch / 2.0 + (np.arange(nx) + 0.5) * pitch
            yc = -wall.ny * wall.pitch / 2.0 + (np.arange(ny) + 0.5) * pitch
            X, Y = (a.ravel() for a in np.meshgrid(xc, yc))
            ch = self.cells.channel(X, Y, np.ones(X.size, dtype=bool))
            w = np.ones(X.size)
            ok = ch >= 0
            w[ok] = self._light_weights(ch[ok], X[ok], Y[ok], pitch / 2.0)
            self._light_maps[pitch] = w.reshape(ny, nx)
        return self._light_maps[pitch]

    def _light_at(self, X: np.ndarray, Y: np.ndarray, pitch: float) -> np.ndarray:
        """The light-collection response of the fine cells of ``pitch`` centred at (X, Y)."""
        m = self._light_map(pitch)
        wall = self.design.wall
        gx = np.clip(((X + wall.nx * wall.pitch / 2.0) / pitch).astype(np.int64), 0, m.shape[1] - 1)
        gy = np.clip(((Y + wall.ny * wall.pitch / 2.0) / pitch).astype(np.int64), 0, m.shape[0] - 1)
        return m[gy, gx]

    def deposits(self, pdg: np.ndarray, energy: np.ndarray, p: np.ndarray, entry: np.ndarray) -> tuple[np.ndarray, ...]:
        """Deposits of particles before the electronics: (channel, EM-scale energy [MeV] seen
        through the light collection, time [ns]) per fine cell. pdg (M,), energy (M,) [MeV], p
        (M, 3) momenta at the face, entry (M, 3) x, y [mm] and arrival time [ns]."""
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
                e_dep = lib.e[flat] * scale[k] / calib
                out_e.append(e_dep * self._light_at(X, Y, pitch) if self.settings.light_collection else e_dep)
                out_t.append(entry[sel, 2][k])  # the particle's arrival (module docstring: cell times)
        if not out_ch:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        ch, e, tt = np.concatenate(out_ch), np.concatenate(out_e), np.concatenate(out_t)
        keep = ch >= 0
        return ch[keep], e[keep], tt[keep]

    def true_energies(self, pdg: np.ndarray, energy: np.ndarray, p: np.ndarray,
                      entry: np.ndarray) -> ChannelSums:  # fmt: skip
        """The particles' deposits summed per channel (arrays as in :meth:`deposits`)."""
        ch, e, t = self.deposits(pdg, energy, p, entry)
        return _sum_per_channel(ch, e, t, self.cells.n_channels)

    def read(self, pdg: np.ndarray, energy: np.ndarray, p: np.ndarray, entry: np.ndarray,
             rng: np.random.Generator, previous: ChannelSums | None = None) -> CellHits:  # fmt: skip
        """Read out one crossing (arrays as in :meth:`deposits`); ``previous``: the deposits of
        the previous crossing, whose signal spills over into this one."""
        return self._electronics(self.true_energies(pdg, energy, p, entry), rng, previous)

    @cached_property
    def _spill_fraction(self) -> np.ndarray:
        """(n_channels,) fraction of a crossing's signal read in the next one (0 with
        ``spillover`` off)."""
        f = self._per_channel(lambda t: t.spillover_fraction)
        return f if self.settings.spillover else np.zeros_like(f)

    def pileup_energies(self, events: Events, i: int) -> ChannelSums:
        """The deposits of the pile-up collisions of crossing ``i`` per channel (those of its
        neighbours are kept: a crossing's pile-up is also the next one's spill-over)."""
        key = (id(events), i)  # the entry holds ``events``: its id cannot be reused while cached
        if key not in self._pileup_sums:
            for old in [k for k in self._pileup_sums if k[0] != key[0] or abs(k[1] - i) > 1]:
                del self._pileup_sums[old]
            self._pileup_sums[key] = (events, self.true_energies(*crossing_particles(events, i, pileup_only=True)))
        return self._pileup_sums[key][1]

    def read_crossing(self, events: Events, i: int, rng: np.random.Generator, pileup_only: bool = False) -> CellHits:
        """Read out crossing ``i`` of ``events`` (the particles that reach the ECAL; with
        ``pileup_only`` only those of its pile-up collisions). The pile-up of crossing i - 1
        (of crossing 1 for crossing 0, so that the first n crossings of a sample read out the
        same whatever its size) spills over into it: the bunch crossing before a signal crossing
        is a minimum-bias one, which the pile-up of the sample's neighbouring crossing stands
        for."""
        c = events.crossing(i)
        own = ((c["flags"] & FLAG.REACHES_ECAL) > 0) & (c["pv"] == 0)
        parts = [self.pileup_energies(events, i)] if np.any(c["pv"] > 0) else []
        if not pileup_only:
            parts.append(self.true_energies(c["pdg"][own], c["energy"][own], c["p"][own], c["entry"][own]))
        previous = None
        if np.any(self._spill_fraction > 0) and len(events) > 1:
            previous = self.pileup_energies(events, i - 1 if i > 0 else 1)
        return self._electronics(_merge(parts, self.cells.n_channels), rng, previous)

    def _electronics(self, sums: ChannelSums, rng: np.random.Generator,
                     previous: ChannelSums | None = None) -> CellHits:  # fmt: skip
        """Channels of one crossing from its deposits ``sums`` (and the ``previous`` crossing's,
        for the spill-over): photo-statistics, gains, noise, zero suppression and times (module
        docstring)."""
        st = self.settings
        ch, e_true, t_true = sums
        e_light = e_true
        if previous is not None and len(previous[0]):
            spill = _merge([sums, (previous[0], previous[1] * self._spill_fraction[previous[0]],
                                   np.full(len(previous[0]), np.nan))], self.cells.n_channels)  # fmt: skip
            ch, e_light = spill[0], spill[1]
            e_true = np.zeros(len(ch))
            e_true[np.searchsorted(ch, sums[0])] = sums[1]
            t_true = np.full(len(ch), np.nan)
            t_true[np.searchsorted(ch, sums[0])] = sums[2]
        ly = self._light_yield[ch]  # p.e. per GeV
        e = e_light.copy()
        if st.photostatistics:
            e = rng.poisson(np.maximum(e_light, 0.0) / 1000.0 * ly) / ly * 1000.0
        e = e * self.gains[ch]
        coherent = rng.normal(0.0, st.coherent_noise_mev) if st.coherent_noise_mev > 0 else 0.0
        if st.noise_mev > 0:
            e = e + rng.normal(0.0, st.noise_mev, size=len(e))
        e = e + coherent
        # noise-only channels above threshold: incoherent noise above the threshold less the
        # crossing's coherent offset
        extra_ch = np.zeros(0, dtype=np.int64)
        extra_e = np.zeros(0)
        n_ch = self.cells.n_channels
        if st.noise_mev > 0:
            z = (st.threshold_mev - coherent) / st.noise_mev
            p_over = float(1.0 - ndtr(z))
            n_extra = rng.binomial(n_ch - len(ch), p_over)
            if n_extra:
                cand = rng.choice(n_ch, size=n_extra + len(ch), replace=False)
                extra_ch = np.setdiff1d(cand, ch)[:n_extra]
                u = rng.uniform(1.0 - p_over, 1.0, size=len(extra_ch))
                extra_e = ndtri(np.minimum(u, 1 - 1e-16)) * st.noise_mev + coherent
        all_ch = np.concatenate([ch, extra_ch])
        all_e = np.concatenate([e, extra_e])
        all_true = np.concatenate([e_true, np.zeros(len(extra_ch))])
        t = np.concatenate([t_true, np.full(len(extra_ch), np.nan)])
        timing = self.cells.table["timing"][all_ch] & st.timing
        if timing.any():
            a = self._time_stochastic[all_ch]
            b = self.cells.table["time_b"][all_ch]
            if st.timing_model == "waveform":
                a_w, b_w, b_pub = self._waveform_terms
                a = a_w[all_ch]
                b = np.where(np.isclose(b, b_pub[all_ch]), b_w[all_ch], b)
            sigma_ns = time_resolution(a, b, all_e) * 1e-3
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

    @cached_property
    def _light_yield(self) -> np.ndarray:
        return self._per_channel(lambda t: t.light_yield)

    @cached_property
    def _time_stochastic(self) -> np.ndarray:
        return self._per_channel(lambda t: t.time_resolution[0])

    @cached_property
    def _waveform_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per channel: (a, b) of the waveform study's table and the technology's published b."""
        from calopt.readout.waveform_timing import waveform_time_resolution

        rate = self.settings.waveform_sampling_gsps
        return (self._per_channel(lambda t: waveform_time_resolution(t.name, rate)[0]),
                self._per_channel(lambda t: waveform_time_resolution(t.name, rate)[1]),
                self._per_channel(lambda t: t.time_resolution[1]))  # fmt: skip


def time_resolution(a: np.ndarray, b: np.ndarray, energy_mev: np.ndarray) -> np.ndarray:
    """sigma_t = a/sqrt(E) (+) b of cells or photons of ``energy_mev`` [MeV] (at least 1 MeV), in
    the unit of the stochastic term ``a`` [per sqrt(GeV)] and the constant term ``b``: the model
    of the readout's cell times, which the reconstruction's time selections use too."""
    egev = np.maximum(energy_mev, 1.0) / 1000.0
    return np.sqrt((a / np.sqrt(egev)) ** 2 + b**2)


ChannelSums = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(channels (K,) sorted and unique, energies (K,) [MeV], energy-weighted times (K,) [ns])."""


def _sum_per_channel(ch: np.ndarray, e: np.ndarray, t: np.ndarray, n_channels: int) -> ChannelSums:
    """Deposits (channel, energy, time) summed per channel (of ``n_channels``; dense counts are
    faster than sorting the deposits); the time is energy-weighted (NaN where no deposit has a
    time or the energy is 0)."""
    uch = np.flatnonzero(np.bincount(ch, minlength=n_channels))
    e_sum = np.bincount(ch, weights=e, minlength=n_channels)[uch]
    timed = np.isfinite(t)
    if timed.all():
        et = np.bincount(ch, weights=e * t, minlength=n_channels)[uch]
        e_t = e_sum
    else:
        et = np.bincount(ch[timed], weights=(e * t)[timed], minlength=n_channels)[uch]
        e_t = np.bincount(ch[timed], weights=e[timed], minlength=n_channels)[uch]
    with np.errstate(invalid="ignore", divide="ignore"):
        t_sum = np.where(e_t > 0, et / e_t, np.nan)
    return uch, e_sum, t_sum


def _merge(parts: list[ChannelSums], n_channels: int) -> ChannelSums:
    """Per-channel sums of several sets of deposits, merged (times energy-weighted)."""
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    if len(parts) == 1:
        return parts[0]
    ch, e, t = (np.concatenate(v) for v in zip(*parts, strict=True))
    return _sum_per_channel(ch, e, t, n_channels)


def _light_response(x1: np.ndarray, x2: np.ndarray, y1: np.ndarray, y2: np.ndarray, h: np.ndarray,
                    par: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
    """Mean over [x1, x2] x [y1, y2] (offsets from the cell centre [mm], within +-h) of the
    light-collection response of :class:`calopt.detector.technologies.LightCollection`: the
    terms are products or sums of functions of x and of y, whose means are integrated in closed
    form."""

    def mean(u1: np.ndarray, u2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        du = np.maximum(u2 - u1, 1e-9)
        k = 2.0 * np.pi / par["d"]
        fibres = 1.0 - (np.sin(k * u2) - np.sin(k * u1)) / (k * du)  # 1 - cos(k u)
        dome = 1.0 - (u2**3 - u1**3) / (3.0 * h**2 * du)  # 1 - (u / h)^2
        w = par["w"]
        edges = w / du * (np.exp(-(u1 + h) / w) - np.exp(-(u2 + h) / w) + np.exp(-(h - u2) / w)
                          - np.exp(-(h - u1) / w))  # fmt: skip
        return fibres, dome, edges

    fx, gx, rx = mean(x1, x2)
    fy, gy, ry = mean(y1, y2)
    return 1.0 + par["A_local"] / 2.0 * fx * fy + par["A_global"] * gx * gy + par["A_refl"] * (rx + ry)
