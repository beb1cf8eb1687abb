"""Resumable surrogate training: the training state ``OUT.partial`` beside the checkpoint.

A training is a sequence of *phases* (the condition regressor, the generator of a GAN, an
AdaGAN mixture discriminator, the flow), each a loop of steps over its *parts*: networks,
optimisers, LR schedulers and plain records (loss histories, results), anything with
``state_dict()`` and ``load_state_dict()``. :meth:`TrainingState.phase` hands out the steps
of a phase. At the start of every phase and every ``every`` steps the state is written
(atomically) to ``OUT.partial``: one ``torch.save`` file of plain containers and tensors,
read back with ``weights_only=True``, holding the job (the settings, data files and calopt
version that fix the training), the units of work done, the parts of the phase under way and
of the finished phases (less their optimisers and schedulers, which are done with), and the
states of the data generator and of torch's global generator.

Started again with the same job, the training code runs from the beginning: a finished phase
loads its parts and runs no step, the phase under way loads its parts, restores both
generators and goes on from its step. All randomness comes from these two generators, so the
checkpoint is the same, bit for bit, as without the interruption (same thread count). Code
outside the loops runs again on resume with the generators in another state: it must not use
random numbers, except to initialise networks whose state is then loaded (a phase whose
inputs are random, like the mixture samples of an AdaGAN discriminator, keeps the generator
state it drew them from in a :class:`Record`).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError
from calopt.files import atomic_path

__all__ = ["SAVE_EVERY", "Phase", "Record", "TrainingState", "data_identity", "job_key", "partial_path"]

FORMAT = "calopt-surrogate-training"
FORMAT_VERSION = 1
SAVE_EVERY = 500  # steps of a phase between two saves: 20 MB of state every 10-30 s of training at the defaults


def partial_path(out: Path) -> Path:
    """The training state of the checkpoint ``out``."""
    return out.with_name(out.name + ".partial")


def data_identity(files: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """What identifies the training files in a job: absolute path, size and modification time."""
    ids = []
    for f in files:
        p = Path(f).resolve()
        st = p.stat() if p.is_file() else None
        ids.append({"path": str(p), "bytes": st.st_size if st else None, "mtime_ns": st.st_mtime_ns if st else None})
    return ids


class Record(dict[str, Any]):
    """Plain values of a phase (numbers, lists, tensors) saved with its networks."""

    def state_dict(self) -> dict[str, Any]:
        return dict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update(state)


def _is_working_state(part: Any) -> bool:
    """Optimisers and LR schedulers: needed to go on with a phase, not once it is over."""
    import torch

    return isinstance(part, torch.optim.Optimizer | torch.optim.lr_scheduler.LRScheduler)


class Phase:
    """The steps of one phase; iterate over it to train (a finished phase yields no step)."""

    def __init__(self, state: TrainingState, key: str, steps: int, parts: dict[str, Any]) -> None:
        self.state, self.key, self.steps, self.parts = state, key, steps, parts
        self.start = 0
        self.skipped = False  # finished before a resume: parts loaded, no step to run
        self._rng: tuple[Any, Any] | None = None  # the generators' states to go on with
        saved = state.saved
        if saved is not None and key in saved["finished"]:
            self._load(saved["finished"][key])
            self.start, self.skipped = steps, True
        elif saved is not None and key == saved["phase"]:
            self._load(saved["parts"])
            self.start = saved["step"]
            self._rng = (saved["rng"], saved["torch_rng"])

    def _load(self, states: dict[str, Any]) -> None:
        for name, st in states.items():
            self.parts[name].load_state_dict(st)

    def __iter__(self) -> Iterator[int]:
        import torch

        st = self.state
        if self._rng is not None:
            st.gen.set_state(self._rng[0])
            torch.set_rng_state(self._rng[1])
        for i in range(self.start, self.steps):
            if i % st.every == 0 and not (self._rng is not None and i == self.start):
                st.save(self, i)
            yield i
            st.tick()


class TrainingState:
    """The state of one training run, saved to ``path`` (``None``: never saved) and resumed
    from ``saved`` (a state of the same ``job``, or ``None``). Open it with :meth:`open`, then
    :meth:`begin` the training with its data generator."""

    def __init__(
        self, path: Path | None = None, job: str = "", saved: dict[str, Any] | None = None, every: int = SAVE_EVERY
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be positive, got {every}")
        self.path, self.job, self.saved, self.every = path, job, saved, every
        self.gen: Any = None
        self.done, self.total = 0, 0
        self.progress: Callable[[int, int], None] | None = None
        self._finished: dict[str, dict[str, Any]] = dict(saved["finished"]) if saved else {}
        self._current: Phase | None = None

    @classmethod
    def open(cls, path: Path, job: str, *, overwrite: bool = False, every: int = SAVE_EVERY) -> TrainingState:
        """The training state in ``path`` if it belongs to ``job``; a state of another job (or a
        file that is not a training state) is refused with one line, or removed when
        ``overwrite``."""
        saved = _read(path) if path.exists() else None
        if path.exists() and (saved is None or saved["job"] != job):
            if not overwrite:
                raise CaloptInputError(
                    f"{str(path)!r} holds an unfinished training with other settings (or is not a calopt training "
                    "state); rerun with the same settings to resume it, or remove it or use --overwrite to discard it"
                )
            path.unlink()
            saved = None
        return cls(path, job, saved, every)

    @property
    def resumes_at(self) -> str | None:
        """Where a resumed training goes on (``"step S of PHASE"``), ``None`` for a new one."""
        return None if self.saved is None else f"step {self.saved['step']} of {self.saved['phase']}"

    def begin(self, gen: Any, total: int, progress: Callable[[int, int], None] | None = None) -> None:
        """Start training with the data generator ``gen``; ``progress(done, total)`` is told of
        the units of work (the steps of all phases) now and every 10 units."""
        self.gen, self.total, self.progress = gen, total, progress
        self.done = self.saved["done"] if self.saved else 0
        if progress is not None:
            progress(self.done, total)

    def phase(self, key: str, steps: int, **parts: Any) -> Phase:
        """The phase ``key`` of ``steps`` steps that trains ``parts`` (names fixed for a key);
        the phase before it is over."""
        if self._current is not None and self._current.key not in self._finished:
            self._finished[self._current.key] = {
                name: copy.deepcopy(part.state_dict())
                for name, part in self._current.parts.items()
                if not _is_working_state(part)
            }
        self._current = Phase(self, key, steps, parts)
        return self._current

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None and (self.done % 10 == 0 or self.done == self.total):
            self.progress(self.done, self.total)

    def save(self, phase: Phase, step: int) -> None:
        """Write the state before ``step`` of ``phase`` (nothing without a path)."""
        import torch

        if self.path is None:
            return
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "job": self.job,
            "done": self.done,
            "finished": self._finished,
            "phase": phase.key,
            "step": step,
            "parts": {name: part.state_dict() for name, part in phase.parts.items()},
            "rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(self.path) as tmp:
            torch.save(doc, tmp)

    def remove(self) -> None:
        """Remove the saved state (the checkpoint is written)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    """The training state in ``path``, ``None`` if it is not one this calopt reads."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any unreadable file is "not a training state"
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        return None
    return doc


def job_key(doc: dict[str, Any]) -> str:
    """The job as compared between runs: ``doc`` as canonical JSON."""
    return json.dumps(doc, sort_keys=True)
