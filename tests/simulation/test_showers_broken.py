"""calopt-showers files of the right format with broken insides are refused on reading, with
one line naming the file and the problem (issue #19)."""

import shutil

import h5py
import numpy as np
import pytest

from calopt.errors import ShowerFormatError
from calopt.simulation.showers import Showers, is_shower_file, read_showers, write_showers
from tests.helpers import edited_h5, replace_dataset, run_cli

N, S, H = 12, 2, 6


@pytest.fixture
def good(tmp_path):
    rng = np.random.default_rng(0)
    attrs = {"technology": "lhcb-shashlik", "fine_pitch_mm": 20.2, "section_edges_mm": np.linspace(0.0, 400.0, S + 1),
             "generator": "test", "seed": 1, "sampling_fraction": 0.1}  # fmt: skip
    sh = Showers(showers=rng.random((N, S, H, H), dtype=np.float32), times=rng.random((N, S, H, H), dtype=np.float32),
                 incident_energies=np.full((N, 1), 1000.0), momenta=np.tile([0.0, 0.0, 1000.0], (N, 1)),
                 points=np.zeros((N, 2)), pdg=np.full(N, 22), attrs=attrs,
                 diagnostics={"energy_balance": np.ones((N, 3))})  # fmt: skip
    path = tmp_path / "good.h5"
    write_showers(path, sh)
    return path


def _drop_attr(name):
    return lambda f: f.attrs.__delitem__(name)


def _set_attr(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


CASES = [
    (lambda f: f.__delitem__("showers"), "the dataset 'showers' is missing"),
    (lambda f: f.__delitem__("pdg"), "the dataset 'pdg' is missing"),
    (
        replace_dataset("incident_energies", np.ones((N - 2, 1))),
        r"'incident_energies' has shape \(10, 1\), expected "
        r"\(12, 1\) or \(12,\) \(N = 12 from 'showers'\)",
    ),
    (
        replace_dataset("showers", np.ones((N, S * H * H), np.float32)),
        r"'showers' has shape \(12, 72\), expected \(N, S, H, W\)",
    ),
    (replace_dataset("showers", np.array([b"abc"] * N)), "'showers' holds text, expected floats"),
    (replace_dataset("pdg", np.full(N, 22.0)), "'pdg' holds floats, expected integers"),
    (replace_dataset("momenta", np.ones((N, 2))), r"'momenta' has shape \(12, 2\), expected \(12, 3\)"),
    (replace_dataset("points", np.ones((N + 1, 2))), r"'points' has shape \(13, 2\), expected \(12, 2\)"),
    (
        replace_dataset("times", np.ones((N, S, H, H - 1), np.float32)),
        r"'times' has shape \(12, 2, 6, 5\), expected "
        r"\(12, 2, 6, 6\)",
    ),
    (_drop_attr("technology"), "the attribute 'technology' is missing"),
    (_drop_attr("section_edges_mm"), "the attribute 'section_edges_mm' is missing"),
    (_set_attr("fine_pitch_mm", "wide"), "the attribute 'fine_pitch_mm' is 'wide', expected a number"),
    (_set_attr("section_edges_mm", np.arange(5.0)), "'section_edges_mm' has 5 values for 2 sections, expected 3"),
    (
        replace_dataset("diagnostics/energy_balance", np.ones((3, 3))),
        "'diagnostics/energy_balance' is not an array of one "
        r"row per shower \(12\)",
    ),
]


@pytest.mark.parametrize("edit, message", CASES)
def test_broken_insides_are_refused_with_one_line(good, tmp_path, edit, message):
    path = edited_h5(good, tmp_path / "broken.h5", edit)
    assert is_shower_file(path)  # it says it is one: an output check may replace it
    with pytest.raises(ShowerFormatError, match=message) as exc:
        read_showers(path)
    text = str(exc.value)
    assert text.startswith(f"{str(path)!r} is a broken calopt-showers file: ") and "\n" not in text


def test_a_good_file_and_a_flat_energy_column_are_read(good, tmp_path):
    sh = read_showers(good)
    assert sh.showers.shape == (N, S, H, H) and sh.incident_energies.shape == (N, 1)
    flat = read_showers(
        edited_h5(good, tmp_path / "broken.h5", replace_dataset("incident_energies", np.full(N, 1000.0)))
    )
    assert flat.incident_energies.shape == (N, 1) and flat.times is not None
    no_times = read_showers(edited_h5(good, tmp_path / "broken.h5", lambda f: f.__delitem__("times")))
    assert no_times.times is None


def test_corrupt_data_is_one_line(good, tmp_path):
    """Data that HDF5 cannot read (a compressed chunk overwritten) gives one line, not OSError."""
    path = tmp_path / "corrupt.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r") as f:
        chunk = f["showers"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(chunk.byte_offset)
        fh.write(b"\xff" * chunk.size)
    with pytest.raises(ShowerFormatError, match="is a broken calopt-showers file: its data cannot be read, truncated "
                                                "or corrupt"):  # fmt: skip
        read_showers(path)


def test_truncated_and_empty_files(good, tmp_path):
    data = good.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(ShowerFormatError, match=r"'.*cut.h5' is not a readable HDF5 file \(truncated or corrupt\)"):
        read_showers(tmp_path / "cut.h5")
    with pytest.raises(ShowerFormatError, match=r"'.*empty.h5' is an empty file, not an HDF5 file; expected a "
                                                "calopt-showers file"):  # fmt: skip
        read_showers(tmp_path / "empty.h5")
    assert not is_shower_file(tmp_path / "cut.h5") and not is_shower_file(tmp_path / "empty.h5")


def test_the_cli_prints_one_line_and_exit_code_2(good, tmp_path, capsys):
    path = edited_h5(good, tmp_path / "broken.h5", replace_dataset("incident_energies", np.ones((N - 2, 1))))
    before = path.read_bytes()
    code, out, err = run_cli(["surrogate", "evaluate", "gflash", "--reference", str(path)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("calopt: error: ") and "broken.h5" in err and "incident_energies" in err
    assert path.read_bytes() == before
