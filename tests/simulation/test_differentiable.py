"""The differentiable parametric shower: its property twin against the numpy properties, the
pathwise gradients against finite differences, determinism, trends and energy conservation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammainc as scipy_gammainc

from calopt.detector.module import ModuleSpec
from calopt.detector.technologies import TECHNOLOGIES, Technology
from calopt.simulation import differentiable as dt
from calopt.simulation.gflash import GFlashMedium
from calopt.stats import robust_sigma

SHASHLIK = ModuleSpec.from_technology("lhcb-shashlik", 40.4)
SPACAL_PB = ModuleSpec.from_technology("spacal-pb", 30.3)
POINTS = [
    SHASHLIK,
    SHASHLIK.replace(absorber="W", absorber_thickness_mm=1.3, active_thickness_mm=5.5, n_layers=40),
    SHASHLIK.replace(absorber="Fe", absorber_thickness_mm=7.0, active_thickness_mm=3.0, n_layers=50),
    SPACAL_PB.replace(fibre_pitch_mm=2.2, fibre_diameter_mm=1.4, depth_mm=250.0),
    ModuleSpec.from_technology("spacal-w", 15.15).replace(fibre_pitch_mm=2.0, fibre_diameter_mm=1.2, absorber="Cu"),
    SPACAL_PB.replace(active="GAGG", fibre_shape="square", fibre_diameter_mm=1.0, fibre_pitch_mm=1.8),
]


def _reference(tech: Technology) -> dict[str, float]:
    eff = tech.effective_material
    med = GFlashMedium.of(tech)
    return {
        "x0_mm": eff.X0_mm,
        "critical_energy_mev": eff.critical_energy,
        "moliere_radius_mm": eff.moliere_radius_mm,
        "density_g_cm3": eff.density,
        "mip_sampling_fraction": tech.mip_sampling_fraction,
        "e_over_mip": tech.e_over_mip,
        "sampling_fraction": tech.sampling_fraction,
        "sampling_term_estimate": tech.sampling_term_estimate,
        "depth_mm": tech.depth_mm,
        "depth_x0": tech.depth_X0,
        "z_eff": med.Z_eff,
        "f_s": med.F_s,
    }


@pytest.mark.parametrize("tech", list(TECHNOLOGIES.values()), ids=list(TECHNOLOGIES))
def test_twin_matches_builtin_technologies(tech: Technology) -> None:
    mats, params = dt.ModuleMaterials.from_technology(tech)
    got = dt.module_properties(mats, params)
    for key, ref in _reference(tech).items():
        assert float(got[key]) == pytest.approx(ref, rel=1e-9), key


@pytest.mark.parametrize("spec", POINTS, ids=[p.summary()[:40] for p in POINTS])
def test_twin_matches_module_points(spec: ModuleSpec) -> None:
    mats, params = dt.ModuleMaterials.from_spec(spec)
    got = dt.module_properties(mats, params)
    for key, ref in _reference(spec.technology()).items():
        assert float(got[key]) == pytest.approx(ref, rel=1e-9), key
    props = spec.properties()
    assert float(got["x0_mm"]) == pytest.approx(props["x0_mm"], rel=1e-9)
    assert float(got["depth_x0"]) == pytest.approx(props["depth_x0"], rel=1e-9)


@pytest.mark.parametrize("spec", [POINTS[1], POINTS[3], POINTS[5]], ids=["layers", "fibres", "square"])
def test_twin_gradients_match_numpy_finite_differences(spec: ModuleSpec) -> None:
    mats, base = dt.ModuleMaterials.from_spec(spec)
    keys = ["x0_mm", "critical_energy_mev", "moliere_radius_mm", "mip_sampling_fraction", "sampling_fraction",
            "depth_x0"]  # fmt: skip
    for name in mats.parameter_names:
        x = {k: torch.tensor(v, dtype=dt.DTYPE, requires_grad=(k == name)) for k, v in base.items()}
        props = dt.module_properties(mats, x)
        for key in keys:
            auto = 0.0
            if props[key].requires_grad:
                (grad,) = torch.autograd.grad(props[key], x[name], allow_unused=True, retain_graph=True)
                auto = 0.0 if grad is None else float(grad)
            if name == "n_layers":  # an integer in ModuleSpec: depth is linear in it
                ref = _reference(spec.technology())
                numeric = ref["depth_x0"] / spec.n_layers if key == "depth_x0" else 0.0
            else:
                h = 1e-5 * base[name]
                up = _reference(spec.replace(**{name: base[name] + h}).technology())[key]
                down = _reference(spec.replace(**{name: base[name] - h}).technology())[key]
                numeric = (up - down) / (2 * h)
            scale = abs(_reference(spec.technology())[key]) / base[name]
            assert auto == pytest.approx(numeric, rel=1e-5, abs=1e-7 * scale), (name, key)


def test_gammainc_values_and_gradient() -> None:
    a = torch.tensor([1.1, 2.5, 4.0, 8.0], dtype=dt.DTYPE)[:, None]
    x = torch.tensor([0.0, 0.01, 0.7, 3.0, 12.0, 40.0, 150.0], dtype=dt.DTYPE)[None, :]
    assert np.allclose(dt.gammainc(a, x).numpy(), scipy_gammainc(a.numpy(), x.numpy()), atol=1e-12)
    a0 = torch.tensor(3.3, dtype=dt.DTYPE, requires_grad=True)
    x0 = torch.tensor(2.7, dtype=dt.DTYPE, requires_grad=True)
    ga, gx = torch.autograd.grad(dt.gammainc(a0, x0), (a0, x0))
    h = 1e-6
    assert float(ga) == pytest.approx((scipy_gammainc(3.3 + h, 2.7) - scipy_gammainc(3.3 - h, 2.7)) / (2 * h), rel=1e-6)
    assert float(gx) == pytest.approx(math.exp(-2.7) * 2.7**2.3 / math.gamma(3.3), rel=1e-9)


def test_corner_integral_is_the_lateral_density() -> None:
    for a, b in ((0.4, 2.0), (3.0, 0.7)):
        num = integrate.dblquad(lambda y, x: 1.0 / (math.pi * (x * x + y * y + 1.0) ** 2), 0, a, 0, b)[0]
        assert float(dt._corner(torch.tensor(a, dtype=dt.DTYPE), torch.tensor(b, dtype=dt.DTYPE))) == pytest.approx(
            num, rel=1e-9
        )
    big = torch.tensor(1e7, dtype=dt.DTYPE)
    assert float(4 * dt._corner(big, big)) == pytest.approx(1.0, abs=1e-6)


def test_shape_determinism_and_energy_conservation() -> None:
    ds = dt.DifferentiableShower(SHASHLIK)
    noise = dt.BaseNoise.draw(200, 7, seed=3)
    a = ds(None, 10_000.0, noise)
    b = ds(None, 10_000.0, dt.BaseNoise.draw(200, 7, seed=3))
    assert a.cells.shape == (200, 7, 7) and a.total.shape == (200,) and a.profile.shape == (200, 32)
    assert torch.equal(a.cells, b.cells) and torch.equal(a.total, b.total)
    assert not torch.equal(a.cells, ds(None, 10_000.0, dt.BaseNoise.draw(200, 7, seed=4)).cells)
    assert (a.cells >= 0).all() and (a.mean_cells >= 0).all()
    # without fluctuations: cells <= window <= E (1 - leakage) = sum of the profile <= E
    in_module = a.profile.sum(dim=1)
    assert torch.allclose(in_module, 10_000.0 * (1.0 - a.leakage), rtol=1e-10)
    assert torch.allclose(a.mean_total, in_module)
    assert (a.mean_cells.sum(dim=(1, 2)) <= a.mean_total * (1 + 1e-12)).all()
    assert (a.mean_total <= 10_000.0).all()
    # with fluctuations: the sum stays within a few sigma of E
    sigma = float(a.sampling_term) / math.sqrt(10.0) + 1.0 / math.sqrt(ds.light_yield * 10.0)
    assert (a.total <= 10_000.0 * (1.0 + 5.0 * sigma)).all()
    assert float(a.total.mean()) == pytest.approx(float(a.mean_total.mean()), rel=3 * sigma / math.sqrt(200) * 3)
    assert (a.radial_containment(torch.tensor([1e6])) > 0.999).all()


def test_window_and_hit_cell() -> None:
    ds = dt.DifferentiableShower(SHASHLIK)
    out = ds(None, 5_000.0, dt.BaseNoise.draw(100, 5, seed=1), window_mm=5 * 40.4)
    assert torch.allclose(out.mean_total, out.mean_cells.sum(dim=(1, 2)), rtol=1e-10)
    flat = out.mean_cells.reshape(100, -1)
    assert (flat.argmax(dim=1) == 12).float().mean() > 0.9  # the hit cell is the middle one


@pytest.mark.parametrize("spec", [POINTS[1], POINTS[3]], ids=["layers", "fibres"])
def test_pathwise_gradients_match_finite_differences(spec: ModuleSpec) -> None:
    ds = dt.DifferentiableShower(spec, n_slices=24)
    noise = dt.BaseNoise.draw(16, 5, seed=11)
    energies = torch.linspace(2_000.0, 20_000.0, 16, dtype=dt.DTYPE)

    def figures(params: dict[str, torch.Tensor]) -> torch.Tensor:
        o = ds(params, energies, noise, slopes=(0.03, -0.02))
        c3 = o.cells[:, 1:4, 1:4].sum(dim=(1, 2))
        return torch.stack([o.total.sum(), c3.sum(), o.cells.sum(), o.cog_x0.sum(), (o.cells[:, 2, 2] ** 2).sum()])

    params = ds.parameters()
    value = figures(params)
    assert torch.isfinite(value).all()
    for name in params:
        grads = torch.stack([torch.autograd.grad(v, params[name], retain_graph=True)[0] for v in value])
        assert torch.isfinite(grads).all(), name
        h = 1e-6 * params[name].item()
        with torch.no_grad():
            up = figures({**params, name: params[name] + h})
            down = figures({**params, name: params[name] - h})
        numeric = (up - down) / (2 * h)
        scale = value.detach().abs() / params[name].item()
        assert torch.allclose(grads, numeric, rtol=1e-4, atol=(1e-6 * scale).max().item()), (name, grads, numeric)


def _resolution(spec: ModuleSpec, n: int = 1500) -> tuple[float, float]:
    ds = dt.DifferentiableShower(spec, photostatistics=False)
    with torch.no_grad():
        o = ds(None, 10_000.0, dt.BaseNoise.draw(n, 1, seed=5))
    tot = o.total.numpy()
    return robust_sigma(tot) / tot.mean(), float(o.leakage.mean())


def test_trends_absorber_and_depth() -> None:
    thin = SHASHLIK.replace(absorber_thickness_mm=1.0, active_thickness_mm=4.0, depth_x0=25)
    thick = SHASHLIK.replace(absorber_thickness_mm=4.0, active_thickness_mm=4.0, depth_x0=25)
    assert _resolution(thick)[0] > 1.3 * _resolution(thin)[0]  # thicker absorber: worse resolution
    shallow = SHASHLIK.replace(depth_x0=12)
    deep = SHASHLIK.replace(depth_x0=25)
    (res_s, leak_s), (res_d, leak_d) = _resolution(shallow), _resolution(deep)
    assert leak_s > 5 * leak_d and res_s > res_d  # deeper module: less leakage, better resolution
    # gradient: more layers -> less leakage
    ds = dt.DifferentiableShower(SHASHLIK)
    p = ds.parameters()
    (g,) = torch.autograd.grad(ds(p, 10_000.0, dt.BaseNoise.draw(50, 1, seed=2)).leakage.mean(), p["n_layers"])
    assert float(g) < 0


def test_base_noise() -> None:
    a = dt.BaseNoise.draw(10, 3, seed=1)
    assert a.n == 10 and a.n_cells == 3 and a.cells.shape == (10, 10)
    assert ((a.conversion > 0) & (a.conversion < 1)).all()
    assert a[2:5].n == 3
    with pytest.raises(Exception, match="odd"):
        dt.BaseNoise.draw(10, 4)
