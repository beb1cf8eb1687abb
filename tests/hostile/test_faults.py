"""Faults (issue #19, classes 5 and 6): Ctrl-C ends every long command with one line and
exit code 130, keeps finished parts for a resume and never dumps core; a second run on an
output that a running command holds is refused with one line naming the holder."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.hostile.conftest import calopt_cmd, run_calopt

pytestmark = pytest.mark.integration

CASCADE = ["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "20", "--n", "4000",
           "--chunk-size", "50"]  # fmt: skip


def _start(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(calopt_cmd(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _interrupt(p: subprocess.Popen[str], after: float) -> tuple[int, str]:
    time.sleep(after)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"still running 60 s after Ctrl-C: {err[-2000:]}")
    return p.returncode, err


def _assert_interrupted(rc: int, err: str) -> None:
    assert rc == 130, f"exit code {rc} (-11 / 139: segfault); stderr: {err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1] == "calopt: interrupted", err[-2000:]


@pytest.mark.parametrize("after", [0.5, 3.5, 8.0])
def test_ctrl_c_simulate(after, case_dir, hostile_env):
    out = case_dir / "s.h5"
    rc, err = _interrupt(_start([*CASCADE, "--out", str(out)], case_dir, hostile_env), after)
    _assert_interrupted(rc, err)
    assert not out.exists()
    parts = out.with_name("s.h5.parts")
    leftovers = [p.name for p in case_dir.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    if parts.exists():  # what was finished is kept for a resume, which accepts the folder
        assert (parts / "job.json").is_file()


def test_ctrl_c_events(case_dir, hostile_env):
    argv = ["events", "generate", "--process", "minbias", "--pileup", "40", "--n", "20000", "--out",
            str(case_dir / "e.h5")]  # fmt: skip
    _assert_interrupted(*_interrupt(_start(argv, case_dir, hostile_env), 4.0))


def test_ctrl_c_optimize(case_dir, hostile_env):
    argv = ["optimize", str(case_dir / "quick.toml"), "--out", str(case_dir / "c")]
    _assert_interrupted(*_interrupt(_start(argv, case_dir, hostile_env), 5.0))


def test_ctrl_c_evaluate(case_dir, hostile_env):
    _assert_interrupted(*_interrupt(_start(["evaluate", "lhcb-run3", "--quick"], case_dir, hostile_env), 4.0))


def _second_run_refused(first: list[str], second: list[str], cwd: Path, env: dict[str, str], holder: str) -> None:
    p = _start(first, cwd, env)
    try:
        time.sleep(3.0)
        assert p.poll() is None, p.communicate()[1][-2000:]
        rc, _, err = run_calopt(second, cwd, env, timeout=60)
        assert "Traceback" not in err, err[-3000:]
        assert rc == 2, f"exit code {rc}; stderr {err[-2000:]}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("calopt: error:"), err[-2000:]
        assert holder in lines[0] and str(p.pid) in lines[0], lines[0]
        assert p.poll() is None, "the first run was disturbed"
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


def test_two_simulate_runs(case_dir, hostile_env):
    argv = [*CASCADE, "--out", str(case_dir / "s.h5")]
    _second_run_refused(argv, argv, case_dir, hostile_env, "s.h5")


def test_two_simulate_runs_overwrite(case_dir, hostile_env):
    argv = [*CASCADE, "--out", str(case_dir / "s.h5")]
    _second_run_refused(argv, [*argv, "--overwrite", "--seed", "3"], case_dir, hostile_env, "s.h5")


def test_two_event_runs(case_dir, hostile_env):
    argv = ["events", "generate", "--process", "minbias", "--pileup", "40", "--n", "20000", "--out",
            str(case_dir / "e.h5")]  # fmt: skip
    _second_run_refused(argv, argv, case_dir, hostile_env, "e.h5")


def test_two_campaign_runs(case_dir, hostile_env):
    first = ["optimize", str(case_dir / "quick.toml"), "--out", str(case_dir / "c")]
    second = [*first, "--resume"]
    _second_run_refused(first, second, case_dir, hostile_env, "campaign")
