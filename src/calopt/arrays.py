"""Array helpers shared by the stages."""

from __future__ import annotations

import numpy as np

__all__ = ["ranges"]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ranges [starts[k], starts[k] + lengths[k]) and the owner k of each element
    (the entries of CSR rows: sparse showers, cell neighbours)."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    first = np.cumsum(lengths) - lengths
    return starts[owner] + np.arange(int(lengths.sum())) - first[owner], owner
