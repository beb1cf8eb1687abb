"""The checks of the insides of calopt's HDF5 formats (calopt.hdf5) and the shared opener of
those formats (calopt.files.open_format, is_format, check_format, read_attrs): a file of the
right format with broken insides, or of another kind, is refused with one line naming it."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from calopt.errors import CaloptInputError, FileFormatError, ShowerFormatError
from calopt.files import check_format, is_format, open_format, read_attrs
from calopt.hdf5 import Array, check_attrs, check_datasets, reading

LAYOUT = {
    "a": Array("float", (("N", "K"),)),
    "b": Array("integer", (("N",), ("N", 1))),
    "c": Array("float", (("N+1",),), optional=True),
}


def _file(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
    return path


def _check(path, layout=LAYOUT):
    with h5py.File(path, "r") as f:
        return check_datasets(path, f, layout, "test-format")


def test_a_good_file_gives_its_named_lengths(tmp_path):
    p = _file(tmp_path / "g.h5", a=np.zeros((5, 3)), b=np.arange(5), c=np.zeros(6))
    assert _check(p) == {"N": 5, "K": 3}
    q = _file(tmp_path / "h.h5", a=np.zeros((5, 3)), b=np.arange(5).reshape(5, 1))  # the other shape; no "c"
    assert _check(q) == {"N": 5, "K": 3}


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"b": np.arange(5)}, "the dataset 'a' is missing"),
        (
            {"a": np.zeros((5, 3)), "b": np.arange(4)},
            r"'b' has shape \(4,\), expected \(5,\) or \(5, 1\) \(N = 5 "
            r"from 'a'\)",
        ),
        ({"a": np.zeros(15), "b": np.arange(5)}, r"'a' has shape \(15,\), expected \(N, K\)"),
        ({"a": np.array([b"x"] * 5), "b": np.arange(5)}, "'a' holds text, expected floats"),
        ({"a": np.zeros((5, 3)), "b": np.zeros(5)}, "'b' holds floats, expected integers"),
        ({"a": np.zeros((5, 3)), "b": np.ones(5, dtype=bool)}, "'b' holds booleans, expected integers"),
        ({"a": np.zeros((5, 3)), "b": np.arange(5), "c": np.zeros(5)}, r"'c' has shape \(5,\), expected \(6,\)"),
    ],
)
def test_broken_datasets_are_named(tmp_path, datasets, message):
    p = _file(tmp_path / "broken.h5", **datasets)
    with pytest.raises(FileFormatError, match=message) as exc:
        _check(p)
    assert str(exc.value).startswith(f"{str(p)!r} is a broken test-format file: ")
    assert "\n" not in str(exc.value)


def test_a_group_where_a_dataset_belongs(tmp_path):
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as f:
        f.create_group("a")
    with pytest.raises(FileFormatError, match="'a' is a group, expected a dataset"):
        _check(p)


def test_no_negative_length_from_an_empty_offsets_array(tmp_path):
    p = _file(tmp_path / "e.h5", c=np.zeros(0, dtype=np.int64))
    with pytest.raises(FileFormatError, match=r"'c' has shape \(0,\), expected \(N\+1,\)"):
        _check(p, {"c": Array("integer", (("N+1",),)), "d": Array("integer", (("N",),))})


def test_check_attrs(tmp_path):
    p = tmp_path / "a.h5"
    with h5py.File(p, "w") as f:
        f.attrs["name"] = "x"
        f.attrs["value"] = 1.5
        f.attrs["edges"] = np.arange(3.0)
        f.attrs["bad"] = "text"
    with h5py.File(p, "r") as f:
        check_attrs(p, f, {"name": "text", "value": "number", "edges": "numbers"}, "fmt")
        with pytest.raises(FileFormatError, match="the attribute 'missing' is missing"):
            check_attrs(p, f, {"missing": "text"}, "fmt")
        with pytest.raises(FileFormatError, match="the attribute 'bad' is 'text', expected a number"):
            check_attrs(p, f, {"bad": "number"}, "fmt")
        with pytest.raises(FileFormatError, match=r"the attribute 'value' is 1\.5, expected a list of numbers"):
            check_attrs(p, f, {"value": "numbers"}, "fmt")


def test_reading_turns_hdf5_errors_into_one_line(tmp_path):
    with pytest.raises(ShowerFormatError, match=r"'x.h5' is a broken fmt file: its data cannot be read, truncated or "
                                                r"corrupt \(bad chunk\)"):  # fmt: skip
        with reading(Path("x.h5"), "fmt", ShowerFormatError):
            raise OSError("bad chunk\nmore detail")
    with pytest.raises(KeyError):  # not an HDF5 error: a bug, left as it is
        with reading(tmp_path, "fmt"):
            raise KeyError("x")


# -- calopt.files: the opener of every calopt HDF5 format


def _formatted(path, fmt="calopt-showers", version=1):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = fmt
        f.attrs["format_version"] = version
    return path


def test_open_format_says_what_a_file_is_instead(tmp_path):
    cases = {
        "notes.txt": (b"some notes\n", "is a text file, not an HDF5 file; expected a calopt-showers file"),
        "empty.h5": (b"", "is an empty file, not an HDF5 file; expected a calopt-showers file"),
        "noise.h5": (bytes(range(256)) * 4, "is a binary file of unknown kind, not an HDF5 file"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ShowerFormatError, match=message):
            open_format(tmp_path / name, "calopt-showers", 1, ShowerFormatError)
    good = _formatted(tmp_path / "good.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(good[: len(good) // 2])
    with pytest.raises(ShowerFormatError, match=r"'.*cut.h5' is not a readable HDF5 file \(truncated or corrupt\)"):
        open_format(tmp_path / "cut.h5", "calopt-showers", 1, ShowerFormatError)
    with pytest.raises(ShowerFormatError, match="is a folder, expected a calopt-showers file"):
        open_format(tmp_path, "calopt-showers", 1, ShowerFormatError)
    with pytest.raises(CaloptInputError, match=r"calopt-showers file '.*none.h5' does not exist"):
        open_format(tmp_path / "none.h5", "calopt-showers", 1, ShowerFormatError)


def test_a_checkpoint_is_named_as_one_where_showers_are_expected(tmp_path):
    import torch

    torch.save({"format": "calopt-surrogate"}, tmp_path / "m.pt")
    with pytest.raises(ShowerFormatError, match=r"is a calopt-surrogate checkpoint, not an HDF5 file; expected a cal"):
        open_format(tmp_path / "m.pt", "calopt-showers", 1, ShowerFormatError)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ShowerFormatError, match=r"PyTorch file \(zip, a checkpoint\?\).*expected a calopt-showers"):
        open_format(tmp_path / "other.pt", "calopt-showers", 1, ShowerFormatError)


def test_check_format_names_the_format_found(tmp_path):
    for fmt, message in [
        ("calopt-events", "is a calopt-events file, not a calopt-showers file"),
        ("other", r"is not a calopt-showers file \(format attribute: 'other'\)"),
    ]:
        p = _formatted(tmp_path / f"{fmt}.h5", fmt)
        with h5py.File(p, "r") as f, pytest.raises(FileFormatError, match=message):
            check_format(p, f, "calopt-showers", 1)
    bare = tmp_path / "bare.h5"
    h5py.File(bare, "w").close()
    with h5py.File(bare, "r") as f, pytest.raises(FileFormatError, match="without a calopt format attribute"):
        check_format(bare, f, "calopt-showers", 1)
    odd = _formatted(tmp_path / "odd.h5", version=1)
    with h5py.File(odd, "r+") as f:
        f.attrs["format_version"] = "one"
    with h5py.File(odd, "r") as f, pytest.raises(FileFormatError, match="unreadable format attribute"):
        check_format(odd, f, "calopt-showers", 1)


def test_is_format_never_raises(tmp_path):
    assert is_format(_formatted(tmp_path / "s.h5"), "calopt-showers", 1)
    assert not is_format(tmp_path / "s.h5", "calopt-showers", 2)
    assert not is_format(tmp_path / "s.h5", "calopt-events", 1)
    (tmp_path / "t.h5").write_text("text")
    assert not is_format(tmp_path / "t.h5", "calopt-showers", 1)
    assert not is_format(tmp_path, "calopt-showers", 1)  # a folder
    assert not is_format(tmp_path / "none.h5", "calopt-showers", 1)


def test_read_attrs_decodes_what_it_can(tmp_path):
    p = _formatted(tmp_path / "s.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["name"] = np.bytes_(b"caf\xe9")  # not UTF-8
        f.attrs["n"] = 3
    with h5py.File(p, "r") as f:
        attrs = read_attrs(f)
    assert attrs == {"name": "caf\ufffd", "n": 3}
