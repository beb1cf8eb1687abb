"""The module design space: a technology as a point of a parametrised space.

A :class:`ModuleSpec` gives a module's structure and materials (categorical parameters) and its
dimensions (real-valued parameters, plus the number of layers):

* ``layers`` (Shashlik): ``absorber`` and ``active`` materials, ``absorber_thickness_mm``,
  ``active_thickness_mm`` and ``n_layers``; the passive layers of the base technology (LHCb's
  two 0.12 mm paper sheets) stay in every period;
* ``fibres`` (SpaCal): ``absorber`` and fibre (``active``) materials, ``fibre_pitch_mm``,
  ``fibre_diameter_mm`` (``fibre_shape`` round or square: a round fibre is transported as the
  square of equal area, as the built-in SpaCal-Pb is) and ``depth_mm``;
* both: ``cell_size_mm``, one of 121.2 mm / k (the readout cells tile the LHCb module).

Every point is built on a ``base`` built-in technology, which supplies what the space does
not vary: the readout (light yield per GeV, light-collection model, pulse, timing), the
section split (the same fractions of the depth) and the cost assumptions. Derived properties
(X0, Moliere radius, lambda_I, sampling fraction, depth in X0, mass and cost per module) come
from :mod:`calopt.materials` through :class:`~calopt.detector.technologies.Technology`. The
built-in technologies are points of the space: :meth:`ModuleSpec.technology` of such a point
returns the built-in technology itself (same name, same cache entries).

The limits of the space (:data:`LIMITS`) keep a module physical and inside LHCb's ECAL
envelope: the depth at most the 835 mm of z-space reserved for the ECAL (physics-reference §1
[V, LHCb calorimeter geometry page]).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from calopt.detector.technologies import MODULE_SIZE_MM, TECHNOLOGIES, Layer, Technology, get_technology
from calopt.errors import CaloptInputError
from calopt.materials import MATERIALS

__all__ = [
    "ABSORBERS",
    "ACTIVE_MATERIALS",
    "LIMITS",
    "MAX_DEPTH_MM",
    "ModuleSpec",
    "allowed_cell_sizes",
    "load_module",
    "material_cost_chf",
]

# The ECAL's z-space: 835 mm reserved (physics-reference §1 [V, LHCb calorimeter geometry page]).
MAX_DEPTH_MM = 835.0
ABSORBERS = ("Pb", "W", "Cu", "Fe", "Al")
ACTIVE_MATERIALS = ("polystyrene", "GAGG")
STRUCTURES = ("layers", "fibres")
FIBRE_SHAPES = ("round", "square")
MAX_CELLS_PER_MODULE_SIDE = 16  # 7.6 mm cells; finer cells than any proposed ECAL (SpaCal-W: 15 mm)

# (low, high) of each numeric parameter; a value outside is refused in one line.
LIMITS: dict[str, tuple[float, float]] = {
    "absorber_thickness_mm": (0.05, 100.0),
    "active_thickness_mm": (0.05, 100.0),
    "n_layers": (1, 2000),
    "fibre_pitch_mm": (0.3, 20.0),
    "fibre_diameter_mm": (0.1, 20.0),
    "depth_mm": (1.0, MAX_DEPTH_MM),
    "cell_size_mm": (MODULE_SIZE_MM / MAX_CELLS_PER_MODULE_SIDE, MODULE_SIZE_MM),
}

# Prices of materials [CHF/kg]: ASSUMPTIONS of the order of raw-material prices (no public cost
# of the ECAL modules exists, physics-reference §2). Only ratios matter: a module's cost is its
# base technology's cost scaled by (material cost + per-piece cost) of the point over that of
# the base point, so the built-in technologies keep their catalogue costs.
_PRICE_CHF_PER_KG = {"Pb": 3.0, "W": 60.0, "Cu": 10.0, "Fe": 1.0, "Al": 3.0, "polystyrene": 60.0,
                     "GAGG": 3000.0, "paper": 2.0}  # fmt: skip
_PRICE_PER_PIECE_CHF = {"layers": 2.0, "fibres": 0.2}  # a tile pair of a Shashlik period; a fibre


def allowed_cell_sizes() -> tuple[float, ...]:
    """Cell sizes that tile a 121.2 mm module: 121.2 / k for k = 1..16 [mm]."""
    return tuple(MODULE_SIZE_MM / k for k in range(1, MAX_CELLS_PER_MODULE_SIDE + 1))


def material_cost_chf(tech: Technology) -> float:
    """Material and per-piece cost [CHF] of one 121.2 mm module of ``tech`` at the assumed prices
    (:data:`_PRICE_CHF_PER_KG`); a relative figure for scaling costs, not a price."""
    volume_cm3 = (MODULE_SIZE_MM / 10.0) ** 2 * tech.depth_mm / 10.0
    cost = sum(m.density * v * volume_cm3 / 1000.0 * _PRICE_CHF_PER_KG.get(m.name, 10.0)
               for m, v, _ in tech.volume_fractions())  # fmt: skip
    pieces: float
    if tech.structure == "layers":
        pieces = tech.n_periods
    else:
        pieces = (MODULE_SIZE_MM / tech.fibre_pitch) ** 2
    return cost + _PRICE_PER_PIECE_CHF[tech.structure] * pieces


@dataclass(frozen=True)
class ModuleSpec:
    """A point of the module design space (module docstring). Lengths in mm."""

    base: str
    structure: str
    absorber: str
    active: str
    cell_size_mm: float
    absorber_thickness_mm: float = 0.0
    active_thickness_mm: float = 0.0
    n_layers: int = 0
    fibre_pitch_mm: float = 0.0
    fibre_diameter_mm: float = 0.0
    fibre_shape: str = "round"
    depth_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.base not in TECHNOLOGIES:
            raise CaloptInputError(f"module base {self.base!r} is not a built-in technology; expected one of "
                                   f"{', '.join(TECHNOLOGIES)}")  # fmt: skip
        if self.structure not in STRUCTURES:
            raise CaloptInputError(f"module structure {self.structure!r} is not one of {', '.join(STRUCTURES)}")
        if get_technology(self.base).structure != self.structure:
            raise CaloptInputError(f"module base {self.base!r} has structure {get_technology(self.base).structure!r}, "
                                   f"not {self.structure!r}")  # fmt: skip
        for key, allowed in (("absorber", ABSORBERS), ("active", ACTIVE_MATERIALS)):
            value = getattr(self, key)
            if value not in allowed:
                known = "known" if value in MATERIALS else "unknown"
                raise CaloptInputError(f"module {key} {value!r} ({known} material) is not one of {', '.join(allowed)}")
        if self.fibre_shape not in FIBRE_SHAPES:
            raise CaloptInputError(f"module fibre_shape {self.fibre_shape!r} is not one of {', '.join(FIBRE_SHAPES)}")
        for name in (*self.continuous(), "cell_size_mm", *(("n_layers",) if self.structure == "layers" else ())):
            value = getattr(self, name)
            lo, hi = LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise CaloptInputError(f"module {name} = {value!r} must be a finite number in [{lo:g}, {hi:g}]")
            if not lo <= value <= hi:
                raise CaloptInputError(f"module {name} = {value:g} is outside [{lo:g}, {hi:g}]")
        if self.structure == "layers" and int(self.n_layers) != self.n_layers:
            raise CaloptInputError(f"module n_layers = {self.n_layers!r} must be a whole number")
        if not any(abs(self.cell_size_mm - c) < 1e-6 for c in allowed_cell_sizes()):
            raise CaloptInputError(f"module cell_size_mm = {self.cell_size_mm:g} does not tile the "
                                   f"{MODULE_SIZE_MM} mm module; expected 121.2/k mm for k = 1..16 "
                                   f"({', '.join(f'{c:.4g}' for c in allowed_cell_sizes()[:6])}, ...)")  # fmt: skip
        if self.structure == "fibres":
            if self.fibre_side_mm >= self.fibre_pitch_mm:
                raise CaloptInputError(f"module fibre_diameter_mm = {self.fibre_diameter_mm:g} ({self.fibre_shape}) "
                                       f"leaves no absorber at fibre_pitch_mm = {self.fibre_pitch_mm:g}")  # fmt: skip
        depth = self.depth
        if depth > MAX_DEPTH_MM:
            raise CaloptInputError(f"module depth {depth:.1f} mm is beyond the {MAX_DEPTH_MM:g} mm of z-space of "
                                   f"the ECAL (reduce n_layers or the thicknesses)")  # fmt: skip

    # ----- the space -----------------------------------------------------------------------
    def continuous(self) -> tuple[str, ...]:
        """The real-valued parameters of this structure, the ones gradients are taken against.
        The number of layers and the cell size (121.2 mm / k) are whole-numbered; a layered
        module's depth follows its thicknesses at a fixed depth in X0 (:meth:`with_depth_x0`)."""
        if self.structure == "layers":
            return ("absorber_thickness_mm", "active_thickness_mm")
        return ("fibre_pitch_mm", "fibre_diameter_mm", "depth_mm")

    def parameters(self) -> dict[str, Any]:
        """Every parameter of this structure, categorical ones included."""
        keys = ["structure", "absorber", "active"]
        if self.structure == "layers":
            keys += ["absorber_thickness_mm", "active_thickness_mm", "n_layers"]
        else:
            keys += ["fibre_pitch_mm", "fibre_diameter_mm", "fibre_shape", "depth_mm"]
        return {"base": self.base} | {k: getattr(self, k) for k in keys} | {"cell_size_mm": self.cell_size_mm}

    def replace(self, **values: Any) -> ModuleSpec:
        """A validated copy with ``values`` changed; ``depth_x0`` sets n_layers (layers) or
        depth_mm (fibres) for that depth in radiation lengths."""
        depth_x0 = values.pop("depth_x0", None)
        unknown = set(values) - {f.name for f in fields(self)}
        if unknown:
            raise CaloptInputError(f"unknown module parameter(s) {', '.join(sorted(unknown))}; expected "
                                   f"{', '.join(self.parameters())} or depth_x0")  # fmt: skip
        if depth_x0 is None:
            return replace(self, **values)
        depth_key = "n_layers" if self.structure == "layers" else "depth_mm"
        if depth_key in values:
            raise CaloptInputError(f"give depth_x0 or {depth_key}, not both")
        # the depth is set by depth_x0: a one-layer (1 mm) stand-in is never beyond the limits
        stand_in: dict[str, Any] = {depth_key: 1 if depth_key == "n_layers" else 1.0}
        return replace(self, **values, **stand_in).with_depth_x0(depth_x0)

    def with_depth_x0(self, depth_x0: float) -> ModuleSpec:
        """This point with the depth (layers: the nearest whole number of layers) that makes
        ``depth_x0`` radiation lengths."""
        if not (isinstance(depth_x0, int | float) and math.isfinite(depth_x0) and depth_x0 > 0):
            raise CaloptInputError(f"module depth_x0 = {depth_x0!r} must be a positive number")
        x0 = self.technology().effective_material.X0_mm
        if self.structure == "layers":
            n = max(1, round(depth_x0 * x0 / self._period_mm()))
            if n > LIMITS["n_layers"][1]:
                raise CaloptInputError(f"module depth_x0 = {depth_x0:g} needs {n} layers, more than "
                                       f"{LIMITS['n_layers'][1]:g}")  # fmt: skip
            return replace(self, n_layers=n)
        return replace(self, depth_mm=depth_x0 * x0)

    @property
    def fibre_side_mm(self) -> float:
        """Side of the square fibre the cascade transports (equal area for a round fibre)."""
        d = self.fibre_diameter_mm
        return d * math.sqrt(math.pi) / 2.0 if self.fibre_shape == "round" else d

    @property
    def depth(self) -> float:
        """Depth of the module [mm]."""
        return self.n_layers * self._period_mm() if self.structure == "layers" else self.depth_mm

    def _period(self) -> tuple[Layer, ...]:
        """One period: absorber, then the base's passive and active layers in the base's order."""
        out = []
        for la in get_technology(self.base).layers:
            if la.active:
                out.append(Layer(self.active, self.active_thickness_mm, active=True))
            elif la is get_technology(self.base).layers[0]:
                out.append(Layer(self.absorber, self.absorber_thickness_mm))
            else:
                out.append(la)
        return tuple(out)

    def _period_mm(self) -> float:
        return sum(la.thickness for la in self._period())

    # ----- to a technology -----------------------------------------------------------------
    @classmethod
    def from_technology(cls, name: str, cell_size_mm: float | None = None) -> ModuleSpec:
        """The point of a built-in technology (its first allowed cell size unless given)."""
        t = get_technology(name)
        cell = t.cell_sizes[0] if cell_size_mm is None else cell_size_mm
        if t.structure == "layers":
            absorber = t.layers[0]
            active = next(la for la in t.layers if la.active)
            return cls(base=name, structure="layers", absorber=absorber.material, active=active.material,
                       cell_size_mm=cell, absorber_thickness_mm=absorber.thickness,
                       active_thickness_mm=active.thickness, n_layers=t.n_periods)  # fmt: skip
        # the built-in SpaCal-Pb fibre is the square of a 2 mm round fibre (technologies.py)
        round_d = 2.0 * t.fibre_side / math.sqrt(math.pi)
        shape, diameter = ("round", round_d) if abs(round_d - round(round_d, 6)) < 1e-9 else ("square", t.fibre_side)
        return cls(base=name, structure="fibres", absorber=t.absorber, active=t.fibre, cell_size_mm=cell,
                   fibre_pitch_mm=t.fibre_pitch, fibre_diameter_mm=diameter, fibre_shape=shape,
                   depth_mm=t.depth_mm)  # fmt: skip

    def is_builtin(self) -> bool:
        """Whether this point is its base technology (any of its allowed cell sizes)."""
        base = get_technology(self.base)
        if not base.allows_cell_size(self.cell_size_mm):
            return False
        ref = ModuleSpec.from_technology(self.base, self.cell_size_mm)
        return ref.technology_key() == self.technology_key()

    def technology_key(self) -> str:
        """A digest of the parameters that change the showers (not the cell size)."""
        p = {k: v for k, v in self.parameters().items() if k != "cell_size_mm"}
        if self.structure == "fibres":
            p["fibre_side_mm"] = round(self.fibre_side_mm, 9)
            p.pop("fibre_diameter_mm")
            p.pop("fibre_shape")
        doc = json.dumps({k: (round(v, 9) if isinstance(v, float) else v) for k, v in p.items()}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:10]

    @property
    def name(self) -> str:
        """The base's name for a built-in point, else ``base+<digest>``."""
        return self.base if self.is_builtin() else f"{self.base}+{self.technology_key()}"

    def technology(self) -> Technology:
        """The :class:`Technology` of this point: the base itself for a built-in point; else the
        base with this structure, its sections at the same fractions of the depth (on period
        boundaries for layers), the fine grid of the base where its pitch divides the cell,
        else the nearest pitch that does, and the base's cost scaled by material cost."""
        base = get_technology(self.base)
        if self.is_builtin():
            return base
        depth = self.depth
        if self.structure == "layers":
            period = self._period_mm()
            cuts = [round(e / base.depth_mm * self.n_layers) * period for e in base.section_edges]
        else:
            cuts = [e / base.depth_mm * depth for e in base.section_edges]
        edges = sorted({0.0, depth, *(c for c in cuts if 0.0 < c < depth)})
        split = min(base.split_index, len(edges) - 2) if len(edges) > 2 else 1
        k = max(1, round(self.cell_size_mm / base.fine_pitch))
        pitch = self.cell_size_mm / k
        grid = 2 * math.ceil(base.window_mm / pitch / 2.0)
        kw: dict[str, Any] = {}
        if self.structure == "layers":
            kw = {"layers": self._period(), "n_periods": int(self.n_layers)}
        else:
            kw = {"absorber": self.absorber, "fibre": self.active, "fibre_side": self.fibre_side_mm,
                  "fibre_pitch": self.fibre_pitch_mm, "depth_mm": depth}  # fmt: skip
        tech = Technology(
            name=self.name,
            description=f"a point of the module space on {self.base}: {self.summary()}",
            structure=self.structure,
            fine_pitch=pitch,
            grid=grid,
            section_edges=tuple(edges),
            split_index=max(1, split),
            cell_sizes=(self.cell_size_mm,),
            light_yield=base.light_yield,
            time_resolution=base.time_resolution,
            cost_module=0.0,
            cost_channel=base.cost_channel,
            cost_timing_channel=base.cost_timing_channel,
            sources=f"module space on {self.base} (calopt.detector.module); readout and costs of {self.base}",
            light_collection=base.light_collection,
            pulse_decay_ns=base.pulse_decay_ns,
            time_sources=base.time_sources,
            module_spec=self.to_json(),
            **kw,
        )
        cost = base.cost_module * material_cost_chf(tech) / material_cost_chf(base)
        return replace(tech, cost_module=cost)

    def summary(self) -> str:
        if self.structure == "layers":
            return (f"{self.n_layers} x ({self.absorber_thickness_mm:g} mm {self.absorber} + "
                    f"{self.active_thickness_mm:g} mm {self.active}), {self.cell_size_mm:.4g} mm cells")  # fmt: skip
        return (f"{self.depth_mm:g} mm {self.absorber} with {self.fibre_shape} {self.fibre_diameter_mm:g} mm "
                f"{self.active} fibres at {self.fibre_pitch_mm:g} mm pitch, "
                f"{self.cell_size_mm:.4g} mm cells")  # fmt: skip

    def properties(self) -> dict[str, Any]:
        """The derived properties (``calopt module show --json``)."""
        t = self.technology()
        eff = t.effective_material
        volume_cm3 = (MODULE_SIZE_MM / 10.0) ** 2 * t.depth_mm / 10.0
        return {
            "name": t.name,
            "builtin": self.is_builtin(),
            "summary": self.summary(),
            "parameters": self.parameters(),
            "x0_mm": eff.X0_mm,
            "moliere_radius_mm": eff.moliere_radius_mm,
            "lambda_i_mm": eff.lambda_I_mm,
            "critical_energy_mev": eff.critical_energy,
            "density_g_cm3": eff.density,
            "mip_sampling_fraction": t.mip_sampling_fraction,
            "sampling_fraction": t.sampling_fraction,
            "sampling_term_estimate": t.sampling_term_estimate,
            "depth_mm": t.depth_mm,
            "depth_x0": t.depth_X0,
            "depth_lambda_i": t.depth_lambda,
            "mass_kg": eff.density * volume_cm3 / 1000.0,
            "cost_kchf_per_module": t.cost_module,
            "channels_per_module": round(MODULE_SIZE_MM / self.cell_size_mm) ** 2,
            "fine_pitch_mm": t.fine_pitch,
            "section_edges_mm": list(t.section_edges),
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "module") -> ModuleSpec:
        """A point from a mapping: ``base`` (or ``structure``, which picks the base of that
        structure), then any parameters; missing parameters are the base's."""
        doc = dict(doc)
        base = doc.pop("base", None)
        structure = doc.get("structure")
        if base is None:
            by_structure = {"layers": "lhcb-shashlik", "fibres": "spacal-pb"}
            if structure not in by_structure:
                raise CaloptInputError(f"{where}: give base (one of {', '.join(TECHNOLOGIES)}) or structure "
                                       f"(layers or fibres)")  # fmt: skip
            base = by_structure[str(structure)]
        if not isinstance(base, str) or base not in TECHNOLOGIES:
            raise CaloptInputError(f"{where}: base {base!r} is not a built-in technology; expected one of "
                                   f"{', '.join(TECHNOLOGIES)}")  # fmt: skip
        start = cls.from_technology(base, doc.pop("cell_size_mm", None))
        for key in ("n_layers",):
            if key in doc and isinstance(doc[key], float) and doc[key].is_integer():
                doc[key] = int(doc[key])
        try:
            return start.replace(**doc)
        except TypeError as exc:  # pragma: no cover - replace() names unknown keys first
            raise CaloptInputError(f"{where}: {exc}") from None


def load_module(spec: str) -> ModuleSpec:
    """A module from a built-in technology name (``NAME`` or ``NAME:CELL_MM``) or a TOML file of
    parameters (docs/formats.md, "Module spec")."""
    name, _, cell = spec.partition(":")
    if name in TECHNOLOGIES:
        try:
            size = float(cell) if cell else None
        except ValueError:
            raise CaloptInputError(f"module {spec!r}: cell size {cell!r} is not a number") from None
        t = get_technology(name)
        if size is not None and not t.allows_cell_size(size):
            sizes = "/".join(f"{c:g}" for c in t.cell_sizes)
            raise CaloptInputError(f"module {spec!r}: {name} has cells of {sizes} mm")
        return ModuleSpec.from_technology(name, size)
    path = Path(spec)
    if not path.suffix == ".toml":
        raise CaloptInputError(f"module {spec!r} is neither a built-in technology ({', '.join(TECHNOLOGIES)}) "
                               f"nor a .toml file")  # fmt: skip
    if not path.is_file():
        raise CaloptInputError(f"module file {spec!r} does not exist")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CaloptInputError(f"module file {spec!r} is not valid TOML: {exc}") from None
    doc = doc.get("module", doc)
    if not isinstance(doc, dict):
        raise CaloptInputError(f"module file {spec!r}: [module] must be a table")
    return ModuleSpec.from_dict(doc, where=f"module file {spec!r}")
