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

__all__ = ["MODULE_SIZE_MM", "TECHNOLOGIES", "Layer", "Technology", "get_technology"]

MODULE_SIZE_MM = 121.2  # LHCb ECAL module pitch, physics-reference §1 [V]


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
    sigma_t = a / sqrt(E) (+) b. Cost [kCHF]: per module, per readout channel, and the extra
    per channel for timing electronics. Cost figures are assumptions: no public figure exists
    (physics-reference §2).
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
    layers: tuple[Layer, ...] = ()
    n_periods: int = 0
    absorber: str = ""
    fibre: str = ""
    fibre_side: float = 0.0
    fibre_pitch: float = 0.0
    depth_mm: float = 0.0

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
            "time_resolution_ps": {"a": self.time_resolution[0], "b": self.time_resolution[1]},
            "cost_kCHF": {
                "module": self.cost_module,
                "channel": self.cost_channel,
                "timing_per_channel": self.cost_timing_channel,
            },
            "sources": self.sources,
        }


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
        time_resolution=(200.0, 50.0),
        cost_module=6.0,
        cost_channel=0.6,
        cost_timing_channel=0.4,
        sources=(
            "stack: LHCb JINST 3 (2008) S08005 [M]; paper separators 2x0.12 mm [M]; cells 40.4/60.6/121.2 mm "
            "[V, LHCb calo geometry page]; light yield ~3000 p.e./GeV [M, S08005]; time resolution and costs: "
            "assumptions (no public figure); split after 20 layers (~7 X0) is an assumption"
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
        time_resolution=(256.0, 17.5),
        cost_module=60.0,
        cost_channel=0.6,
        cost_timing_channel=0.4,
        sources=(
            "W absorber + GAGG fibres, ~1.5 cm cells, front/back 45/100 mm [M, LHCb Framework TDR CERN-LHCC-2021-012; "
            "PoS(485)520 V for the technology]; fibre 1 mm, pitch 1.7 mm [U]; GAGG rho 6.63 [U]; time resolution "
            "a=256 ps, b=17.5 ps (RADiCAL W/LYSO, arXiv:2401.01747 [V]) as a stand-in; light yield and costs: "
            "assumptions"
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
        time_resolution=(256.0, 17.5),
        cost_module=20.0,
        cost_channel=0.6,
        cost_timing_channel=0.4,
        sources=(
            "cast lead + 2 mm plastic fibres [V, CERN-MISiS SpaCal report]; 30x30 mm2 cells [V, arXiv:2409.12927]; "
            "pitch 2.5 mm and depth 290 mm (front 80 mm) [U]; time resolution (arXiv:2401.01747 [V]) as a "
            "stand-in; light yield and costs: assumptions"
        ),
    )


TECHNOLOGIES: dict[str, Technology] = {t.name: t for t in (_shashlik(), _spacal_w(), _spacal_pb())}


def get_technology(name: str) -> Technology:
    """Look a technology up by name, with a one-line error naming the known ones."""
    try:
        return TECHNOLOGIES[name]
    except KeyError:
        raise CaloptInputError(f"unknown technology {name!r}; expected one of {', '.join(TECHNOLOGIES)}") from None
