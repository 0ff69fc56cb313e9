"""UMAP's background warm-up: `python -m core.explore.umap_job --warm-up`, started once per machine when the
dashboard starts, compiles UMAP's numba code into projection.numba_cache_dir() before anyone asks for a map; its
record and log are warm-up.job and warm-up.log there. A worker that finds it running waits for it rather than
compile the same code beside it. No torch here: the dashboard's first page starts it.
"""
from __future__ import annotations

import os
import sys
import time

from core.explore.projection import Progress, numba_cache_dir, umap_is_warm
from core.fileio import locked
from core.runs import process

# How the dashboard starts the warm-up; a list so tests can swap in a stand-in.
WARM_UP_COMMAND = [sys.executable, "-m", "core.explore.umap_job", "--warm-up"]
# How long a worker waits for a running warm-up: half a minute of compiling on an idle 2-core machine, more if busy.
WARM_UP_WAIT = 300.0


def start_warm_up() -> dict | None:
    """Start the background warm-up unless UMAP is warm already, the compiled-code cache is unusable, or a warm-up
    runs, or LATENTLAB_UMAP_WARM_UP=0; returns the running warm-up's record (None when there is nothing to do).
    Best effort: a warm-up that cannot be started leaves the first UMAP to compile for itself."""
    if os.environ.get("LATENTLAB_UMAP_WARM_UP") == "0":
        return None
    cache = numba_cache_dir()
    if cache is None or umap_is_warm():
        return None
    try:
        with locked(cache / ".warm-up.lock"):
            record = process.read_record(cache / "warm-up.job")
            if process.liveness(record) == process.DEAD:
                record = process.start(WARM_UP_COMMAND, cache / "warm-up.job", cache / "warm-up.log", append=False)
    except OSError:
        return None
    return record


def wait_for_warm_up(progress: Progress | None = None, timeout: float = WARM_UP_WAIT) -> None:
    """Return once no warm-up runs (at most `timeout` seconds): two processes compiling the same code share the
    CPU and both finish later than one after the other."""
    cache = numba_cache_dir()
    record = process.read_record(cache / "warm-up.job") if cache is not None else None
    deadline = time.time() + timeout
    while process.liveness(record) == process.ALIVE and time.time() < deadline:
        if progress is not None:
            progress("waiting for the UMAP warm-up to finish compiling (once per machine)", None)
        time.sleep(0.5)
