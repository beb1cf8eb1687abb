"""Generative surrogates trained on the cascade Monte Carlo (WGAN-GP, normalising flow, AdaGAN
ensembles: :mod:`.training`, :mod:`.simulator`), and the quality of any fast simulation against
the cascade (:mod:`.quality`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# the modules whose compiled kernels (numba's cache) call each other's
KERNEL_MODULES = ("noise", "hits", "decoding", "models", "simulator")
_STAMP = "calopt-kernels.sha1"


def drop_stale_kernels(here: Path | None = None, names: tuple[str, ...] = KERNEL_MODULES) -> bool:
    """Remove numba's cached kernels of ``names`` (modules of the folder ``here``, this package by
    default) when any of their sources has changed since they were cached; True if it did.
    numba checks a cached kernel against its own source file only, and these kernels call
    each other's across modules: after an edit of ``hits.py`` alone, the simulator's cached
    kernel would keep the old hit model compiled in. The caches are in ``__pycache__`` or, with
    NUMBA_CACHE_DIR, in numba's folder for this one. A folder that cannot be written is left."""
    here = Path(__file__).parent if here is None else here
    try:
        digest = hashlib.sha1(b"".join((here / f"{n}.py").read_bytes() for n in names)).hexdigest()
    except OSError:
        return False
    dirs = [here / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):  # numba's path for a source folder in its cache folder
        src = os.path.abspath(str(here))
        sub = f"{os.path.basename(src)}_{hashlib.sha1(src.encode()).hexdigest()}"
        dirs.append(Path(os.environ["NUMBA_CACHE_DIR"]) / sub)
    dropped = False
    for d in dirs:
        stamp = d / _STAMP
        try:
            if stamp.is_file() and stamp.read_text() == digest:
                continue
            d.mkdir(parents=True, exist_ok=True)  # (numba makes it too, with the first kernel)
            for n in names:
                for f in [*d.glob(f"{n}.*.nbi"), *d.glob(f"{n}.*.nbc")]:
                    f.unlink(missing_ok=True)
                    dropped = True
            tmp = d / f"{_STAMP}.{os.getpid()}"
            tmp.write_text(digest)
            os.replace(tmp, stamp)
        except OSError:
            continue
    return dropped


drop_stale_kernels()
