"""The calopt-showers v1 file format."""

import h5py
import numpy as np
import pytest

from calopt.errors import ShowerFormatError
from calopt.simulation.showers import concatenate, read_showers, write_showers
from tests.conftest import gun


def test_round_trip(tmp_path, sim, shashlik):
    sh = sim.simulate(gun("gamma", 1000.0, 3), shashlik, seed=1)
    path = tmp_path / "s.h5"
    write_showers(path, sh)
    back = read_showers(path)
    np.testing.assert_array_equal(back.showers, sh.showers)
    np.testing.assert_array_equal(back.times, sh.times)
    assert back.incident_energies.shape == (3, 1) and back.momenta.shape == (3, 3) and back.points.shape == (3, 2)
    assert back.pdg.dtype == np.int32 and back.showers.dtype == np.float32
    assert back.attrs["technology"] == "lhcb-shashlik" and back.attrs["generator"] == "cascade"
    assert list(back.attrs["section_edges_mm"]) == pytest.approx(shashlik.section_edges)
    with h5py.File(path) as f:
        assert f.attrs["format"] == "calopt-showers" and f.attrs["format_version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temporary file left
    both = concatenate([sh, back])
    assert len(both) == 6


def test_refuses_other_formats(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ShowerFormatError, match="not a calopt-showers file"):
        read_showers(p)
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "calopt-showers"
        f.attrs["format_version"] = 99
    with pytest.raises(ShowerFormatError, match="format_version 99"):
        read_showers(p)
    text = tmp_path / "t.h5"
    text.write_text("hello")
    with pytest.raises(ShowerFormatError, match="not an HDF5 file"):
        read_showers(text)
