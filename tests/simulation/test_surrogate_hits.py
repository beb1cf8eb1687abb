"""The surrogates' hit model, residual model and time scatter on synthetic data with known
answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calopt.simulation.base import shower_seeds
from calopt.simulation.surrogates.dataset import time_of
from calopt.simulation.surrogates.flow import FlowModel
from calopt.simulation.surrogates.hits import apply_hits, calibrate_hits, single_hit_moments
from calopt.simulation.surrogates.noise import shower_rngs


def hits(cells, seeds, le, rows, model, sections=1):
    """apply_hits on a float32 copy of ``cells``, the generators made from ``seeds``."""
    out = np.array(cells, dtype=np.float32)
    apply_hits(out, shower_rngs(seeds), np.asarray(le), np.asarray(rows), model, sections=sections)
    return out

HIT_MEAN, HIT_SHAPE = 0.5, 0.8  # MeV, Gamma shape of one deposit


def real_cells(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compound Poisson cells: cell j of a shower with encoded ln E ``le`` gets
    Poisson(base_j exp(le)) hits of Gamma(HIT_SHAPE, HIT_MEAN / HIT_SHAPE) energy. Returns
    (cells (n, D), le, expected energy per cell (n, D))."""
    rng = np.random.default_rng(seed)
    base = np.geomspace(0.005, 40.0, 60)
    le = rng.uniform(-1, 1, n)
    lam = base[None, :] * np.exp(le)[:, None]
    k = rng.poisson(lam)
    cells = np.where(k > 0, rng.gamma(np.maximum(k, 1) * HIT_SHAPE, HIT_MEAN / HIT_SHAPE), 0.0)
    return cells, le, lam * HIT_MEAN


def test_single_hit_moments_are_measured_in_rarely_hit_cells():
    cells, le, _ = real_cells(20000, 1)
    mean, shape = single_hit_moments(cells, le)
    assert mean == pytest.approx(HIT_MEAN, rel=0.05)
    assert shape == pytest.approx(HIT_SHAPE, rel=0.15)
    with pytest.raises(ValueError, match="too few single-hit deposits"):
        single_hit_moments(np.ones((200, 5)), np.linspace(0, 1, 200))


def test_hit_model_gives_the_real_occupancy_and_keeps_the_energy():
    cells, le, expected = real_cells(6000, 2)
    rng = np.random.default_rng(3)
    # a continuous generator: every cell non-empty, right mean, 30 % fluctuations
    gen = np.maximum(expected * (1 + 0.3 * rng.standard_normal(expected.shape)), 1e-6)
    hm = calibrate_hits(gen, cells, le, np.zeros(len(le), dtype=np.int64), 1, n_bins=4, max_mev=10.0)
    assert hm["mean_mev"] == pytest.approx(HIT_MEAN, rel=0.05)

    # fresh conditions and generated showers
    cells2, le2, expected2 = real_cells(6000, 4)
    gen2 = np.maximum(expected2 * (1 + 0.3 * rng.standard_normal(expected2.shape)), 1e-6)
    seeds = shower_seeds(9, 0, len(gen2))
    out = hits(gen2, seeds, le2, np.zeros(len(le2), dtype=np.int64), hm)
    assert out.shape == gen2.shape and (out >= 0).all()
    # each shower keeps its energy
    np.testing.assert_allclose(out.sum(axis=1), gen2.sum(axis=1), rtol=1e-5)
    # tail cells are now empty as often as in the real showers, in every energy range: within
    # 4 sigma (the occupancies of the calibration sample, the real and the generated showers
    # each have a binomial error) and 0.01 of the calibration's approximations, 0.012 on average
    for lo, hi in ((-1, -0.3), (-0.3, 0.3), (0.3, 1)):
        s = (le2 >= lo) & (le2 < hi)
        occ_real = (cells2[s] > 0).mean(axis=0)
        occ_out = (out[s] > 0).mean(axis=0)
        tail = expected2[s].mean(axis=0) < 10.0
        assert tail.sum() > 30
        p = occ_real[tail]
        sigma = np.sqrt(np.maximum(p * (1 - p), 1e-3) * 3 / s.sum())
        dev = np.abs(occ_out[tail] - p)
        assert (dev < 0.01 + 4 * sigma).all() and dev.mean() < 0.012
        assert (occ_out[~tail] == 1).all()  # core cells are left as generated
    # deterministic in the seeds and independent of the batch
    np.testing.assert_array_equal(hits(gen2, seeds, le2, np.zeros(6000, dtype=np.int64), hm), out)
    part = hits(gen2[100:140], seeds[100:140], le2[100:140], np.zeros(40, dtype=np.int64), hm)
    np.testing.assert_array_equal(part, out[100:140])


def reference_hits(x: np.ndarray, seeds: np.ndarray, le: np.ndarray, model: dict) -> np.ndarray:
    """The hit rule cell by cell, without the kernel's cheap miss test (one species, one
    section): core cells kept, cells never hit emptied, the others hit with P = 1 - exp(-lam);
    each shower's generator draws a uniform per cell, then a Gamma factor per hit cell."""
    from calopt.simulation.surrogates.calibration import interpolation

    lo, t = interpolation(le, np.asarray(model["centres"], dtype=np.float64))
    with np.errstate(divide="ignore"):
        log_a = np.log(np.asarray(model["a"], dtype=np.float64))[0]
    out = np.zeros_like(x)
    for i, rng in enumerate(shower_rngs(seeds)):
        u = rng.random(x.shape[1], dtype=np.float32)
        b, w = lo[i], t[i]
        b2 = min(b + 1, log_a.shape[0] - 1)
        shapes, cells, means = [], [], []
        for j in range(x.shape[1]):
            mu, la0, la1 = float(x[i, j]), log_a[b, j], log_a[b2, j]
            if la0 == -np.inf or la1 == -np.inf:
                out[i, j] = mu
            elif mu > 0 and np.isfinite(la0) and np.isfinite(la1):
                lam = mu * np.exp(-((1.0 - w) * la0 + w * la1))
                prob = -np.expm1(-lam)
                if u[j] < prob:
                    shapes.append(model["shape"] * lam / prob)
                    cells.append(j)
                    means.append(mu / prob)
        if cells:
            out[i, cells] = np.array(means) * rng.standard_gamma(np.array(shapes)) / np.array(shapes)
    kept = out.sum(axis=1)
    return out * np.where(kept > 0, x.sum(axis=1) / np.where(kept > 0, kept, 1.0), 1.0)[:, None]


def test_hit_kernel_equals_the_cell_by_cell_rule():
    """The kernel skips the exact test where u * min(a_b, a_b+1) >= mu (a certain miss); with
    core cells, cells never hit in one of the two bins, empty cells and hit scales that change
    between the bins, that changes nothing."""
    rng = np.random.default_rng(5)
    n, d, bins = 300, 80, 4
    a = rng.uniform(0.05, 3.0, (1, bins, d))
    a[0, :, :4] = 0.0  # core everywhere
    a[0, 1, 4:8] = 0.0  # core in one bin only
    a[0, 2, 8:14] = np.inf  # never hit in one bin
    a[0, :, 14:16] = np.inf
    model = {"a": a.astype(np.float32), "centres": np.linspace(-1, 1, bins).astype(np.float32), "shape": 0.8}
    x = (rng.exponential(0.3, (n, d)) * (rng.random((n, d)) < 0.7)).astype(np.float32)
    le = rng.uniform(-1.2, 1.2, n)
    seeds = shower_seeds(3, 0, n)
    out = hits(x, seeds, le, np.zeros(n, dtype=np.int64), model)
    ref = reference_hits(x, seeds, le, model)
    assert 0.05 < (out[:, 16:] > 0).mean() < 0.6  # a mix of hits and misses
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(out > 0, ref > 0)


def core_and_tail(gen: torch.Generator, n: int, d: int, p_tail: float, value: float):
    """(g (n, d), conditions (n, 5), ln E (n,)): 10 'core' cells, smooth with two directions
    of variation, and d - 10 sparse, independent 'tail' cells, hit with probability
    p_tail (1.5 + ln E) and then worth ``value``."""
    le = torch.rand(n, generator=gen) * 2 - 1
    core = 1.0 + 0.1 * torch.randn(n, 2, generator=gen) @ torch.randn(2, 10, generator=gen)
    tail = torch.where(torch.rand(n, d - 10, generator=gen) < p_tail * (1.5 + le[:, None]), value, 0.0)
    c = torch.stack([le, torch.zeros(n), torch.zeros(n), torch.zeros(n), torch.zeros(n)], dim=1)
    return torch.cat([core, tail], dim=1), c, le


def test_flow_residual_model_restores_the_tail_energy():
    """Few PCA components lose the variance of sparse cells, so E[g^2] (the mean energy
    fraction) of those cells is too small; the residual model puts it back."""
    gen = torch.Generator().manual_seed(0)
    n, d = 4000, 40
    g, c, le = core_and_tail(gen, n, d, 0.1, 0.3)
    flow = FlowModel(5, d, n_pca=2, transforms=1, hidden=[8], res_bins=4)
    flow.fit_pca(g)
    flow.fit_residual(g, c)
    x = flow.encode(g, torch.zeros(n))
    plain = flow.pca_mean + (x[:, :-1] * flow.pca_scale) @ flow.pca_components
    eps = torch.randn(n, d, generator=gen)
    w = flow._residual_weights(c)
    with_res = plain + w @ flow.res_mean.reshape(-1, d) + (w @ flow.res_std.reshape(-1, d)) * eps
    true_tail = (g[:, 10:] ** 2).mean()
    lost = (torch.relu(plain[:, 10:]) ** 2).mean()
    restored = (torch.relu(with_res[:, 10:]) ** 2).mean()
    assert lost < 0.5 * true_tail
    assert float(restored) == pytest.approx(float(true_tail), rel=0.25)
    # the tail energy follows ln E as in the data
    hi, lo = le > 0.5, le < -0.5
    ratio_true = (g[hi, 10:] ** 2).mean() / (g[lo, 10:] ** 2).mean()
    ratio_res = (torch.relu(with_res[hi, 10:]) ** 2).mean() / (torch.relu(with_res[lo, 10:]) ** 2).mean()
    assert float(ratio_res) == pytest.approx(float(ratio_true), rel=0.3)
    assert flow.n_features == 2 + 1


def test_time_scatter():
    a, b = np.array([[0.2, 0.5]]), np.array([[0.01, 0.02]])
    e = np.array([1000.0, 10_000.0])
    cos_t = np.array([1.0, 0.9])
    t0 = time_of(a.repeat(2, 0), b.repeat(2, 0), e, cos_t)
    np.testing.assert_allclose(t0[:, 0], (0.2 + 0.01 * np.log(e / 1000)) / cos_t)
    sigma = np.array([[[0.1, 0.3], [0.0, 0.0]]]).repeat(2, 0)  # (N, S, bins)
    lne = np.array([0.0, np.log(10.0)])
    z = np.ones((2, 2))
    t = time_of(a.repeat(2, 0), b.repeat(2, 0), e, cos_t, sigma, lne, z)
    np.testing.assert_allclose((t - t0)[:, 0] * cos_t, [0.1, 0.3])  # the bin centres
    np.testing.assert_allclose(t[:, 1], t0[:, 1])


def test_trained_model_has_a_calibrated_hit_model(tmp_path):
    """A flow trained on showers with sparse tails stores the hit model, the response
    calibration and the time scatter; its showers have empty tail cells about as often as the
    training showers."""
    from calopt.detector.technologies import get_technology
    from calopt.simulation.showers import write_showers
    from calopt.simulation.surrogates.checkpoint import load_checkpoint
    from calopt.simulation.surrogates.simulator import load_surrogate
    from calopt.simulation.surrogates.training import train_surrogate

    from .test_surrogates import TINY, synthetic_showers

    sh = synthetic_showers(900, 5, pdgs=(22,))
    rng = np.random.default_rng(6)
    crop = slice(11, 19)
    ring = np.ones((8, 8), bool)
    ring[2:6, 2:6] = False
    # the outer ring of the 8 x 8 crop: single deposits only, hit in a few % of the showers
    tail = rng.random((len(sh), 4, 8, 8)) < 0.03 * (sh.incident_energies[:, 0] / 10_000.0)[:, None, None, None]
    dep = rng.gamma(HIT_SHAPE, HIT_MEAN / HIT_SHAPE, tail.shape)
    block = sh.showers[:, :, crop, crop]
    block[:, :, ring] = np.where(tail, dep, 0.0)[:, :, ring]
    sh.showers[:, :, crop, crop] = block
    sh.times = np.where(sh.showers > 0, sh.times.max(), 0.0).astype(np.float32)
    data = tmp_path / "sparse.h5"
    write_showers(data, sh)
    out = tmp_path / "flow.pt"
    # on the grid (not aligned): the tail ring above is laid out in grid cells
    train_surrogate("flow", [data], out, steps=6, seed=1, crop=8, energy_range_gev=(1, 100), theta_max=0.3,
                    align=False, settings=TINY)  # fmt: skip
    ck = load_checkpoint(out)
    assert ck["hit_model"]["mean_mev"] == pytest.approx(HIT_MEAN, rel=0.15)
    assert ck["hit_model"]["a"].shape == (1, 8, 4 * 64)
    assert ck["time_model"]["sigma"].shape[:2] == (1, 4)
    gen = load_surrogate(out).simulate(sh.particles(), get_technology("lhcb-shashlik"), 3)
    occ_real = (sh.showers[:, :, crop, crop][:, :, ring] > 0).mean()
    occ_gen = (gen.showers[:, :, crop, crop][:, :, ring] > 0).mean()
    assert occ_real < 0.1 and occ_gen == pytest.approx(occ_real, abs=0.03)
    assert ((gen.times > 0) == (gen.showers > 0)).all()
    # the simulator applies the response calibration (and the hit model keeps E_vis)
    from calopt.simulation.surrogates.calibration import apply_response

    sim = load_surrogate(out)
    p = sh.particles()
    cond = sim.space.encode(p.energies, p.directions, p.points, p.pdg)
    r = sim.generate(cond, shower_rngs(shower_seeds(3, 0, len(p)))).r
    r_raw = r.astype(np.float64) * sim.norm["r_std"] + sim.norm["r_mean"]
    r_cal = apply_response(r_raw, cond[:, 0], np.zeros(len(p), dtype=np.int64), ck["response_calibration"])
    assert not np.allclose(r_cal, r_raw)
    np.testing.assert_allclose(gen.visible_energy, np.exp(r_cal) * p.energies, rtol=1e-4)


def test_response_calibration_maps_median_and_width():
    from calopt.simulation.surrogates.calibration import apply_response, calibrate_response

    rng = np.random.default_rng(11)
    n = 20000
    le = rng.uniform(-1, 1, n)
    rows = rng.integers(0, 2, n)
    width = 0.05 - 0.02 * le  # the real resolution improves with energy
    real = -1.8 + 0.01 * rows + width * rng.standard_normal(n)
    model = -1.7 + 0.7 * width * rng.standard_normal(n)  # biased and too narrow
    cal = calibrate_response(model, real, le, rows, 2, n_bins=8)
    model2 = -1.7 + 0.7 * width * rng.standard_normal(n)
    out = apply_response(model2, le, rows, cal)
    for p in (0, 1):
        for lo, hi in ((-1, -0.5), (0.5, 1)):
            s = (rows == p) & (le >= lo) & (le < hi)
            assert np.median(out[s]) == pytest.approx(np.median(real[s]), abs=0.003)
            assert np.std(out[s]) == pytest.approx(np.std(real[s]), rel=0.06)
    # monotonic in r for fixed conditions: the ordering of showers is kept
    r = np.linspace(-2.0, -1.5, 50)
    mapped = apply_response(r, np.full(50, 0.2), np.zeros(50, dtype=np.int64), cal)
    assert np.all(np.diff(mapped) > 0)


def test_smooth_response_calibration_averages_the_bin_noise():
    """With few showers per bin the per-bin widths scatter by several %; fitted in ln E, the
    width correction is closer to the true one (here 1 / 0.7 everywhere), over several samples."""
    from calopt.simulation.surrogates.calibration import calibrate_response

    err_bin, err_smooth = [], []
    for seed in range(5):
        rng = np.random.default_rng(12 + seed)
        n = 4000
        le = rng.uniform(-1, 1, n)
        rows = rng.integers(0, 2, n)
        width = 0.05 - 0.02 * le
        real = -1.8 + width * rng.standard_normal(n)
        model = -1.7 + 0.7 * width * rng.standard_normal(n)
        per_bin = calibrate_response(model, real, le, rows, 2, n_bins=8)["scale"]
        smooth = calibrate_response(model, real, le, rows, 2, n_bins=8, smooth=True)["scale"]
        assert smooth.shape == per_bin.shape == (2, 8)
        err_bin.append(np.mean((per_bin * 0.7 - 1) ** 2))
        err_smooth.append(np.mean((smooth * 0.7 - 1) ** 2))
    rms_bin, rms_smooth = np.sqrt(np.mean(err_bin)), np.sqrt(np.mean(err_smooth))
    assert rms_bin > 0.03  # ~250 showers a bin
    assert rms_smooth < 0.8 * rms_bin
