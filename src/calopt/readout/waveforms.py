"""Waveforms of one calorimeter cell: cascade deposits -> photo-electrons -> digitised samples.

The chain, per event (all vectorised over events with numpy):

1. **source of light** (:func:`cell_light`): photons from the cascade MC
   (:class:`calopt.simulation.cascade.CascadeSimulator`) enter the centre of the technology's
   smallest cell; per longitudinal section the cell's visible energy and energy-weighted deposit
   time come from the shower (``showers`` and ``times`` of the shower file), the depth of the
   section's light from the shower's own longitudinal profile. The light of a section reaches
   the photodetector at the back of the module at t_s + (L - z_s) n / c: photons travel to the
   back in fibres of group index n, slower than the shower (this is the longitudinal-fluctuation
   bias of the constant-fraction time that PicoCal corrects, physics-reference §2b). Its mean
   number of photo-electrons is the section's EM-scale energy (visible / nominal sampling
   fraction) times the technology's light yield.
2. **emission and transport** (:class:`PulseModel`): the time of each photo-electron after its
   section's arrival is the sum of the scintillator's rise and decay (and the WLS fibre's decay
   in the Shashlik) -- a hypo-exponential -- and a Gaussian of the photodetector's transit-time
   spread and the light-transport (path-length) spread; its density is computed in closed form
   (exponentially modified Gaussians).
3. **detection**: photo-electron counts per 20 ps bin are Poisson of that density (a Poisson
   process), each photo-electron's charge has a relative spread ``gain_spread`` (summed as a
   Gaussian of the same mean and variance); the electronics shape the charge with a CR-RC^2
   response of peaking time ``shaping_ns`` (the single-photo-electron response included) and
   add white noise shaped the same way.
4. **digitisation** (:func:`digitise`): the analogue waveform is sampled at a configurable rate
   (0.4-10 GS/s) by selecting points, as the test beam emulates lower rates from a fast
   digitiser (LHCb ECAL optimisation talk, shared/seeds/000); the clock is not synchronous
   with the particle (the event time t0 is uniform over ``t0_range_ns``); an ADC of
   ``adc_bits`` bits whose full scale is the peak of a ``adc_full_scale_gev`` cell.
5. **reference time**: a trigger counter measures t0 with a Gaussian resolution
   ``reference_sigma_ns``, as in a test beam; time estimators are trained and measured against
   it and its resolution is subtracted in quadrature.

Units: ns, GeV; analogue amplitudes in single-photo-electron peak heights, samples in ADC counts
above the pedestal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy.special import erfc, erfcx

from calopt.detector.technologies import Technology, get_technology
from calopt.errors import CaloptInputError

__all__ = [
    "PULSE_MODELS",
    "CellLight",
    "PulseModel",
    "WaveformSettings",
    "Waveforms",
    "cell_light",
    "digitise",
    "peak_per_gev",
    "pulse_density",
    "simulate_waveforms",
]

C_MM_PER_NS = 299.792458
BATCH = 4096  # events per vectorised batch (memory: a few (BATCH, 4096) float64 arrays)


@dataclass(frozen=True)
class PulseModel:
    """Pulse-shape constants of one technology [ns]: scintillator ``rise_ns`` and ``decay_ns``;
    ``wls_decay_ns`` of a wavelength-shifting fibre (0: none); ``group_index`` of the light
    path to the photodetector; ``path_spread``: relative rms spread of the light's path length
    (rays at different angles in a clad fibre: up to n_core/n_clad - 1 longer, uniform, so
    (n_core/n_clad - 1)/sqrt(12) rms) over half the module depth; photodetector ``tts_ns``
    (single photo-electron transit-time spread, sigma) and relative ``gain_spread``;
    ``shaping_ns``: peaking time of the CR-RC^2 front end; ``noise_pe``: rms noise after
    shaping in single-photo-electron peak heights; ``sources``."""

    rise_ns: float
    decay_ns: float
    wls_decay_ns: float
    group_index: float
    path_spread: float
    tts_ns: float
    gain_spread: float
    shaping_ns: float
    noise_pe: float
    sources: str

    def rates(self) -> tuple[float, ...]:
        return tuple(1.0 / t for t in (self.rise_ns, self.decay_ns, self.wls_decay_ns) if t > 0)

    def gaussian_sigma(self, depth_mm: float) -> float:
        """Transit-time spread (+) transport spread over half the depth [ns]."""
        transport = 0.5 * depth_mm * self.group_index / C_MM_PER_NS * self.path_spread
        return math.hypot(self.tts_ns, transport)


# Polystyrene core n = 1.59, PMMA cladding n = 1.49 [M, Kuraray SCSF/Y-11 catalogue]: path spread
# (1.59/1.49 - 1)/sqrt(12) = 0.019.
_PLASTIC_PATH_SPREAD = (1.59 / 1.49 - 1.0) / math.sqrt(12.0)
# MCP-PMT: Photek PMT210 single-photon transit-time spread 30 ps FWHM [V, SLAC indico event 7076
# contribution 4357] -> sigma = 30/2.355 = 12.7 ps. Dynode PMT: Hamamatsu R9800 270 ps FWHM [V,
# hamamatsu.com R9800 page, quoted in the literature] -> 115 ps, a stand-in for the Shashlik's PMT.
_MCP_TTS_NS = 0.030 / 2.355
_PMT_TTS_NS = 0.270 / 2.355

PULSE_MODELS: dict[str, PulseModel] = {
    "lhcb-shashlik": PulseModel(
        rise_ns=0.9,
        decay_ns=2.5,
        wls_decay_ns=7.1,
        group_index=1.59,
        path_spread=_PLASTIC_PATH_SPREAD,
        tts_ns=_PMT_TTS_NS,
        gain_spread=0.4,
        shaping_ns=2.0,
        noise_pe=0.5,
        sources=(
            "tiles: polystyrene scintillator decay 2-3 ns [V, scintitech polystyrene table], rise 0.9 ns as "
            "BC-408 [M, Saint-Gobain datasheet]; WLS: Kuraray Y-11 decay 7.10 +- 0.09 ns [V, arXiv:2311.07297] "
            "(the faster YS-4, 2.15 ns, same source, is the upgrade's option); PMT TTS 270 ps FWHM (R9800) [V]; "
            "gain spread 0.4, shaping 2 ns, noise 0.5 p.e. and readout at the back only: assumptions"
        ),
    ),
    "spacal-w": PulseModel(
        rise_ns=0.3,
        decay_ns=10.0,
        wls_decay_ns=0.0,
        group_index=1.9,
        path_spread=_PLASTIC_PATH_SPREAD,
        tts_ns=_MCP_TTS_NS,
        gain_spread=0.5,
        shaping_ns=1.0,
        noise_pe=0.5,
        sources=(
            "GAGG:Ce,Mg grown for PicoCal: effective decay below 10 ns [V, PoS(485)520] (GAGG:Ce without Mg "
            "60-100 ns [V, arXiv:2110.06618]; heavy Mg co-doping reaches a few ns [V, Mater. Adv. 3 (2022) "
            "6842]); rise 0.3 ns, refractive index 1.9 [M] and the path spread of a clad plastic fibre "
            "(light guide acceptance): assumptions; MCP-PMT TTS 30 ps FWHM (Photek PMT210) [V]; gain spread "
            "0.5 (broad MCP single-p.e. spectra), shaping 1 ns, noise 0.5 p.e.: assumptions"
        ),
    ),
    "spacal-pb": PulseModel(
        rise_ns=0.9,
        decay_ns=2.8,
        wls_decay_ns=0.0,
        group_index=1.59,
        path_spread=_PLASTIC_PATH_SPREAD,
        tts_ns=_MCP_TTS_NS,
        gain_spread=0.5,
        shaping_ns=1.0,
        noise_pe=0.5,
        sources=(
            "Kuraray SCSF-78 decay 2.8 ns [U, Kuraray catalogue, as the technology's pulse], rise 0.9 ns as "
            "BC-408 [M]; core/cladding 1.59/1.49 [M]; MCP-PMT TTS 30 ps FWHM (Photek PMT210) [V]; gain spread, "
            "shaping 1 ns, noise 0.5 p.e.: assumptions"
        ),
    ),
}


def pulse_model(technology: str) -> PulseModel:
    """The pulse constants of ``technology`` (one line naming the known ones otherwise)."""
    get_technology(technology)
    try:
        return PULSE_MODELS[technology]
    except KeyError:
        raise CaloptInputError(
            f"no pulse model for technology {technology!r}; known: {', '.join(PULSE_MODELS)}"
        ) from None


@dataclass(frozen=True)
class WaveformSettings:
    """Digitiser and test-beam settings: fine analogue grid ``dt_ns`` over ``window_ns``; event
    time t0 uniform over ``t0_range_ns`` (the clock phase); ADC ``adc_bits`` with full scale at
    the peak of a cell of ``adc_full_scale_gev``; trigger counter ``reference_sigma_ns``: an
    MCP-PMT Cherenkov counter (tens of photo-electrons of 12.7 ps TTS each) -- 10 ps is an
    assumption, of the order of the 22-24 ps a single MCP-PMT reaches on beta particles
    [V, msenger.web.cern.ch MCP-PMT characterisation]."""

    dt_ns: float = 0.02
    window_ns: float = 40.0
    t0_range_ns: tuple[float, float] = (5.0, 10.0)
    adc_bits: int = 12
    adc_full_scale_gev: float = 100.0
    reference_sigma_ns: float = 0.010

    @property
    def n_fine(self) -> int:
        return round(self.window_ns / self.dt_ns)


@dataclass
class CellLight:
    """Light of ``n`` showers in one cell, per longitudinal section: ``pe`` (n, S) mean
    photo-electrons, ``arrival_ns`` (n, S) arrival of the section's light at the photodetector
    relative to the particle crossing the front face, ``cell_gev`` (n,) the cell's EM-scale
    energy and ``beam_gev`` the particle energy."""

    technology: str
    beam_gev: float
    pe: np.ndarray
    arrival_ns: np.ndarray
    cell_gev: np.ndarray


def _cell_slice(tech: Technology) -> tuple[slice, float]:
    """Fine cells of the smallest cell centred in the window, and the entry offset [mm] that
    centres the particle on it (the window centre is a fine-cell corner)."""
    k = max(1, round(min(tech.cell_sizes) / tech.fine_pitch))
    g = tech.grid // 2
    if k % 2 == 0:
        return slice(g - k // 2, g + k // 2), 0.0
    return slice(g - (k - 1) // 2, g + (k - 1) // 2 + 1), tech.fine_pitch / 2.0


def cell_light(technology: str, beam_gev: float, n_showers: int, seed: int) -> CellLight:
    """Light in the central cell of ``n_showers`` photons of ``beam_gev`` simulated by the cascade
    MC, entering within +-2 mm of the cell centre; SpaCal modules are hit at 3 degrees in x and
    y, as they are tilted in test beams and in LHCb, since a photon along a fibre can channel
    through it (the same tilt as ``benchmarks/bench_cascade.py``)."""
    from calopt.simulation.cascade import CascadeSimulator
    from calopt.simulation.particles import Particles

    tech = get_technology(technology)
    model = pulse_model(technology)
    sl, off = _cell_slice(tech)
    rng = np.random.default_rng(seed)
    points = off + rng.uniform(-2.0, 2.0, size=(n_showers, 2))
    tilt = math.tan(math.radians(3.0)) if tech.structure == "fibres" else 0.0
    particles = Particles(np.full(n_showers, 22), np.full(n_showers, beam_gev * 1000.0),
                          np.tile([tilt, tilt, 1.0], (n_showers, 1)), points)  # fmt: skip
    sh = CascadeSimulator().simulate(particles, tech, seed)
    vis = sh.showers[:, :, sl, sl].astype(np.float64)
    e_s = vis.sum(axis=(2, 3))  # (n, S) visible MeV
    assert sh.times is not None  # the cascade records times
    t_s = (vis * sh.times[:, :, sl, sl]).sum(axis=(2, 3)) / np.maximum(e_s, 1e-12)
    edges = np.asarray(tech.section_edges)
    depth = edges[-1]
    prof = np.asarray(sh.diagnostics["longitudinal_profile"], dtype=np.float64)  # (n, B) over the depth
    zc = (np.arange(prof.shape[1]) + 0.5) * depth / prof.shape[1]
    sec = np.clip(np.searchsorted(edges, zc, side="right") - 1, 0, len(edges) - 2)
    z_s = np.empty_like(e_s)
    for s in range(len(edges) - 1):
        w = prof[:, sec == s]
        mid = 0.5 * (edges[s] + edges[s + 1])
        tot = w.sum(axis=1)
        z_s[:, s] = np.where(tot > 0, (w * zc[sec == s]).sum(axis=1) / np.maximum(tot, 1e-12), mid)
    arrival = t_s + (depth - z_s) * model.group_index / C_MM_PER_NS
    em_gev = e_s / tech.sampling_fraction / 1000.0
    return CellLight(technology, float(beam_gev), em_gev * tech.light_yield, arrival, em_gev.sum(axis=1))


def pulse_density(model: PulseModel, depth_mm: float, t: np.ndarray) -> np.ndarray:
    """Probability density [1/ns] of a photo-electron's time after its section's light arrives:
    the hypo-exponential of the model's rates convolved with its Gaussian, at times ``t`` [ns]."""
    rates = model.rates()
    if len(set(rates)) != len(rates):
        raise ValueError("pulse time constants must differ")
    s = model.gaussian_sigma(depth_mm)
    out = np.zeros_like(t, dtype=np.float64)
    for i, li in enumerate(rates):
        c = math.prod(lj / (lj - li) for j, lj in enumerate(rates) if j != i)
        x = (li * s * s - t) / (math.sqrt(2.0) * s)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            direct = 0.5 * li * np.exp(li * (0.5 * li * s * s - t)) * erfc(x)
            scaled = 0.5 * li * np.exp(-0.5 * (t / s) ** 2) * erfcx(x)
        out += c * np.where(x < 0, direct, scaled)
    return np.maximum(out, 0.0)


def _shaping(model: PulseModel, t: np.ndarray) -> np.ndarray:
    """CR-RC^2 response (t/tau)^2 exp(-t/tau), peaking time 2 tau = ``shaping_ns``, peak 1."""
    tau = model.shaping_ns / 2.0
    u = np.maximum(t, 0.0) / tau
    return u * u * np.exp(-u) / (4.0 * math.exp(-2.0))


@dataclass
class _Kernels:
    n_fft: int
    density: np.ndarray  # rfft of the photo-electron density per bin
    shaping: np.ndarray  # rfft of the shaping response
    noise_sigma: float  # white noise per fine bin before shaping
    peak_per_pe: float  # peak of the mean single-p.e.-normalised pulse per expected p.e.


def _kernels(technology: str, st: WaveformSettings) -> _Kernels:
    from scipy.fft import next_fast_len, rfft

    model = pulse_model(technology)
    depth = float(get_technology(technology).section_edges[-1])
    n = st.n_fine
    n_fft = next_fast_len(2 * n, real=True)
    t = np.arange(n) * st.dt_ns
    # density integrated over each bin (midpoint), centred so that a delta at bin i is at i*dt
    dens = pulse_density(model, depth, t) * st.dt_ns
    h = _shaping(model, t)
    mean_pulse = np.convolve(dens, h)[:n]
    return _Kernels(n_fft, rfft(dens, n_fft), rfft(h, n_fft), model.noise_pe / math.sqrt(float((h * h).sum())),
                    float(mean_pulse.max()))  # fmt: skip


def peak_per_gev(technology: str, st: WaveformSettings | None = None) -> float:
    """Peak of the mean pulse of 1 GeV (EM scale) in the cell, in single-p.e. peak heights."""
    st = st or WaveformSettings()
    return _kernels(technology, st).peak_per_pe * get_technology(technology).light_yield


@dataclass
class Waveforms:
    """Digitised events: ``samples[rate]`` (N, K) float32 ADC counts above the pedestal at
    sample times ``times[rate]`` (K,) [ns]; ``t0`` (N,) true time of the particle on the face
    [ns]; ``t_ref`` (N,) the trigger counter's time; ``amplitude_gev`` (N,) EM-scale energy of
    the (first) signal in the cell; ``beam_gev`` (N,); with a second signal ``dt2`` (N,) [ns],
    ``ratio`` (N,) its amplitude ratio to the first and ``two`` (N,) bool whether it is present."""

    samples: dict[float, np.ndarray]
    times: dict[float, np.ndarray]
    t0: np.ndarray
    t_ref: np.ndarray
    amplitude_gev: np.ndarray
    beam_gev: np.ndarray
    dt2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))
    two: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.t0)


def sample_times(rate_gsps: float, st: WaveformSettings) -> np.ndarray:
    """Sample times [ns] of a digitiser at ``rate_gsps`` over the window."""
    if not rate_gsps > 0:
        raise CaloptInputError(f"sampling rate must be positive, got {rate_gsps} GS/s")
    period = 1.0 / rate_gsps
    return np.arange(0.0, st.window_ns - st.dt_ns - 1e-9, period)


def digitise(wave: np.ndarray, rate_gsps: float, adc_lsb: float, st: WaveformSettings) -> np.ndarray:
    """Samples (N, K) [ADC counts above the pedestal] of analogue waveforms ``wave`` (N, T) on
    the fine grid: points at the digitiser's sample times (linear interpolation of the fine
    grid), quantised with LSB ``adc_lsb`` and clipped to the ADC range (a pedestal of 1/16 of
    it leaves room for negative noise)."""
    ts = sample_times(rate_gsps, st)
    pos = ts / st.dt_ns
    i = np.minimum(pos.astype(np.int64), wave.shape[1] - 2)
    f = pos - i
    x = wave[:, i] * (1.0 - f) + wave[:, i + 1] * f
    full = 2**st.adc_bits
    ped = full // 16
    codes = np.clip(np.round(x / adc_lsb) + ped, 0, full - 1)
    return (codes - ped).astype(np.float32)


def _batches(n: int) -> Iterator[slice]:
    for a in range(0, n, BATCH):
        yield slice(a, min(a + BATCH, n))


def _impulses(pe: np.ndarray, arrival: np.ndarray, n: int, dt: float) -> np.ndarray:
    """(N, n) expected photo-electrons per fine bin: each section's light split linearly between
    the two bins around its arrival time (keeps its mean time exact)."""
    m = pe.shape[0]
    pos = arrival / dt
    i = np.floor(pos).astype(np.int64)
    f = pos - i
    out = np.zeros((m, n + 1))
    rows = np.broadcast_to(np.arange(m)[:, None], i.shape)
    ok = (i >= 0) & (i < n)
    np.add.at(out, (rows[ok], i[ok]), (pe * (1.0 - f))[ok])
    np.add.at(out, (rows[ok], i[ok] + 1), (pe * f)[ok])
    return out[:, :n]


def simulate_waveforms(
    lights: list[CellLight],
    n_per_light: int,
    rates_gsps: tuple[float, ...],
    seed: int,
    st: WaveformSettings | None = None,
    *,
    second_signal: bool = False,
    two_fraction: float = 0.5,
    ratio_range: tuple[float, float] = (0.05, 1.0),
    dt2_range_ns: tuple[float, float] = (-5.0, 5.0),
) -> Waveforms:
    """``n_per_light`` events per :class:`CellLight` (its showers drawn at random, with fresh
    photo-statistics each time), digitised at every rate in ``rates_gsps``. With
    ``second_signal``, a fraction ``two_fraction`` of the events hold a second pulse (another
    shower of the same light, its photo-electrons scaled by ``ratio`` uniform in ``ratio_range``:
    the smaller one, pile-up in the cell) at ``dt2`` uniform in ``dt2_range_ns`` after the first."""
    from scipy.fft import irfft, rfft

    st = st or WaveformSettings()
    if not lights:
        raise CaloptInputError("no energies to simulate")
    tech = lights[0].technology
    if any(li.technology != tech for li in lights):
        raise ValueError("all lights must be of one technology")
    k = _kernels(tech, st)
    adc_lsb = peak_per_gev(tech, st) * st.adc_full_scale_gev / 2**st.adc_bits
    rng = np.random.default_rng(seed)
    n = st.n_fine
    gain = pulse_model(tech).gain_spread
    # per event: which light and shower, times
    which = np.repeat(np.arange(len(lights)), n_per_light)
    shower = np.concatenate([rng.integers(0, len(li.pe), n_per_light) for li in lights])
    total = len(which)
    t0 = rng.uniform(*st.t0_range_ns, size=total)
    t_ref = t0 + rng.normal(0.0, st.reference_sigma_ns, size=total)
    two = np.zeros(total, dtype=bool)
    ratio = np.zeros(total)
    dt2 = np.zeros(total)
    shower2 = np.zeros(total, dtype=np.int64)
    if second_signal:
        two = rng.uniform(size=total) < two_fraction
        ratio = np.where(two, rng.uniform(*ratio_range, size=total), 0.0)
        dt2 = np.where(two, rng.uniform(*dt2_range_ns, size=total), 0.0)
        shower2 = np.concatenate([rng.integers(0, len(li.pe), n_per_light) for li in lights])
    n_s = lights[0].pe.shape[1]
    pe = np.empty((total, n_s))
    arr = np.empty((total, n_s))
    amp = np.empty(total)
    pe2 = np.zeros((total, n_s))
    arr2 = np.zeros((total, n_s))
    for j, li in enumerate(lights):
        sel = which == j
        pe[sel], arr[sel], amp[sel] = li.pe[shower[sel]], li.arrival_ns[shower[sel]], li.cell_gev[shower[sel]]
        pe2[sel] = li.pe[shower2[sel]] * ratio[sel, None]
        arr2[sel] = li.arrival_ns[shower2[sel]]
    samples: dict[float, list[np.ndarray]] = {r: [] for r in rates_gsps}
    for b in _batches(total):
        lam_in = _impulses(pe[b], arr[b] + t0[b, None], n, st.dt_ns)
        if second_signal:
            lam_in += _impulses(pe2[b], arr2[b] + (t0[b] + dt2[b])[:, None], n, st.dt_ns)
        lam = np.maximum(irfft(rfft(lam_in, k.n_fft, axis=1) * k.density, k.n_fft, axis=1)[:, :n], 0.0)
        counts = rng.poisson(lam).astype(np.float64)
        charge = counts + np.sqrt(counts) * gain * rng.standard_normal(counts.shape)
        charge += k.noise_sigma * rng.standard_normal(counts.shape)
        wave = irfft(rfft(charge, k.n_fft, axis=1) * k.shaping, k.n_fft, axis=1)[:, :n]
        for r in rates_gsps:
            samples[r].append(digitise(wave, r, adc_lsb, st))
    return Waveforms(
        samples={r: np.concatenate(v) for r, v in samples.items()},
        times={r: sample_times(r, st) for r in rates_gsps},
        t0=t0, t_ref=t_ref, amplitude_gev=amp, beam_gev=np.array([lights[j].beam_gev for j in which]),
        dt2=dt2, ratio=ratio, two=two,
    )  # fmt: skip
