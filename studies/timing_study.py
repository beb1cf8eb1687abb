"""What cell timing buys at Upgrade II pile-up (issue 18, part 2).

upgrade2-like at mu = 40, its timed regions (SpaCal-W, SpaCal-Pb, Shashlik middle) given a
timing tier -- the constant term b of sigma_t = a/sqrt(E) (+) b, a = 72 ps sqrt(GeV) kept --
of 10, 20, 50 and 100 ps, the published one (15 ps), and no timing at all; every other setting
as ``calopt evaluate``. Prints a Markdown table of the pi0 sigma_eff, the pi0 efficiency and
S/sqrt(S+B), each with its error, and writes every evaluation's JSON beside it.

Usage: python studies/timing_study.py [events] [out-folder] [tiers...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from calopt.detector.design import design_from_dict, load_design
from calopt.pipeline import EvaluateSettings, evaluate


def variant(timing: bool | float) -> dict:
    doc = load_design("upgrade2-like").spec.model_dump(mode="json")
    doc["name"] = f"upgrade2-like-timing-{timing}"
    for r in doc["regions"]:
        if r["timing"] is not False:
            r["timing"] = timing
    return doc


def pm(doc: dict, key: str, digits: int = 2) -> str:
    """``value +- error`` of metric ``key`` of an evaluation document."""
    v, e = doc.get(key), doc.get(f"{key}_err")
    if v is None:
        return "not measured"
    return f"{v:.{digits}f} +- {e:.{digits}f}" if e is not None else f"{v:.{digits}f}"


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "timing-study")
    tiers: list[bool | float] = [float(t) for t in sys.argv[3:]] or [10.0, 20.0, 50.0, 100.0, True, False]
    out.mkdir(parents=True, exist_ok=True)
    print("| timing | pi0 sigma_eff [MeV] | pi0 efficiency | S/sqrt(S+B) | method | photons per crossing | photons "
          "rejected by timing |")
    print("|---|---|---|---|---|---|---|")
    for t in tiers:
        design = design_from_dict(variant(t))
        doc = evaluate(design, EvaluateSettings(pileup=40.0, n_events=events)).to_json()
        (out / f"{design.name}.json").write_text(json.dumps(doc, indent=1, default=float))

        label = {True: "published (b = 15 ps)", False: "none"}.get(t, f"b = {t:g} ps")  # type: ignore[call-overload]
        print(f"| {label} | {pm(doc, 'pi0_mass_width_mev', 1)} | {pm(doc, 'pi0_efficiency', 4)} | "
              f"{pm(doc, 'significance')} | "
              f"{doc.get('significance_method')} | {doc['photons_per_crossing']:.1f} | "
              f"{doc['photons_rejected_by_timing']} |", flush=True)


if __name__ == "__main__":
    main()
