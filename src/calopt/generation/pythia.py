"""Pythia 8 (``pythia8mc``) pp collisions at 14 TeV: minimum bias and signal decays.

Settings follow physics-reference §4: ``SoftQCD:inelastic`` for minimum bias; for the signal
a separate instance (forced decays apply to every copy of a particle in one instance) with
``HardQCD:hardbbbar``, p_T-hat > 3 GeV and the forced chain B0 -> J/psi pi0, J/psi -> mu+ mu-.
Events are generated at the origin: the luminous region (vertex z and t) is applied by
:mod:`calopt.generation.runner` so that each collision of a crossing gets its own vertex.
Only final-state particles moving forward (p_z > 0) are kept; neutrinos are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from calopt.constants import SPEED_OF_LIGHT
from calopt.errors import CaloptError

__all__ = ["Collision", "minbias_collisions", "pythia_seed", "signal_collisions"]

NEUTRINOS = {12, 14, 16}


@dataclass
class Collision:
    """Final-state particles of one pp collision generated at the origin.

    pdg (M,), charge (M,), p (M, 3) [MeV/c], energy (M,) [MeV], mass (M,), vertex (M, 4)
    [mm, ns] relative to the collision point, flags (M,) (signal bits of
    :class:`calopt.generation.events.FLAG`), and for signal collisions ``truth`` four-momenta.
    """

    pdg: np.ndarray
    charge: np.ndarray
    p: np.ndarray
    energy: np.ndarray
    mass: np.ndarray
    vertex: np.ndarray
    flags: np.ndarray
    truth: dict[str, np.ndarray] | None = None


def pythia_seed(seed: int, *stream: int) -> int:
    """A Pythia seed (1 .. 900 000 000) derived from a calopt seed and a stream index."""
    state = np.random.SeedSequence([int(seed), 0x9F7A, *stream]).generate_state(1, dtype=np.uint32)[0]
    return int(state % 900_000_000) + 1


def _make(settings: list[str], seed: int) -> Any:
    try:
        import pythia8mc
    except ImportError:  # pragma: no cover - pythia8mc is a dependency
        raise CaloptError("pythia8mc is not installed: pip install pythia8mc==8.317.0") from None
    py = pythia8mc.Pythia("", False)
    for s in [
        "Beams:eCM = 14000.",
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        *settings,
    ]:
        if not py.readString(s):
            raise CaloptError(f"Pythia refused the setting {s!r}")
    if not py.init():
        raise CaloptError("Pythia failed to initialise")
    return py


def _final_state(ev: Any, flags_of: dict[int, int] | None = None) -> Collision:
    rows = []
    for k in range(ev.size()):
        q = ev[k]
        if not q.isFinal() or q.idAbs() in NEUTRINOS or q.pz() <= 0.0:
            continue
        rows.append(
            (q.id(), q.charge(), q.px(), q.py(), q.pz(), q.e(), q.m(), q.xProd(), q.yProd(), q.zProd(), q.tProd(),
             (flags_of or {}).get(k, 0))
        )  # fmt: skip
    a = np.array(rows, dtype=float).reshape(-1, 12)
    gev = 1000.0
    vertex = np.stack([a[:, 7], a[:, 8], a[:, 9], a[:, 10] / SPEED_OF_LIGHT], axis=1)  # tProd in mm/c
    return Collision(
        pdg=a[:, 0].astype(np.int32),
        charge=np.rint(a[:, 1]).astype(np.int8),
        p=a[:, 2:5] * gev,
        energy=a[:, 5] * gev,
        mass=a[:, 6] * gev,
        vertex=vertex,
        flags=a[:, 11].astype(np.uint8),
    )


def minbias_collisions(n: int, seed: int) -> list[Collision]:
    """``n`` inelastic pp collisions (SoftQCD:inelastic, physics-reference §4)."""
    py = _make(["SoftQCD:inelastic = on"], seed)
    out: list[Collision] = []
    while len(out) < n:
        if py.next():
            out.append(_final_state(py.event))
    return out


def _p4(q: Any) -> np.ndarray:
    return np.array([q.px(), q.py(), q.pz(), q.e()]) * 1000.0


def signal_collisions(n: int, seed: int, accept: Any) -> tuple[list[Collision], int]:
    """``n`` accepted B0 -> J/psi(mu mu) pi0 collisions. ``accept(collision)`` decides whether a
    candidate (with truth) is kept, e.g. both photons and muons in the acceptance. Returns the
    collisions and the number of signal candidates tried."""
    from calopt.generation.events import FLAG

    py = _make(
        [
            "HardQCD:hardbbbar = on",
            "PhaseSpace:pTHatMin = 3.",
            "511:oneChannel = 1 1.0 0 443 111",
            "443:oneChannel = 1 1.0 0 13 -13",
        ],
        seed,
    )
    out: list[Collision] = []
    tried = 0
    while len(out) < n:
        if not py.next():
            continue
        ev = py.event
        for k in range(ev.size()):
            b = ev[k]
            if b.idAbs() != 511:
                continue
            dl = list(b.daughterList())
            ids = sorted(abs(ev[d].id()) for d in dl)
            if ids != [111, 443]:
                continue
            pi0 = ev[next(d for d in dl if ev[d].id() == 111)]
            jpsi = ev[next(d for d in dl if ev[d].idAbs() == 443)]
            gl = list(pi0.daughterList())
            ml = list(jpsi.daughterList())
            if len(gl) != 2 or any(ev[g].id() != 22 for g in gl):
                continue  # Dalitz decay
            mus = {ev[m].id(): m for m in ml if ev[m].idAbs() == 13}
            if set(mus) != {13, -13}:
                continue  # J/psi -> mu mu gamma
            tried += 1
            flags = {i: FLAG.FROM_SIGNAL for i in range(ev.size())}
            for g in gl:
                flags[g] |= FLAG.SIGNAL_PI0_PHOTON
            for m in mus.values():
                flags[m] |= FLAG.SIGNAL_MUON
            col = _final_state(ev, flags)
            col.truth = {
                "b": _p4(b),
                "jpsi": _p4(jpsi),
                "pi0": _p4(pi0),
                "gamma1": _p4(ev[gl[0]]),
                "gamma2": _p4(ev[gl[1]]),
                "mu_plus": _p4(ev[mus[-13]]),
                "mu_minus": _p4(ev[mus[13]]),
                "b_decay_vertex": np.array([pi0.xProd(), pi0.yProd(), pi0.zProd(), pi0.tProd() / SPEED_OF_LIGHT]),
            }
            if accept(col):
                out.append(col)
            break
    return out, tried
