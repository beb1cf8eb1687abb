"""The output mechanisms every writer shares (issue #19): outputs checked by writing, files
described by their first bytes, a file of another kind never replaced, output locks, strict
JSON, size estimates, and the command line's finite numbers and named values."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from calopt.cli._common import dumps_json, finite_json
from calopt.cli.main import _given, finite_numbers
from calopt.errors import CaloptInputError
from calopt.files import (
    atomic_path,
    check_output_file,
    check_unlocked,
    check_writable,
    describe_file,
    make_output_folder,
    output_lock,
    remove_temporary_files,
)
from calopt.jobs import check_fits_in_memory, format_bytes, physical_memory


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/proc/calopt-test.h5", "cannot be written"),  # os.access says yes to root here
        ("{t}/afile/out.h5", "is a file, not a folder"),
        ("{t}/nowhere/out.h5", "does not exist"),
        ("{t}/" + "x" * 300 + ".h5", "longer than the file system allows"),
        ("{t}", "is a folder"),
    ],
)
def test_check_writable_tries(tmp_path, name, message):
    (tmp_path / "afile").write_text("x")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(CaloptInputError, match=message):
        check_writable(tmp_path.__class__(name.format(t=tmp_path)))
    assert sorted(os.listdir(tmp_path)) == before


def test_check_writable_leaves_nothing(tmp_path):
    check_writable(tmp_path / "new.h5")
    (tmp_path / "old.h5").write_text("keep")
    check_writable(tmp_path / "old.h5")
    assert sorted(os.listdir(tmp_path)) == ["old.h5"] and (tmp_path / "old.h5").read_text() == "keep"


@pytest.mark.parametrize(("name", "message"), [("afile", "exists and is not a folder"), ("afile/sub", "is a file"),
                                               ("/proc/calopt-test", "cannot create")])  # fmt: skip
def test_make_output_folder_refuses(tmp_path, name, message):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CaloptInputError, match=message):
        make_output_folder(tmp_path / name)


def test_make_output_folder_makes_and_probes(tmp_path):
    out = make_output_folder(tmp_path / "a" / "b")
    assert out.is_dir() and os.listdir(out) == []


def test_describe_file(tmp_path):
    import h5py

    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.attrs["format"] = "calopt-showers"
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.executescript("CREATE TABLE campaign (k); CREATE TABLE trials (id);")
    db.close()
    db = sqlite3.connect(tmp_path / "other.sqlite")
    db.execute("CREATE TABLE runs (id)")
    db.close()
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "d.toml").write_text('name = "x"\n')
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "bin").write_bytes(bytes(range(256)))
    (tmp_path / "r.html").write_text("<!DOCTYPE html><html></html>")
    (tmp_path / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    kinds = {name: describe_file(tmp_path / name) for name in sorted(os.listdir(tmp_path))}
    assert kinds == {
        "bin": "a binary file of unknown kind", "c.sqlite": "a calopt campaign database", "d.toml": "a TOML file",
        "empty": "an empty file", "notes.txt": "a text file", "other.sqlite": "an SQLite database",
        "p.png": "a PNG picture", "plain.h5": "an HDF5 file", "r.html": "an HTML page",
        "s.h5": "a calopt-showers file",
    }  # fmt: skip
    assert describe_file(tmp_path) == "a folder" and describe_file(tmp_path / "no") == "nothing (it does not exist)"


def test_describe_torch_file(tmp_path):
    import torch

    torch.save({"a": torch.zeros(2)}, tmp_path / "m.pt")
    assert describe_file(tmp_path / "m.pt") == "a PyTorch file (zip)"


def test_check_output_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    ours = tmp_path / "ours.dat"
    ours.write_text("ours")

    def is_ours(p):
        return p.read_text() == "ours"

    for overwrite in (False, True, None):  # another kind: refused whatever overwrite says
        with pytest.raises(CaloptInputError, match="is a text file, not a thing; refusing"):
            check_output_file(tmp_path / "notes.txt", "thing", is_ours, overwrite)
    with pytest.raises(CaloptInputError, match="use --overwrite"):
        check_output_file(ours, "thing", is_ours, False)
    check_output_file(ours, "thing", is_ours, True)
    check_output_file(ours, "thing", is_ours, None)
    check_output_file(tmp_path / "new.dat", "thing", is_ours, False)
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt", "ours.dat"]


def test_output_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    out = tmp_path / "o.h5"
    code = ("import sys, time; from pathlib import Path; from calopt.files import output_lock\n"
            "with output_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)")  # fmt: skip
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(CaloptInputError, match=rf"is in use by calopt process {p.pid} on "):
            check_unlocked(out)
        with pytest.raises(CaloptInputError, match=rf"'{out}' is in use by calopt process {p.pid}"):
            with output_lock(out):
                pass
    finally:
        p.kill()
        p.wait()
    check_unlocked(out)  # the kernel released the dead holder's lock
    with output_lock(out):
        with pytest.raises(CaloptInputError, match=f"process {os.getpid()}"):
            check_unlocked(out)
    assert os.listdir(tmp_path) == []  # the lock file goes with its holder


def test_interrupted_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "o.h5"
    with atomic_path(target) as tmp:
        open(tmp, "w").write("half")
        remove_temporary_files()  # what Ctrl-C does before the process ends
        assert not os.path.exists(tmp)
        open(tmp, "w").write("whole")  # (the process would be gone; here the write goes on)
    assert target.read_text() == "whole" and os.listdir(tmp_path) == ["o.h5"]


def test_finite_json():
    doc = {"a": float("nan"), "b": [1.0, float("inf"), np.float32(2.5)], "c": np.array([np.nan, 1.0]),
           "d": (np.int64(3), -np.inf), "e": "text"}  # fmt: skip
    text = dumps_json(doc)
    assert json.loads(text) == {"a": None, "b": [1.0, None, 2.5], "c": [None, 1.0], "d": [3, None], "e": "text"}
    assert "NaN" not in text and "Infinity" not in text
    assert finite_json(1.5) == 1.5 and finite_json(float("nan")) is None


def test_finite_numbers_names_the_option():
    import typer

    def cmd(sigma_t: float = typer.Option(1.0, "--sigma-t"), rng: tuple[float, float] = typer.Option((1.0, 2.0),
            "--gun-energy-range"), n: int = 3) -> float:  # fmt: skip
        return sigma_t

    checked = finite_numbers(cmd)
    assert checked(sigma_t=2.0, rng=(1.0, 5.0), n=1) == 2.0
    with pytest.raises(CaloptInputError, match="--sigma-t must be a finite number, got inf"):
        checked(sigma_t=math.inf, rng=(1.0, 2.0), n=1)
    with pytest.raises(CaloptInputError, match="--gun-energy-range must be a finite number, got nan"):
        checked(sigma_t=1.0, rng=(1.0, math.nan), n=1)


def test_given_value_of_an_option():
    class P:
        opts = ("--n",)
        nargs = 1

    class R:
        opts = ("--energy-range",)
        nargs = 2

    assert _given(["simulate", "--n", "0", "--n", "-3"], P()) == "'-3'"
    assert _given(["simulate", "--n=abc"], P()) == "'abc'"
    assert _given(["x", "--energy-range", "1", "z"], R()) == "'1' 'z'"
    assert _given(["x"], P()) is None and _given(["x", "--n"], None) is None


def test_memory_estimate_refuses_what_cannot_fit():
    check_fits_in_memory("--n", 1000, 1e3, "shower")
    with pytest.raises(CaloptInputError, match=r"--n 1000000000000 would hold about 1.0 PB in memory \(1.0 kB per "
                                               r"shower\), more than this machine's"):  # fmt: skip
        check_fits_in_memory("--n", 10**12, 1e3, "shower")
    assert physical_memory() > 10**8
    assert [format_bytes(x) for x in (5, 1500, 2.5e9, 3e15)] == ["5 B", "1.5 kB", "2.5 GB", "3.0 PB"]
