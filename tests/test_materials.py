"""Material properties computed from composition against the PDG tables (physics-reference §3.1)."""

import pytest

from calopt.errors import CaloptInputError
from calopt.materials import ELEMENTS, MATERIALS, Material, radiation_length_tsai

# (X0 g/cm2, X0 cm, E_c MeV, R_M cm, lambda_I g/cm2, dE/dx_min MeV cm2/g), PDG
PDG = {
    "Pb": (6.37, 0.5612, 7.43, 1.602, 199.6, 1.122),
    "W": (6.76, 0.3504, 7.97, 0.9327, 191.9, 1.145),
    "polystyrene": (43.79, 41.31, 93.11, None, 81.7, 1.936),
}


@pytest.mark.parametrize("name", sorted(PDG))
def test_against_pdg(name):
    m = MATERIALS[name]
    x0, x0_cm, ec, rm, lam, dedx = PDG[name]
    assert m.X0 == pytest.approx(x0, rel=0.005)
    assert m.X0_mm / 10 == pytest.approx(x0_cm, rel=0.01)
    assert m.critical_energy == pytest.approx(ec, rel=0.03)
    if rm is not None:
        assert m.moliere_radius_mm / 10 == pytest.approx(rm, rel=0.03)
    assert m.lambda_I == pytest.approx(lam, rel=0.01)
    assert m.dedx_min == pytest.approx(dedx, rel=0.025)


def test_tsai_light_element():
    # hydrogen: PDG 63.04 g/cm2
    assert radiation_length_tsai(ELEMENTS["H"]) == pytest.approx(63.04, rel=0.01)


def test_mixture_rule():
    pb, ps = MATERIALS["Pb"], MATERIALS["polystyrene"]
    mix = Material.mix("pbps", [(pb, 1 / 3), (ps, 2 / 3)])
    w_pb = pb.density / 3 / mix.density
    assert 1 / mix.X0 == pytest.approx(w_pb / pb.X0 + (1 - w_pb) / ps.X0, rel=1e-9)
    # 2 mm Pb + 4 mm polystyrene: 6 mm / (2/5.612 + 4/413.1) mm^-1 = 16.39 mm (arithmetic of the rule)
    assert mix.X0_mm == pytest.approx(6.0 / (2 / 5.612 + 4 / 413.1), rel=0.005)
    # lambda and R_M of the mixture lie between the components
    assert pb.lambda_I_mm < mix.lambda_I_mm < ps.lambda_I_mm
    assert pb.moliere_radius_mm < mix.moliere_radius_mm < ps.moliere_radius_mm


def test_bad_material():
    with pytest.raises(CaloptInputError, match="unknown element"):
        Material("x", 1.0, {"Xx": 1.0})
    with pytest.raises(CaloptInputError, match="density"):
        Material("x", -1.0, {"Pb": 1.0})
