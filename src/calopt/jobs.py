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
from dataclasses import dataclass
from pathlib import Path

from calopt.errors import CaloptInputError
from calopt.files import check_writable

__all__ = ["ChunkedJob"]


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
        """Refuse, without touching anything, an output that cannot or must not be written."""
        check_writable(self.out)
        if self.out.exists():
            if not self.is_ours(self.out):
                raise CaloptInputError(
                    f"output {str(self.out)!r} exists and is not a {self.kind} file; refusing to overwrite it"
                )
            if not overwrite:
                raise CaloptInputError(f"output {str(self.out)!r} already exists; use --overwrite to replace it")
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
        """Run the missing chunks; returns the paths of all parts, in order."""
        if workers < 1:
            raise CaloptInputError(f"--workers must be at least 1, got {workers}")
        self.check(overwrite)
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
        except OSError as exc:
            raise CaloptInputError(f"cannot reach Dask scheduler {scheduler!r}: {exc}") from None
        try:
            futures = {client.submit(chunk_fn, self.settings_json, k, str(self.parts), pure=False): k for k in todo}
            for fut in as_completed(futures):
                fut.result()
                n_done += self.chunk_items(futures[fut])
                if progress:
                    progress(n_done, self.n_items)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def finish(self) -> None:
        """Remove the parts once the output has been written."""
        shutil.rmtree(self.parts)
