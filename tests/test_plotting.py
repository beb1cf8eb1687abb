"""Figures in the field's style (calopt.plotting): mplhep styles chosen per command, hist
histograms, and the shower images of a shower file."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from calopt.errors import CaloptInputError
from calopt.plotting import check_style, histogram, plot_style


def test_styles_are_chosen_and_restored(monkeypatch):
    import matplotlib.pyplot as plt

    before = dict(plt.rcParams)
    with plot_style("lhcb") as chosen:
        assert chosen == "lhcb" and plt.rcParams["xtick.direction"] == "in" and plt.rcParams["font.size"] == 11
    assert plt.rcParams["xtick.direction"] == before["xtick.direction"]  # matplotlib's settings come back
    monkeypatch.setenv("CALOPT_PLOT_STYLE", "matplotlib")
    assert check_style(None) == "matplotlib"
    monkeypatch.setenv("CALOPT_PLOT_STYLE", "cms-ish")
    with pytest.raises(CaloptInputError, match=r"^CALOPT_PLOT_STYLE 'cms-ish' is not a plot style; expected one of"):
        check_style(None)
    with pytest.raises(CaloptInputError, match=r"^--plot-style 'x' is not a plot style"):
        check_style("x")
    assert matplotlib.get_backend().lower() == "agg"


def test_histograms_are_hist_histograms():
    h = histogram(np.linspace(100.0, 160.0, 61), np.arange(60.0))
    assert type(h).__name__ == "Hist" and h.axes[0].size == 60 and h.sum() == np.arange(60.0).sum()
    assert h.axes[0].edges[0] == 100.0 and h.axes[0].edges[-1] == 160.0
    v = histogram(np.array([0.0, 1.0, 3.0, 7.0]), np.array([1.0, 2.0, 3.0]))
    assert list(v.axes[0].widths) == [1.0, 2.0, 4.0] and list(v.values()) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("style", ["hep", "lhcb", "matplotlib"])
def test_shower_images(tmp_path, style):
    from calopt.simulation.particles import Particles
    from calopt.simulation.plots import plot_shower_images
    from calopt.simulation.showers import Showers

    rng = np.random.default_rng(1)
    n, s, g = 4, 2, 21
    y, x = np.mgrid[:g, :g] - g // 2
    core = np.exp(-(x**2 + y**2) / 4.0)
    deposits = (rng.poisson(200 * core, size=(n, s, g, g)) * 1.0).astype(np.float32)
    particles = Particles(np.full(n, 22), np.full(n, 10_000.0), np.tile([0.0, 0.0, 1.0], (n, 1)), np.zeros((n, 2)))
    attrs = {"technology": "lhcb-shashlik", "fine_pitch_mm": 10.1, "section_edges_mm": [0.0, 100.0, 400.0],
             "generator": "test", "seed": 0, "sampling_fraction": 0.1}  # fmt: skip
    sh = Showers.of_particles(particles, deposits, None, attrs)
    path = plot_shower_images(sh, tmp_path / "images.png", style)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


def test_showers_plot_command(tmp_path, capsys):
    from tests.helpers import run_cli

    shower_file = tmp_path / "s.h5"
    rc, _, err = run_cli(["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "5",
                          "--n", "6", "--out", str(shower_file)], capsys)  # fmt: skip
    assert rc == 0, err
    rc, out, err = run_cli(["showers", "plot", str(shower_file), "--out", str(tmp_path / "s.png")], capsys)
    assert rc == 0, err
    assert out.strip() == str(tmp_path / "s.png") and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "notes.png").write_text("my notes")
    rc, _, err = run_cli(["showers", "plot", str(shower_file), "--out", str(tmp_path / "notes.png")], capsys)
    assert rc == 2 and "not a PNG image; refusing to overwrite it" in err
    assert (tmp_path / "notes.png").read_text() == "my notes"
