"""The ask/tell contract, checked the same way for every registered optimiser, and toy problems
with known optima."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from calopt.errors import CaloptInputError
from calopt.optimize import OPTIMIZERS, Boolean, Categorical, Integer, Optimizer, Real, Space, get_optimizer
from calopt.optimize.optimizers.base import Value

torch.set_num_threads(1)

ALL = sorted(OPTIMIZERS)
# small settings that keep the model-based optimisers quick but still exercise their models
FAST: dict[str, dict[str, Any]] = {
    "bo": {"n_initial": 4, "n_candidates": 300, "mc_samples": 32},
    "mobo": {"n_initial": 4, "n_candidates": 200, "mc_samples": 16},
    "lgso": {"steps": 50, "n_local": 4},
}


def finite_space() -> Space:
    return Space([Integer("i", 0, 4), Integer("j", 1, 3), Categorical("m", ("pb", "w")), Boolean("t")],
                 constraint=lambda p: p["i"] + p["j"] <= 4 and not (p["m"] == "w" and p["t"]))  # fmt: skip


def mixed_space() -> Space:
    return Space([Real("x", -1.0, 2.0), Real("y", 0.01, 10.0, log=True), Integer("k", 0, 6),
                  Categorical("c", ("a", "b", "c"))], constraint=lambda p: p["x"] + p["k"] < 6.5)  # fmt: skip


def n_obj(name: str) -> int:
    return 2 if name == "mobo" else 1


def make(name: str, space: Space, seed: int = 0, **kw: Any) -> Optimizer:
    return get_optimizer(name, space, seed=seed, n_objectives=n_obj(name), **{**FAST.get(name, {}), **kw})


def objective(p: dict[str, Any], m: int = 1) -> Value:
    """A deterministic objective on either test space (m values for m objectives)."""
    x = float(p.get("x", p.get("i", 0)))
    k = float(p.get("k", p.get("j", 0)))
    cat = float(p.get("c", p.get("m")) in ("b", "w"))
    f = (x - 0.5) ** 2 + 0.3 * (k - 2) ** 2 + cat
    return f if m == 1 else (f, (x - 1.5) ** 2 + 0.1 * k)


def spaces_for(name: str) -> list[Space]:
    return [finite_space()] if name == "exhaustive" else [finite_space(), mixed_space()]


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Short GP fits: these tests check the plumbing, test_toy_problems.py the optimisation."""
    monkeypatch.setattr("calopt.optimize.optimizers.bo._FIT_MAXITER", 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# -- the contract ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_ask_returns_valid_new_points(name: str) -> None:
    for space in spaces_for(name):
        opt = make(name, space)
        seen: set[str] = set()
        for _ in range(3):
            pts = opt.ask(3)
            assert 1 <= len(pts) <= 3
            for p in pts:
                assert space.is_valid(p), p
                assert space.key(p) not in seen
                seen.add(space.key(p))
            opt.tell(pts, [objective(p, n_obj(name)) for p in pts])
        assert opt.ask(0) == []


@pytest.mark.parametrize("name", ALL)
def test_finite_space_no_duplicates_until_exhausted(name: str) -> None:
    space = finite_space()
    opt = make(name, space)
    keys: list[str] = []
    held: list[dict[str, Any]] = []  # asked, told one round later (pending meanwhile)
    for _ in range(40):
        pts = opt.ask(4)
        if not pts and not held:
            break
        keys += [space.key(p) for p in pts]
        opt.tell(held, [objective(p, n_obj(name)) for p in held])
        held = pts
    assert len(keys) == len(set(keys)) == space.size == 27
    assert opt.ask(3) == []


@pytest.mark.parametrize("name", ALL)
def test_tell_foreign_failed_and_out_of_order(name: str) -> None:
    for space in spaces_for(name):
        m = n_obj(name)
        opt = make(name, space, seed=3)
        # a resumed campaign: points never asked, one failed, replayed first
        foreign = space.sample(np.random.default_rng(7), 5)
        opt.tell(foreign, [None if i == 1 else objective(p, m) for i, p in enumerate(foreign)])
        pts = opt.ask(6)
        assert pts and all(space.is_valid(p) for p in pts)
        used = {space.key(p) for p in foreign}
        assert not used & {space.key(p) for p in pts}
        # told in reverse order, split differently, with a failure and a NaN
        vals: list[Value] = [objective(p, m) for p in pts]
        vals[0] = None
        vals[-1] = float("nan") if m == 1 else (float("nan"), 1.0)
        opt.tell(pts[::-1][:2], vals[::-1][:2])
        more = opt.ask(2)
        opt.tell(pts[::-1][2:], vals[::-1][2:])
        opt.tell(more, [None] * len(more))
        used |= {space.key(p) for p in pts + more}
        nxt = opt.ask(4)
        assert nxt and all(space.is_valid(p) for p in nxt)
        if space.is_finite:
            assert not used & {space.key(p) for p in nxt}
        assert opt.told_values.count(None) >= 3


@pytest.mark.parametrize("name", ALL)
def test_all_failed_evaluations(name: str) -> None:
    """With nothing but failed evaluations an optimiser goes on proposing valid points it never
    proposed before: in the finite space every valid point once and then nothing, in the infinite
    one a full batch each time. With no successful evaluation bo and mobo have no model to fit:
    they explore (random points) and never need the fallback that warns of a failed model."""
    for space in spaces_for(name):
        opt = make(name, space, seed=1)
        keys: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            for _ in range(space.size if space.is_finite else 4):
                pts = opt.ask(4)
                if space.is_finite and not pts:
                    break
                assert len(pts) == (min(4, space.size - len(keys)) if space.is_finite else 4), name
                assert all(space.is_valid(p) for p in pts), pts
                keys += [space.key(p) for p in pts]
                opt.tell(pts, [None] * len(pts))
        assert len(set(keys)) == len(keys), "a point was proposed twice"
        assert opt.told_values == [None] * len(keys)
        if space.is_finite:
            assert set(keys) == {space.key(p) for p in space.enumerate()}
            assert opt.ask(4) == []


@pytest.mark.parametrize("name", ALL)
def test_determinism(name: str) -> None:
    def history(seed: int, sizes: tuple[int, ...]) -> list[list[str]]:
        space = spaces_for(name)[-1]
        opt = make(name, space, seed=seed)
        out = []
        for n in sizes:
            pts = opt.ask(n)
            out.append([space.key(p) for p in pts])
            opt.tell(pts[::-1], [objective(p, n_obj(name)) for p in pts[::-1]])
        return out

    sizes = (3, 2, 3) if name in ("bo", "mobo") else (3, 2, 4, 3)  # model fits are slow
    a = history(5, sizes)
    assert a == history(5, sizes)
    if name != "exhaustive":
        assert history(6, sizes[:1]) != a[:1]


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_refused(name: str) -> None:
    with pytest.raises(CaloptInputError, match=f"unknown option 'bogus' for optimiser '{name}'.*accepted"):
        get_optimizer(name, finite_space(), n_objectives=n_obj(name), bogus=1)


@pytest.mark.parametrize("name", ALL)
def test_objective_count(name: str) -> None:
    cls = OPTIMIZERS[name]
    assert cls.name == name
    if cls.supports_multi_objective:
        opt = get_optimizer(name, finite_space(), n_objectives=2, **FAST.get(name, {}))
        pts = opt.ask(2)
        with pytest.raises(CaloptInputError, match="expected 2 objective value"):
            opt.tell(pts, [1.0, 2.0])
        opt.tell(pts, [(1.0, 2.0), [3.0, 0.5]])
    else:
        with pytest.raises(CaloptInputError, match=f"optimiser '{name}' is single-objective"):
            get_optimizer(name, finite_space(), n_objectives=2)
        opt = get_optimizer(name, finite_space())
        pts = opt.ask(2)
        opt.tell(pts, [1.0, (2.0,)])
        with pytest.raises(CaloptInputError, match="expected 1 objective value"):
            opt.tell(pts, [(1.0, 2.0), 1.0])


def test_argument_errors() -> None:
    with pytest.raises(CaloptInputError, match="unknown optimiser 'nope' \\(known: random, exhaustive"):
        get_optimizer("nope", finite_space())
    with pytest.raises(CaloptInputError, match="optimiser 'exhaustive' needs a finite space"):
        get_optimizer("exhaustive", mixed_space())
    with pytest.raises(CaloptInputError, match="optimiser 'mobo' needs n_objectives >= 2"):
        get_optimizer("mobo", mixed_space())
    with pytest.raises(CaloptInputError, match="option 'n_initial' must be an integer >= 1, got 0"):
        get_optimizer("bo", mixed_space(), n_initial=0)
    with pytest.raises(CaloptInputError, match="option 'radius' must be a number in"):
        get_optimizer("lgso", mixed_space(), radius=-1)
    with pytest.raises(CaloptInputError, match="n_objectives must be a positive integer"):
        get_optimizer("random", mixed_space(), n_objectives=0)
    opt = get_optimizer("random", finite_space())
    pts = opt.ask(2)
    with pytest.raises(CaloptInputError, match="2 points but 1 values"):
        opt.tell(pts, [1.0])
    with pytest.raises(CaloptInputError, match="parameter 'i': value 9"):
        opt.tell([{**pts[0], "i": 9}], [1.0])
    with pytest.raises(CaloptInputError, match="a value must be a number"):
        opt.tell(pts[:1], ["bad"])
    with pytest.raises(CaloptInputError, match="ask: n must be a non-negative integer"):
        opt.ask(-1)


def test_exhaustive_order_and_shuffle() -> None:
    space = finite_space()
    opt = get_optimizer("exhaustive", space)
    assert opt.ask(27) == space.enumerate()
    assert opt.ask(1) == []
    shuffled = get_optimizer("exhaustive", space, shuffle=True, seed=2).ask(100)
    assert shuffled != space.enumerate()
    assert sorted(map(space.key, shuffled)) == sorted(map(space.key, space.enumerate()))
    # a resumed campaign: told points are skipped
    opt = get_optimizer("exhaustive", space)
    done = space.enumerate()[:5]
    opt.tell(done, [1.0] * 5)
    assert opt.ask(1) == [space.enumerate()[5]]


def test_random_without_replacement() -> None:
    space = finite_space()
    opt = get_optimizer("random", space, seed=4)
    pts = opt.ask(100)
    assert len(pts) == 27 and len({space.key(p) for p in pts}) == 27
    assert opt.ask(1) == []


def test_bo_falls_back_to_random_when_the_model_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from calopt.optimize.optimizers.bo import BayesianOptimization

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not positive definite")

    monkeypatch.setattr(BayesianOptimization, "_fit_model", broken)
    opt = make("bo", mixed_space())
    pts = opt.ask(4)
    opt.tell(pts, [objective(p) for p in pts])
    with pytest.warns(RuntimeWarning, match="model-based proposal failed .*not positive definite"):
        more = opt.ask(3)
    assert len(more) == 3 and all(mixed_space().is_valid(p) for p in more)


def test_cmaes_generations_with_foreign_points() -> None:
    space = Space([Real("x", 0, 1), Real("y", 0, 1)])
    opt = get_optimizer("cmaes", space, seed=1, popsize=6)
    assert opt.popsize == 6  # type: ignore[attr-defined]
    foreign = space.sample(np.random.default_rng(0), 13)  # two full generations and one extra
    opt.tell(foreign, [(p["x"] - 0.2) ** 2 for p in foreign])
    assert opt.es.countiter == 2 and len(opt._buffer) == 1  # type: ignore[attr-defined]


def test_lgso_moves_psi_downhill() -> None:
    space = Space([Real("x", 0, 1), Real("y", 0, 1)])
    opt = get_optimizer("lgso", space, seed=2, steps=100)
    rng = np.random.default_rng(0)
    start = None
    for _ in range(12):
        pts = opt.ask(8)
        if start is None:
            start = space.decode(opt.psi)[0]  # type: ignore[attr-defined]
        opt.tell(pts, [(p["x"] - 0.8) ** 2 + (p["y"] - 0.3) ** 2 + 0.01 * rng.standard_normal() for p in pts])
    end = space.decode(opt.psi)[0]  # type: ignore[attr-defined]
    dist = lambda p: np.hypot(p["x"] - 0.8, p["y"] - 0.3)  # noqa: E731
    assert opt.n_steps == 12  # type: ignore[attr-defined]
    assert dist(end) < 0.5 * dist(start) and dist(end) < 0.15


@pytest.mark.parametrize("name", ["bo", "mobo"])
def test_noise_ignore_reproduces_the_proposals_before_noise_awareness(name: str) -> None:
    """``noise="ignore"`` is the optimiser before noise-awareness: the same proposals for the same
    seed as recorded with that version (tests/optimize/data/noise_ignore_reference.json, with the
    30-iteration fits of this file's fixture)."""
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "data" / "noise_ignore_reference.json").read_text())
    for sname, space_fn in (("finite", finite_space), ("mixed", mixed_space)):
        space = space_fn()
        opt = make(name, space, seed=11, noise="ignore")
        hist = []
        for n in (4, 2, 3):
            pts = opt.ask(n)
            hist.append([space.key(p) for p in pts])
            opt.tell(pts, [objective(p, n_obj(name)) for p in pts])
        assert hist == ref[f"{name}/{sname}"], sname
