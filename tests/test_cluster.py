"""A real Dask cluster on loopback: ``dask scheduler`` and two ``dask worker`` processes started as
separate processes, as on a batch system (docs/cluster.md), and ``calopt optimize`` / ``calopt
simulate --scheduler`` run against it as commands. A worker killed mid-campaign costs a re-run
of its trial and nothing else; a scheduler killed mid-run stops the command with one line and
exit code 2, keeping what was finished, and running again (``--resume``) finishes the work with
the same result as a local run.

Campaign evaluations use :func:`tests.optimize.fake.slow_evaluate` (the workers import it: they
run in the repository root with it on PYTHONPATH); the kills are made after a given number of
finished trials or parts, watched in the database or the parts folder."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from calopt.optimize.store import CampaignStore
from tests.optimize.test_campaign import CAMPAIGN, campaign, rows

ROOT = Path(__file__).resolve().parents[1]
SLEEP = 0.4  # seconds per evaluation on the cluster: 11 trials take a few seconds, a kill lands mid-campaign
# `calopt ARGS` with the campaign evaluator replaced by the fake one (as the tests of test_campaign.py
# do in-process); the workers unpickle the function by reference, from tests.optimize.fake
SHIM = ("import calopt.optimize.campaign as c, tests.optimize.fake as f; c.evaluate_design = f.slow_evaluate; "
        "from calopt.cli.main import main; main()")  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    """This environment (CALOPT_CACHE is the test session's), with the repository importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", **extra)  # fmt: skip
    return env


def _until(what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """A scheduler and ``n`` single-threaded workers (no nanny: a killed worker stays dead) on
    127.0.0.1, ports chosen by the system and read from the scheduler file."""

    def __init__(self, folder: Path, n: int = 2) -> None:
        self.folder = folder
        self.started = folder / "started"  # slow_evaluate's marker files
        self.started.mkdir()
        env = _env(CALOPT_TEST_SLEEP=str(SLEEP), CALOPT_TEST_STARTED=str(self.started))
        sched_file = folder / "scheduler.json"
        self.scheduler = self._start("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler",
                                                   "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                                   "--scheduler-file", str(sched_file)], env)  # fmt: skip
        self.workers: list[subprocess.Popen[bytes]] = []
        _until("the scheduler file", lambda: sched_file.is_file() and "address" in sched_file.read_text())
        self.address = json.loads(sched_file.read_text())["address"]
        for k in range(n):
            self.workers.append(self._start(f"worker-{k}", [sys.executable, "-m", "distributed.cli.dask_worker",
                                                            self.address, "--nthreads", "1", "--no-nanny",
                                                            "--no-dashboard", "--host", "127.0.0.1", "--name",
                                                            f"w{k}", "--death-timeout", "20"], env))  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            client.wait_for_workers(n, timeout=60)

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "wb") as log:
            return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [self.scheduler, *self.workers]

    def stop(self) -> None:
        for p in self.processes():
            if p.poll() is None:
                p.kill()
        for p in self.processes():
            p.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh cluster per test (tests kill its processes); every process is killed at teardown."""
    c = None
    try:
        (tmp_path / "cluster-logs").mkdir()
        c = Cluster(tmp_path / "cluster-logs")
        yield c
    finally:
        if c is not None:
            c.stop()


def calopt(args: list[str], cwd: Path = ROOT, **env: str) -> subprocess.Popen[str]:
    """``calopt ARGS`` as a separate process (the campaign evaluator replaced by the fake one)."""
    return subprocess.Popen([sys.executable, "-c", SHIM, *args], cwd=cwd, env=_env(**env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def statuses(folder: Path) -> list[str]:
    """The trials' statuses, read while the campaign runs (an empty list before the database exists)."""
    db = folder / "campaign.sqlite"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return [s for (s,) in con.execute("SELECT status FROM trials ORDER BY id")]
    except sqlite3.OperationalError:  # created but not yet holding its tables
        return []


def _campaign_file(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN)
    return path


def _local(tmp_path: Path) -> list[tuple]:
    from calopt.optimize.campaign import run_campaign
    from tests.optimize.fake import fake_evaluate

    run_campaign(campaign(), tmp_path / "local", evaluator=fake_evaluate)
    return rows(tmp_path / "local")


def test_campaign_on_a_cluster_survives_a_killed_worker(tmp_path: Path, cluster: Cluster) -> None:
    """SIGKILL of the worker evaluating a trial once three trials are done: the scheduler runs
    that trial again on the other worker, and the campaign ends with the trials of a local run,
    none lost, none repeated, none failed by the kill."""
    out = tmp_path / "cluster"
    proc = calopt(["optimize", str(_campaign_file(tmp_path)), "--out", str(out), "--scheduler", cluster.address,
                   "--no-report", "--json"])  # fmt: skip
    by_pid = {w.pid: w for w in cluster.workers}
    victim: dict[str, object] = {}

    def kill_a_busy_worker() -> bool:
        done = statuses(out)
        if sum(s != "pending" for s in done) < 3 or proc.poll() is not None:
            return proc.poll() is not None
        for marker in cluster.started.iterdir():  # trial-<id>.<pid>
            name, pid = marker.name.rsplit(".", 1)
            tid = int(name.removeprefix("trial-"))
            if int(pid) in by_pid and done[tid - 1] == "pending":
                by_pid[int(pid)].send_signal(signal.SIGKILL)
                victim.update(trial=tid, pid=int(pid))
                return True
        return False

    _until("a worker busy after three trials", kill_a_busy_worker)
    code, stdout, err = finish(proc)
    assert victim, f"the campaign ended before the kill: {err}"
    assert code == 0, err
    assert by_pid[victim["pid"]].wait(timeout=10) == -signal.SIGKILL  # type: ignore[index]
    assert json.loads(stdout)["trials"] == 11
    # the killed evaluation ran again, on the surviving worker, and was recorded once
    ran = sorted(int(m.name.rsplit(".", 1)[1]) for m in cluster.started.glob(f"trial-{victim['trial']}.*"))
    assert len(ran) == 2 and victim["pid"] in ran, ran
    with CampaignStore(out / "campaign.sqlite", read_only=True) as st:
        trials = st.trials(metrics=False)
    assert [t.attempts for t in trials] == [0 if t.cached else 1 for t in trials]  # each submitted once at most
    assert not any("Killed" in (t.error or "") or "Cancelled" in (t.error or "") for t in trials)
    assert rows(out) == _local(tmp_path)


def test_a_lost_scheduler_stops_the_campaign_and_resume_finishes_it(tmp_path: Path, cluster: Cluster) -> None:
    """SIGKILL of the scheduler once three trials are done: one line, exit code 2, the unfinished
    trials pending (not failed), the database intact and no temporary file left; ``--resume``
    (locally, the scheduler being gone) then gives the trials of a local run. (Without the report,
    written after each batch and taking seconds, the kill lands while trials run; a scheduler
    lost between two batches ends alike, after the client's 10 s of trying to reconnect.)"""
    out = tmp_path / "cluster"
    path = _campaign_file(tmp_path)
    proc = calopt(["optimize", str(path), "--out", str(out), "--scheduler", cluster.address, "--no-report", "--json"])

    def kill_the_scheduler() -> bool:
        if proc.poll() is not None:
            return True
        if sum(s != "pending" for s in statuses(out)) < 3:
            return False
        cluster.scheduler.send_signal(signal.SIGKILL)
        return True

    _until("three trials", kill_the_scheduler)
    code, stdout, err = finish(proc)
    assert cluster.scheduler.poll() is not None, f"the campaign ended before the kill: {err}"
    lines = [line for line in err.splitlines() if not line.startswith("[t] ")]  # the campaign's progress lines
    assert code == 2 and stdout == "" and len(lines) == 1, err
    assert lines[0].startswith("calopt: error: lost the Dask scheduler at ") and "--resume" in lines[0], err
    with CampaignStore(out / "campaign.sqlite", read_only=True) as st:
        trials = st.trials(metrics=False)
    with sqlite3.connect(f"file:{out / 'campaign.sqlite'}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    pending = [t for t in trials if t.status == "pending"]
    assert pending and len(pending) < len(trials) < 11
    assert not any(t.error and "Cancelled" in t.error for t in trials)  # nothing recorded as failed by the loss
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    code, stdout, err = finish(calopt(["optimize", str(path), "--out", str(out), "--resume", "--no-report",
                                       "--json"], CALOPT_TEST_SLEEP="0"))  # fmt: skip
    assert code == 0, err
    assert f"resuming batch {pending[0].batch}" in err
    assert rows(out) == _local(tmp_path)


def _simulate(out: Path, *more: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    return calopt(["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--energy-range", "1", "4",
                   "--theta-max", "0.1", "--n", "120", "--chunk-size", "4", "--seed", "5", "--out", str(out),
                   "--json", *more], cwd)  # fmt: skip


def _same_showers(a: Path, b: Path) -> None:
    from calopt.simulation.showers import read_showers

    x, y = read_showers(a), read_showers(b)
    for name in ("showers", "times", "incident_energies", "momenta", "points", "pdg"):
        np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
    assert x.diagnostics.keys() == y.diagnostics.keys()
    for key in x.diagnostics:
        np.testing.assert_array_equal(x.diagnostics[key], y.diagnostics[key], err_msg=key)
    assert {k: str(v) for k, v in x.attrs.items()} == {k: str(v) for k, v in y.attrs.items()}


@pytest.mark.integration  # about 13 s: the two campaign tests keep the default suite's share near 20 s
def test_simulate_on_a_cluster_and_a_lost_scheduler(tmp_path: Path, cluster: Cluster) -> None:
    """``calopt simulate --scheduler`` writes the showers of a local run. Then a run whose
    scheduler is killed after two parts: one line, exit code 2, no output file, the finished
    parts kept; run again (locally), it finishes with the same showers. One worker is stopped
    (SIGSTOP) during that run, so that the chunks it was given cannot all finish before the kill."""
    local = tmp_path / "local.h5"
    code, _, err = finish(_simulate(local))
    assert code == 0, err
    on_cluster = tmp_path / "cluster.h5"  # --out relative to a folder that is not the workers' one
    code, stdout, err = finish(_simulate(Path(on_cluster.name), "--scheduler", cluster.address, cwd=tmp_path))
    assert code == 0 and json.loads(stdout)["n"] == 120, err
    _same_showers(on_cluster, local)

    cut = tmp_path / "cut.h5"
    parts = tmp_path / "cut.h5.parts"
    cluster.workers[1].send_signal(signal.SIGSTOP)
    proc = _simulate(cut, "--scheduler", cluster.address)
    _until("two parts", lambda: proc.poll() is not None or len(list(parts.glob("chunk-*.h5"))) >= 2)
    cluster.scheduler.send_signal(signal.SIGKILL)
    code, stdout, err = finish(proc)
    errors = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert code == 2 and stdout == "" and len(errors) == 1, err
    assert errors[0].startswith("calopt: error: lost the Dask scheduler at ") and str(parts) in errors[0], err
    assert "chunks unfinished" in errors[0]
    assert not cut.exists()
    kept = len(list(parts.glob("chunk-*.h5")))
    assert 2 <= kept < 30
    code, stdout, err = finish(_simulate(cut))
    assert code == 0, err
    assert not parts.exists()
    _same_showers(cut, local)


@pytest.mark.parametrize("address", ["nonsense", "foo://127.0.0.1:8786"])  # no scheduler there: test_campaign.py
def test_simulate_refuses_a_scheduler_it_cannot_reach(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      address: str) -> None:  # fmt: skip
    """No scheduler there, no port, an unknown scheme: one line, exit code 2, no output file."""
    from tests.helpers import run_cli

    out = tmp_path / "s.h5"
    code, stdout, err = run_cli(["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "1",
                                 "--n", "4", "--out", str(out), "--scheduler", address], capsys)  # fmt: skip
    lines = [line for line in err.splitlines() if "simulate gamma" not in line]  # the progress bar
    assert code == 2 and stdout == "" and lines == [lines[0]] and lines[0].startswith("calopt: error: cannot reach")
    assert not out.exists()
