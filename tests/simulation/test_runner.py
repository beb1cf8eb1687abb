"""Simulation runs: determinism with any chunking or number of workers, resume after a kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from calopt.errors import CaloptInputError
from calopt.simulation.runner import RunSpec, run_simulation, sample_particles
from calopt.simulation.showers import read_showers

SPEC = RunSpec(
    technology="lhcb-shashlik",
    particle="gamma",
    n=12,
    seed=3,
    energy_range=(1.0, 4.0),
    log_uniform=True,
    theta_max=0.05,
    chunk_size=5,
)


def test_conditions(tmp_path):
    p = sample_particles(SPEC)
    assert len(p) == 12
    assert np.all((p.energies >= 1000) & (p.energies <= 4000))
    assert np.all(np.arccos(p.directions[:, 2]) <= 0.05 + 1e-12)
    assert np.all(np.abs(p.points) <= 20.2 / 2)
    # slices of the run are slices of the whole
    np.testing.assert_array_equal(sample_particles(SPEC, 5, 10).energies, p.energies[5:10])


def test_chunking_does_not_change_results(tmp_path):
    a = run_simulation(SPEC, tmp_path / "a.h5")
    from dataclasses import replace

    b = run_simulation(replace(SPEC, chunk_size=12), tmp_path / "b.h5")
    sa, sb = read_showers(a), read_showers(b)
    np.testing.assert_array_equal(sa.showers, sb.showers)
    np.testing.assert_array_equal(sa.incident_energies, sb.incident_energies)
    assert not (tmp_path / "a.h5.parts").exists()


def test_dask_workers_give_the_same_file(tmp_path):
    a = read_showers(run_simulation(SPEC, tmp_path / "a.h5"))
    b = read_showers(run_simulation(SPEC, tmp_path / "b.h5", workers=2))
    np.testing.assert_array_equal(a.showers, b.showers)
    np.testing.assert_array_equal(a.times, b.times)


def test_refuses_to_overwrite(tmp_path):
    out = run_simulation(SPEC, tmp_path / "a.h5")
    before = out.read_bytes()
    with pytest.raises(CaloptInputError, match="already exists"):
        run_simulation(SPEC, out)
    other = tmp_path / "notes.h5"
    other.write_text("my notes")
    with pytest.raises(CaloptInputError, match="not a calopt-showers file"):
        run_simulation(SPEC, other, overwrite=True)
    assert other.read_text() == "my notes" and out.read_bytes() == before


def test_resume_after_kill(tmp_path):
    """Kill a run after some chunks, resume it: the result equals an uninterrupted run."""
    args = [
        "--technology",
        "lhcb-shashlik",
        "--particle",
        "gamma",
        "--energy",
        "3",
        "--n",
        "60",
        "--chunk-size",
        "4",
        "--seed",
        "5",
    ]
    out = tmp_path / "k.h5"
    cmd = [sys.executable, "-m", "calopt.cli.main", "simulate", *args, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts = Path(str(out) + ".parts")
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("chunk-*.h5"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_parts = len(list(parts.glob("chunk-*.h5")))
    assert not out.exists() and 3 <= n_parts < 15
    # a different setting is refused while the unfinished run is there
    other_seed = [sys.executable, "-m", "calopt.cli.main", "simulate", *args[:-1], "6", "--out", str(out)]
    bad = subprocess.run(other_seed, capture_output=True, text=True)
    assert bad.returncode == 2 and "other settings" in bad.stderr
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ref = tmp_path / "ref.h5"
    subprocess.run(
        [sys.executable, "-m", "calopt.cli.main", "simulate", *args, "--out", str(ref)], check=True, capture_output=True
    )
    np.testing.assert_array_equal(read_showers(out).showers, read_showers(ref).showers)
    assert not parts.exists()
