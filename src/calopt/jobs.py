"""Long jobs in chunks: atomic part files, resume after a kill, sequential or on Dask.

A job writes ``OUT`` from ``n_items`` items processed in chunks of ``chunk_size``. Each chunk
is written (atomically, by the chunk function) to ``OUT.parts/chunk-NNNNNN.h5``; the folder
also holds ``job.json``, the settings that fix the job. Started again with the same settings,
a job skips the finished chunks; with other settings it is refused, so that no part of one
run is mixed into another. The caller merges the parts into ``OUT`` and removes the folder.

Parallel work goes through Dask (docs/architecture.md, principles): a LocalCluster of single-threaded worker
processes, or any scheduler address. Chunk functions must be top-level functions taking
``(settings_json, k, parts_dir)`` so that they can be shipped to workers, and must derive all
their randomness from the settings and ``k``: the output then does not depend on the number
of workers.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError
from calopt.files import check_output_file, check_unlocked, output_lock

__all__ = ["MAX_SEED", "MAX_WORKERS", "ChunkedJob", "check_fits_in_memory", "check_seed", "format_bytes",
           "physical_memory", "scheduler_gone"]

MAX_SEED = 2**63 - 1  # seeds are stored as 64-bit signed integers (HDF5 attributes, SQLite rows)
# local Dask worker processes: more than the cores of a large node only costs memory (a worker
# holds its own tables and libraries); a cluster beyond that is reached with --scheduler
MAX_WORKERS = 256


def check_seed(seed: int) -> None:
    """Refuse, in one line, a seed outside [0, :data:`MAX_SEED`]."""
    if not 0 <= seed <= MAX_SEED:
        raise CaloptInputError(f"seed must be in [0, 2^63 - 1], got {seed}")


def physical_memory() -> int:
    """This machine's physical memory [bytes]."""
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest unit that keeps it >= 1 (B, kB, MB, GB, TB, PB)."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def check_fits_in_memory(what: str, n: int, bytes_each: float, unit: str) -> None:
    """Refuse, with the estimate, a job whose ``n`` items of about ``bytes_each`` bytes each
    (held together in memory: a merged output, a sample of crossings) would need more than this
    machine's physical memory -- a job that cannot finish is not started. The estimates are
    orders of magnitude (they name what they count); a job near the limit is left to run."""
    need = float(n) * bytes_each
    have = physical_memory()
    if need > have:
        raise CaloptInputError(
            f"{what} {n} would hold about {format_bytes(need)} in memory ({format_bytes(bytes_each)} per {unit}), "
            f"more than this machine's {format_bytes(have)}; split the job or use fewer"
        )


def scheduler_gone(future: Any, address: str | None, unfinished: str, then: str) -> CaloptInputError | None:
    """The one-line error of a Dask run whose scheduler went away (killed, its node gone, the
    network cut), or None when ``future`` raised for another reason.

    The client then cancels every future it holds (``FutureCancelledError``, reason
    ``scheduler-connection-lost``): such a future is cancelled or lost, whereas one whose task
    raised -- the task's own exception, or ``KilledWorker`` when its workers died too often --
    has status ``error``. A lost scheduler is not a failure of the work: the caller stops,
    leaving ``unfinished`` to be done by running again (``then``). The client's log of its
    failed reconnection, which closing it would print after this line, is silenced."""
    import logging

    if future.status == "error":
        return None
    logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    where = f"at {address!r}" if address else "of the local cluster"
    return CaloptInputError(f"lost the Dask scheduler {where} ({future.status}: the scheduler or the network "
                            f"went away); {unfinished}: {then}")  # fmt: skip


@dataclass
class ChunkedJob:
    """A resumable chunked job writing ``out``; ``is_ours(path)`` tells whether a file is of
    the job's output format (``kind``, for messages)."""

    out: Path
    settings_json: str
    n_items: int
    chunk_size: int
    is_ours: Callable[[Path], bool]
    kind: str

    @property
    def parts(self) -> Path:
        return self.out.with_name(self.out.name + ".parts")

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_items / self.chunk_size)

    def chunk_path(self, k: int) -> Path:
        return self.parts / f"chunk-{k:06d}.h5"

    def chunk_items(self, k: int) -> int:
        return min(self.chunk_size, self.n_items - k * self.chunk_size)

    def _finished(self, k: int) -> bool:
        p = self.chunk_path(k)
        return p.is_file() and self.is_ours(p)

    def check(self, overwrite: bool) -> None:
        """Refuse, without touching anything, an output that cannot or must not be written (a
        file of another kind is refused even with ``overwrite``), or that another run holds."""
        check_unlocked(self.out)
        self._check(overwrite)

    def _check(self, overwrite: bool) -> None:
        check_output_file(self.out, f"{self.kind} file", self.is_ours, overwrite)
        manifest = self.parts / "job.json"
        if self.parts.exists() and (not manifest.is_file() or manifest.read_text() != self.settings_json):
            raise CaloptInputError(
                f"{str(self.parts)!r} holds an unfinished run with other settings (or is not a calopt run folder); "
                "rerun with the same settings to resume it, or remove that folder"
            )

    def run(
        self,
        chunk_fn: Callable[[str, int, str], str],
        *,
        workers: int = 1,
        scheduler: str | None = None,
        overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Path]:
        """Run the missing chunks; returns the paths of all parts, in order. The caller holds
        :meth:`lock` from before this call until the output is merged and :meth:`finish` ed."""
        if workers < 1:
            raise CaloptInputError(f"--workers must be at least 1, got {workers}")
        self._check(overwrite)  # under our own lock
        if not self.parts.exists():
            self.parts.mkdir()
            tmp = self.parts / "job.json.tmp"
            tmp.write_text(self.settings_json)
            tmp.replace(self.parts / "job.json")
        todo = [k for k in range(self.n_chunks) if not self._finished(k)]
        n_done = self.n_items - sum(self.chunk_items(k) for k in todo)
        if progress:
            progress(n_done, self.n_items)
        if todo and workers == 1 and scheduler is None:
            for k in todo:
                chunk_fn(self.settings_json, k, str(self.parts))
                n_done += self.chunk_items(k)
                if progress:
                    progress(n_done, self.n_items)
        elif todo:
            self._run_dask(chunk_fn, todo, workers, scheduler, n_done, progress)
        return [self.chunk_path(k) for k in range(self.n_chunks)]

    def _run_dask(
        self,
        chunk_fn: Callable[[str, int, str], str],
        todo: list[int],
        workers: int,
        scheduler: str | None,
        n_done: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        try:
            if scheduler is not None:
                client = Client(scheduler, timeout="10s")
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
                client = Client(cluster)
        except (OSError, ValueError) as exc:  # unreachable, or not an address (no port, unknown scheme)
            raise CaloptInputError(f"cannot reach Dask scheduler {scheduler!r}: {exc}") from None
        try:
            # an absolute path: a worker of a remote cluster does not run in this process's folder
            parts = str(self.parts.absolute())
            futures = {client.submit(chunk_fn, self.settings_json, k, parts, pure=False): k for k in todo}
            left = len(futures)
            for fut in as_completed(futures):
                try:
                    fut.result()
                except Exception:
                    gone = scheduler_gone(fut, scheduler, f"{left} of {self.n_chunks} chunks unfinished",
                                          f"the finished ones stay in {str(self.parts)!r}; run the same command "
                                          "again to finish")  # fmt: skip
                    if gone is None:  # the chunk function raised: a bug, shown as such
                        raise
                    raise gone from None
                left -= 1
                n_done += self.chunk_items(futures[fut])
                if progress:
                    progress(n_done, self.n_items)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def lock(self) -> AbstractContextManager[None]:
        """The exclusive lock of a run on ``out`` (:func:`calopt.files.output_lock`): a second
        run on the same output, which would race on its parts, is refused naming the holder."""
        return output_lock(self.out)

    def finish(self) -> None:
        """Remove the parts once the output has been written."""
        shutil.rmtree(self.parts)
