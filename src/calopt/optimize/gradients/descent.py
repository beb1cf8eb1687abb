"""Gradient-based design of a module: steps proposed from estimated gradients and accepted only
when the cascade confirms them (a trust region with a rho test, as SHiP's optimiser does).

The objective is a weighted sum of objectives (:mod:`calopt.optimize.gradients.objectives`),
e.g. ``100 sigma/E + 0.5 cost``, plus quadratic penalties for the constraints (maximum depth,
mass and cost per module). Parameters move in normalised coordinates u = (theta - lo) / (hi -
lo) of a box, so that one radius fits parameters whose gradients differ by orders of
magnitude (TomOpt's per-parameter learning rates, arXiv:2309.14027, do the same job).

One step from theta_k with radius r:

1. estimate the objective at theta_k and its gradient g with the chosen estimator
   (``step_budget`` showers); the penalty is exact (it is a function of the parameters alone);
2. propose s: ``trust-region``, the minimum inside the ball of radius r and the box of the
   model m(s) = g . s + penalty(theta_k + s), linear in the estimated objective and exact in the
   penalty, so that a step into a constraint's steep wall is not predicted as a decrease;
   ``adam``, Adam's update (Kingma & Ba 2015; per-parameter, from the running moments of the
   whole gradient) of length at most r, projected into the box;
3. predicted decrease pred = m(0) - m(s); measure J(theta_k) and J(theta_k + s) on the cascade
   with common random numbers (``check_budget`` showers each) and their difference;
4. rho = actual / pred. Accept when rho >= ``eta`` (0.1) and the measured decrease is positive;
   the radius doubles when rho >= 0.75 (up to ``max_radius``) and halves when rho < 0.25 or the
   step is rejected. A proposal outside the space (e.g. deeper than the ECAL) is rejected. No
   predicted decrease inside the box means converged: the descent stops.

The budget counts every cascade shower (gradients and checks). Every step is returned and, if
``log`` is given, appended to a JSON-lines file as it happens, from which :func:`descend`
resumes (same settings, same seeds: the finished steps are read back, not recomputed).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calopt.detector.module import LIMITS, ModuleSpec
from calopt.errors import CaloptInputError
from calopt.optimize.gradients import central_difference, estimate, moved_all
from calopt.optimize.gradients.objectives import Objective, get_objective
from calopt.optimize.gradients.samples import cascade_sample

__all__ = ["DescentSettings", "Problem", "State", "Step", "answer", "check_start", "descend", "penalty", "state_after",
           "step_showers", "steps_figure", "stop_reason", "take_step"]  # fmt: skip

PENALTY_WEIGHT = 100.0  # per unit of relative violation squared
CONVERGED = "converged: no decrease predicted inside the box (zero projected gradient)"


@dataclass(frozen=True)
class Problem:
    """What is minimised: sum of weight x objective over ``terms`` [(objective name, weight)]
    at ``energy_gev`` (objectives with showers), subject to ``max_depth_mm``, ``max_mass_kg`` and
    ``max_cost_kchf`` (None: no constraint), over ``parameters`` in ``box`` {name: (lo, hi)}."""

    terms: tuple[tuple[str, float], ...]
    box: dict[str, tuple[float, float]]
    energy_gev: float = 10.0
    max_depth_mm: float | None = None
    max_mass_kg: float | None = None
    max_cost_kchf: float | None = None
    hold_depth_x0: bool = True

    def __post_init__(self) -> None:
        for name, (lo, hi) in self.box.items():
            if name not in LIMITS:
                raise CaloptInputError(f"box parameter {name!r} is not a module parameter")
            llo, lhi = LIMITS[name]
            if not (llo <= lo < hi <= lhi):
                raise CaloptInputError(f"box of {name}: need {llo:g} <= lo < hi <= {lhi:g}, got {lo:g}, {hi:g}")
        for _name, w in self.terms:
            if not math.isfinite(w):
                raise CaloptInputError(f"objective weight {w!r} must be finite")

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.box)

    def objectives(self) -> list[tuple[Objective, float]]:
        return [(get_objective(name, self.energy_gev), w) for name, w in self.terms]


def penalty(problem: Problem, spec: ModuleSpec) -> float:
    """Quadratic penalty of the constraints: PENALTY_WEIGHT x (relative violation)^2 each."""
    props = spec.properties()
    out = 0.0
    for limit, value in ((problem.max_depth_mm, props["depth_mm"]), (problem.max_mass_kg, props["mass_kg"]),
                         (problem.max_cost_kchf, props["cost_kchf_per_module"])):  # fmt: skip
        if limit is not None and value > limit:
            out += PENALTY_WEIGHT * ((value - limit) / limit) ** 2
    return out


@dataclass(frozen=True)
class DescentSettings:
    """How to descend (module docstring)."""

    estimator: str = "fd"
    method: str = "trust-region"  # or "adam"
    budget: int = 20000  # cascade showers in all
    step_budget: int = 2000  # showers per gradient estimate
    check_budget: int = 1000  # showers per point of the rho test
    radius: float = 0.1  # initial trust radius in normalised units
    max_radius: float = 0.4
    min_radius: float = 0.01
    eta: float = 0.1
    rel_step: float = 0.15
    learning_rate: float = 0.1  # Adam's
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("trust-region", "adam"):
            raise CaloptInputError(f"descent method {self.method!r} is not trust-region or adam")
        for name in ("budget", "step_budget", "check_budget"):
            if getattr(self, name) <= 0:
                raise CaloptInputError(f"{name} must be positive, got {getattr(self, name)}")
        if not (0 < self.min_radius <= self.radius <= self.max_radius <= 1.0):
            raise CaloptInputError("need 0 < min_radius <= radius <= max_radius <= 1")


@dataclass
class Step:
    """One step of the descent (values in the problem's units, parameters in theirs)."""

    index: int
    parameters: dict[str, float]
    value: float
    value_err: float
    gradient: dict[str, float]
    gradient_err: dict[str, float]
    proposal: dict[str, float] | None
    predicted: float | None
    actual: float | None
    actual_err: float | None
    rho: float | None
    accepted: bool
    radius: float
    showers: int  # cumulative cascade showers
    note: str = ""
    adam: dict[str, list[float]] = field(default_factory=dict)


def _u(problem: Problem, spec: ModuleSpec) -> np.ndarray:
    return np.array([(getattr(spec, p) - lo) / (hi - lo) for p, (lo, hi) in problem.box.items()])


def _theta(problem: Problem, u: np.ndarray) -> dict[str, float]:
    return {p: float(lo + ui * (hi - lo)) for (p, (lo, hi)), ui in zip(problem.box.items(), u)}


def _value_and_gradient(problem: Problem, spec: ModuleSpec, st: DescentSettings,
                        seed: int) -> tuple[float, float, dict[str, float], dict[str, float], int]:  # fmt: skip
    """The weighted objectives (without the penalty) and their gradient, by the estimator."""
    value, var, showers = 0.0, 0.0, 0
    grad = dict.fromkeys(problem.parameters, 0.0)
    gvar = dict.fromkeys(problem.parameters, 0.0)
    for obj, w in problem.objectives():
        r = estimate(obj, spec, st.estimator if obj.beam is not None else "fd", st.step_budget,
                     parameters=problem.parameters, seed=seed, rel_step=st.rel_step,
                     hold_depth_x0=problem.hold_depth_x0)  # fmt: skip
        value += w * r.value
        var += (w * r.value_err) ** 2
        showers += r.showers
        for p in problem.parameters:
            grad[p] += w * r.gradient[p]
            gvar[p] += (w * r.gradient_err[p]) ** 2
    return value, math.sqrt(var), grad, {p: math.sqrt(v) for p, v in gvar.items()}, showers


def _penalty_gradient(problem: Problem, spec: ModuleSpec, rel_step: float) -> np.ndarray:
    """d penalty / d parameter (:func:`central_difference`); 0 where there is no penalty, and for
    a parameter whose difference would leave the space."""
    out = np.zeros(len(problem.parameters))
    if penalty(problem, spec) == 0.0:
        return out
    for i, p in enumerate(problem.parameters):
        try:
            out[i] = central_difference(lambda x: penalty(problem, x), spec, p, rel_step, problem.hold_depth_x0)
        except CaloptInputError:
            continue
    return out


def _penalty_at(problem: Problem, start: ModuleSpec, u: np.ndarray) -> float:
    """The exact penalty at normalised point ``u`` (inf outside the space)."""
    try:
        return penalty(problem, moved_all(start, _theta(problem, u), problem.hold_depth_x0))
    except CaloptInputError:
        return math.inf


def _model_step(problem: Problem, start: ModuleSpec, u0: np.ndarray, g_u: np.ndarray, radius: float,
                seed: int, direction: np.ndarray | None = None) -> tuple[np.ndarray, float]:  # fmt: skip
    """The step s minimising the model m(u0 + s) = g_u . s + penalty(u0 + s) inside the ball of
    ``radius`` and the box, and its predicted decrease m(u0) - m(u0 + s): linear in the estimated
    objective, exact in the penalty (deterministic and cheap), so a step into a constraint's
    steep wall is not predicted as a decrease. Candidates: the steepest-descent direction (or
    ``direction``), 32 others spread over directions, at 1/4, 1/2 and all of the radius."""
    dim = len(u0)
    rng = np.random.default_rng([seed, 0x7E6])
    if dim == 2:
        angles = np.linspace(0.0, 2.0 * math.pi, 32, endpoint=False)
        dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        dirs = rng.standard_normal((32, dim))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lead = direction if direction is not None else -g_u
    if float(np.linalg.norm(lead)) > 0:
        dirs = np.vstack([lead / np.linalg.norm(lead), dirs])
    m0 = _penalty_at(problem, start, u0)
    best_s, best_m = np.zeros(dim), m0
    for d in dirs:
        for f in (0.25, 0.5, 1.0):
            s = np.clip(u0 + f * radius * d, 0.0, 1.0) - u0
            m = float(g_u @ s) + _penalty_at(problem, start, u0 + s)
            if m < best_m - 1e-12:
                best_s, best_m = s, m
    return best_s, m0 - best_m


def _difference(problem: Problem, a: ModuleSpec, b: ModuleSpec, n: int, seed: int) -> tuple[float, float, int]:
    """J(a) - J(b) measured on the cascade with common random numbers, its paired-bootstrap error
    (:func:`~calopt.optimize.gradients.finite.paired_values`) and the showers used."""
    from calopt.optimize.gradients.finite import N_BOOTSTRAP, paired_values

    rng = np.random.default_rng([seed, 0xD1FF])
    diff, boots, showers = 0.0, np.zeros(N_BOOTSTRAP), 0
    for obj, w in problem.objectives():
        if obj.beam is None:
            diff += w * (obj.exact(a) - obj.exact(b))
            continue
        vals = paired_values(obj, [cascade_sample(a, obj.beam, n, seed), cascade_sample(b, obj.beam, n, seed)], n, rng)
        showers += 2 * n
        diff += w * (vals[0, 0] - vals[0, 1])
        boots += w * (vals[1:, 0] - vals[1:, 1])
    diff += penalty(problem, a) - penalty(problem, b)
    return float(diff), float(boots.std(ddof=1)), showers


@dataclass(frozen=True)
class State:
    """Where the descent stands before step ``index``: the current point, the trust radius, the
    cascade showers used so far and Adam's moments (all read from the steps before it)."""

    index: int
    parameters: dict[str, float]
    radius: float
    showers: int
    adam: dict[str, list[float]]


def state_after(problem: Problem, start: ModuleSpec, settings: DescentSettings, steps: list[Step]) -> State:
    """The state after ``steps`` (none: the start, the initial radius, no showers used)."""
    if not steps:
        zeros = [0.0] * len(problem.parameters)
        return State(0, {p: float(getattr(start, p)) for p in problem.parameters}, settings.radius, 0,
                     {"m": zeros, "v": list(zeros)})  # fmt: skip
    last = steps[-1]
    here = last.proposal if last.accepted and last.proposal is not None else last.parameters
    return State(len(steps), dict(here), last.radius, last.showers, last.adam)


def stop_reason(problem: Problem, settings: DescentSettings, steps: list[Step]) -> str | None:
    """Why the descent stops after ``steps`` (None: it goes on): converged, the trust radius below
    its minimum, or the budget not covering another step."""
    if steps and steps[-1].note == CONVERGED:
        return "converged"
    radius = steps[-1].radius if steps else settings.radius
    if radius < settings.min_radius:
        return f"trust radius {radius:.3g} below its minimum {settings.min_radius:g}"
    used, need = (steps[-1].showers if steps else 0), step_showers(problem, settings)
    if used + need > settings.budget:
        return f"budget: {used} of {settings.budget} showers used, a step needs {need}"
    return None


def step_showers(problem: Problem, settings: DescentSettings) -> int:
    """Cascade showers of one step: a gradient estimate per objective with showers, and the two
    points of the rho test."""
    with_showers = sum(1 for o, _ in problem.objectives() if o.beam is not None)
    return settings.step_budget * with_showers + 2 * settings.check_budget


def take_step(problem: Problem, start: ModuleSpec, settings: DescentSettings, state: State) -> Step:
    """One step from ``state`` (module docstring): estimate, propose, check on the cascade. A
    function of its arguments alone (seeds from ``settings.seed`` and the step index), so a
    campaign can run it on any worker and a resumed descent repeats it exactly."""
    st = settings
    k = state.index
    spec = moved_all(start, state.parameters, problem.hold_depth_x0) if k else start
    radius, used = state.radius, state.showers
    m, v = np.array(state.adam["m"]), np.array(state.adam["v"])
    scale = np.array([hi - lo for lo, hi in problem.box.values()])
    seed = st.seed + 7919 * k
    value, value_err, grad, grad_err, n_used = _value_and_gradient(problem, spec, st, seed)
    used += n_used
    g_u = np.array([grad[p] for p in problem.parameters]) * scale  # d(objective)/du, penalty apart
    u0 = _u(problem, spec)
    pen0 = penalty(problem, spec)
    pen_grad = _penalty_gradient(problem, spec, st.rel_step) * scale
    value += pen0
    grad = {p: grad[p] + pen_grad[i] / scale[i] for i, p in enumerate(problem.parameters)}
    if st.method == "adam":  # Adam's moments of the whole gradient give the direction
        b1, b2 = 0.9, 0.999
        full = g_u + pen_grad
        m = b1 * m + (1 - b1) * full
        v = b2 * v + (1 - b2) * full**2
        mh, vh = m / (1 - b1 ** (k + 1)), v / (1 - b2 ** (k + 1))
        direction = -mh / (np.sqrt(vh) + 1e-12)
        length = min(radius, st.learning_rate * float(np.linalg.norm(direction)))
        s = np.clip(u0 + length * direction / max(float(np.linalg.norm(direction)), 1e-12), 0.0, 1.0) - u0
        pred = float(-(g_u @ s)) + pen0 - _penalty_at(problem, start, u0 + s)
    else:
        s, pred = _model_step(problem, start, u0, g_u, radius, seed)
    proposal = _theta(problem, u0 + s)
    note = ""
    actual = actual_err = rho = None
    accepted = False
    try:
        new = moved_all(start, proposal, problem.hold_depth_x0)
    except CaloptInputError as exc:
        note = f"proposal outside the space: {exc}"
    else:
        if pred <= 1e-12 or not np.any(s):
            note = CONVERGED
        else:
            diff, actual_err, n_used = _difference(problem, spec, new, st.check_budget, seed + 1)
            used += n_used
            actual = diff
            rho = actual / pred
            accepted = rho >= st.eta and actual > 0
    if accepted and rho is not None and rho >= 0.75:
        radius = min(2.0 * radius, st.max_radius)
    elif not accepted or (rho is not None and rho < 0.25):
        radius = 0.5 * radius
    return Step(k, {p: float(getattr(spec, p)) for p in problem.parameters}, value, value_err, grad, grad_err,
                proposal, pred, actual, actual_err, rho, accepted, radius, used, note,
                {"m": m.tolist(), "v": v.tolist()})  # fmt: skip


def check_start(problem: Problem, start: ModuleSpec) -> None:
    """Refuse a start whose parameters are not continuous ones of its module or lie outside the box."""
    for p in problem.parameters:
        if p not in start.continuous():
            raise CaloptInputError(f"parameter {p!r} is not a continuous parameter of {start.name}; expected some "
                                   f"of {', '.join(start.continuous())}")  # fmt: skip
        lo, hi = problem.box[p]
        if not lo <= getattr(start, p) <= hi:
            raise CaloptInputError(f"start {p} = {getattr(start, p):g} is outside the box [{lo:g}, {hi:g}]")


def descend(problem: Problem, start: ModuleSpec, settings: DescentSettings, *, log: Path | None = None,
            max_steps: int = 1000) -> list[Step]:  # fmt: skip
    """Run the descent from ``start`` until it converges or reaches the budget, the minimum
    radius or ``max_steps`` (:func:`stop_reason`); returns every step (the last accepted
    proposal, or the last point, is the answer)."""
    check_start(problem, start)
    steps = _read_log(log, problem, start, settings) if log is not None else []
    while len(steps) < max_steps and stop_reason(problem, settings, steps) is None:
        step = take_step(problem, start, settings, state_after(problem, start, settings, steps))
        steps.append(step)
        if log is not None:
            _append(log, step)
    return steps


def answer(steps: list[Step]) -> dict[str, float]:
    """The descent's answer: the last step's accepted proposal, else its point."""
    last = steps[-1]
    return dict(last.proposal if last.accepted and last.proposal is not None else last.parameters)


def _header(problem: Problem, start: ModuleSpec, st: DescentSettings) -> dict[str, Any]:
    return {"problem": {**asdict(problem), "box": {k: list(v) for k, v in problem.box.items()}},
            "start": json.loads(start.to_json()), "settings": asdict(st)}  # fmt: skip


def _read_log(log: Path, problem: Problem, start: ModuleSpec, st: DescentSettings) -> list[Step]:
    header = json.loads(json.dumps(_header(problem, start, st)))
    if not log.exists():
        _write_line(log, {"header": header}, mode="w")
        return []
    try:
        lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CaloptInputError(f"{log} is not a calopt descent log (JSON lines)") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("header") is None:
        raise CaloptInputError(f"{log} is not a calopt descent log")
    old = lines[0]["header"]
    if {k: v for k, v in old.items() if k != "settings"} != {k: v for k, v in header.items() if k != "settings"} or \
            {k: v for k, v in old["settings"].items() if k != "budget"} != {k: v for k, v in header["settings"].items()
                                                                           if k != "budget"}:  # fmt: skip
        raise CaloptInputError(f"{log} holds a descent with other settings; give another log or the same settings")
    return [Step(**x["step"]) for x in lines[1:] if "step" in x]


def _append(log: Path, step: Step) -> None:
    _write_line(log, {"step": asdict(step)}, mode="a")


def _write_line(path: Path, doc: dict[str, Any], mode: str) -> None:
    with path.open(mode, encoding="utf-8") as f:
        f.write(json.dumps(doc) + "\n")
        f.flush()
        os.fsync(f.fileno())


def steps_figure(steps: list[Step]) -> Any:
    """A matplotlib figure of the objective (with its error) and each parameter against the
    step, accepted steps marked."""
    import matplotlib.pyplot as plt

    names = list(steps[0].parameters) if steps else []
    fig, axes = plt.subplots(1 + len(names), 1, figsize=(6, 2.2 * (1 + len(names))), sharex=True, squeeze=False)
    axes = axes[:, 0]
    k = [s.index for s in steps]
    acc = [s.accepted for s in steps]
    axes[0].errorbar(k, [s.value for s in steps], yerr=[s.value_err for s in steps], fmt="o-", ms=4)
    axes[0].set_ylabel("objective")
    for ax, name in zip(axes[1:], names):
        ax.plot(k, [s.parameters[name] for s in steps], "o-", ms=4)
        ax.plot([i for i, a in zip(k, acc) if a], [s.parameters[name] for s, a in zip(steps, acc) if a], "s",
                mfc="none", ms=8, label="step accepted")  # fmt: skip
        ax.set_ylabel(name.replace("_mm", " [mm]"))
    if names:
        axes[1].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    return fig


def plot_steps(steps: list[Step], path: Path) -> Path:
    """:func:`steps_figure` written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = steps_figure(steps)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
