"""Evaluation of fast simulations: metrics on synthetic data, and ``calopt surrogate evaluate``."""

import json

import numpy as np
import pytest

from calopt.simulation.showers import Showers
from calopt.simulation.surrogates.quality import (
    classifier_auc,
    fpd,
    frechet_distance,
    kpd,
    response_resolution,
    separation_power,
    shower_features,
)
from tests.helpers import run_cli


# ------------------------------------------------------------------ metrics on synthetic data
def test_separation_power_limits():
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000)
    assert separation_power(a, a) == 0.0
    assert separation_power(rng.uniform(0, 1, 500), rng.uniform(5, 6, 700)) == pytest.approx(1.0)
    mid = separation_power(rng.normal(size=5000), rng.normal(1.0, 1.0, 5000))
    assert 0.05 < mid < 0.5


def test_classifier_auc_same_and_different():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(1000, 5)), rng.normal(size=(1000, 5))
    assert classifier_auc(a, b, seed=3) == pytest.approx(0.5, abs=0.07)
    c = rng.normal(size=(1000, 5))
    c[:, 2] += 3.0
    assert classifier_auc(c, b, seed=3) > 0.95
    assert classifier_auc(c, b, seed=3) == classifier_auc(c, b, seed=3)  # deterministic


def test_fpd_kpd():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2000, 6)), rng.normal(size=(2000, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    same_k = kpd(a, b, seed=1)
    assert abs(same_k["value"]) < max(4 * same_k["error"], 1e-3)
    assert fpd(a, b, seed=1)["value"] == pytest.approx(0.0, abs=0.03)
    c = b.copy()
    c[:, 0] = c[:, 0] * 1.5 + 0.5
    diff_k = kpd(a, c, seed=1)
    assert diff_k["value"] > 10 * diff_k["error"] and diff_k["value"] > 0.05
    assert fpd(a, c, seed=1)["value"] == pytest.approx(0.25 + 0.25, abs=0.1)  # mean 0.5^2 + (1.5 - 1)^2


def test_response_resolution():
    rng = np.random.default_rng(3)
    e = np.repeat([2.0, 20.0], 4000)
    r = 0.16 * (1 + rng.normal(size=8000) * 0.1 / np.sqrt(e))
    bins = response_resolution(r, e, np.array([1.0, 10.0, 100.0]))
    assert bins[0]["response"] == pytest.approx(0.16, rel=0.01)
    assert bins[0]["resolution"] == pytest.approx(0.1 / np.sqrt(2), rel=0.05)
    assert bins[1]["resolution"] == pytest.approx(0.1 / np.sqrt(20), rel=0.05)


def synthetic(n, tech="lhcb-shashlik", grid=30, pitch=20.2):
    sh = np.zeros((n, 4, grid, grid), dtype=np.float32)
    h = grid // 2
    sh[:, 1, h - 1, h] = 100.0  # inside the central 2x2
    sh[:, 2, h + 1, h] = 50.0  # in the 4x4 ring
    sh[:, 3, h - 4, h] = 50.0  # in the 8x8 ring
    attrs = {"technology": tech, "fine_pitch_mm": pitch, "section_edges_mm": np.array([0.0, 1, 2, 3, 4.0]),
             "generator": "test", "seed": 0, "sampling_fraction": 0.16}  # fmt: skip
    return Showers(sh, np.full((n, 1), 1000.0), np.tile([0, 0, 1000.0], (n, 1)), np.zeros((n, 2)),
                   np.full(n, 22), attrs, times=np.ones_like(sh))  # fmt: skip


def test_features_on_a_known_shower():
    f = shower_features(synthetic(3))
    assert f["evis_over_e"] == pytest.approx(0.2)
    assert f["E1"] == pytest.approx(0.5) and f["E2"] == pytest.approx(0.25)
    assert f["E3"] == pytest.approx(0.0) and f["E4"] == pytest.approx(0.25)
    assert [f[f"section_{k}"][0] for k in range(4)] == pytest.approx([0, 0.5, 0.25, 0.25])
    assert f["centroid_x"] == pytest.approx(0.5 * 20.2)
    assert f["centroid_y"] == pytest.approx(20.2 * (0.5 * -0.5 + 0.25 * 1.5 + 0.25 * -3.5))
    assert f["width_x"] == pytest.approx(0.0, abs=1e-6)
    assert f["sparsity"] == pytest.approx(3 / (4 * 900))
    assert f["t_mean"] == pytest.approx(1.0)


def test_auc_per_feature_names_the_feature_that_differs():
    """A 'model' whose showers are those of another sample with 10 % more visible energy: only
    E_vis/E separates it, given the conditions; the shape features do not."""
    from calopt.simulation.surrogates.quality import compare

    from .test_surrogates import synthetic_showers

    ref = synthetic_showers(500, 1)
    model = synthetic_showers(500, 2)
    model.showers = model.showers * np.float32(1.1)
    res = compare(model, ref, seed=3, cells=False)
    per = res["auc_per_feature"]
    assert set(per) == set(res["features"])
    assert per["evis_over_e"] > 0.9
    for k in ("E1", "E2", "section_1", "centroid_x", "width_x"):
        assert per[k] < 0.65, k


# ------------------------------------------------------------------ the command, end to end
@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Two independent tiny cascade samples (photons, 1-3 GeV) and a gflash sample of another technology."""
    from calopt.simulation.runner import RunSpec, run_simulation

    d = tmp_path_factory.mktemp("surr")
    spec = dict(technology="lhcb-shashlik", particle="gamma", n=40, energy_range=(1.0, 3.0), log_uniform=True,
                theta_max=0.2, chunk_size=40)  # fmt: skip
    ref = run_simulation(RunSpec(seed=1, **spec), d / "ref.h5")
    ref2 = run_simulation(RunSpec(seed=2, **spec), d / "ref2.h5")
    other = run_simulation(RunSpec(seed=3, backend="gflash", **{**spec, "technology": "spacal-w"}), d / "w.h5")
    return d, ref, ref2, other


@pytest.mark.integration
def test_evaluate_backend_with_floor_and_plots(samples, capsys):
    d, ref, ref2, _ = samples
    argv = ["surrogate", "evaluate", "gflash", "--reference", str(ref), "--floor", str(ref2), "--n", "30",
            "--plots", str(d / "plots"), "--seed", "5", "--json"]  # fmt: skip
    code, out, _ = run_cli(argv, capsys)
    assert code == 0

    def strict(const):
        raise AssertionError(f"non-standard JSON constant {const}")

    res = json.loads(out, parse_constant=strict)
    assert res["n_reference"] == 30 and res["n_model"] == 30 and res["model_source"] == "backend"
    assert set(res["features"]) >= {"evis_over_e", "E1", "E2", "E3", "E4", "section_0", "sparsity", "centroid_x"}
    for key in ("auc_features", "auc_cells"):
        assert 0.0 <= res[key] <= 1.0 and 0.0 <= res["floor"][key] <= 1.0
    assert set(res["auc_per_feature"]) == set(res["features"]) == set(res["floor"]["auc_per_feature"])
    assert {"value", "error"} <= set(res["fpd"]) and {"value", "error"} <= set(res["kpd"])
    assert len(res["energy_bins"]) == 6 and "response_ratio" in res["energy_bins"][0]
    assert res["timing"]["ms_per_shower"] > 0
    assert (d / "plots" / "features.png").stat().st_size > 0 and (d / "plots" / "average_showers.png").is_file()
    # the same seed reproduces every metric
    res2 = json.loads(run_cli(argv, capsys)[1])
    res.pop("timing"), res2.pop("timing")
    assert res == res2


@pytest.mark.integration
def test_evaluate_a_showers_file(samples, capsys):
    _, ref, ref2, _ = samples
    code, out, _ = run_cli(["surrogate", "evaluate", str(ref2), "--reference", str(ref), "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert res["model_source"] == "file" and res["timing"]["generate_s"] is None
    # the same technology and distribution: small separation, response ratio ~1
    assert all(abs(b["response_ratio"] - 1) < 0.1 for b in res["energy_bins"] if b["n_reference"] >= 5)
    # several reference files are joined
    code, out, _ = run_cli(["surrogate", "evaluate", str(ref2), "--reference", str(ref), "--reference", str(ref2),
                        "--json"], capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["n_reference"] == 80 and str(ref2) in json.loads(out)["reference"]
    code, out, _ = run_cli(["surrogate", "evaluate", "gflash", "--reference", str(ref), "--n", "12"], capsys)
    assert code == 0 and "AUC cells" in out and "AUC of one feature" in out  # the text summary


@pytest.mark.parametrize(
    "args, message",
    [
        (["gflash", "--reference", "{d}/missing.h5"], "does not exist"),
        (["gflash", "--reference", "{d}/junk.h5"], "not a calopt-showers file"),
        (["{other}", "--reference", "{ref}"], "technology 'spacal-w'"),
        (["gflash", "--reference", "{ref}", "--floor", "{other}"], "technology 'spacal-w'"),
        (["gflash", "--reference", "{ref}", "--reference", "{other}"], "technology 'spacal-w'"),
        (["gan9000", "--reference", "{ref}"], "unknown backend"),
        (["gflash", "--reference", "{ref}", "--n", "0"], "--n': Input should be greater than or equal to 1"),
        (["gflash", "--reference", "{ref}", "--n", "3"], "at least 10"),
    ],
)
def test_bad_input(samples, capsys, args, message):
    import h5py

    d, ref, _, other = samples
    with h5py.File(d / "junk.h5", "w") as f:
        f.attrs["format"] = "something-else"
    argv = ["surrogate", "evaluate", *[a.format(d=d, ref=ref, other=other) for a in args]]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
