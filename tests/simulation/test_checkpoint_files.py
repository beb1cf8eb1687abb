"""Files given where a calopt-surrogate checkpoint is expected: another kind of file is named,
a truncated or corrupt checkpoint is one line, torch's own texts (pickles, ``weights_only``)
never reach the user (issue #19)."""

import zipfile

import h5py
import numpy as np
import pytest
import torch

from calopt.errors import CaloptInputError, FileFormatError
from calopt.simulation.base import get_simulator
from calopt.simulation.surrogates.checkpoint import load_checkpoint
from calopt.simulation.surrogates.simulator import DEFAULT_MODEL, load_surrogate
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def ck():
    return load_checkpoint(DEFAULT_MODEL)


def _showers_file(path):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calopt-showers"
        f.attrs["format_version"] = 1
    return path


def _refused(path, message):
    with pytest.raises(FileFormatError, match=message) as exc:
        load_checkpoint(path)
    text = str(exc.value)
    said = text.split(f"{str(path)!r}", 1)[1]  # what follows the file's name
    assert "\n" not in text and "weights_only" not in said and "pickle" not in said.lower()
    return text


def test_other_kinds_of_file_are_named(tmp_path):
    _refused(_showers_file(tmp_path / "s.h5"), r"'.*s.h5' is a calopt-showers file, expected a calopt-surrogate "
                                               "checkpoint")  # fmt: skip
    (tmp_path / "c.toml").write_text('name = "x"\n')
    _refused(tmp_path / "c.toml", "is a TOML file, expected a calopt-surrogate checkpoint")
    (tmp_path / "notes.pt").write_text("notes\n")
    _refused(tmp_path / "notes.pt", r"is not a readable calopt-surrogate checkpoint \(a text file\)")
    (tmp_path / "empty.pt").write_bytes(b"")
    _refused(tmp_path / "empty.pt", r"is not a readable calopt-surrogate checkpoint \(an empty file\)")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(tmp_path / "noise.pt", r"not a readable calopt-surrogate checkpoint \(a binary file of unknown kind\)")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("a.txt", "x")
    _refused(tmp_path / "a.zip", "is a zip archive, not a PyTorch file; expected a calopt-surrogate checkpoint")
    (tmp_path / "folder.pt").mkdir()
    _refused(tmp_path / "folder.pt", "is a folder, expected a calopt-surrogate checkpoint")
    with pytest.raises(CaloptInputError, match=r"surrogate checkpoint '.*none.pt' does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_truncated_and_corrupt_checkpoints(tmp_path):
    data = DEFAULT_MODEL.read_bytes()
    for name, cut in [("half.pt", data[: len(data) // 2]), ("head.pt", data[:100])]:
        (tmp_path / name).write_bytes(cut)
        text = _refused(tmp_path / name, r"is not a readable calopt-surrogate checkpoint \(truncated or corrupt\)")
        assert name in text
    with zipfile.ZipFile(DEFAULT_MODEL) as z:  # a checkpoint whose pickle is damaged, its zip intact
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        with zipfile.ZipFile(tmp_path / "damaged.pt", "w") as out:
            for item in z.infolist():
                out.writestr(item, b"\x80\x02garbage" if item.filename == pkl else z.read(item.filename))
    _refused(tmp_path / "damaged.pt", r"is not a readable calopt-surrogate checkpoint \(truncated or corrupt\)")


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    _refused(tmp_path / "module.pt", "is a PyTorch file holding Python objects other than tensors and plain "
                                     "containers .*, not a calopt-surrogate checkpoint")  # fmt: skip


def test_broken_checkpoints_are_named(tmp_path, ck):
    torch.save({k: v for k, v in ck.items() if k != "state"}, tmp_path / "nostate.pt")
    _refused(tmp_path / "nostate.pt", "is a broken calopt-surrogate checkpoint: its key 'state' is missing")
    torch.save({**ck, "representation": [1, 2]}, tmp_path / "rep.pt")
    _refused(tmp_path / "rep.pt", "its key 'representation' is a list, expected a dict")
    torch.save({**ck, "state": {k: v[..., :1] for k, v in ck["state"].items()}}, tmp_path / "weights.pt")
    with pytest.raises(FileFormatError, match="is a broken calopt-surrogate checkpoint: its model cannot be rebuilt "
                                              r"\(RuntimeError: "):  # fmt: skip
        load_surrogate(tmp_path / "weights.pt")
    assert load_surrogate(DEFAULT_MODEL).technology == ck["technology"]  # the good one still loads


def test_backends_and_commands_say_what_the_file_is(tmp_path, capsys):
    showers = _showers_file(tmp_path / "showers.h5")
    with pytest.raises(FileFormatError, match="calopt-showers file, expected a calopt-surrogate checkpoint"):
        get_simulator(str(showers))
    argv = ["surrogate", "sample", str(showers), "--particle", "gamma", "--energy", "10", "--n", "5",
            "--out", str(tmp_path / "s.h5")]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "calopt-showers" in err and "checkpoint" in err and "weights_only" not in err
    assert err.index("calopt-showers") < err.index("checkpoint") and not (tmp_path / "s.h5").exists()
