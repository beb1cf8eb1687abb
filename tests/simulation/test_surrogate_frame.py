"""The aligned frame of the surrogates (axis depths, whole-cell shifts) and the flow's profile
variables (section fractions and section times), on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calopt.simulation.base import shower_seeds
from calopt.simulation.showers import write_showers
from calopt.simulation.surrogates.dataset import (
    TIME_RES_CLIP,
    axis_depths,
    axis_offsets,
    load_training_set,
    shift_sections,
    time_of,
    time_residuals,
)
from calopt.simulation.surrogates.flow import FlowModel
from calopt.simulation.surrogates.hits import apply_hits
from calopt.simulation.surrogates.noise import shower_rngs
from calopt.simulation.surrogates.simulator import place_sections

from .test_surrogate_hits import core_and_tail
from .test_surrogates import TECH, synthetic_showers

DEPTHS = [30.0, 90.0, 180.0, 330.0]  # the section depths of synthetic_showers


def unit(d: np.ndarray) -> np.ndarray:
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_axis_depths_are_those_of_the_barycentres():
    sh = synthetic_showers(400, 2)
    dirs = unit(sh.momenta.astype(np.float64))
    depths = axis_depths(sh.showers, dirs, sh.points.astype(np.float64), TECH.fine_pitch)
    np.testing.assert_allclose(depths, DEPTHS, rtol=0.03)


def test_axis_offsets_and_shifts():
    dirs = unit(np.array([[0.0, 0.0, 1.0], [0.3, -0.1, 1.0], [-0.31, 0.2, 1.0]]))
    pts = np.array([[0.0, 0.0], [10.0, -3.0], [-9.9, 10.1]])
    pitch = 20.0
    k, u = axis_offsets(np.array([0.0, 100.0, 300.0]), dirs, pts, pitch)
    assert k.shape == (3, 3, 2) and u.shape == (3, 3, 2)
    pos = (pts[:, None, :] + (dirs[:, :2] / dirs[:, 2:])[:, None, :] * np.array([0.0, 100.0, 300.0])[None, :, None])
    np.testing.assert_allclose(k + u, pos / pitch)
    assert (np.abs(u) <= 0.5).all()
    assert k[0].tolist() == [[0, 0]] * 3  # normal incidence at the centre: no shift
    assert k[1, 2].tolist() == [5, -2]  # (10 + 90) / 20 = 5, (-3 - 30) / 20 = -1.65

    rng = np.random.default_rng(1)
    x = rng.random((3, 3, 12, 12)).astype(np.float32)
    y = shift_sections(x, k, +1)
    # y[n, s, i, j] = x[n, s, i + ky, j + kx]
    assert y[1, 2, 4, 3] == x[1, 2, 4 - 2, 3 + 5]
    assert (y[1, 2, :, 12 - 5 :] == 0).all()  # nothing comes in from beyond the grid
    back = shift_sections(y, k, -1)
    moved = back > 0
    np.testing.assert_array_equal(back[moved], x[moved])  # exact: no interpolation
    np.testing.assert_array_equal(back[0], x[0])
    # every cell against the definition, for shifts of every size (also off the grid)
    k = rng.integers(-14, 15, (3, 3, 2))
    for sign in (1, -1):
        y = shift_sections(x, k, sign)
        for n, s, i, j in np.ndindex(*x.shape):
            a, b = i + sign * k[n, s, 1], j + sign * k[n, s, 0]
            assert y[n, s, i, j] == (x[n, s, a, b] if 0 <= a < 12 and 0 <= b < 12 else 0.0)


@pytest.mark.parametrize("crop", [30, 8])
def test_placing_generated_sections_is_the_shift_back(crop):
    """Placing gives what putting the crop on a zero grid and shifting it back gives, times in
    the non-empty cells only, whatever was in the outputs before."""
    rng = np.random.default_rng(4)
    n, S, H = 7, 4, 30
    inner = rng.random((n, S, crop, crop)).astype(np.float32)
    inner[inner < 0.3] = 0.0
    k = rng.integers(-6, 7, (n, S, 2))
    k[0] = 0
    k[1, 2] = [-20, 17]  # entirely off the grid for the small crop
    k[2, 1] = [31, -3]  # off the grid for both
    t_sec = rng.uniform(0.1, 1.2, (n, S)).astype(np.float32)
    showers = np.full((n, S, H, H), 9.0, dtype=np.float32)
    times = np.full_like(showers, 9.0)
    place_sections(inner, k, t_sec, showers, times)
    frame = np.zeros((n, S, H, H), dtype=np.float32)
    lo = (H - crop) // 2
    frame[:, :, lo : lo + crop, lo : lo + crop] = inner
    expect = shift_sections(frame, k, -1)
    np.testing.assert_array_equal(showers, expect)
    np.testing.assert_array_equal(times, np.where(expect > 0, t_sec[:, :, None, None], np.float32(0.0)))
    assert showers[0].sum() == pytest.approx(inner[0].sum(), rel=1e-6)  # no shift: nothing lost


def test_aligned_training_set_centres_inclined_showers(tmp_path):
    """Aligned, the sections of inclined showers have their barycentre within half a cell of
    the grid centre, their rest u as conditions, and the energy is kept."""
    sh = synthetic_showers(300, 3)
    path = tmp_path / "train.h5"
    write_showers(path, sh)
    plain = load_training_set([path], crop=30)
    ds = load_training_set([path], crop=30, align=True)
    assert plain.context is None and plain.model_cond.shape == plain.cond.shape
    assert ds.context is not None and ds.model_cond.shape == (len(ds), plain.cond.shape[1] + 8)
    assert np.abs(ds.context).max() <= 1.0
    assert ds.meta()["axis_depths_mm"] == pytest.approx(DEPTHS, rel=0.03)
    np.testing.assert_allclose(ds.r, plain.r, atol=1e-4)  # the shift moves only the far edge off
    f = (ds.g.reshape(len(ds), 4, 30, 30) ** 2).astype(np.float64)
    c = (np.arange(30) - 14.5) * TECH.fine_pitch
    u = ds.context.reshape(len(ds), 4, 2) / 2.0
    for s in range(4):
        e = f[:, s].sum(axis=(1, 2))
        mx = (f[:, s].sum(axis=1) @ c) / e
        # the barycentre is where the line crosses the section, u cells from the centre
        np.testing.assert_allclose(mx / TECH.fine_pitch, u[:, s, 0], atol=0.1)
    # the section times as normals of the time model, which give them back
    assert ds.time_res.shape == (len(ds), 4)
    rows = ds.space.species_rows(ds.cond)
    cos_t = unit(sh.momenta.astype(np.float64))[:, 2]
    t = time_of(ds.time_a[rows], ds.time_b[rows], ds.energies, cos_t, ds.time_sigma[rows], ds.time_lne,
                ds.time_res.astype(np.float64))  # fmt: skip
    inside = np.abs(ds.time_res) < TIME_RES_CLIP
    assert inside.mean() > 0.8
    np.testing.assert_allclose(t[inside], np.broadcast_to(np.array(DEPTHS) / 300.0, t.shape)[inside], rtol=1e-4)


def test_time_residuals_invert_the_time_model():
    sh = synthetic_showers(200, 4, pdgs=(22,))
    rng = np.random.default_rng(5)
    a, b = np.array([[0.2, 0.4, 0.7, 1.1]]), np.array([[0.01, 0.02, 0.03, 0.04]])
    sigma = np.full((1, 4, 2), 0.05)
    lne = np.array([0.0, np.log(100.0)])
    cos_t = unit(sh.momenta.astype(np.float64))[:, 2]
    z = np.clip(rng.standard_normal((len(sh), 4)), -3, 3)
    rows = np.zeros(len(sh), dtype=np.int64)
    t = time_of(a[rows], b[rows], sh.incident_energies[:, 0], cos_t, sigma[rows], lne, z)
    sh.times = np.where(sh.showers > 0, t[:, :, None, None], 0.0).astype(np.float32)
    res = time_residuals(sh, cos_t, rows, a, b, sigma, lne)
    np.testing.assert_allclose(res, z, atol=2e-4)
    sh.showers[:5, 3] = 0.0  # an empty section has no time: 0
    assert (time_residuals(sh, cos_t, rows, a, b, sigma, lne)[:5, 3] == 0).all()


def test_profile_variables_round_trip():
    """Encoding the section fractions and times and decoding them again gives back the
    section fractions of the shower, whatever shape the PCA produces."""
    gen = torch.Generator().manual_seed(2)
    n, S, cells = 500, 4, 9
    raw = torch.rand(n, S, cells, generator=gen) * torch.tensor([0.02, 1.0, 2.0, 0.5])[None, :, None]
    raw[:20, 0] = 0.0  # late conversions: nothing in the first section
    g = raw.reshape(n, -1).sqrt()
    g = g / g.norm(dim=1, keepdim=True)
    tau = torch.randn(n, S, generator=gen)
    flow = FlowModel(5, S * cells, n_pca=3, transforms=1, hidden=[8], sections=S)
    assert flow.n_profile == 2 * S - 1 and flow.n_features == 3 + 1 + 2 * S - 1
    flow.fit_pca(g)
    flow.fit_profile(g, tau)
    x = flow.encode(g, torch.zeros(n), tau)
    assert x.shape == (n, 3 + 1 + 2 * S - 1)
    prof = x[:, 4:]
    np.testing.assert_allclose(prof.mean(dim=0).numpy(), 0.0, atol=1e-4)  # standardised
    # decode the profile onto another shape: a flat one
    flat = torch.ones(n, S * cells)
    g2, t2 = flow._apply_profile(flat, prof)
    f_in = flow.section_fractions(g)
    f_out = flow.section_fractions(g2)
    np.testing.assert_allclose(f_out.numpy(), f_in.numpy(), atol=2e-4)
    np.testing.assert_allclose(t2.numpy(), tau.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="needs tau"):
        flow.encode(g, torch.zeros(n))


def test_hits_can_keep_every_section_energy():
    rng = np.random.default_rng(7)
    n, S, cells = 200, 4, 25
    x = rng.gamma(0.5, 1.0, (n, S * cells))
    le = rng.uniform(-1, 1, n)
    rows = np.zeros(n, dtype=np.int64)
    # every cell a tail cell hit in about half the showers
    model = {"centres": np.array([-0.5, 0.5]), "a": np.full((1, 2, S * cells), 1.0), "shape": 0.8, "max_mev": 10.0}
    seeds = shower_seeds(3, 0, n)
    whole, per = x.astype(np.float32), x.astype(np.float32)
    apply_hits(whole, shower_rngs(seeds), le, rows, model)
    apply_hits(per, shower_rngs(seeds), le, rows, model, sections=S)
    np.testing.assert_array_equal(per > 0, whole > 0)  # the same hits
    np.testing.assert_allclose(per.sum(axis=1), x.sum(axis=1), rtol=1e-5)
    e_in = x.reshape(n, S, cells).sum(axis=2)
    e_per = per.reshape(n, S, cells).sum(axis=2)
    kept = (per.reshape(n, S, cells) > 0).any(axis=2)
    assert kept.all(axis=1).sum() > 150
    full = kept.all(axis=1)
    np.testing.assert_allclose(e_per[full], e_in[full], rtol=1e-5)
    e_whole = whole.reshape(n, S, cells).sum(axis=2)
    assert np.abs(e_whole[full] / e_in[full] - 1).max() > 0.05  # without: the sections move


def test_residual_calibration_gives_the_tail_cells_their_energy():
    """A Gaussian residual cut at zero carries too little energy in sparse tail cells; the
    calibration scales its width until the decoded showers have the real mean fractions."""
    gen = torch.Generator().manual_seed(0)
    n, d = 4000, 40
    g, c, le = core_and_tail(gen, n, d, 0.05, 0.2)
    g = g / g.norm(dim=1, keepdim=True)
    flow = FlowModel(5, d, n_pca=2, transforms=1, hidden=[8], res_bins=4)
    flow.fit_pca(g)
    flow.fit_residual(g, c)
    r = torch.zeros(n)
    eps = torch.randn(n, d, generator=gen)

    def tail_energy(sel: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            dec = flow.decode(flow.encode(g, r), c, eps)[0]
        return float((dec[sel, 10:] ** 2).sum(dim=1).mean()), float((g[sel, 10:] ** 2).sum(dim=1).mean())

    lo, hi = le < -0.5, le > 0.5
    before = tail_energy(lo)
    std_core = flow.res_std[:, :, :10].clone()
    history = flow.calibrate_residual(g, r, c, tail=0.01)
    assert len(history) == 5 and history[-1] < 0.5 * history[0]
    assert before[0] < 0.8 * before[1]  # too little energy in the tails before
    for sel in (lo, hi):
        have, want = tail_energy(sel)  # fresh noise: not the calibration's
        assert have == pytest.approx(want, rel=0.1)
    torch.testing.assert_close(flow.res_std[:, :, :10], std_core)  # the core cells are left alone
