"""The cost model: modules per technology, readout channels (twice with a longitudinal split)
and timing electronics (per timed channel, times b_published / b for a timing tier of constant
term b [assumption: the cost of the electronics and clock distribution scales inversely with
their jitter; halving it doubles their cost, a 50 ps tier costs 0.3 of the published 15 ps]).
Every unit cost is a technology's documented assumption (:mod:`calopt.detector.technologies`)
unless the design overrides it in its ``[cost]`` table. Costs are in kCHF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from calopt.detector.technologies import get_technology

if TYPE_CHECKING:
    from calopt.detector.design import Design

__all__ = ["cost_breakdown", "unit_costs"]


def unit_costs(design: Design, technology: str) -> dict[str, float]:
    """Unit costs [kCHF] of one technology in a design, overrides applied."""
    t = get_technology(technology)
    units = {"module": t.cost_module, "channel": t.cost_channel, "timing_per_channel": t.cost_timing_channel}
    override = design.spec.cost.get(technology)
    if override is not None:
        units.update({k: v for k, v in override.model_dump().items() if v is not None})
    return units


def cost_breakdown(design: Design) -> dict[str, Any]:
    """Cost per technology (modules, channels, timing) and the total."""
    by_tech: dict[str, dict[str, float]] = {}
    for tech in sorted({r.technology for r in design.regions}):
        mask = design.technology == tech
        units = unit_costs(design, tech)
        modules = int(mask.sum())
        channels = int(design.channels_per_module[mask].sum())
        timed_mask = mask & design.timing
        timed = int(design.channels_per_module[timed_mask].sum())
        t = get_technology(tech)
        scale = t.time_resolution[1] / np.where(timed_mask, design.time_constant_ps, 1.0)
        timing_cost = float((design.channels_per_module * scale)[timed_mask].sum()) * units["timing_per_channel"]
        parts = {
            "modules": modules,
            "channels": channels,
            "timing_channels": timed,
            "module_cost": modules * units["module"],
            "channel_cost": channels * units["channel"],
            "timing_cost": timing_cost,
        }
        parts["total"] = parts["module_cost"] + parts["channel_cost"] + parts["timing_cost"]
        by_tech[tech] = parts
    return {"unit": "kCHF", "by_technology": by_tech, "total": float(sum(p["total"] for p in by_tech.values()))}
