"""The look of calopt's figures: mplhep styles, chosen once for a whole command.

``style``: ``"hep"`` (default: mplhep's ROOT-like style, the field's common look), ``"lhcb"``
(mplhep's LHCb2 style, for LHCb slides) or ``"matplotlib"`` (matplotlib's defaults). The
environment variable ``CALOPT_PLOT_STYLE`` sets the default; ``calopt evaluate`` and ``calopt
report`` take ``--plot-style``. Histograms are :mod:`hist` histograms drawn with
:func:`mplhep.histplot` (:func:`histogram`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np

from calopt.errors import CaloptInputError

__all__ = ["STYLES", "check_style", "histogram", "plot_style"]

STYLES = ("hep", "lhcb", "matplotlib")
_MPLHEP = {"hep": "ROOT", "lhcb": "LHCb2"}
_TEXT_SIZES: dict[str, Any] = {"font.size": 11, "axes.labelsize": 12, "axes.titlesize": 11, "legend.fontsize": 8,
               "xtick.labelsize": 10, "ytick.labelsize": 10, "xtick.major.size": 6, "ytick.major.size": 6,
               "xtick.minor.size": 3, "ytick.minor.size": 3, "lines.linewidth": 1.5, "axes.linewidth": 1.0,
               "lines.markersize": 5}  # fmt: skip


def check_style(style: str | None) -> str:
    """``style`` (None: ``CALOPT_PLOT_STYLE`` or ``hep``), refused in one line when unknown."""
    chosen = style if style is not None else os.environ.get("CALOPT_PLOT_STYLE", "hep")
    if chosen not in STYLES:
        where = "--plot-style" if style is not None else "CALOPT_PLOT_STYLE"
        raise CaloptInputError(f"{where} {chosen!r} is not a plot style; expected one of {', '.join(STYLES)}")
    return chosen


@contextmanager
def plot_style(style: str | None = None) -> Iterator[str]:
    """Figures made inside use ``style`` (module docstring); matplotlib's settings come back
    after. Uses the Agg backend (files, no window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = check_style(style)
    with plt.rc_context():
        if chosen != "matplotlib":
            import mplhep

            mplhep.style.use(_MPLHEP[chosen])
            # mplhep's sizes are for a 10 x 10 inch figure alone on a slide; calopt's figures are
            # smaller and sit several to a page, so the text is scaled to them
            plt.rcParams.update(cast(Any, _TEXT_SIZES))
            plt.rcParams["figure.max_open_warning"] = 0
        yield chosen


def histogram(edges: np.ndarray, counts: np.ndarray) -> Any:
    """A :class:`hist.Hist` with regular or variable ``edges`` holding ``counts`` (unweighted
    counts: Poisson errors)."""
    import hist

    edges = np.asarray(edges, dtype=float)
    widths = np.diff(edges)
    axis: Any = (hist.axis.Regular(len(widths), edges[0], edges[-1], name="x") if np.allclose(widths, widths[0])
                 else hist.axis.Variable(edges, name="x"))  # fmt: skip
    h = hist.Hist(axis, storage=hist.storage.Double())
    h.view()[:] = np.asarray(counts, dtype=float)
    return h
