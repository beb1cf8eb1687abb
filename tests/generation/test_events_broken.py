"""calopt-events files of the right format with broken insides are refused on reading, with
one line naming the file and the problem (issue #19)."""

import h5py
import numpy as np
import pytest

from calopt.errors import FileFormatError
from calopt.generation.events import PARTICLE_FIELDS, Events, is_events_file, read_events, write_events
from tests.helpers import edited_h5, replace_dataset

WIDTH = {"p": 3, "vertex": 4, "entry": 3}


@pytest.fixture
def good(tmp_path):
    m, n = 7, 3
    particles = {k: np.zeros((m, WIDTH[k]) if k in WIDTH else m, dtype=t) for k, t in PARTICLE_FIELDS.items()}
    ev = Events(particles=particles, offsets=np.array([0, 2, 2, 7]), n_pileup=np.array([0, 1, 2]),
                pv_position=np.zeros((n, 2)), truth={"b": np.zeros((n, 4))},
                attrs={"process": "gun", "pileup_mu": 0.0, "seed": 1, "sigma_z_mm": 45.0, "sigma_t_ns": 0.2,
                       "z_front_mm": 12620.0, "calopt_version": "test"})  # fmt: skip
    path = tmp_path / "good.h5"
    write_events(path, ev)
    return path


CASES = [
    (lambda f: f.__delitem__("particles/energy"), "the dataset 'particles/energy' is missing"),
    (lambda f: f.__delitem__("particles"), "the dataset 'particles/pdg' is missing"),
    (
        replace_dataset("particles/p", np.zeros((7, 4), np.float32)),
        r"'particles/p' has shape \(7, 4\), expected \(7, 3\)",
    ),
    (
        replace_dataset("particles/charge", np.zeros(6, np.int8)),
        r"'particles/charge' has shape \(6,\), expected \(7,\) "
        r"\(M = 7 from 'particles/pdg'\)",
    ),
    (replace_dataset("particles/pdg", np.zeros(7, np.float32)), "'particles/pdg' holds floats, expected integers"),
    (
        replace_dataset("n_pileup", np.zeros(2, np.int32)),
        r"'n_pileup' has shape \(2,\), expected \(3,\) \(N = 3 from "
        r"'offsets'\)",
    ),
    (replace_dataset("truth/b", np.zeros((2, 4))), r"'truth/b' has shape \(2, 4\), expected \(3, 4\)"),
    (lambda f: f.attrs.__delitem__("process"), "the attribute 'process' is missing"),
    (replace_dataset("offsets", np.array([0, 2, 1, 7])), "'offsets' must rise from 0 to the number of particles"),
    (
        replace_dataset("offsets", np.array([0, 2, 2, 9])),
        r"'offsets' must rise from 0 to the number of particles \(7\), got "
        "0 .. 9",
    ),
]


@pytest.mark.parametrize("edit, message", CASES)
def test_broken_insides_are_refused_with_one_line(good, tmp_path, edit, message):
    path = edited_h5(good, tmp_path / "broken.h5", edit)
    assert is_events_file(path)
    with pytest.raises(FileFormatError, match=message) as exc:
        read_events(path)
    assert str(exc.value).startswith(f"{str(path)!r} is a broken calopt-events file: ")
    assert "\n" not in str(exc.value)


def test_a_good_file_is_read(good):
    ev = read_events(good)
    assert len(ev) == 3 and ev.n_particles == 7 and ev.truth["b"].shape == (3, 4)


def test_a_shower_file_is_not_an_events_file(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calopt-showers"
        f.attrs["format_version"] = 1
    with pytest.raises(FileFormatError, match="is a calopt-showers file, not a calopt-events file"):
        read_events(path)
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:100])
    with pytest.raises(FileFormatError, match=r"not a readable HDF5 file \(truncated or corrupt\), expected a "
                                              "calopt-events file"):  # fmt: skip
        read_events(tmp_path / "cut.h5")
