"""The catalogue of module technologies.

A technology is a 121.2 mm square module (the LHCb module pitch) with one of two internal
structures that the cascade Monte Carlo transports through exactly:

* ``layers``: a stack of absorber/active/passive plates repeated along the module axis
  (Shashlik);
* ``fibres``: a square lattice of square fibres along the module axis in an absorber block
  (SpaCal). Round fibres are replaced by square fibres of the same area [documented
  approximation: it keeps the volume fractions, hence X0, R_M and the sampling fraction].

Each technology also fixes the fine scoring grid of its showers (the pitch divides every
allowed cell size), the longitudinal sections, and the readout and cost assumptions used
by the readout and cost stages. Every number states its source or is marked as an
assumption.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

from calopt.errors import CaloptInputError
from calopt.materials import Material, get_material

__all__ = ["BUNCH_SPACING_NS", "MODULE_SIZE_MM", "TECHNOLOGIES", "Layer", "LightCollection", "Technology",
           "get_technology"]

MODULE_SIZE_MM = 121.2  # LHCb ECAL module pitch, physics-reference §1 [V]
BUNCH_SPACING_NS = 25.0  # LHC bunch spacing


@dataclass(frozen=True)
class LightCollection:
    """Light-collection non-uniformity across a readout cell: each deposit at (x, y), a distance
    (r_x, r_y) from the centre of its cell of half-size h, is weighted by

        1 + (A_local / 2) (1 - cos 2 pi r_x / d) (1 - cos 2 pi r_y / d)
          + A_global (1 - (r_x / h)^2) (1 - (r_y / h)^2)
          + A_refl (exp(-|r_x + h| / w) + exp(-|r_x - h| / w) + same in y),

    the model of LHCb's simulation (Gauss ``EcalSensDet::localNonUniformity``, physics-reference
    §2b [V-code]): a sinusoidal pattern of the fibre holes of pitch d, a dome across the cell and
    light reflected at the cell's edges. ``by_cell_size`` maps a cell size [mm] to (A_local, d
    [mm], A_global): LHCb's regions are its cell sizes (inner 40.4, middle 60.6, outer 121.2
    mm). The response is normalised to 1 on average over a uniformly lit cell (the cells are
    calibrated)."""

    by_cell_size: tuple[tuple[float, float, float, float], ...]  # (cell size, A_local, d, A_global)
    reflection_height: float = 0.0
    reflection_width_mm: float = 6.0
    source: str = ""

    def parameters(self, cell_size: float) -> tuple[float, float, float]:
        """(A_local, d [mm], A_global) of cells of ``cell_size`` [mm]: the entry of the nearest
        listed size."""
        row = min(self.by_cell_size, key=lambda r: abs(r[0] - cell_size))
        return row[1], row[2], row[3]


@dataclass(frozen=True)
class Layer:
    """One plate of a layered module: a material and a thickness [mm]."""

    material: str
    thickness: float
    active: bool = False


@dataclass(frozen=True)
class Technology:
    """A module technology.

    Geometry (mm): for ``structure == "layers"``, ``layers`` is one period repeated
    ``n_periods`` times; for ``"fibres"``, a block of ``absorber`` of ``depth`` with square
    fibres of ``fibre`` material, side ``fibre_side`` on a square lattice of ``fibre_pitch``.

    Scoring: ``fine_pitch`` [mm] and ``grid`` (H = W cells) of the fine lateral grid;
    ``section_edges`` [mm] from the front face; ``split_index``: sections before it form the
    front part of a longitudinally split readout.

    Readout: ``cell_sizes`` [mm] allowed; ``light_yield`` [photo-electrons per GeV of
    deposited EM energy]; ``time_resolution`` (a [ps sqrt(GeV)], b [ps]) for
    sigma_t = a / sqrt(E) (+) b with the technology's published timing (``time_sources``);
    ``light_collection``: the non-uniformity of :class:`LightCollection`; ``pulse_decay_ns``: the
    effective decay time of the read-out pulse, whose tail exp(-25 ns / tau) spills into the next
    bunch crossing. Cost [kCHF]: per module, per readout channel, and the extra per channel for
    timing electronics at the published resolution (a timing tier of constant term b costs
    b_published / b times it, see :mod:`calopt.detector.cost`). Cost figures are assumptions: no
    public figure exists (physics-reference §2).

    ``module_spec``: the JSON of the :class:`calopt.detector.module.ModuleSpec` of a technology
    built from a point of the module design space (empty for the built-in ones); shower files
    of such a technology carry it in their ``module`` attribute.
    """

    name: str
    description: str
    structure: str
    fine_pitch: float
    grid: int
    section_edges: tuple[float, ...]
    split_index: int
    cell_sizes: tuple[float, ...]
    light_yield: float
    time_resolution: tuple[float, float]
    cost_module: float
    cost_channel: float
    cost_timing_channel: float
    sources: str
    light_collection: LightCollection | None = None
    pulse_decay_ns: float = 0.0
    time_sources: str = ""
    layers: tuple[Layer, ...] = ()
    n_periods: int = 0
    absorber: str = ""
    fibre: str = ""
    fibre_side: float = 0.0
    fibre_pitch: float = 0.0
    depth_mm: float = 0.0
    module_spec: str = ""  # for a point of the module space (calopt.detector.module): its JSON

    def __post_init__(self) -> None:
        if self.structure == "layers":
            if not self.layers or self.n_periods <= 0:
                raise CaloptInputError(f"technology {self.name!r}: a layered module needs layers and n_periods > 0")
            object.__setattr__(self, "depth_mm", self.n_periods * sum(la.thickness for la in self.layers))
        elif self.structure == "fibres":
            if not (0 < self.fibre_side < self.fibre_pitch) or self.depth_mm <= 0:
                raise CaloptInputError(f"technology {self.name!r}: need 0 < fibre_side < fibre_pitch and depth > 0")
        else:
            raise CaloptInputError(f"technology {self.name!r}: structure {self.structure!r} is not layers|fibres")
        if self.grid % 2:
            raise CaloptInputError(f"technology {self.name!r}: the fine grid must have an even size")
        for c in self.cell_sizes:
            ratio = c / self.fine_pitch
            if abs(ratio - round(ratio)) > 1e-9:
                raise CaloptInputError(f"technology {self.name!r}: cell {c} mm is not a multiple of {self.fine_pitch}")
        edges = self.section_edges
        rising = all(b > a for a, b in itertools.pairwise(edges))
        if edges[0] != 0.0 or not rising or abs(edges[-1] - self.depth_mm) > 1e-6:
            raise CaloptInputError(f"technology {self.name!r}: section edges must rise from 0 to the depth")

    # ----- composition -------------------------------------------------------------------
    def volume_fractions(self) -> list[tuple[Material, float, bool]]:
        """(material, volume fraction, active) for the homogenised module."""
        if self.structure == "layers":
            period = sum(la.thickness for la in self.layers)
            return [(get_material(la.material), la.thickness / period, la.active) for la in self.layers]
        f = (self.fibre_side / self.fibre_pitch) ** 2
        return [(get_material(self.absorber), 1.0 - f, False), (get_material(self.fibre), f, True)]

    @cached_property
    def effective_material(self) -> Material:
        """The module homogenised by volume (for X0, R_M, lambda_I of the whole module)."""
        return Material.mix(f"{self.name}-homogenised", [(m, v) for m, v, _ in self.volume_fractions()])

    @property
    def active_material(self) -> Material:
        return next(m for m, _, active in self.volume_fractions() if active)

    @property
    def depth_X0(self) -> float:
        return self.depth_mm / self.effective_material.X0_mm

    @property
    def depth_lambda(self) -> float:
        return self.depth_mm / self.effective_material.lambda_I_mm

    @cached_property
    def mip_sampling_fraction(self) -> float:
        """Fraction of a minimum-ionising particle's mean loss that is deposited in the active
        material (physics-reference §3.11)."""
        parts = [(m.dedx_min_mm * v, active) for m, v, active in self.volume_fractions()]
        return sum(p for p, a in parts if a) / sum(p for p, _ in parts)

    @property
    def e_over_mip(self) -> float:
        """GFlash estimate of e/mip, 1/(1 + 0.007 (Z_abs - Z_act)) (physics-reference §3.9)."""
        mats = self.volume_fractions()
        z_abs = max(m.Z_eff for m, _, a in mats if not a)
        z_act = self.active_material.Z_eff
        return 1.0 / (1.0 + 0.007 * (z_abs - z_act))

    @property
    def sampling_fraction(self) -> float:
        """Nominal EM sampling fraction, f_em = (e/mip) f_mip (physics-reference §3.11). The
        cascade MC measures the real one; this nominal value is stored in shower files."""
        return self.e_over_mip * self.mip_sampling_fraction

    @property
    def sampling_term_estimate(self) -> float:
        """PDG rule of thumb sigma/E = 2.7% sqrt(d[mm]/f_mip)/sqrt(E) [fraction at 1 GeV]; d is
        the active layer thickness (fibre side for SpaCal)."""
        d = next(la.thickness for la in self.layers if la.active) if self.structure == "layers" else self.fibre_side
        return 0.027 * math.sqrt(d / self.mip_sampling_fraction)

    def allows_cell_size(self, size_mm: float) -> bool:
        """Whether cells of ``size_mm`` are among the allowed ``cell_sizes`` (to rounding: 1e-6 mm)."""
        return any(abs(size_mm - c) < 1e-6 for c in self.cell_sizes)

    @property
    def spillover_fraction(self) -> float:
        """Fraction of a crossing's signal read in the next crossing: exp(-25 ns / tau) of an
        exponential pulse of decay time tau integrated over one 25 ns gate (0 without a decay
        time)."""
        return math.exp(-BUNCH_SPACING_NS / self.pulse_decay_ns) if self.pulse_decay_ns > 0 else 0.0

    @property
    def window_mm(self) -> float:
        return self.grid * self.fine_pitch

    def properties(self) -> dict[str, object]:
        """Derived properties for ``calopt technologies``."""
        eff = self.effective_material
        return {
            "name": self.name,
            "description": self.description,
            "structure": self.structure,
            "depth_mm": round(self.depth_mm, 3),
            "depth_X0": round(self.depth_X0, 2),
            "depth_lambda_I": round(self.depth_lambda, 3),
            "X0_eff_mm": round(eff.X0_mm, 2),
            "moliere_radius_mm": round(eff.moliere_radius_mm, 2),
            "density_g_cm3": round(eff.density, 3),
            "mip_sampling_fraction": round(self.mip_sampling_fraction, 4),
            "e_over_mip": round(self.e_over_mip, 3),
            "sampling_fraction": round(self.sampling_fraction, 4),
            "sampling_term_estimate": round(self.sampling_term_estimate, 4),
            "fine_pitch_mm": self.fine_pitch,
            "grid": [self.grid, self.grid],
            "section_edges_mm": [round(e, 3) for e in self.section_edges],
            "split_at_mm": round(self.section_edges[self.split_index], 3),
            "cell_sizes_mm": list(self.cell_sizes),
            "light_yield_pe_per_GeV": self.light_yield,
            "time_resolution_ps": {"a": self.time_resolution[0], "b": self.time_resolution[1],
                                   "sources": self.time_sources},
            "pulse_decay_ns": self.pulse_decay_ns,
            "spillover_fraction": round(self.spillover_fraction, 4),
            "light_collection": None if self.light_collection is None else {
                "by_cell_size": [dict(zip(("cell_size_mm", "A_local", "d_mm", "A_global"), r))
                                 for r in self.light_collection.by_cell_size],
                "reflection_height": self.light_collection.reflection_height,
                "reflection_width_mm": self.light_collection.reflection_width_mm,
                "source": self.light_collection.source,
            },
            "cost_kCHF": {
                "module": self.cost_module,
                "channel": self.cost_channel,
                "timing_per_channel": self.cost_timing_channel,
            },
            "sources": self.sources,
        }


# SpaCal: the fibre lattice (1.7-2.5 mm) is far finer than any scoring grid, so its pattern
# averages to a constant (A_local = 0); the light guide that brings a cell's fibres to its
# photodetector collects light unevenly across the cell: a dome of 1 % [assumption, of the order
# of LHCb's Shashlik middle/outer cells; no public figure for the SpaCal light guides]. No edge
# reflection term: it describes the reflective edges of Shashlik tiles.
_SPACAL_LIGHT_GUIDE = LightCollection(
    by_cell_size=((15.15, 0.0, 1.0, 0.01),),
    source="assumption: 1 % dome across the cell from the light guide; fibre lattice averaged out",
)


def _shashlik() -> Technology:
    period = (
        Layer("Pb", 2.0),
        Layer("paper", 0.12),
        Layer("polystyrene", 4.0, active=True),
        Layer("paper", 0.12),
    )
    p = sum(la.thickness for la in period)
    return Technology(
        name="lhcb-shashlik",
        description="LHCb ECAL Shashlik module: 66 x (2 mm Pb + 4 mm scintillator), WLS-fibre readout",
        structure="layers",
        layers=period,
        n_periods=66,
        fine_pitch=20.2,
        grid=30,
        section_edges=(0.0, 10 * p, 20 * p, 40 * p, 66 * p),
        split_index=2,
        cell_sizes=(40.4, 60.6, 121.2),
        light_yield=3000.0,
        time_resolution=(72.0, 15.0),
        cost_module=6.0,
        cost_channel=0.6,
        cost_timing_channel=0.4,
        sources=(
            "stack: LHCb JINST 3 (2008) S08005 [M]; paper separators 2x0.12 mm [M]; cells 40.4/60.6/121.2 mm "
            "[V, LHCb calo geometry page]; light yield ~3000 p.e./GeV [M, S08005]; costs: assumptions (no public "
            "figure); split after 20 layers (~7 X0) is an assumption"
        ),
        light_collection=LightCollection(
            by_cell_size=((40.4, 0.008, 10.1, 0.0004), (60.6, 0.008, 10.1, 0.002), (121.2, 0.03, 15.25, 0.03)),
            reflection_height=0.09,
            reflection_width_mm=6.0,
            source=(
                "Gauss EcalSensDet::localNonUniformity [V-code, physics-reference §2b]: d, A_global, reflection "
                "0.09 / 6 mm as in the code; A_local = 0.008 / 0.008 / 0.03 are the values commented in the newer "
                "version (0 active there; 0.004 / 0.004 / 0.012 in an older one) [assumption: the choice of version]"
            ),
        ),
        pulse_decay_ns=7.0,
        time_sources=(
            "with the timing upgrade of PicoCal (faster WLS fibres): a = 72 ps sqrt(GeV), the KOPIO shashlyk's "
            "[V, arXiv:0709.4514] as a stand-in; b = 15 ps, PicoCal's configurations below 20 ps at high energy "
            "[V, PoS(485)520] and ~15 ps [U, NIM A 1045 (2023) 167629]; pulse: Y-11 WLS decay ~7 ns [U], LHCb's "
            "front-end clipping (not modelled) shortens it"
        ),
    )


def _spacal_w() -> Technology:
    depth = 145.0
    return Technology(
        name="spacal-w",
        description="SpaCal with 3D-printed tungsten absorber and 1x1 mm2 GAGG:Ce crystal fibres (Upgrade-II inner)",
        structure="fibres",
        absorber="W",
        fibre="GAGG",
        fibre_side=1.0,
        fibre_pitch=1.7,
        depth_mm=depth,
        fine_pitch=5.05,
        grid=36,
        section_edges=(0.0, 22.5, 45.0, 90.0, depth),
        split_index=2,
        cell_sizes=(15.15, 20.2, 30.3),
        light_yield=2000.0,
        time_resolution=(72.0, 15.0),
        cost_module=60.0,
        cost_channel=0.6,
        cost_timing_channel=0.4,
        sources=(
            "W absorber + GAGG fibres, ~1.5 cm cells, front/back 45/100 mm [M, LHCb Framework TDR CERN-LHCC-2021-012; "
            "PoS(485)520 V for the technology]; fibre 1 mm, pitch 1.7 mm [U]; GAGG rho 6.63 [U]; light yield and "
            "costs: assumptions"
        ),
        light_collection=_SPACAL_LIGHT_GUIDE,
        pulse_decay_ns=10.0,
        time_sources=(
            "b = 15 ps: PicoCal SpaCal prototypes below 20 ps at high energy, goal O(10) ps [V, PoS(485)520], "
            "SpaCal-W/GAGG ~15 ps [U, NIM A 1045 (2023) 167629]; a = 72 ps sqrt(GeV), the KOPIO shashlyk's "
            "[V, arXiv:0709.4514] as a stand-in for the photo-statistics term; pulse: GAGG:Ce,Mg grown for "
            "PicoCal with an effective decay time below 10 ns [V, PoS(485)520]"
        ),
    )


def _spacal_pb() -> Technology:
    depth = 290.0
    side = 2.0 * math.sqrt(math.pi) / 2.0  # square of the area of a 2 mm round fibre
    return Technology(
        name="spacal-pb",
        description="SpaCal with cast lead absorber and 2 mm polystyrene scintillating fibres (Upgrade-II middle)",
        structure="fibres",
        absorber="Pb",
        fibre="polystyrene",
        fibre_side=side,
        fibre_pitch=2.5,
        depth_mm=depth,
        fine_pitch=10.1,
        grid=36,
        section_edges=(0.0, 40.0, 80.0, 160.0, depth),
        split_index=2,
        cell_sizes=(30.3, 40.4, 60.6),
        light_yield=2500.0,
        time_resolution=(72.0, 15.0),
        cost_module=20.0,
        cost_channel=0.6,
        cost_timing_channel=0.4,
        sources=(
            "cast lead + 2 mm plastic fibres [V, CERN-MISiS SpaCal report]; 30x30 mm2 cells [V, arXiv:2409.12927]; "
            "pitch 2.5 mm and depth 290 mm (front 80 mm) [U]; light yield and costs: assumptions"
        ),
        light_collection=_SPACAL_LIGHT_GUIDE,
        pulse_decay_ns=2.8,
        time_sources=(
            "b = 15 ps: polystyrene-fibre SpaCal below 20 ps at high energy (SPS 2024) [V, PoS(485)520; INFN "
            "contribution 243784]; a = 72 ps sqrt(GeV), the KOPIO shashlyk's [V, arXiv:0709.4514] as a stand-in; "
            "pulse: polystyrene scintillating fibres decay in ~2.8 ns [U, Kuraray SCSF-78]"
        ),
    )


TECHNOLOGIES: dict[str, Technology] = {t.name: t for t in (_shashlik(), _spacal_w(), _spacal_pb())}


def get_technology(name: str) -> Technology:
    """Look a technology up by name, with a one-line error naming the known ones."""
    try:
        return TECHNOLOGIES[name]
    except KeyError:
        raise CaloptInputError(f"unknown technology {name!r}; expected one of {', '.join(TECHNOLOGIES)}") from None
