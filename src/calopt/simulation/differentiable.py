"""A differentiable parametric electromagnetic shower in torch, for gradient-based module design
(issue 21).

Two parts:

1. :func:`module_properties`, the torch twin of a module's derived properties: given the
   categorical choices (:class:`ModuleMaterials`: structure, absorber, active and fixed passive
   materials) and torch tensors of the continuous parameters (those of
   :class:`calopt.detector.module.ModuleSpec`: layers ``absorber_thickness_mm``,
   ``active_thickness_mm``, ``n_layers`` (real-valued here); fibres ``fibre_pitch_mm``,
   ``fibre_diameter_mm``, ``depth_mm``), it returns X0, critical energy, Moliere radius,
   sampling fractions and depth with exactly the formulas of :mod:`calopt.materials` and
   :class:`~calopt.detector.technologies.Technology`: volume fractions -> mass fractions
   w_i = rho_i v_i / sum rho_j v_j; 1/X0 = sum w_i/X0_i (g/cm^2); E_c = X0 sum w_i E_c,i/X0_i (the
   mixture rule of :attr:`Material.critical_energy`); R_M = X0 E_s/E_c; f_mip = the active share of
   the minimum-ionising loss; e/mip = 1/(1 + 0.007 (Z_abs - Z_act)) (GFlash, Grindhammer & Peters,
   hep-ex/0001020); f_em = (e/mip) f_mip. Every property is a differentiable function of the
   continuous parameters (autograd).

2. :func:`shower`, a parametric shower whose every random number is reparametrised: a
   :class:`BaseNoise` (standard normals and uniforms drawn once from a seed) is transformed by the
   design, so that for fixed base noise the cell energies are a deterministic, differentiable
   function of the design parameters (the pathwise gradient). Per shower:

   * longitudinal: a Gamma profile dE/dt = E beta (beta t)^(alpha-1) e^(-beta t)/Gamma(alpha) with
     T = (alpha-1)/beta, (ln T, ln alpha) correlated Gaussians with GFlash's means, widths and
     correlation for sampling calorimeters (Grindhammer & Peters; Geant4
     ``GVFlashHomoShowerTuning.hh``, ``GFlashSamplingShowerTuning.hh``; physics-reference §3.9;
     the numbers are those of :mod:`calopt.simulation.gflash`) with the tuned offset of T,
     scale of alpha and scale of the widths (:class:`ShowerTune`). A photon starts its
     shower after an exponential conversion depth of mean 9/7 X0 (PDG). The profile is integrated
     (regularised incomplete Gamma function, :func:`gammainc`, differentiable in both arguments)
     over ``n_slices`` equal slices of the module depth: what lies beyond the depth leaks out at
     the rear, so shower-to-shower fluctuations of T and alpha become leakage fluctuations
     correlated with the energy, as in GFlash;
   * lateral: in every slice, GFlash's two-component profile
     f(r) = p 2r R_C^2/(r^2+R_C^2)^2 + (1-p) 2r R_T^2/(r^2+R_T^2)^2 (r in Moliere radii; R_C, R_T, p
     functions of tau = t/T, ln E, Z and the sampling corrections in e/mip and F_s, physics-reference
     §3.10) times the tuned scales. Its integral over a rectangle has a closed form (the corner
     function :func:`_corner`), so the energy in each readout cell is exact and differentiable in
     the cell size and the impact point; the shower axis moves with the incidence slopes;
   * fluctuations: per cell, sampling fluctuations of variance a^2 E_cell (a = the sampling term,
     :meth:`ShowerTune.sampling_term`, E in GeV) and, with a light yield, photo-statistics
     E_cell/LY (Poisson as Gaussian); each cell is a log-normal of that mean and variance (so no
     cell is negative), driven by one standard normal per cell of the base noise;
   * calibration: energies are calibrated, i.e. visible energy divided by the module's EM
     sampling fraction (:meth:`ShowerTune.sampling_fraction`, with a tuned e/mip that falls with
     the absorber thickness), so the sum over all cells is E minus the leakage on average.

3. :data:`TUNE`: the few global constants fitted once to cascade photons (see
   :class:`ShowerTune`; ``studies/differentiable_residuals.py --tune``).

Against the cascade (``studies/differentiable_residuals.py``, photons of 1-50 GeV in 25 designs,
12 of them not used in the tuning): mean calibrated response within 2 % (rms; up to 6 %: the
cascade's e/mip of 4 mm Pb + 2 mm scintillator, W/polystyrene fibres and Cu/Fe absorbers departs
from the tuned form), sigma/E within 11-14 % (rms, of which 6-12 % is the cascade's statistics;
up to 45 % where leakage fluctuations dominate at 20-50 GeV in 20 X0 modules, or for the
W/GAGG fibres of 2.5 mm pitch, whose cascade resolution has a constant term the model lacks),
t_max within 0.25 X0 (rms), 3 x 3 and 5 x 5 containment within 0.7 and 0.4 % (rms). Below 2 GeV
in Cu and Fe modules the model's rear leakage is too large (1.6 % instead of 0.3 % at 1 GeV).

Lengths in mm, energies in MeV, depths t in radiation lengths of the homogenised module.
Computations run in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from calopt.constants import MOLIERE_ES
from calopt.detector.technologies import Technology, get_technology
from calopt.errors import CaloptInputError
from calopt.materials import Material, get_material
from calopt.simulation import gflash as gf

__all__ = [
    "DTYPE",
    "FIBRE_PARAMETERS",
    "LAYER_PARAMETERS",
    "TUNE",
    "BaseNoise",
    "DifferentiableShower",
    "ModuleMaterials",
    "ShowerOutput",
    "ShowerTune",
    "gammainc",
    "module_properties",
    "shower",
]

DTYPE = torch.float64
LAYER_PARAMETERS = ("absorber_thickness_mm", "active_thickness_mm", "n_layers")
FIBRE_PARAMETERS = ("fibre_pitch_mm", "fibre_diameter_mm", "depth_mm")
EMIP_K = 0.007  # GFlash e/mip = 1/(1 + 0.007 (Z_abs - Z_act)) [G4S, physics-reference §3.9]
PDG_SAMPLING = 0.027  # PDG sigma/E = 2.7% sqrt(d[mm]/f_mip) / sqrt(E) (physics-reference §3.11)
PHOTON_MFP_X0 = 9.0 / 7.0  # pair-production mean free path [X0] (PDG)


def _t(x: Tensor | float) -> Tensor:
    """A float64 tensor (keeping the autograd graph of a tensor)."""
    return x.to(DTYPE) if isinstance(x, Tensor) else torch.tensor(float(x), dtype=DTYPE)


# ============================================================================ the property twin
@dataclass(frozen=True)
class _Mat:
    """What the mixture rules need of a material: rho [g/cm^3], 1/X0 [cm^2/g], E_c/X0
    [MeV cm^2/g], minimum dE/dx [MeV/mm], electron-weighted Z."""

    density: float
    inv_x0: float
    ec_over_x0: float
    dedx_mm: float
    z_eff: float

    @classmethod
    def of(cls, m: Material) -> _Mat:
        return cls(m.density, 1.0 / m.X0, m.critical_energy / m.X0, m.dedx_min_mm, m.Z_eff)


@dataclass(frozen=True)
class ModuleMaterials:
    """The categorical part of a module design: ``structure`` (``layers`` | ``fibres``), the
    ``absorber`` and ``active`` materials (names in :mod:`calopt.materials`), for layers the fixed
    ``passive`` plates of every period ((material, thickness mm), e.g. LHCb's two 0.12 mm paper
    sheets), for fibres the ``fibre_shape`` (a round fibre of diameter d is the square of equal
    area, side d sqrt(pi)/2, as in :class:`~calopt.detector.module.ModuleSpec`)."""

    structure: str
    absorber: str
    active: str
    passive: tuple[tuple[str, float], ...] = ()
    fibre_shape: str = "round"

    def __post_init__(self) -> None:
        if self.structure not in ("layers", "fibres"):
            raise CaloptInputError(f"structure {self.structure!r} is not layers|fibres")
        if self.fibre_shape not in ("round", "square"):
            raise CaloptInputError(f"fibre_shape {self.fibre_shape!r} is not round|square")
        for name in (self.absorber, self.active, *(p for p, _ in self.passive)):
            get_material(name)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The continuous parameters of :func:`module_properties` for this structure."""
        return LAYER_PARAMETERS if self.structure == "layers" else FIBRE_PARAMETERS

    @classmethod
    def from_technology(cls, tech: Technology) -> tuple[ModuleMaterials, dict[str, float]]:
        """The materials and parameters of a technology (first layer = absorber; the active layer;
        the others passive). A fibre technology's square fibre is given as a square."""
        if tech.structure == "layers":
            act = next(la for la in tech.layers if la.active)
            passive = tuple((la.material, la.thickness) for la in tech.layers[1:] if not la.active)
            mats = cls("layers", tech.layers[0].material, act.material, passive)
            return mats, {"absorber_thickness_mm": tech.layers[0].thickness, "active_thickness_mm": act.thickness,
                          "n_layers": float(tech.n_periods)}  # fmt: skip
        mats = cls("fibres", tech.absorber, tech.fibre, fibre_shape="square")
        return mats, {"fibre_pitch_mm": tech.fibre_pitch, "fibre_diameter_mm": tech.fibre_side,
                      "depth_mm": tech.depth_mm}  # fmt: skip

    @classmethod
    def from_spec(cls, spec: Any) -> tuple[ModuleMaterials, dict[str, float]]:
        """The materials and continuous parameters (``cell_size_mm`` included) of a
        :class:`~calopt.detector.module.ModuleSpec`; the passive plates are the base's."""
        if spec.structure == "layers":
            base = get_technology(spec.base)
            passive = tuple((la.material, la.thickness) for la in base.layers[1:] if not la.active)
            mats = cls("layers", spec.absorber, spec.active, passive)
        else:
            mats = cls("fibres", spec.absorber, spec.active, fibre_shape=spec.fibre_shape)
        params = {k: float(getattr(spec, k)) for k in mats.parameter_names}
        params["cell_size_mm"] = float(spec.cell_size_mm)
        return mats, params

    def parts(self) -> list[tuple[_Mat, bool, bool]]:
        """(constants, active, absorber) per material: absorber, active, passive."""
        out = [(_Mat.of(get_material(self.absorber)), False, True), (_Mat.of(get_material(self.active)), True, False)]
        out += [(_Mat.of(get_material(m)), False, False) for m, _ in self.passive]
        return out

    def e_over_mip_z(self) -> float:
        """Z_abs - Z_act of GFlash's e/mip: the largest Z_eff of the passive materials (absorber
        included) minus the active one (as :attr:`Technology.e_over_mip`)."""
        parts = self.parts()
        return max(p.z_eff for p, a, _ in parts if not a) - next(p.z_eff for p, a, _ in parts if a)


def module_properties(materials: ModuleMaterials, params: Mapping[str, Tensor | float]) -> dict[str, Tensor]:
    """Derived properties of a module as torch tensors, differentiable in ``params`` (the
    continuous parameters of ``materials.parameter_names``; scalars or tensors of one shape).

    Returns ``x0_mm``, ``critical_energy_mev``, ``moliere_radius_mm``, ``density_g_cm3``,
    ``mip_sampling_fraction``, ``e_over_mip``, ``sampling_fraction`` (nominal f_em = (e/mip)
    f_mip), ``sampling_term_estimate`` (PDG 2.7% sqrt(d/f_mip), d the active thickness or fibre
    side), ``depth_mm``, ``depth_x0``, ``period_mm`` (sampling period: layer period or fibre pitch),
    ``absorber_thickness_mm`` (absorber per sampling layer: the plate, or pitch minus side) and
    ``absorber_thickness_x0`` (the same in radiation lengths of the absorber),
    ``active_thickness_mm`` (plate or fibre side), ``active_loss_mev`` (minimum-ionising loss
    across it), ``z_eff`` (mass-weighted Z_eff, GFlash's Z)
    and ``f_s`` (GFlash's X0_eff / period). Same formulas as :mod:`calopt.materials` (module doc).
    """
    missing = [k for k in materials.parameter_names if k not in params]
    if missing:
        raise CaloptInputError(f"module_properties: missing parameter(s) {', '.join(missing)} for "
                               f"{materials.structure}")  # fmt: skip
    parts = materials.parts()
    if materials.structure == "layers":
        t_abs, t_act = _t(params["absorber_thickness_mm"]), _t(params["active_thickness_mm"])
        thick = [t_abs, t_act, *(_t(th) for _, th in materials.passive)]
        period = sum(thick[1:], thick[0])
        vol = [th / period for th in thick]
        depth = _t(params["n_layers"]) * period
        d_abs, d_act = t_abs, t_act
    else:
        pitch, diam = _t(params["fibre_pitch_mm"]), _t(params["fibre_diameter_mm"])
        side = diam * (math.sqrt(math.pi) / 2.0) if materials.fibre_shape == "round" else diam
        f = (side / pitch) ** 2
        vol = [1.0 - f, f]
        depth = _t(params["depth_mm"])
        period, d_abs, d_act = pitch, pitch - side, side
    mass = [p.density * v for (p, _, _), v in zip(parts, vol)]
    total_mass = sum(mass[1:], mass[0])
    total_vol = sum(vol[1:], vol[0])
    w = [m / total_mass for m in mass]
    inv_x0 = sum((wi * p.inv_x0 for wi, (p, _, _) in zip(w, parts)), torch.zeros((), dtype=DTYPE))
    x0 = 1.0 / inv_x0  # g/cm^2
    ec = x0 * sum((wi * p.ec_over_x0 for wi, (p, _, _) in zip(w, parts)), torch.zeros((), dtype=DTYPE))
    density = total_mass / total_vol
    x0_mm = x0 / density * 10.0
    loss = [p.dedx_mm * v for (p, _, _), v in zip(parts, vol)]
    f_mip = sum(lo for lo, (_, a, _) in zip(loss, parts) if a) / sum(loss[1:], loss[0])
    e_mip = 1.0 / (1.0 + EMIP_K * materials.e_over_mip_z())
    z_eff = sum((wi * p.z_eff for wi, (p, _, _) in zip(w, parts)), torch.zeros((), dtype=DTYPE))
    return {
        "x0_mm": x0_mm,
        "critical_energy_mev": ec,
        "moliere_radius_mm": x0_mm * MOLIERE_ES / ec,
        "density_g_cm3": density,
        "mip_sampling_fraction": f_mip,
        "e_over_mip": torch.as_tensor(e_mip, dtype=DTYPE),
        "sampling_fraction": e_mip * f_mip,
        "sampling_term_estimate": PDG_SAMPLING * torch.sqrt(d_act / f_mip),
        "depth_mm": depth,
        "depth_x0": depth / x0_mm,
        "period_mm": period,
        "absorber_thickness_mm": d_abs,
        "absorber_thickness_x0": d_abs / get_material(materials.absorber).X0_mm,
        "active_thickness_mm": d_act,
        "active_loss_mev": d_act * parts[1][0].dedx_mm,
        "z_eff": z_eff,
        "f_s": x0_mm / period,
    }


# ============================================================================ tuned constants
@dataclass(frozen=True)
class ShowerTune:
    """The global constants of :func:`shower` fitted to the cascade Monte Carlo (the defaults are
    the untuned GFlash/PDG values):

    * longitudinal: ``t_offset`` [X0] added to GFlash's mean T_max (plus ``t_offset_fibres`` for
      fibres: GFlash has no fibre geometry, its sampling correction -0.55/F_s takes the fibre pitch
      as the period); GFlash's mean alpha times ``alpha_scale``; ``sigma_scale`` multiplying the widths
      of ln T and ln alpha (the shower-to-shower fluctuations, hence the leakage fluctuations);
    * lateral: ``rc_scale``, ``rt_scale`` scale the core and tail radii, ``p_scale`` the core weight;
    * calibration: e/mip = 1/(1 + emip_k (Z_abs - Z_act) x^emip_q), x = the absorber per sampling
      layer in radiation lengths of the absorber (GFlash's 0.007 and q = 0 by default; the
      cascade's e/mip falls with the absorber thickness, the transition effect);
    * sampling term [fraction at 1 GeV]: layers a = c_L x^p_x f_mip^(-p_f), x the absorber plate
      in X0 of the absorber (the form sqrt(d_abs/f_samp) with free exponents: thicker active
      plates improve the cascade's resolution at a fixed absorber, unlike the PDG rule
      sqrt(d_act/f_samp); with a free power of the plate in mm as well, the fit gives it 0.00,
      so the thickness counts in X0, which also carries the absorber material); fibres
      a = c_F sqrt(dE_act/f_mip) with dE_act the
      minimum-ionising loss across one fibre [MeV], i.e. the loss per sampling cell (Amaldi, Phys.
      Scripta 23 (1981) 409; the PDG rule 2.7% sqrt(d/f_samp) is the same for plastic fibres).
    """

    t_offset: float = 0.0
    t_offset_fibres: float = 0.0
    alpha_scale: float = 1.0
    sigma_scale: float = 1.0
    rc_scale: float = 1.0
    rt_scale: float = 1.0
    p_scale: float = 1.0
    emip_k: float = EMIP_K
    emip_q: float = 0.0
    samp_c_layers: float = 0.05
    samp_p_x: float = 0.5
    samp_p_f: float = 0.5
    samp_c_fibres: float = 0.06
    source: str = "untuned GFlash / PDG defaults"

    def e_over_mip(self, materials: ModuleMaterials, props: Mapping[str, Tensor]) -> Tensor:
        """The calibration e/mip of the module (tuned form above)."""
        dz = materials.e_over_mip_z()
        thick = props["absorber_thickness_x0"].clamp(min=1e-6) ** self.emip_q
        return 1.0 / (1.0 + self.emip_k * dz * thick)

    def sampling_fraction(self, materials: ModuleMaterials, props: Mapping[str, Tensor]) -> Tensor:
        """The EM sampling fraction that calibrates the visible energy: e/mip times f_mip."""
        return self.e_over_mip(materials, props) * props["mip_sampling_fraction"]

    def sampling_term(self, materials: ModuleMaterials, props: Mapping[str, Tensor]) -> Tensor:
        """Stochastic term a of the sampling fluctuations, sigma/E = a/sqrt(E/GeV)."""
        f_mip = props["mip_sampling_fraction"]
        if materials.structure == "fibres":
            return self.samp_c_fibres * torch.sqrt(props["active_loss_mev"] / f_mip)
        x = props["absorber_thickness_x0"].clamp(min=1e-6)
        return self.samp_c_layers * x**self.samp_p_x * f_mip ** (-self.samp_p_f)


# Fitted by ``python studies/differentiable_residuals.py --tune`` to cascade photons (2, 10 and 50
# GeV; 200, 200 and 60 showers) in 13 designs: Shashlik with Pb 1/2/4 mm x scintillator 2/4/8 mm at
# 25 X0 (1 + 8 mm at 17.5 X0), 2 mm W + 4 mm and 10 mm Fe + 4 mm, and the spacal-w and spacal-pb
# technologies at a 3 degree tilt (cascade samples cached in /work/data/s21/diffshower).
TUNE = ShowerTune(
    t_offset=-0.119524,
    t_offset_fibres=0.277671,
    alpha_scale=0.855742,
    sigma_scale=0.682716,
    rc_scale=0.80447,
    rt_scale=0.747102,
    p_scale=0.779632,
    emip_k=0.00777583,
    emip_q=0.359924,
    samp_c_layers=0.0628622,
    samp_p_x=0.391927,
    samp_p_f=0.324038,
    samp_c_fibres=0.0598113,
    source="studies/differentiable_residuals.py --tune (issue 21)",
)


# ============================================================================ special functions
GAMMAINC_TERMS = 200
GAMMAINC_X_MAX = 100.0


def gammainc(a: Tensor | float, x: Tensor | float) -> Tensor:
    """Regularised lower incomplete Gamma function P(a, x), differentiable in ``a`` and ``x``
    (``torch.special.gammainc`` has no gradient in a): the series
    P = x^a e^-x / Gamma(a+1) sum_n x^n / ((a+1)...(a+n)) (Abramowitz & Stegun 6.5.29), summed
    in log space over x + 12 sqrt(x) + 20 terms (at most :data:`GAMMAINC_TERMS`), with x clipped
    at :data:`GAMMAINC_X_MAX`, where P = 1 to double precision for a < 50 (the profiles have
    alpha of a few)."""
    a_t, x_t = torch.broadcast_tensors(_t(a), _t(x))
    pos = x_t > 1e-30
    xs = torch.where(pos, x_t, torch.ones_like(x_t)).clamp(max=GAMMAINC_X_MAX)
    x_top = float(xs.detach().max()) if xs.numel() else 0.0
    n_terms = min(GAMMAINC_TERMS, int(x_top + 12.0 * math.sqrt(x_top) + 20.0))  # the tail beyond is < 1e-16
    n = torch.arange(1, n_terms + 1, dtype=DTYPE)
    lx = torch.log(xs)
    log_terms = torch.cumsum(lx[..., None] - torch.log(a_t[..., None] + n), dim=-1)
    log_sum = torch.logsumexp(torch.cat([torch.zeros_like(xs)[..., None], log_terms], dim=-1), dim=-1)
    logp = a_t * lx - xs - torch.lgamma(a_t + 1.0) + log_sum
    return torch.where(pos, torch.exp(logp).clamp(max=1.0), torch.zeros_like(x_t))


def _corner(a: Tensor, b: Tensor) -> Tensor:
    """Integral of the unit-radius lateral density 1/(pi (x^2 + y^2 + 1)^2) over [0, a] x [0, b]
    (signed: odd in a and in b), in closed form:
    (a/c atan(b/c) + b/d atan(a/d)) / (2 pi), c = sqrt(a^2 + 1), d = sqrt(b^2 + 1).
    The density is GFlash's f(r) = 2 r R^2/(r^2 + R^2)^2 per unit area (R = 1)."""
    c = torch.sqrt(a * a + 1.0)
    d = torch.sqrt(b * b + 1.0)
    return (a / c * torch.atan(b / c) + b / d * torch.atan(a / d)) / (2.0 * math.pi)


def _rectangles(ex: Tensor, ey: Tensor, radius: Tensor) -> Tensor:
    """Fractions of a lateral component of ``radius`` (..., ) in the rectangles between the edges
    ``ex`` (..., nx+1) and ``ey`` (..., ny+1) (same units, relative to the shower axis):
    (..., ny, nx)."""
    r = radius[..., None]
    c = _corner((ex / r)[..., None, :], (ey / r)[..., :, None])  # (..., ny+1, nx+1)
    return c[..., 1:, 1:] - c[..., :-1, 1:] - c[..., 1:, :-1] + c[..., :-1, :-1]


def _sigma(c: tuple[float, float], lny: Tensor) -> Tensor:
    """GFlash's width 1/(c0 + c1 ln y), capped at :data:`gflash.SIGMA_MAX` (also where the
    denominator is not positive)."""
    return 1.0 / (c[0] + c[1] * lny).clamp(min=1.0 / gf.SIGMA_MAX)


def _radial(z: Tensor, e_mip: Tensor, f_s: Tensor, ln_e: Tensor, tau: Tensor,
            tune: ShowerTune) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """(R_C, R_T [Moliere radii], p) at relative depth tau = t/T: GFlash's homogeneous
    parametrisation with its sampling corrections (:func:`calopt.simulation.gflash.radial_parameters`,
    physics-reference §3.10), times the tuned scales."""
    rc, rt, wc = gf.RC, gf.RT, gf.WC
    r_c = rc[0] + rc[1] * ln_e + (rc[2] + rc[3] * z) * tau
    r_t = (rt[0] + rt[1] * z) * (torch.exp(rt[3] * (tau - rt[2])) + torch.exp((rt[4] + rt[5] * ln_e) * (tau - rt[2])))
    p2, p3 = wc[2] + wc[3] * z, wc[4] + wc[5] * ln_e
    q = (p2 - tau) / p3
    p = (wc[0] + wc[1] * z) * torch.exp(q - torch.exp(q))
    r_c = r_c + gf.SAM_RC[0] * (1 - e_mip) + gf.SAM_RC[1] / f_s * torch.exp(-tau)
    r_t = r_t + gf.SAM_RT[0] * (1 - e_mip) + gf.SAM_RT[1] / f_s * torch.exp(-tau)
    p = p + (1 - e_mip) * (gf.SAM_WC[0] + gf.SAM_WC[1] / f_s * torch.exp(-((tau - 1.0) ** 2)))
    r_c = r_c.clamp(min=1e-3) * tune.rc_scale
    r_t = r_t.clamp(min=1e-3) * tune.rt_scale
    return r_c, r_t, (p * tune.p_scale).clamp(0.0, 1.0)


# ============================================================================ the shower
@dataclass(frozen=True)
class BaseNoise:
    """Every random number of :func:`shower`, drawn once: for fixed base noise a shower is a
    deterministic function of the design.

    ``profile`` (N, 2) standard normals of (ln T, ln alpha); ``conversion`` (N,) uniforms in
    (0, 1) of the photon conversion depth; ``impact`` (N, 2) uniforms in (0, 1) of the entry
    point across the hit cell (x, y); ``cells`` (N, n_cells^2 + 1) standard normals of the
    fluctuations of each cell of the window (row-major, y then x) and, last, of the energy
    outside the window."""

    profile: Tensor
    conversion: Tensor
    impact: Tensor
    cells: Tensor

    @classmethod
    def draw(cls, n: int, n_cells: int = 5, seed: int = 0) -> BaseNoise:
        """Base noise for ``n`` showers and a window of ``n_cells`` x ``n_cells`` cells (odd)."""
        if n_cells < 1 or n_cells % 2 == 0:
            raise CaloptInputError(f"n_cells = {n_cells} must be odd (a window centred on the hit cell)")
        g = torch.Generator().manual_seed(int(seed))
        eps = 1e-12
        return cls(
            profile=torch.randn(n, 2, generator=g, dtype=DTYPE),
            conversion=torch.rand(n, generator=g, dtype=DTYPE).clamp(eps, 1.0 - eps),
            impact=torch.rand(n, 2, generator=g, dtype=DTYPE).clamp(eps, 1.0 - eps),
            cells=torch.randn(n, n_cells * n_cells + 1, generator=g, dtype=DTYPE),
        )

    @property
    def n(self) -> int:
        return int(self.profile.shape[0])

    @property
    def n_cells(self) -> int:
        return math.isqrt(int(self.cells.shape[1]) - 1)

    def __getitem__(self, index: slice | Tensor) -> BaseNoise:
        return BaseNoise(self.profile[index], self.conversion[index], self.impact[index], self.cells[index])


@dataclass
class ShowerOutput:
    """What :func:`shower` returns (energies calibrated, MeV):

    ``cells`` (N, n, n): the n x n readout cells around the hit cell ([.., y, x], hit cell in the
    middle); ``total`` (N,): the energy in the lateral window (default: all of it) within the module
    depth; ``mean_cells``, ``mean_total``: the same before the cell fluctuations (given the
    shower's T, alpha, conversion and impact); ``profile`` (N, n_slices): energy per depth slice
    before fluctuations, slices of ``slice_edges_x0``; ``cog_x0`` (N,): longitudinal centre of
    gravity [X0 from the front face]; ``t_max_x0`` (N,): depth of the profile's maximum [X0 from
    the front face]; ``leakage`` (N,): fraction of E behind the module; ``impact_mm`` (N, 2):
    entry point relative to the hit-cell centre; ``sampling_term`` and ``calibration_fraction``
    (scalars): a of the fluctuations and the sampling fraction calibrating visible energy
    (visible = calibrated x calibration_fraction); ``lateral``: (R_C [mm], R_T [mm], p) per
    shower and slice (N, n_slices); ``properties``: :func:`module_properties`."""

    cells: Tensor
    total: Tensor
    mean_cells: Tensor
    mean_total: Tensor
    profile: Tensor
    slice_edges_x0: Tensor
    cog_x0: Tensor
    t_max_x0: Tensor
    leakage: Tensor
    impact_mm: Tensor
    sampling_term: Tensor
    calibration_fraction: Tensor
    lateral: tuple[Tensor, Tensor, Tensor]
    properties: dict[str, Tensor] = field(default_factory=dict)

    def radial_containment(self, radii_mm: Tensor | float) -> Tensor:
        """(N, R) expected fraction of each shower's energy in the module that lies within
        ``radii_mm`` of the shower axis (GFlash's integral r^2/(r^2 + R^2) per component)."""
        r = _t(radii_mm).reshape(-1)
        r_c, r_t, p = (x[..., None] for x in self.lateral)
        inside = p * r**2 / (r**2 + r_c**2) + (1.0 - p) * r**2 / (r**2 + r_t**2)  # (N, K, R)
        w = self.profile / self.profile.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return torch.einsum("nk,nkr->nr", w, inside)


def _lognormal(mean: Tensor, var: Tensor, z: Tensor) -> Tensor:
    """A log-normal of ``mean`` and variance ``var`` from standard normals ``z`` (positive)."""
    m = mean.clamp(min=1e-12)
    s2 = torch.log1p(var / (m * m))
    return m * torch.exp(torch.sqrt(s2) * z - 0.5 * s2)


def shower(
    materials: ModuleMaterials,
    params: Mapping[str, Tensor | float],
    energies_mev: Tensor | float,
    noise: BaseNoise,
    *,
    photon: bool | Tensor = True,
    light_yield: float | None = None,
    slopes: tuple[float, float] = (0.0, 0.0),
    window_mm: float | tuple[float, float, float, float] | None = None,
    n_slices: int = 32,
    tune: ShowerTune | None = None,
) -> ShowerOutput:
    """Showers of ``noise.n`` particles of ``energies_mev`` (scalar or (N,)) entering the module
    uniformly over one readout cell, as a differentiable function of the continuous design
    ``params`` (those of ``materials.parameter_names`` plus ``cell_size_mm``; see the module
    doc for the model).

    ``photon``: photons (conversion depth drawn) or electrons, for all or per shower;
    ``light_yield`` [photo-electrons per GeV]: adds photo-statistics (None: sampling only);
    ``slopes``: (dx/dz, dy/dz) of the incidence; ``window_mm``: the lateral extent of ``total``,
    a square of that side centred on the hit cell, or (x_lo, x_hi, y_lo, y_hi) relative to the
    hit-cell centre (None: unbounded); ``n_slices``: depth slices of the integration.
    """
    tune = tune or TUNE
    if "cell_size_mm" not in params:
        raise CaloptInputError("shower: params need cell_size_mm")
    props = module_properties(materials, params)
    cell = _t(params["cell_size_mm"])
    n = noise.n
    e = _t(energies_mev).expand(n) if _t(energies_mev).dim() == 0 else _t(energies_mev)
    if e.shape != (n,):
        raise CaloptInputError(f"shower: {tuple(e.shape)} energies for {n} showers of base noise")
    x0, ec, rm = props["x0_mm"], props["critical_energy_mev"], props["moliere_radius_mm"]
    z_eff, f_s, e_mip = props["z_eff"], props["f_s"], props["e_over_mip"]

    # ---- longitudinal: (ln T, ln alpha) of GFlash for sampling calorimeters, tuned
    lny = torch.log((e / ec).clamp(min=1.0 + 1e-9))
    t_hom = (lny + gf.HOM_T1).clamp(min=0.1)
    a_hom = (gf.HOM_A[0] + (gf.HOM_A[1] + gf.HOM_A[2] / z_eff) * lny).clamp(min=0.1)
    t_off = tune.t_offset + (tune.t_offset_fibres if materials.structure == "fibres" else 0.0)
    t_mean = (t_hom + gf.SAM_T[0] / f_s + gf.SAM_T[1] * (1.0 - e_mip) + t_off).clamp(min=math.exp(0.1))
    a_mean = ((a_hom + gf.SAM_A / f_s) * tune.alpha_scale).clamp(min=math.exp(0.1))
    sig_t = _sigma(gf.SAM_SIG_LNT, lny) * tune.sigma_scale
    sig_a = _sigma(gf.SAM_SIG_LNA, lny) * tune.sigma_scale
    rho = gf.SAM_RHO[0] + gf.SAM_RHO[1] * lny
    c1, c2 = torch.sqrt((1.0 + rho) / 2.0), torch.sqrt((1.0 - rho) / 2.0)
    z0, z1 = noise.profile[:, 0], noise.profile[:, 1]
    t_sh = torch.exp(torch.log(t_mean) + sig_t * (c1 * z0 + c2 * z1)).clamp(min=gf.T_MIN)
    alpha = torch.exp(torch.log(a_mean) + sig_a * (c1 * z0 - c2 * z1)).clamp(min=gf.ALPHA_MIN)
    beta = (alpha - 1.0) / t_sh
    is_photon = torch.as_tensor(photon, dtype=torch.bool).expand(n)
    t0 = torch.where(is_photon, -PHOTON_MFP_X0 * torch.log(noise.conversion), torch.zeros_like(noise.conversion))

    frac_k = torch.arange(n_slices + 1, dtype=DTYPE) / n_slices
    edges = props["depth_x0"] * frac_k  # (K+1,) X0 from the front face
    s = (edges[None, :] - t0[:, None]).clamp(min=0.0)
    cdf = gammainc(alpha[:, None], beta[:, None] * s)
    frac = cdf[:, 1:] - cdf[:, :-1]  # (N, K)
    leakage = 1.0 - cdf[:, -1]
    mid = 0.5 * (edges[1:] + edges[:-1])

    # ---- lateral: GFlash core + tail per slice, integrated over the cells in closed form
    tau = (mid[None, :] - t0[:, None]).clamp(min=0.0) / t_sh[:, None]
    ln_e = torch.log(e / 1000.0)[:, None]
    r_c, r_t, p_core = _radial(z_eff, e_mip, f_s, ln_e, tau, tune)
    impact = (noise.impact - 0.5) * cell  # (N, 2) from the hit-cell centre
    depth_mm = mid * x0
    ax = impact[:, 0:1] + slopes[0] * depth_mm[None, :]  # shower axis per slice (N, K)
    ay = impact[:, 1:2] + slopes[1] * depth_mm[None, :]
    w = noise.n_cells
    cell_edges = cell * (torch.arange(w + 1, dtype=DTYPE) - w / 2.0)
    ex = (cell_edges - ax[..., None]) / rm
    ey = (cell_edges - ay[..., None]) / rm
    pc = p_core[..., None, None]
    lat = pc * _rectangles(ex, ey, r_c) + (1.0 - pc) * _rectangles(ex, ey, r_t)
    mean_cells = e[:, None, None] * torch.einsum("nk,nkyx->nyx", frac, lat)
    if window_mm is None:
        inside = frac.sum(dim=1)
    else:
        if isinstance(window_mm, tuple):
            box = window_mm
        else:
            h = float(window_mm) / 2.0
            box = (-h, h, -h, h)
        wx = (torch.tensor(box[:2], dtype=DTYPE) - ax[..., None]) / rm
        wy = (torch.tensor(box[2:], dtype=DTYPE) - ay[..., None]) / rm
        wl = p_core * _rectangles(wx, wy, r_c)[..., 0, 0] + (1.0 - p_core) * _rectangles(wx, wy, r_t)[..., 0, 0]
        inside = (frac * wl).sum(dim=1)
    mean_total = e * inside
    outside = (mean_total - mean_cells.sum(dim=(1, 2))).clamp(min=0.0)

    # ---- fluctuations: sampling (+ photo-statistics) per cell, log-normal
    a_samp = tune.sampling_term(materials, props)
    var_per_mev = 1000.0 * a_samp**2 + (1000.0 / light_yield if light_yield else 0.0)
    zc = noise.cells[:, : w * w].reshape(n, w, w)
    cells = _lognormal(mean_cells, var_per_mev * mean_cells, zc)
    rest = _lognormal(outside, var_per_mev * outside, noise.cells[:, -1])
    total = cells.sum(dim=(1, 2)) + rest
    cog = (frac * mid[None, :]).sum(dim=1) / frac.sum(dim=1).clamp(min=1e-12)
    return ShowerOutput(
        cells=cells,
        total=total,
        mean_cells=mean_cells,
        mean_total=mean_total,
        profile=e[:, None] * frac,
        slice_edges_x0=edges,
        cog_x0=cog,
        t_max_x0=t_sh + t0,
        leakage=leakage,
        impact_mm=impact,
        sampling_term=a_samp,
        calibration_fraction=tune.sampling_fraction(materials, props),
        lateral=(r_c * rm, r_t * rm, p_core),
        properties=props,
    )


class DifferentiableShower:
    """:func:`shower` for one module design: the categorical choices, default parameters and
    light yield of a :class:`~calopt.detector.module.ModuleSpec` (the base technology's light
    yield unless ``photostatistics=False``)."""

    def __init__(self, spec: Any, *, photostatistics: bool = True, n_slices: int = 32,
                 tune: ShowerTune | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.materials, self.defaults = ModuleMaterials.from_spec(spec)
        self.light_yield = get_technology(spec.base).light_yield if photostatistics else None
        self.n_slices = n_slices
        self.tune = tune or TUNE

    def parameters(self, requires_grad: bool = True) -> dict[str, Tensor]:
        """The continuous parameters of the design (n_layers real-valued) as float64 leaves."""
        return {k: torch.tensor(v, dtype=DTYPE, requires_grad=requires_grad) for k, v in self.defaults.items()}

    def properties(self, params: Mapping[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        return module_properties(self.materials, {**self.defaults, **(params or {})})

    def __call__(self, params: Mapping[str, Tensor | float] | None, energies_mev: Tensor | float, noise: BaseNoise,
                 **kw: Any) -> ShowerOutput:  # fmt: skip
        """Showers with ``params`` (missing ones: the design's); ``kw`` as :func:`shower`."""
        kw.setdefault("light_yield", self.light_yield)
        kw.setdefault("n_slices", self.n_slices)
        kw.setdefault("tune", self.tune)
        return shower(self.materials, {**self.defaults, **(params or {})}, energies_mev, noise, **kw)
