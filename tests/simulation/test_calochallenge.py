"""CaloChallenge files (``calopt showers export | import``) and the CaloChallenge classifier
protocol (``calopt surrogate evaluate --protocol calochallenge``)."""

import json

import h5py
import numpy as np
import pytest

from calopt.simulation.showers import Showers, read_showers
from calopt.simulation.surrogates.calochallenge_protocol import (
    ProtocolSettings,
    _network,
    calochallenge_auc,
    low_level_inputs,
)
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A gflash sample (with times) and two independent tiny cascade samples of the same photons."""
    from calopt.simulation.runner import RunSpec, run_simulation

    d = tmp_path_factory.mktemp("cc")
    spec = dict(technology="lhcb-shashlik", particle="gamma", n=24, energy_range=(1.0, 4.0), log_uniform=True,
                theta_max=0.1, chunk_size=24)  # fmt: skip
    g = run_simulation(RunSpec(seed=4, backend="gflash", **spec), d / "g.h5")
    c = run_simulation(RunSpec(seed=5, **spec), d / "c.h5")
    c2 = run_simulation(RunSpec(seed=6, **spec), d / "c2.h5")
    return d, g, c, c2


def _one_error(code, out, err, what):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("calopt: error:") and what in lines[0], lines


# ------------------------------------------------------------------ export and import
def test_export_import_round_trip_is_exact(files, capsys):
    d, g, _, _ = files
    code, out, _ = run_cli(["showers", "export", str(g), "--format", "calochallenge", "--out", str(d / "e.h5"),
                            "--json"], capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["voxels"] == 4 * 30 * 30
    src = read_showers(g, diagnostics=False)
    n = len(src)
    with h5py.File(d / "e.h5", "r") as f:
        assert "format" not in f.attrs  # a CaloChallenge file, not a calopt format
        e, v = f["incident_energies"][()], f["showers"][()]
        b = dict(f["binning"].attrs)
    assert e.shape == (n, 1) and e.dtype == np.float32 and v.shape == (n, 3600) and v.dtype == np.float32
    assert np.array_equal(e, src.incident_energies)
    # the voxel sums are the cell sums, exactly: per shower and per section
    cells = src.showers
    assert np.array_equal(v.sum(axis=1), cells.reshape(n, -1).sum(axis=1))
    assert np.array_equal(v.astype(np.float64).sum(axis=1), cells.astype(np.float64).sum(axis=(1, 2, 3)))
    assert np.array_equal(v.reshape(n, 4, 900).sum(axis=2), cells.reshape(n, 4, 900).sum(axis=2))
    # the binning says how to restore the grid
    assert str(b["geometry"]) == "cartesian" and (b["n_sections"], b["n_rows"], b["n_columns"]) == (4, 30, 30)
    assert b["cell_pitch_mm"] == pytest.approx(20.2)
    assert np.allclose(b["x_edges_mm"][[0, 15, 30]], [-303.0, 0.0, 303.0])
    assert np.array_equal(v.reshape(n, b["n_sections"], b["n_rows"], b["n_columns"]), cells)

    code, out, _ = run_cli(["showers", "import", str(d / "e.h5"), "--out", str(d / "back.h5")], capsys)
    assert code == 0 and "24 showers" in out
    back = read_showers(d / "back.h5")
    for k in ("showers", "times", "incident_energies", "momenta", "points", "pdg"):
        assert np.array_equal(getattr(back, k), getattr(src, k)), k
        assert getattr(back, k).dtype == getattr(src, k).dtype, k
    assert set(back.attrs) == set(src.attrs)
    assert all(np.array_equal(back.attrs[k], src.attrs[k]) for k in src.attrs)
    # the export replaces its own kind only with --overwrite
    argv = ["showers", "export", str(g), "--format", "calochallenge", "--out", str(d / "e.h5")]
    _one_error(*run_cli(argv, capsys), "--overwrite")
    assert run_cli([*argv, "--overwrite"], capsys)[0] == 0


def test_import_a_models_samples(files, capsys):
    """A CaloChallenge model's file (the two datasets, nothing else) is read on the grid of
    --like; its particles come from --like when the energies match, else from --particle; the
    result is judged by calopt."""
    d, _, c, _ = files
    ref = read_showers(c, diagnostics=False)
    rng = np.random.default_rng(0)
    fake = ref.showers.reshape(len(ref), -1) * rng.uniform(0.9, 1.1, size=(len(ref), 1)).astype(np.float32)
    with h5py.File(d / "model.h5", "w") as f:  # as the CaloChallenge homepage writes a submission
        f.create_dataset("incident_energies", data=ref.incident_energies.reshape(len(ref), -1), compression="gzip")
        f.create_dataset("showers", data=fake, compression="gzip")
    code, out, _ = run_cli(["showers", "import", str(d / "model.h5"), "--like", str(c), "--out", str(d / "m.h5"),
                            "--json"], capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["generator"] == "calochallenge"
    m = read_showers(d / "m.h5")
    assert m.attrs["technology"] == "lhcb-shashlik" and m.attrs["imported_from"] == "model.h5"
    assert np.array_equal(m.showers.reshape(len(m), -1), fake) and np.array_equal(m.momenta, ref.momenta)
    assert np.array_equal(m.points, ref.points) and m.times is None
    # other energies: the species from --particle, along the axis, at the window centre
    with h5py.File(d / "model2.h5", "w") as f:
        f["incident_energies"] = np.full((5, 1), 2000.0, np.float32)
        f["showers"] = fake[:5]
    argv = ["showers", "import", str(d / "model2.h5"), "--like", str(c), "--out", str(d / "m2.h5")]
    _one_error(*run_cli(argv, capsys), "--particle")
    assert run_cli([*argv, "--particle", "e-"], capsys)[0] == 0
    m2 = read_showers(d / "m2.h5")
    assert set(m2.pdg) == {11} and np.all(m2.points == 0) and np.allclose(m2.momenta[:, 2], 2000.0, rtol=1e-6)
    code, out, _ = run_cli(["surrogate", "evaluate", str(d / "m.h5"), "--reference", str(c), "--json"], capsys)
    assert code == 0 and json.loads(out)["model_source"] == "file"


def test_export_failure_leaves_no_file(files, monkeypatch, capsys):
    d, g, _, _ = files

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(d / "full.h5"))

    monkeypatch.setattr(h5py.Group, "create_group", broken)
    code, _, err = run_cli(["showers", "export", str(g), "--format", "calochallenge", "--out", str(d / "full.h5")],
                           capsys)  # fmt: skip
    assert code == 2 and "No space left" in err
    assert not (d / "full.h5").exists() and not list(d.glob(".full.h5*"))


@pytest.mark.parametrize(
    "name, argv, what",
    [
        ("text", ["export", "{d}/notes.txt", "--format", "calochallenge"], "not an HDF5 file"),
        ("export-of-export", ["export", "{d}/bare.h5", "--format", "calochallenge"], "calopt format attribute"),
        ("format", ["export", "{g}", "--format", "root"], "--format 'root'"),
        ("no-energies", ["import", "{d}/no_energies.h5"], "'incident_energies' is missing"),
        ("lengths", ["import", "{d}/lengths.h5"], "7 showers but 10 incident energies"),
        ("nan", ["import", "{d}/nan.h5"], "not finite positive"),
        ("no-grid", ["import", "{d}/bare.h5"], "--like"),
        ("like-grid", ["import", "{d}/small.h5", "--like", "{g}"], "3600 cells"),
        ("particle", ["import", "{d}/bare.h5", "--like", "{g}", "--particle", "graviton"], "graviton"),
        ("calopt-file", ["import", "{g}"], "is a calopt-showers file"),
    ],
)
def test_bad_input(files, capsys, name, argv, what):
    d, g, _, _ = files
    (d / "notes.txt").write_text("notes\n")
    e = np.full((10, 1), 1000.0, np.float32)
    v = np.ones((10, 3600), np.float32)
    for fname, datasets in {"no_energies.h5": {"showers": v}, "lengths.h5": {"incident_energies": e, "showers": v[:7]},
                            "nan.h5": {"incident_energies": np.where(np.arange(10)[:, None] == 3, np.nan, e),
                                       "showers": v},
                            "bare.h5": {"incident_energies": e[:3], "showers": v[:3]},
                            "small.h5": {"incident_energies": e, "showers": v[:, :100]}}.items():  # fmt: skip
        with h5py.File(d / fname, "w") as f:
            for k, a in datasets.items():
                f[k] = a
    out = d / f"out-{name}.h5"
    full = ["showers", *[a.format(d=d, g=g) for a in argv], "--out", str(out)]
    _one_error(*run_cli(full, capsys), what)
    assert not out.exists()


# ------------------------------------------------------------------ the classifier protocol
def _toy(n: int, seed: int, scale: float = 1.0) -> Showers:
    rng = np.random.default_rng(seed)
    e = rng.uniform(1000.0, 5000.0, n).astype(np.float32)
    cells = rng.gamma(2.0, 1.0, size=(n, 2, 2, 2)).astype(np.float32) * (e[:, None, None, None] / 100.0) * scale
    return Showers(showers=cells, incident_energies=e.reshape(-1, 1), momenta=np.tile([0, 0, 1.0], (n, 1)),
                   points=np.zeros((n, 2)), pdg=np.full(n, 22), attrs={})  # fmt: skip


def test_inputs_and_network_are_the_official_ones():
    sh = _toy(4, 0)
    x = low_level_inputs(sh)
    assert x.shape == (4, 9) and x.dtype == np.float64
    assert np.allclose(x[:, 0], np.log10(sh.incident_energies[:, 0]))
    assert np.allclose(x[:, 1:], sh.showers.reshape(4, -1) / sh.incident_energies)
    assert low_level_inputs(sh, threshold_mev=1e9)[:, 1:].max() == 0.0
    s = ProtocolSettings()
    assert (s.epochs, s.batch_size, s.learning_rate, s.hidden, s.hidden_layers, s.dropout) == (50, 1000, 2e-4, 2048,
                                                                                               2, 0.0)  # fmt: skip
    net = _network(9, s)
    linear = [m for m in net if type(m).__name__ == "Linear"]
    assert [(m.in_features, m.out_features) for m in linear] == [(9, 2048), (2048, 2048), (2048, 2048), (2048, 1)]
    assert sum(type(m).__name__ == "LeakyReLU" for m in net) == 3 and linear[0].weight.dtype.is_floating_point


def test_protocol_separates_and_is_deterministic():
    quick = ProtocolSettings(epochs=8, trainings=2, hidden=64, batch_size=100, learning_rate=2e-3)
    ref = _toy(600, 1)
    same = calochallenge_auc(_toy(600, 2), ref, seed=3, settings=quick)
    off = calochallenge_auc(_toy(600, 2, scale=2.0), ref, seed=3, settings=quick)
    assert 0.4 < same["auc_mean"] < 0.62 and off["auc_mean"] > 0.9
    assert off["trainings"] == 2 and len(off["runs"]) == 2 and off["auc_std"] >= 0 and not off["official"]
    assert all(1 <= r["best_epoch"] <= 8 for r in off["runs"])
    assert (off["n_train"], off["n_test"], off["n_validation"]) == (720, 240, 240)
    assert calochallenge_auc(_toy(600, 2, scale=2.0), ref, seed=3, settings=quick) == off


def test_evaluate_with_the_protocol(files, capsys):
    """End to end on tiny samples: the official network, 1 epoch, 2 trainings, with the floor."""
    _, g, c, c2 = files
    argv = ["surrogate", "evaluate", str(g), "--reference", str(c), "--floor", str(c2), "--protocol", "calochallenge",
            "--cc-epochs", "1", "--cc-trainings", "2", "--seed", "2", "--json"]  # fmt: skip
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    res = json.loads(out)
    cc = res["calochallenge"]
    assert cc["epochs"] == 1 and cc["trainings"] == 2 and cc["settings"]["hidden"] == 2048
    assert 0.0 <= cc["auc_mean"] <= 1.0 and cc["auc_std"] >= 0.0 and cc["n_per_sample"] == 24
    assert 0.0 <= cc["floor"]["auc_mean"] <= 1.0
    assert "auc_cells" in res and res["timing"]["calochallenge_s"] > 0  # beside calopt's own metrics
    _one_error(*run_cli([*argv[:7], "--protocol", "lhco"], capsys), "--protocol 'lhco'")
