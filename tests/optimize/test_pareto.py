"""Pareto fronts and 2-d hypervolumes on hand-made examples."""

from __future__ import annotations

import numpy as np
import pytest

from calopt.errors import CaloptInputError
from calopt.optimize import hypervolume_2d, pareto_front


def test_pareto_front_minimisation() -> None:
    v = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [2, 3], [5, 5], [0, 6], [np.nan, 0]], dtype=float)
    # (3, 4) is dominated by (2, 3); (5, 5) by everything; duplicates (2, 3) both kept; NaN never
    assert pareto_front(v).tolist() == [True, True, False, True, True, False, True, False]
    assert pareto_front(np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.5]])).tolist() == [False, True]
    assert pareto_front(np.zeros((0, 2))).tolist() == []
    with pytest.raises(CaloptInputError, match="shape"):
        pareto_front(np.zeros(3))


def test_hypervolume_2d() -> None:
    assert hypervolume_2d(np.array([[1.0, 1.0]]), (3.0, 2.0)) == pytest.approx(2.0)
    # staircase: (1,3), (2,2), (3,1) w.r.t. (4,4): 3*1 + 2*1 + 1*1 ... = 1*3 + 1*2 + 1*1 = 6
    pts = np.array([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]])
    assert hypervolume_2d(pts, (4.0, 4.0)) == pytest.approx(6.0)
    # dominated points, duplicates and points beyond the reference add nothing
    more = np.vstack([pts, [[2.5, 2.5], [2.0, 2.0], [5.0, 0.0], [0.0, 4.0]]])
    assert hypervolume_2d(more, (4.0, 4.0)) == pytest.approx(6.0)
    assert hypervolume_2d(np.zeros((0, 2)), (1.0, 1.0)) == 0.0
    # the continuous front f2 = 1 - f1 w.r.t. (1, 1) has area 1/2
    f1 = np.linspace(0, 1, 20001)
    assert hypervolume_2d(np.stack([f1, 1 - f1], axis=1), (1.0, 1.0)) == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(CaloptInputError, match="ref must have 2 values"):
        hypervolume_2d(pts, (1.0, 2.0, 3.0))
