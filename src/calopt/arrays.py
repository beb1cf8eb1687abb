"""Array helpers shared by the stages."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["finite_json", "ranges"]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ranges [starts[k], starts[k] + lengths[k]) and the owner k of each element
    (the entries of CSR rows: sparse showers, cell neighbours)."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    first = np.cumsum(lengths) - lengths
    return starts[owner] + np.arange(int(lengths.sum())) - first[owner], owner


def finite_json(o: Any) -> Any:
    """``o`` with NaN and infinities replaced by None (null), numpy scalars and arrays as
    Python ones: what strict JSON (RFC 8259) can hold (``--json`` output, stored results)."""
    if isinstance(o, dict):
        return {k: finite_json(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [finite_json(v) for v in o]
    if isinstance(o, np.ndarray):
        return finite_json(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
