"""Fixtures of the hostile-input suite: a template folder of good, broken and foreign files,
copied afresh for every case, and a runner of ``calopt`` as a separate process (a segfault, an
interrupt and an exit code are then what the shell sees)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import edited_h5

LONG_NAME = "x" * 300  # longer than any file system's NAME_MAX (255)


def calopt_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", "from calopt.cli.main import main; main()", *argv]


def run_calopt(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``calopt argv`` in its own process; a timeout counts as a
    job that started although it should have been refused (exit code -1)."""
    try:
        p = subprocess.run(calopt_cmd(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return -1, "", err + f"\n[timed out after {timeout} s]"
    return p.returncode, p.stdout, p.stderr


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> sha256), to show that nothing was written."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(folder)) + "/"] = "dir"
    return out


def _build_template(root: Path, env: dict[str, str]) -> None:
    from calopt.optimize.campaign import load_campaign
    from calopt.optimize.store import CampaignStore
    from calopt.simulation.surrogates.simulator import DEFAULT_MODEL

    rc, _, err = run_calopt(["simulate", "--backend", "gflash", "--technology", "lhcb-shashlik", "--particle", "gamma",
                             "--energy", "10", "--n", "20", "--out", str(root / "showers.h5")], root, env)  # fmt: skip
    assert rc == 0, err
    good = root / "showers.h5"
    shutil.copy(DEFAULT_MODEL, root / "ckpt.pt")
    repo = Path(__file__).resolve().parents[2]
    shutil.copy(repo / "src/calopt/detector/designs/lhcb-run3.toml", root / "design.toml")
    quick = (repo / "examples/quick-campaign.toml").read_text()
    (root / "quick.toml").write_text(quick)
    (root / "notes.txt").write_text("notes of a physicist\n")
    (root / "afile").write_text("a file where a folder is expected\n")
    campaign = load_campaign(root / "quick.toml")
    with CampaignStore(root / "campaign" / "campaign.sqlite") as st:  # a campaign that started
        st.set_meta(name=campaign.name, digest=campaign.digest(), settings=json.dumps(campaign.to_dict()))
    # broken files of the right format
    edited_h5(good, root / "no_showers.h5", lambda f: f.__delitem__("showers"))

    def short(f):
        e = f["incident_energies"][:10]
        del f["incident_energies"]
        f["incident_energies"] = e

    edited_h5(good, root / "short_energies.h5", short)

    def text_showers(f):
        n = f["showers"].shape[0]
        del f["showers"]
        f["showers"] = np.array([b"abc"] * n)

    edited_h5(good, root / "bad_dtype.h5", text_showers)

    def flat(f):
        s = f["showers"][()]
        del f["showers"]
        f["showers"] = s.reshape(len(s), -1)

    edited_h5(good, root / "bad_ndim.h5", flat)
    edited_h5(good, root / "no_attr.h5", lambda f: f.attrs.__delitem__("technology"))
    data = good.read_bytes()
    (root / "truncated.h5").write_bytes(data[: len(data) // 2])
    (root / "empty.h5").write_bytes(b"")
    ck = (root / "ckpt.pt").read_bytes()
    (root / "truncated.pt").write_bytes(ck[: len(ck) // 2])
    (root / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    shutil.copy(good, root / "fake.png")  # an HDF5 file under a picture's name
    (root / "campaign_garbage").mkdir()
    (root / "campaign_garbage" / "campaign.sqlite").write_bytes(b"not a database\n" * 100)
    (root / "campaign_other").mkdir()
    db = sqlite3.connect(root / "campaign_other" / "campaign.sqlite")
    db.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
    db.commit()
    db.close()
    (root / "broken.toml").write_text('name = "x"\n[[regions]\nname = \n')
    (root / "binary.toml").write_bytes(np.random.default_rng(1).bytes(512))
    design = (root / "design.toml").read_text()
    (root / "pitch_nan.toml").write_text(design.replace('name = "lhcb-run3"', 'name = "x"\n[wall]\npitch = nan\n', 1))
    (root / "wall_huge.toml").write_text(
        design.replace('name = "lhcb-run3"', 'name = "x"\n[wall]\nnx = 1000000000\nny = 1000000000\n', 1)
    )
    (root / "cost_inf.toml").write_text(design + "\n[cost.lhcb-shashlik]\nmodule = inf\n")
    (root / "half_inf.toml").write_text(design.replace("half_x = 969.6", "half_x = inf", 1))
    (root / "cell_nan.toml").write_text(design.replace("cell_size = 40.4", "cell_size = nan", 1))
    (root / "timing_nan.toml").write_text(design.replace("cell_size = 40.4", "cell_size = 40.4\ntiming = nan", 1))
    (root / "events_huge.toml").write_text(quick.replace("events = 300", "events = 10000000000000", 1))
    (root / "seed_huge.toml").write_text(quick.replace("seed = 1", "seed = 18446744073709551616", 1))
    (root / "pileup_huge.toml").write_text(quick.replace("pileup = 0", "pileup = 40000", 1))
    module = 'base = "lhcb-shashlik"\nabsorber_thickness_mm = 2.0\n'
    (root / "module.toml").write_text(module)
    (root / "module_thin.toml").write_text(module.replace("2.0", "0.0"))
    (root / "module_negative.toml").write_text(module.replace("2.0", "-1.5"))
    (root / "module_nan.toml").write_text(module.replace("2.0", "nan"))
    (root / "module_material.toml").write_text(module + 'absorber = "unobtainium"\n')
    (root / "module_deep.toml").write_text(module + "n_layers = 400\n")
    (root / "module_deep_x0.toml").write_text(module + "depth_x0 = 60\n")
    (root / "module_cell.toml").write_text(module + "cell_size_mm = 50\n")
    # CaloChallenge files (#23): without incident energies, and with fewer energies than showers
    import h5py

    with h5py.File(root / "cc_no_energies.h5", "w") as f:
        f["showers"] = np.ones((10, 3600), np.float32)
    with h5py.File(root / "cc_lengths.h5", "w") as f:
        f["incident_energies"] = np.full((7, 1), 1000.0, np.float32)
        f["showers"] = np.ones((10, 3600), np.float32)


@pytest.fixture(scope="session")
def hostile_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env["CALOPT_CACHE"] = str(tmp_path_factory.mktemp("hostile-cache"))
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="session")
def hostile_template(tmp_path_factory, hostile_env) -> Path:
    root = tmp_path_factory.mktemp("hostile-template")
    _build_template(root, hostile_env)
    return root


@pytest.fixture
def case_dir(tmp_path, hostile_template) -> Path:
    d = tmp_path / "case"
    shutil.copytree(hostile_template, d)
    return d
