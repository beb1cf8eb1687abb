"""The cost model: modules per technology, readout channels (twice with a longitudinal split)
and timing electronics. Every unit cost is a technology's documented assumption
(:mod:`calopt.detector.technologies`) unless the design overrides it in its ``[cost]`` table.
Costs are in kCHF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
        timed = int(design.channels_per_module[mask & design.timing].sum())
        parts = {
            "modules": modules,
            "channels": channels,
            "timing_channels": timed,
            "module_cost": modules * units["module"],
            "channel_cost": channels * units["channel"],
            "timing_cost": timed * units["timing_per_channel"],
        }
        parts["total"] = parts["module_cost"] + parts["channel_cost"] + parts["timing_cost"]
        by_tech[tech] = parts
    return {"unit": "kCHF", "by_technology": by_tech, "total": float(sum(p["total"] for p in by_tech.values()))}
