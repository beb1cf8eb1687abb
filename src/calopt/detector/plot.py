"""A picture of a design: the wall coloured by technology and cell size, with cell
boundaries, the beam hole and a legend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from calopt.detector.design import Design

__all__ = ["plot_design"]

# one colour family per technology, shades by cell size (small cells darker)
_FAMILIES = {"lhcb-shashlik": "Blues", "spacal-pb": "Oranges", "spacal-w": "Reds"}


def plot_design(design: Design, *, ax: Any = None) -> Any:
    """Draw ``design`` on ``ax`` (a new figure if None); returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Patch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 8.5))
    wall = design.wall
    x, y = wall.centres
    p = wall.pitch
    cats = sorted({(r.technology, r.cell_size) for r in design.regions}, key=lambda c: (c[0], -c[1]))
    colours = {}
    for tech in {c[0] for c in cats}:
        sizes = [c[1] for c in cats if c[0] == tech]
        cmap = plt.get_cmap(_FAMILIES.get(tech, "Greens"))
        for k, s in enumerate(sorted(sizes, reverse=True)):
            colours[(tech, s)] = cmap(0.35 + 0.5 * (k + 1) / (len(sizes) + 1))
    patches, faces, segs = [], [], []
    for j, i in zip(*np.nonzero(design.region_index >= 0)):
        x0, y0 = x[j, i] - p / 2, y[j, i] - p / 2
        patches.append(Rectangle((x0, y0), p, p))
        faces.append(colours[(design.technology[j, i], design.cell_size[j, i])])
        n = design.cells_per_side[j, i]
        for k in range(1, n):
            segs.append([(x0 + k * p / n, y0), (x0 + k * p / n, y0 + p)])
            segs.append([(x0, y0 + k * p / n), (x0 + p, y0 + k * p / n)])
    ax.add_collection(PatchCollection(patches, facecolors=faces, edgecolors="black", linewidths=0.3))
    ax.add_collection(LineCollection(segs, colors="white", linewidths=0.15))
    hx, hy = wall.hole_x * p / 2, wall.hole_y * p / 2
    ax.add_patch(Rectangle((-hx, -hy), 2 * hx, 2 * hy, facecolor="lightgrey", hatch="xx", edgecolor="grey"))
    counts = design.module_counts()
    handles = []
    for tech, s in cats:
        flags = {(r.split, r.has_timing) for r in design.regions if r.technology == tech and r.cell_size == s}
        extra = "".join(
            (", split" if split else "") + (", timing" if timing else "") for split, timing in sorted(flags)
        )
        n = counts.get(tech, {}).get(f"{s:g}", 0)
        handles.append(Patch(facecolor=colours[(tech, s)], edgecolor="black", label=f"{tech} {s:g} mm{extra} ({n})"))
    handles.append(Patch(facecolor="lightgrey", hatch="xx", edgecolor="grey", label="beam hole"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(-wall.half_width, wall.half_width)
    ax.set_ylim(-wall.half_height, wall.half_height)
    ax.set_aspect("equal")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")
    summary = design.summary()
    ax.set_title(
        f"{design.name}: {summary['modules_total']} modules, {summary['channels']} channels, "
        f"cost {summary['cost']:.0f} kCHF"
    )
    return ax
