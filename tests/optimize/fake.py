"""A cheap stand-in for ``evaluate`` (importable by Dask workers): a smooth, known function of
the design, so that campaign mechanics are tested in seconds. The "pi0 width" is smallest for
an inner region of 6 x 4 modules with 40.4 mm cells; designs with an inner half-width of 9
modules fail like a fit that finds no peak."""

from __future__ import annotations

from typing import Any

from calopt.detector.design import design_from_dict


def fake_evaluate(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    d = design_from_dict(doc)
    inner = d.regions[0]
    hx = inner.shape.half_x / d.wall.pitch  # type: ignore[union-attr]
    hy = inner.shape.half_y / d.wall.pitch  # type: ignore[union-attr]
    width = 8.0 + 0.3 * (hx - 6) ** 2 + 0.5 * (hy - 4) ** 2 + (0.0 if inner.cell_size < 50 else 2.0)
    s = d.summary()
    failed = round(hx) == 9
    return {
        "pi0_mass_width_mev": None if failed else width,
        "significance": None if failed else 30.0 / width,
        "fits": {"pi0": {"reason": "no peak found"} if failed else {}},
        "channels": s["channels"],
        "cost": s["cost"],
        "seed": config["seed"],
    }


def dies_once_evaluate(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`fake_evaluate`, but the worker process evaluating the first design with a 5 x 5
    inner region dies (``os._exit``) the first time: the marker file named by the environment
    variable CALOPT_TEST_MARKER records that it happened."""
    import os
    from pathlib import Path

    marker = Path(os.environ["CALOPT_TEST_MARKER"])
    d = design_from_dict(doc)
    inner = d.regions[0].shape
    if round(inner.half_x / d.wall.pitch) == 5 and not marker.exists():  # type: ignore[union-attr]
        marker.write_text("died")
        os._exit(1)
    return fake_evaluate(doc, config)


def noisy_evaluate(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """:func:`fake_evaluate` with a Monte-Carlo-like error: the width gets Gaussian noise of
    sigma = 1 MeV x sqrt(100 / events), drawn from the design and the seed (common random
    numbers: one seed, one draw per design), and reports that sigma as its error."""
    import hashlib

    import numpy as np

    out = fake_evaluate(doc, config)
    if out["pi0_mass_width_mev"] is None:
        return out
    sigma = (100.0 / config["events"]) ** 0.5
    h = int(hashlib.sha256(repr(sorted(doc.items())).encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([h, config["seed"]])
    out["pi0_mass_width_mev"] += sigma * rng.standard_normal()
    out["pi0_mass_width_mev_err"] = sigma
    return out


def slow_evaluate(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """:func:`fake_evaluate` that takes CALOPT_TEST_SLEEP seconds, for a kill that lands while
    evaluations run (tests/test_cluster.py). If CALOPT_TEST_STARTED names a folder, each
    evaluation first leaves there an empty file ``<design name>.<pid>`` (the design name is
    ``trial-<id>``): which process evaluates which trial, even one killed before it finished."""
    import os
    import time
    from pathlib import Path

    started = os.environ.get("CALOPT_TEST_STARTED")
    if started:
        (Path(started) / f"{doc.get('name', 'design')}.{os.getpid()}").touch()
    time.sleep(float(os.environ.get("CALOPT_TEST_SLEEP", "0.5")))
    return fake_evaluate(doc, config)
