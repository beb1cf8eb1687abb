"""Noisy objectives (issue #20): errors in ``tell``, replicates and their combination, noise-aware
``bo``/``mobo`` (observed noise, qLogNEI, acquisition maximised by BoTorch), ``recommend``, the
re-evaluations of ``cmaes`` and ``lgso``, and the Pareto utilities against brute force."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from calopt.errors import CaloptInputError
from calopt.optimize import Integer, Real, Space, get_optimizer, hypervolume_2d, pareto_front
from calopt.optimize.optimizers.base import combine
from tests.optimize.test_optimizers import FAST, finite_space, make, mixed_space, n_obj, objective

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr("calopt.optimize.optimizers.bo._FIT_MAXITER", 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# -- errors in tell, replicates, combination ------------------------------------------------------------
@pytest.mark.parametrize(
    ("m", "errors", "match"),
    [
        (1, [-0.1, 0.1], r"error of point 0 must be a finite number >= 0, got -0.1"),
        (1, [0.1, float("nan")], r"error of point 1 must be a finite number >= 0, got nan"),
        (1, [0.1, math.inf], r"error of point 1 must be a finite number >= 0, got inf"),
        (1, [0.1], r"2 points but 1 errors"),
        (1, [0.1, 0.2, 0.3], r"2 points but 3 errors"),
        (1, [0.1, "x"], r"error of point 1 must be a number >= 0, got 'x'"),
        (1, "ab", r"2 points but 'ab' errors"),
        (2, [(0.1, 0.2), (0.1,)], r"error of point 1: expected 2 objective error\(s\), got \(0.1,\)"),
        (2, [(0.1, -1.0), None], r"error of point 0 must be a finite number >= 0, got -1.0"),
    ],
)
def test_tell_refuses_bad_errors(m: int, errors: Any, match: str) -> None:
    opt = get_optimizer("random", finite_space(), n_objectives=m)
    pts = opt.ask(2)
    vals = [1.0, 2.0] if m == 1 else [(1.0, 2.0), (3.0, 4.0)]
    with pytest.raises(CaloptInputError, match=match):
        opt.tell(pts, vals, errors)
    assert opt.told_points == [] and len(opt.pending) == 2  # nothing told


def test_tell_errors_and_replicates() -> None:
    space = finite_space()
    opt = get_optimizer("random", space, seed=1)
    pts = opt.ask(3)
    opt.tell(pts, [1.0, None, 2.0], [0.1, None, np.float64(0.2)])
    assert opt.told_errors == [(0.1,), None, (0.2,)]
    opt.tell(pts[:1], [3.0])  # errors optional; a replicate of a told, not pending, point
    opt.tell([pts[0], pts[0]], [2.0, 4.0], [(0.2,), 0])
    assert opt.told_count(pts[0]) == 4 and opt.told_count(pts[1]) == 1 and opt.pending == []
    assert len(opt.told_points) == len(opt.told_values) == len(opt.told_errors) == 6
    assert opt.told_errors[3:] == [None, (0.2,), (0.0,)]
    comb = opt.combined()
    assert list(comb) == [space.key(p) for p in pts]
    c0 = comb[space.key(pts[0])]
    assert (c0.n, c0.n_told) == (4, 4) and c0.value == (2.5,)  # an error unknown: plain mean
    assert c0.error == pytest.approx((np.std([1, 3, 2, 4], ddof=1) / 2,))
    c1 = comb[space.key(pts[1])]
    assert (c1.value, c1.error, c1.n, c1.n_told) == (None, None, 0, 1)
    assert opt.recommend(2) == [pts[2], pts[0]]  # combined 2.0 (one value) before 2.5
    new = opt.ask(30)
    assert not {space.key(p) for p in new} & {space.key(p) for p in pts}  # never re-proposed
    with pytest.raises(CaloptInputError, match="recommend: k must be a positive integer"):
        opt.recommend(0)


def test_combine() -> None:
    # inverse-variance weighted: (1/0.01 * 1 + 1/0.04 * 2) / (100 + 25) = 1.2, error 1/sqrt(125)
    v, e = combine([(1.0,), (2.0,), None], [(0.1,), (0.2,), None])
    assert v == pytest.approx((1.2,)) and e == pytest.approx((1 / math.sqrt(125),))
    v, e = combine([(1.0, 5.0), (3.0, 5.0)], [(0.1, 0.0), (0.1, 0.0)])  # a zero error: plain mean, SEM
    assert v == pytest.approx((2.0, 5.0)) and e == pytest.approx((0.1 / math.sqrt(2), 0.0))
    assert combine([(1.0,), (3.0,)]) == ((2.0,), (pytest.approx(1.0),))  # unknown errors: SEM
    assert combine([(1.0,)]) == ((1.0,), None)
    assert combine([(1.0,)], [(0.3,)]) == ((1.0,), (0.3,))
    assert combine([None, None]) == (None, None)
    with pytest.raises(CaloptInputError, match="2 values but 1 errors"):
        combine([(1.0,), (2.0,)], [None])


# -- noise-aware bo and mobo ------------------------------------------------------------------------------
def _noisy_problem() -> tuple[Space, Any, Any]:
    """A 1-d grid: truth (x - 10)^2 / 100, minimum 0 at x = 10; a tiny noise (0.03) there and a
    large one (0.5) from x = 17 on, where lucky draws fall far below the true minimum."""
    space = Space([Integer("x", 0, 30)])
    return space, (lambda x: (x - 10) ** 2 / 100), (lambda x: 0.5 if x >= 17 else 0.03)


def _recommended(noise: str, seed: int, budget: int = 16) -> int:
    space, truth, sigma = _noisy_problem()
    opt = get_optimizer("bo", space, seed=seed, noise=noise, n_initial=6, mc_samples=64)
    rng = np.random.default_rng(1000 + seed)
    while len(opt.told_points) < budget:
        pts = opt.ask(4)
        errors = [sigma(p["x"]) for p in pts]
        opt.tell(pts, [truth(p["x"]) + e * rng.standard_normal() for p, e in zip(pts, errors)], errors)
    return int(opt.recommend(1)[0]["x"])


def test_noise_aware_bo_recommends_the_true_optimum_more_often() -> None:
    """Over 10 seeds with heteroscedastic noise, ``bo`` with the observed noise recommends the true
    optimum far more often than ``noise="ignore"``, whose answer is the luckiest draw (measured:
    10/10 against 1/10)."""
    aware = [_recommended("observed", s) for s in range(10)]
    ignore = [_recommended("ignore", s) for s in range(10)]
    n_aware, n_ignore = aware.count(10), ignore.count(10)
    assert n_aware >= 7 and n_aware >= n_ignore + 4, (aware, ignore)


def test_bo_noise_options_and_models(monkeypatch: pytest.MonkeyPatch) -> None:
    import botorch.acquisition as acqs
    import botorch.models as models

    with pytest.raises(CaloptInputError, match="option 'noise' must be one of observed, ignore, got 'bogus'"):
        get_optimizer("bo", finite_space(), noise="bogus")
    with pytest.raises(CaloptInputError, match="option 'acq_optimizer' must be one of botorch, candidates"):
        get_optimizer("bo", finite_space(), acq_optimizer="grid")
    assert get_optimizer("bo", finite_space(), noise="ignore").options["acq_optimizer"] == "candidates"
    assert get_optimizer("bo", finite_space()).options["acq_optimizer"] == "botorch"

    seen: dict[str, Any] = {}
    for cls in ("SingleTaskGP", "MixedSingleTaskGP"):
        orig = getattr(models, cls)

        def spy(*a: Any, _orig: Any = orig, _cls: str = cls, **kw: Any) -> Any:
            seen.setdefault(_cls, []).append(kw.get("train_Yvar"))
            return _orig(*a, **kw)

        monkeypatch.setattr(models, cls, spy)
    for cls in ("qLogExpectedImprovement", "qLogNoisyExpectedImprovement"):
        orig = getattr(acqs, cls)
        monkeypatch.setattr(acqs, cls, lambda *a, _o=orig, _c=cls, **kw: seen.setdefault(_c, True) and _o(*a, **kw))
    space = Space([Real("x", 0, 1), Integer("k", 0, 3)])
    for noise in ("observed", "ignore"):
        seen.clear()
        for errors in ([0.05] * 3 + [None], [0.05] * 4):  # one error unknown: a GP inferring the noise
            opt = get_optimizer("bo", space, seed=2, noise=noise, n_initial=4, mc_samples=16, n_candidates=64)
            pts = opt.ask(4)
            opt.tell(pts, [p["x"] + 0.1 * p["k"] for p in pts], errors)
            opt.tell(pts[:1], [0.5], [0.05])  # a replicate
            assert len(opt.ask(1)) == 1
        yvars = seen["SingleTaskGP"]
        if noise == "ignore":
            assert yvars == [None, None] and set(seen) == {"SingleTaskGP", "qLogExpectedImprovement"}
        else:
            assert yvars[0] is None and yvars[1].shape == (5, 1)  # replicates are rows
            assert torch.allclose(yvars[1], torch.full((5, 1), 0.05**2, dtype=torch.double))
            assert set(seen) == {"SingleTaskGP", "qLogNoisyExpectedImprovement"}


def test_mobo_and_mixed_gp_get_the_observed_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    import botorch.models as models

    seen: list[Any] = []
    orig = models.MixedSingleTaskGP
    monkeypatch.setattr(models, "MixedSingleTaskGP", lambda *a, **kw: seen.append(kw["train_Yvar"]) or orig(*a, **kw))
    opt = make("mobo", finite_space(), seed=3)
    pts = opt.ask(5)
    opt.tell(pts, [objective(p, 2) for p in pts[:4]] + [None], [(0.1, 0.2), (0.1, 0.2), (0.3, 0.1), (0.1, 0.2), None])
    opt.tell(pts[:1], [objective(pts[0], 2)], [(0.1, 0.2)])  # a replicate: one more row
    more = opt.ask(2)
    assert len(more) == 2 and len(seen) == 2  # one GP per objective
    # the failed evaluation gets the largest observed variance of each objective
    assert torch.allclose(seen[0][:, 0], torch.tensor([0.01, 0.01, 0.09, 0.01, 0.09, 0.01], dtype=torch.double))
    assert torch.allclose(seen[1][:, 0], torch.tensor([0.04, 0.04, 0.01, 0.04, 0.04, 0.04], dtype=torch.double))


@pytest.mark.parametrize("name", ["bo", "mobo"])
def test_discrete_acquisition_proposes_valid_unused_points(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In an enumerable space the acquisition is maximised by ``optimize_acqf_discrete`` over the
    remaining points, otherwise by ``optimize_acqf_mixed_alternating``; proposals stay valid,
    unused and distinct, with pending points held back."""
    import botorch.optim as bo_optim

    calls: list[str] = []
    for fn in ("optimize_acqf_discrete", "optimize_acqf_mixed_alternating", "optimize_acqf"):
        orig = getattr(bo_optim, fn)
        monkeypatch.setattr(bo_optim, fn, lambda *a, _o=orig, _f=fn, **kw: calls.append(_f) or _o(*a, **kw))
    for space, expected in ((finite_space(), "optimize_acqf_discrete"),
                            (mixed_space(), "optimize_acqf_mixed_alternating")):  # fmt: skip
        calls.clear()
        opt = make(name, space, seed=4)
        used: set[str] = set()
        held: list[dict[str, Any]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no random fallback
            for _ in range(3):
                pts = opt.ask(3)
                assert len(pts) == 3 and all(space.is_valid(p) for p in pts)
                keys = {space.key(p) for p in pts}
                assert len(keys) == 3 and not keys & used
                used |= keys
                opt.tell(held, [objective(p, n_obj(name)) for p in held], [(0.1,) * n_obj(name)] * len(held))
                held = pts
        assert calls and set(calls) == {expected}


def test_recommend() -> None:
    space, truth, _ = _noisy_problem()
    for name in ("random", "cmaes", "lgso", "bo"):
        opt = get_optimizer(name, space, seed=0, **FAST.get(name, {}))
        assert opt.recommend() == []
        pts = [{"x": x} for x in (2, 9, 12, 20, 25)]
        vals = [truth(p["x"]) for p in pts]
        vals[3] = -1.0  # a lucky draw with a large error
        opt.tell(pts, vals, [0.02, 0.02, 0.02, 2.0, 0.02])
        rec = opt.recommend(2)
        if name == "bo":  # the posterior mean discounts the lucky draw
            assert rec[0] in ({"x": 9}, {"x": 12}) and {"x": 20} not in rec
        else:  # the combined (observed) values
            assert rec == [{"x": 20}, {"x": 9}]
    # several objectives: the Pareto front of the combined values, thinned to k along the first
    opt = get_optimizer("random", finite_space(), n_objectives=2)
    pts = opt.ask(6)
    opt.tell(pts, [(1, 5), (2, 4), (3, 3), (4, 2), (5, 1), (5, 5)])
    assert opt.recommend(10) == pts[:5] and opt.recommend(3) == [pts[0], pts[2], pts[4]]
    mobo = make("mobo", finite_space(), seed=1)
    mobo.tell(pts, [(1, 5), (2, 4), (3, 3), (4, 2), (5, 1), (5, 5)], [(0.1, 0.1)] * 6)
    rec = mobo.recommend(10)
    assert 1 <= len(rec) <= 5 and pts[5] not in rec


# -- re-evaluations --------------------------------------------------------------------------------------
def _drive(opt: Any, f: Any, rounds: int, batch: int, noise: float | None, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    asked = []
    for _ in range(rounds):
        pts = opt.ask(batch)
        asked += pts
        errs = None if noise is None else [noise] * len(pts)
        opt.tell(pts, [f(p) + (noise or 0.0) * rng.standard_normal() for p in pts], errs)
    return asked


def test_cmaes_reevaluates_its_incumbent() -> None:
    space = Space([Real("x", 0, 1), Real("y", 0, 1)])
    f = lambda p: (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2  # noqa: E731
    opt = get_optimizer("cmaes", space, seed=1, popsize=6)
    asked = _drive(opt, f, 12, 6, 0.05)
    keys = [space.key(p) for p in asked]
    repeats = {k: keys.count(k) for k in set(keys) if keys.count(k) > 1}
    assert repeats and max(repeats.values()) <= 3  # re-evaluated, up to `reevaluate` observations
    best = opt.recommend(1)[0]
    comb = opt.combined()[space.key(best)]
    assert comb.n == opt.told_count(best) and comb.value == min(c.value for c in opt.combined().values())
    assert opt.es.countiter >= 10  # type: ignore[attr-defined]  # replicates are members of generations
    # without measured noise (errors unknown or zero) or with reevaluate=1: no repeats
    for kw, noise in (({}, None), ({}, 0.0), ({"reevaluate": 1}, 0.05)):
        opt = get_optimizer("cmaes", space, seed=1, popsize=6, **kw)
        keys = [space.key(p) for p in _drive(opt, f, 6, 6, noise)]
        assert len(keys) == len(set(keys)), (kw, noise)


def test_lgso_reevaluates_its_centre() -> None:
    """On a coarse integer lattice psi stays in its bin for several steps: its design is
    re-evaluated at the start of each step, up to ``reevaluate`` observations."""
    space = Space([Integer("i", 0, 4), Integer("j", 0, 4)])
    f = lambda p: (p["i"] - 2) ** 2 + (p["j"] - 2) ** 2  # noqa: E731
    opt = get_optimizer("lgso", space, seed=3, steps=30, n_local=4, lr=0.01, radius=0.3, reevaluate=3)
    asked = _drive(opt, f, 8, 4, 0.3)
    counts = [opt.told_count(p) for p in space.enumerate()]
    assert max(counts) == 3 and opt.n_steps >= 3  # type: ignore[attr-defined]
    centre = space.decode(opt.psi)[0]  # type: ignore[attr-defined]
    assert opt.told_count(centre) >= 2
    assert all(space.is_valid(p) for p in asked)
    opt = get_optimizer("lgso", space, seed=3, steps=30, n_local=4, lr=0.01, radius=0.3)
    keys = [space.key(p) for p in _drive(opt, f, 6, 4, None)]
    assert len(keys) == len(set(keys))


def test_reask_contract() -> None:
    """A queued re-evaluation comes first, only once told and not pending, and is recognised by
    its told count."""
    space = finite_space()
    opt = get_optimizer("random", space, seed=0)
    pts = opt.ask(2)
    opt._reask([pts[0]])  # pending, never told: ignored
    assert opt._reasks == []
    opt.tell(pts[:1], [1.0], [0.1])
    opt._reask([pts[0], pts[0]])
    again = opt.ask(3)
    assert again[0] == pts[0] and opt.told_count(again[0]) == 1 and len(again) == 3
    assert all(opt.told_count(p) == 0 for p in again[1:])
    opt._reask([pts[0]])  # pending again: stays queued until told
    assert space.key(pts[0]) not in {space.key(p) for p in opt.ask(2)}
    opt.tell(again[:1], [1.2], [0.1])
    assert opt.ask(1) == [pts[0]]


# -- Pareto utilities against brute force ----------------------------------------------------------------
def _brute_front(V: np.ndarray) -> list[bool]:
    out = []
    for i, v in enumerate(V):
        if np.isnan(v).any():
            out.append(False)
            continue
        dominated = any(not np.isnan(w).any() and np.all(w <= v) and np.any(w < v) for j, w in enumerate(V) if j != i)
        out.append(not dominated)
    return out


def _brute_hv(P: np.ndarray, ref: np.ndarray) -> float:
    """Area by the grid of all coordinates: each cell is dominated or not."""
    xs = np.unique(np.concatenate([P[:, 0], [ref[0]]]))
    ys = np.unique(np.concatenate([P[:, 1], [ref[1]]]))
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(itertools.pairwise(xs), itertools.pairwise(ys)):
        if x1 <= ref[0] and y1 <= ref[1] and np.any((P[:, 0] <= x0) & (P[:, 1] <= y0)):
            area += (x1 - x0) * (y1 - y0)
    return area


def test_pareto_front_and_hypervolume_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    for m in (2, 3):
        for _ in range(20):
            V = rng.integers(0, 6, (25, m)).astype(float)  # many ties and duplicates
            V[rng.random(25) < 0.1, 0] = np.nan
            assert pareto_front(V).tolist() == _brute_front(V)
    for _ in range(20):
        P = rng.integers(0, 10, (15, 2)).astype(float) + rng.random((15, 2)) * (rng.random() < 0.5)
        ref = np.array([8.0, 9.0])
        assert hypervolume_2d(P, ref) == pytest.approx(_brute_hv(P, ref))
