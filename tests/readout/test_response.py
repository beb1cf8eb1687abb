"""Detector response of the readout: light-collection non-uniformity, gains, coherent noise,
spill-over and timing tiers (physics-reference §2b)."""

import numpy as np
import pytest

from calopt.detector.design import design_from_dict, load_design
from calopt.detector.technologies import get_technology
from calopt.readout import Readout, ReadoutSettings
from calopt.readout.readout import _light_response

TINY = {"library_energies": (1.0, 8.0), "library_angles": (0.0, 0.2), "library_n_per_point": 2}
IDEAL = {"noise_mev": 0.0, "coherent_noise_mev": 0.0, "threshold_mev": 0.0, "photostatistics": False,
         "gain_spread": 0.0, "light_collection": False, "spillover": False, **TINY}  # fmt: skip


def _gauss_weight(u, v, h, a_local, d, a_global, a_refl, w):
    """Gauss EcalSensDet's correction at one point (u, v) from the cell centre, written out."""
    c = 1.0 + a_local / 2 * (1 - np.cos(2 * np.pi * u / d)) * (1 - np.cos(2 * np.pi * v / d))
    c += a_global * (h - u) * (u + h) / h**2 * (h - v) * (v + h) / h**2
    c += a_refl * (np.exp(-abs(u + h) / w) + np.exp(-abs(u - h) / w) + np.exp(-abs(v + h) / w)
                   + np.exp(-abs(v - h) / w))  # fmt: skip
    return c


@pytest.mark.parametrize("size", [40.4, 60.6, 121.2])
def test_light_response_is_the_gauss_model_averaged_over_a_fine_cell(size):
    lc = get_technology("lhcb-shashlik").light_collection
    a_local, d, a_global = lc.parameters(size)
    h = size / 2
    values = {"A_local": a_local, "d": d, "A_global": a_global, "A_refl": lc.reflection_height,
              "w": lc.reflection_width_mm}  # fmt: skip
    par = {k: np.array([v]) for k, v in values.items()}
    rng = np.random.default_rng(1)
    for _ in range(5):
        x1, y1 = rng.uniform(-h, h - 20.2, size=2)
        x2, y2 = x1 + 20.2, y1 + 20.2
        g = np.linspace(0, 1, 401)[1:] - 1 / 800  # midpoints
        uu, vv = np.meshgrid(x1 + g * 20.2, y1 + g * 20.2)
        brute = _gauss_weight(uu, vv, h, a_local, d, a_global, lc.reflection_height, lc.reflection_width_mm).mean()
        exact = _light_response(np.array([x1]), np.array([x2]), np.array([y1]), np.array([y2]), np.array([h]), par)
        assert exact[0] == pytest.approx(brute, rel=1e-5)


def test_light_weights_average_to_one_over_a_uniformly_lit_cell_and_follow_the_dome():
    ro = Readout(load_design("lhcb-run3"), ReadoutSettings(**TINY))
    t = ro.cells.table
    ch = int(np.nonzero(np.isclose(t["size"], 121.2))[0][0])  # an outer cell: 3 % dome
    pitch = 121.2 / 60
    offsets = (np.arange(60) + 0.5) * pitch - 60.6
    X, Y = (a.ravel() + t[k][ch] for a, k in zip(np.meshgrid(offsets, offsets), ("x", "y"), strict=True))
    w = ro._light_weights(np.full(X.size, ch), X, Y, pitch / 2)
    assert w.mean() == pytest.approx(1.0, abs=1e-9)
    centre = w.reshape(60, 60)[30, 30]
    quarter = w.reshape(60, 60)[30, 45]
    assert centre > quarter  # the dome: more light from the middle of the cell
    # the edges reflect light back: +9 % at the border, 6 mm wide
    assert w.reshape(60, 60)[30, 0] > quarter


def test_gains_are_fixed_per_design_and_seed():
    d = load_design("lhcb-run3")
    a = Readout(d, ReadoutSettings(**TINY)).gains
    np.testing.assert_array_equal(a, Readout(d, ReadoutSettings(**TINY)).gains)
    b = Readout(d, ReadoutSettings(calibration_seed=1, **TINY)).gains
    assert not np.array_equal(a, b)
    assert a.std() == pytest.approx(0.01, rel=0.1) and a.mean() == pytest.approx(1.0, abs=0.001)
    assert not np.array_equal(a[:100], Readout(load_design("upgrade2-like"), ReadoutSettings(**TINY)).gains[:100])
    # the same channels under another name or timing keep their gains
    doc = d.spec.model_dump(mode="json") | {"name": "renamed"}
    doc["regions"][0]["timing"] = 20.0
    np.testing.assert_array_equal(a, Readout(design_from_dict(doc), ReadoutSettings(**TINY)).gains)


def test_gain_error_scales_a_cell_and_the_coherent_noise_is_common_to_all_channels():
    d = load_design("lhcb-run3")
    st = ReadoutSettings(**{**IDEAL, "gain_spread": 0.01})
    ro = Readout(d, st)
    sums = (np.array([10, 20]), np.array([1000.0, 2000.0]), np.full(2, np.nan))
    hits = ro._electronics(sums, np.random.default_rng(0))
    np.testing.assert_allclose(hits.energy, sums[1] * ro.gains[[10, 20]], rtol=1e-6)
    st = ReadoutSettings(**{**IDEAL, "coherent_noise_mev": 3.0, "threshold_mev": -1e9})
    ro = Readout(d, st)
    shifts = []
    for s in range(200):
        h = ro._electronics(sums, np.random.default_rng(s))
        shift = h.energy - sums[1]
        assert shift[0] == pytest.approx(shift[1], abs=1e-3)  # the same offset in every channel
        shifts.append(shift[0])
    assert np.std(shifts) == pytest.approx(3.0, rel=0.15)


def test_spillover_adds_the_previous_crossings_pileup(tmp_path):
    from calopt.generation import EventSpec, generate_events, read_events

    ev = read_events(generate_events(EventSpec(process="minbias", n=3, pileup=2.0, seed=3), tmp_path / "m.h5"))
    d = load_design("upgrade2-like")
    on = Readout(d, ReadoutSettings(**{**IDEAL, "spillover": True}))
    off = Readout(d, ReadoutSettings(**IDEAL))
    f = on._spill_fraction
    assert f.max() == pytest.approx(np.exp(-2.5))  # spacal-w: 10 ns pulse
    for i in range(len(ev)):
        a = on.read_crossing(ev, i, np.random.default_rng(0))
        b = off.read_crossing(ev, i, np.random.default_rng(0))
        prev_ch, prev_e, _ = off.pileup_energies(ev, i - 1 if i > 0 else 1)
        extra = a.energy.sum() - b.energy.sum()
        assert extra == pytest.approx((prev_e * f[prev_ch]).sum(), rel=1e-4)
        # the spilled energy is not this crossing's true energy
        assert a.true_energy.sum() == pytest.approx(b.true_energy.sum(), rel=1e-5)


def test_timing_tier_sets_the_constant_term_and_its_cost():
    region = {"name": "all", "technology": "spacal-w", "cell_size": 15.15, "shape": {"type": "rest"}}
    published = design_from_dict({"name": "p", "regions": [{**region, "timing": True}]})
    tier = design_from_dict({"name": "t", "regions": [{**region, "timing": 5.0}]})
    none = design_from_dict({"name": "n", "regions": [{**region, "timing": "none"}]})
    assert published.time_constant_ps.max() == 15.0 and tier.time_constant_ps.max() == 5.0
    assert not none.timing.any()
    c_pub = published.summary()["cost_breakdown"]["by_technology"]["spacal-w"]["timing_cost"]
    c_tier = tier.summary()["cost_breakdown"]["by_technology"]["spacal-w"]["timing_cost"]
    assert c_tier == pytest.approx(3.0 * c_pub) and none.summary()["cost"] < published.summary()["cost"]
    slow = design_from_dict({"name": "s", "regions": [{**region, "timing": 50.0}]})
    assert slow.summary()["cost_breakdown"]["by_technology"]["spacal-w"]["timing_cost"] == pytest.approx(0.3 * c_pub)
    st = ReadoutSettings(**IDEAL)
    x = 400.0
    dvec = np.array([x, 0.0, 12490.0]) / np.linalg.norm([x, 0.0, 12490.0])
    args = (np.array([22]), np.array([50000.0]), (dvec * 50000.0)[None, :], np.array([[x, 0.0, 41.7]]))
    spread = {}
    for name, design in (("published", published), ("tier", tier)):
        ro = Readout(design, st)
        t = [(h := ro.read(*args, np.random.default_rng(s))).time[np.argmax(h.energy)] for s in range(300)]
        spread[name] = np.std(t)
    # a 50 GeV shower's seed cell holds tens of GeV: sigma_t is close to the constant term
    assert spread["tier"] < 0.8 * spread["published"]


@pytest.mark.parametrize("bad", ["fast", -5, 0, "true"])
def test_bad_timing_options_are_one_line_errors(bad):
    from calopt.errors import CaloptInputError

    region = {"name": "r", "technology": "spacal-w", "cell_size": 15.15, "shape": {"type": "rest"}, "timing": bad}
    with pytest.raises(CaloptInputError, match="timing") as exc:
        design_from_dict({"name": "x", "regions": [region]})
    assert "\n" not in str(exc.value) and repr(bad).strip("'") in str(exc.value)
