"""The technology catalogue."""

import pytest

from calopt.detector import TECHNOLOGIES, get_technology
from calopt.errors import CaloptInputError


def test_shashlik_matches_reference():
    t = get_technology("lhcb-shashlik")
    # physics-reference §1: 24.2 X0 (Pb+Sc only; paper adds a little), 1.1 lambda_I,
    # R_M 3.6-3.75 cm, f_mip = 0.239, f_em ~ 0.156, sampling term estimate 11 %
    assert t.depth_mm == pytest.approx(66 * 6.24)
    assert t.depth_X0 == pytest.approx(24.2, abs=0.4)
    assert t.depth_lambda == pytest.approx(1.1, abs=0.03)
    assert 36.0 <= t.effective_material.moliere_radius_mm <= 38.0
    assert t.mip_sampling_fraction == pytest.approx(0.239, abs=0.004)
    assert t.sampling_fraction == pytest.approx(0.156, abs=0.004)
    assert t.sampling_term_estimate == pytest.approx(0.11, abs=0.005)
    # 40.4/60.6/121.2 mm cells are exact sums of the 20.2 mm fine grid; 30 x 30 grid
    assert [c / t.fine_pitch for c in t.cell_sizes] == pytest.approx([2, 3, 6])
    assert t.grid == 30


@pytest.mark.parametrize("name", sorted(TECHNOLOGIES))
def test_every_technology_is_consistent(name):
    t = TECHNOLOGIES[name]
    p = t.properties()
    assert 20 < p["depth_X0"] < 35
    assert 0.9 < p["depth_lambda_I"] < 1.4
    assert 0 < p["sampling_fraction"] < p["mip_sampling_fraction"] < 1
    assert t.section_edges[0] == 0 and t.section_edges[-1] == pytest.approx(t.depth_mm)
    assert 0 < t.split_index < len(t.section_edges) - 1
    assert t.sources
    for c in t.cell_sizes:
        assert (c / t.fine_pitch) == pytest.approx(round(c / t.fine_pitch))
        assert 121.2 / c == pytest.approx(round(121.2 / c))  # cells tile a module


def test_unknown_technology():
    with pytest.raises(CaloptInputError, match="unknown technology 'foo'"):
        get_technology("foo")


def test_shashlik_effective_x0_with_paper():
    # physics-reference §1: X0_eff = 17.0 mm over the 41.2 cm module
    assert get_technology("lhcb-shashlik").effective_material.X0_mm == pytest.approx(17.0, rel=0.01)
