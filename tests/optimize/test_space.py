"""Parameter space: validation, encoding, keys, enumeration, sampling, serialisation."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from calopt.errors import CaloptInputError
from calopt.optimize import Boolean, Categorical, Integer, Real, Space


def mixed_space() -> Space:
    return Space([Real("x", -2.0, 3.0), Real("y", 1e-3, 10.0, log=True), Integer("k", -1, 4),
                  Categorical("c", ("a", "b", "c")), Boolean("b"), Categorical("n", (1, 2.5, "z"))])  # fmt: skip


def finite_space() -> Space:
    return Space([Integer("i", 0, 4), Integer("j", 1, 3), Categorical("m", ("pb", "w")), Boolean("t")],
                 constraint=lambda p: p["i"] + p["j"] <= 4 and not (p["m"] == "w" and p["t"]))  # fmt: skip


def test_params_and_dims() -> None:
    s = mixed_space()
    assert s.names == ["x", "y", "k", "c", "b", "n"]
    assert s.dim == 1 + 1 + 1 + 3 + 2 + 3
    assert not s.is_finite and finite_space().is_finite
    assert Boolean("t") == Categorical("t", (False, True))
    assert Real("x", 0, 1).low == 0.0 and isinstance(Real("x", 0, 1).low, float)
    with pytest.raises(CaloptInputError, match="not finite"):
        _ = s.size


def test_encode_decode_round_trip() -> None:
    s = mixed_space()
    pts = s.sample(np.random.default_rng(1), 200)
    X = s.encode(pts)
    assert X.shape == (200, s.dim) and X.min() >= 0 and X.max() <= 1
    back = s.decode(X)
    for a, b in zip(pts, back):
        assert s.key(a) == s.key(b)
        assert math.isclose(a["x"], b["x"], rel_tol=1e-12, abs_tol=1e-12)
        assert type(b["k"]) is int and type(b["b"]) is bool and type(b["x"]) is float
    # integer bins and log scale
    assert s.encode({"x": -2.0, "y": 1e-3, "k": -1, "c": "b", "b": True, "n": 2.5})[0].tolist() == pytest.approx(
        [0.0, 0.0, 0.5 / 6, 0, 1, 0, 0, 1, 0, 1, 0]
    )
    assert s.encode({"x": 3.0, "y": 0.1, "k": 4, "c": "a", "b": False, "n": "z"})[0][:3] == pytest.approx(
        [1.0, 0.5, 5.5 / 6]
    )
    # decode clips, floors integer bins, takes the argmax
    p = s.decode(np.array([1.7, -3.0, 0.9999, 0.2, 0.9, 0.1, 0.6, 0.4, 0.0, 0.0, 0.1]))[0]
    assert p == {"x": 3.0, "y": 1e-3, "k": 4, "c": "b", "b": False, "n": "z"}
    with pytest.raises(CaloptInputError, match="11 columns"):
        s.decode(np.zeros((2, 3)))


def test_key_is_canonical_and_stable() -> None:
    s = mixed_space()
    p = {"x": 0.1 + 0.2, "y": 1.0, "k": 2, "c": "a", "b": True, "n": 1}
    k = s.key(p)
    assert k == '{"b":true,"c":"a","k":2,"n":1,"x":0.3,"y":1.0}'
    q = {"n": 1.0, "b": np.bool_(True), "c": "a", "k": np.int64(2), "y": np.float64(1), "x": 0.3}
    assert s.key(q) == k  # order, numpy types and 1 vs 1.0 do not matter
    assert s.key({**p, "x": 0.30000000001}) != k
    code = ("from calopt.optimize import *; s = Space([Real('x', -2, 3), Real('y', 1e-3, 10, log=True), "
            "Integer('k', -1, 4), Categorical('c', ('a', 'b', 'c')), Boolean('b'), Categorical('n', (1, 2.5, 'z'))]); "
            "print(s.key({'x': 0.1 + 0.2, 'y': 1.0, 'k': 2, 'c': 'a', 'b': True, 'n': 1}))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == k
    assert json.loads(k)["x"] == 0.3


def test_enumerate_with_constraint() -> None:
    s = finite_space()
    pts = s.enumerate()
    # i + j <= 4: (j=1: i 0..3) 4 + (j=2) 3 + (j=3) 2 = 9 pairs; (m, t) in 3 allowed combinations
    assert len(pts) == s.size == 27
    assert pts[0] == {"i": 0, "j": 1, "m": "pb", "t": False}
    assert len({s.key(p) for p in pts}) == 27
    assert all(s.is_valid(p) for p in pts)
    assert pts == s.enumerate()  # deterministic
    with pytest.raises(CaloptInputError, match="not finite"):
        mixed_space().enumerate()
    big = Space([Integer(f"i{k}", 0, 99) for k in range(4)])
    assert big.is_finite
    with pytest.raises(CaloptInputError, match="more than the 1000000"):
        big.enumerate()


def test_sample_validity_and_uniformity() -> None:
    s = finite_space()
    rng = np.random.default_rng(0)
    pts = s.sample(rng, 5400)
    assert all(s.is_valid(p) for p in pts)
    assert set(_count(s, pts)) == {s.key(p) for p in s.enumerate()}
    c = np.array(list(_count(s, pts).values()))
    assert c.min() > 200 - 5 * 14 and c.max() < 200 + 5 * 14  # 5400/27 = 200 +- sqrt(200)
    assert s.sample(np.random.default_rng(3), 4) == s.sample(np.random.default_rng(3), 4)
    assert s.sample(rng, 0) == []
    m = mixed_space()
    assert all(m.is_valid(p) for p in m.sample(rng, 100))
    ys = np.log10([p["y"] for p in m.sample(rng, 4000)])
    assert abs(np.mean(ys < -1.0) - 0.5) < 0.05  # log-uniform in [1e-3, 10]: half below 0.1
    # a tight constraint on a real parameter: rejection still finds points
    tight = Space([Real("x", 0, 1), Real("y", 0, 1)], constraint=lambda p: p["x"] + p["y"] < 0.1)
    assert all(p["x"] + p["y"] < 0.1 for p in tight.sample(rng, 20))
    impossible = Space([Real("x", 0, 1)], constraint=lambda p: p["x"] > 2)
    with pytest.raises(CaloptInputError, match="could not sample"):
        impossible.sample(rng, 1)


def _count(s: Space, pts: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pts:
        out[s.key(p)] = out.get(s.key(p), 0) + 1
    return out


def test_is_valid_and_check() -> None:
    s = mixed_space()
    good = {"x": 0.0, "y": 1.0, "k": 0, "c": "a", "b": False, "n": 2.5}
    assert s.is_valid(good)
    s.check(good)
    bad = [
        ({**good, "x": 3.5}, r"parameter 'x': value 3.5 is not a number in \[-2, 3\]"),
        ({**good, "x": float("nan")}, "parameter 'x': value nan"),
        ({**good, "k": 1.0}, r"parameter 'k': value 1.0 is not an integer in \[-1, 4\]"),
        ({**good, "k": True}, "parameter 'k': value True"),
        ({**good, "c": "d"}, r"parameter 'c': value 'd' is not one of \['a', 'b', 'c'\]"),
        ({**good, "b": 1}, "parameter 'b': value 1 is not one of"),
        ({**good, "n": "1"}, "parameter 'n': value '1'"),
        ({k: v for k, v in good.items() if k != "y"}, "lacks parameter 'y'"),
        ({**good, "extra": 1}, "unknown parameter 'extra'"),
        ([1, 2], "must be a dict"),
    ]
    for point, msg in bad:
        assert not s.is_valid(point)
        with pytest.raises(CaloptInputError, match=msg):
            s.check(point)
    f = finite_space()
    with pytest.raises(CaloptInputError, match="violates the constraint"):
        f.check({"i": 4, "j": 1, "m": "w", "t": True})


@pytest.mark.parametrize(
    ("make", "msg"),
    [
        (lambda: Real("x", 1.0, 1.0), "parameter 'x': low 1 must be below high 1"),
        (lambda: Real("x", 2.0, 1.0), "parameter 'x': low 2 must be below high 1"),
        (lambda: Real("x", 0.0, 1.0, log=True), "parameter 'x': log scale needs low > 0"),
        (lambda: Real("x", 0.0, math.inf), "parameter 'x': high must be a finite number"),
        (lambda: Real("x", "a", 1.0), "parameter 'x': low must be a finite number"),
        (lambda: Integer("n", 3, 3), "parameter 'n': low 3 must be below high 3"),
        (lambda: Integer("n", 0.5, 3), "parameter 'n': low must be an integer, got 0.5"),
        (lambda: Categorical("c", ()), "parameter 'c': empty choices"),
        (lambda: Categorical("c", ("a", "a")), "parameter 'c': duplicate choice 'a'"),
        (lambda: Categorical("c", (1, 1.0)), "parameter 'c': duplicate choice 1.0"),
        (lambda: Categorical("c", (None,)), "parameter 'c': choice None is not"),
        (lambda: Categorical("c", "abc"), "parameter 'c': choices must be a sequence"),
        (lambda: Real("", 0, 1), "parameter name must be a non-empty string"),
        (lambda: Space([]), "empty parameter space"),
        (lambda: Space([Real("x", 0, 1), Integer("x", 0, 3)]), "duplicate parameter name 'x'"),
        (lambda: Space([Integer("i", 0, 3)], constraint=lambda p: p["i"] > 5), "no point that satisfies"),
        (lambda: Space(["x"]), "not a parameter: 'x'"),  # type: ignore[list-item]
    ],
)
def test_input_errors(make, msg) -> None:
    with pytest.raises(CaloptInputError, match=msg):
        make()


def test_bool_and_int_choices_are_distinct() -> None:
    c = Categorical("c", (0, 1, False, True))
    s = Space([c])
    assert s.size == 4
    assert s.decode(s.encode({"c": True}))[0]["c"] is True
    assert s.decode(s.encode({"c": 1}))[0]["c"] == 1 and type(s.decode(s.encode({"c": 1}))[0]["c"]) is int
    assert len({s.key(p) for p in s.enumerate()}) == 4


def test_to_dict_from_dict_round_trip() -> None:
    s = mixed_space()
    d = json.loads(json.dumps(s.to_dict()))
    t = Space.from_dict(d)
    assert t.params == s.params and t.names == s.names and t.dim == s.dim
    assert d["constrained"] is False
    f = finite_space()
    d = f.to_dict()
    assert d["constrained"] is True
    g = Space.from_dict(json.loads(json.dumps(d)), constraint=f.constraint)
    assert g.size == f.size
    with pytest.raises(CaloptInputError, match="unknown type 'complex'"):
        Space.from_dict({"params": [{"type": "complex", "name": "z"}]})
    with pytest.raises(CaloptInputError, match="bad parameter description"):
        Space.from_dict({"params": [{"type": "real", "name": "z"}]})
    with pytest.raises(CaloptInputError, match="expected a dict with a list 'params'"):
        Space.from_dict({"p": []})


def test_huge_integer_ranges_are_counted_and_sampled_without_listing() -> None:
    """A space of 10^18 combinations is built, counted and sampled at once; only listing it is
    refused, with its size."""
    import time

    t0 = time.perf_counter()
    s = Space([Integer("a", 1, 10**9), Integer("b", 0, 10**9 - 1), Boolean("t")])
    assert s.n_combinations == s.size == 10**9 * 10**9 * 2
    pts = s.sample(np.random.default_rng(0), 500)
    assert time.perf_counter() - t0 < 0.5
    assert all(s.is_valid(p) and 1 <= p["a"] <= 10**9 and 0 <= p["b"] < 10**9 for p in pts)
    assert max(p["a"] for p in pts) > 10**8  # the whole range is drawn from
    assert s.decode(s.encode(pts)) == pts
    with pytest.raises(CaloptInputError, match=r"has 2000000000000000000 combinations, more than the 1000000"):
        s.enumerate()


def test_huge_constrained_space_samples_by_rejection() -> None:
    """With a constraint, a space too large to list is sampled (each point satisfies it); its
    number of valid points, which needs the list, is refused with the size."""
    s = Space([Integer("a", 0, 10**9), Integer("b", 0, 10**9)], constraint=lambda p: p["a"] < p["b"])
    pts = s.sample(np.random.default_rng(1), 200)
    assert len(pts) == 200 and all(p["a"] < p["b"] for p in pts)
    assert s.n_combinations == (10**9 + 1) ** 2
    with pytest.raises(CaloptInputError, match=r"more than the 1000000 that can be enumerated"):
        _ = s.size


def test_optimisers_on_a_space_too_large_to_list() -> None:
    """Optimisers that sample work on a 10^18-point space; exhaustive search, which must list it,
    is refused in one line giving the size."""
    from calopt.optimize.optimizers import get_optimizer

    s = Space([Integer("a", 1, 10**9), Integer("b", 1, 10**9)])
    for name in ("random", "cmaes"):
        opt = get_optimizer(name, s, seed=0)
        pts = opt.ask(4)
        assert len(pts) == 4 and all(s.is_valid(p) for p in pts)
    with pytest.raises(CaloptInputError, match=r"^optimiser 'exhaustive' lists every point, and the space has "
                                               r"1000000000000000000 combinations"):  # fmt: skip
        get_optimizer("exhaustive", s)
