"""2-D maps of latent means: PCA (instant), UMAP (cached in the run folder and computed in a background process,
because a fresh process spends tens of seconds compiling numba), colourings, and the TensorFlow Embedding
Projector export.

RUN/embeddings/
  umap-<dataset>-<split>-<limit|all>-<params hash>.npz   coords (N, 2) float32, index (N,), params (JSON)
  umap-....job               the worker's process record (core.runs.process: pid, pid_started, host, command,
                             started) and its args: written by the launcher; a live worker means "don't start another"
  umap-....progress          {"stage", "fraction"}: written by the worker while it runs
  umap-....log               the worker's output; its last line is the error when the worker dies

A worker recorded on another machine (a shared runs folder) cannot be checked from here: it counts as running.

The warm-up (`python -m core.explore.umap_job --warm-up`, started by the dashboard when it starts) compiles UMAP's
numba code into projection.numba_cache_dir() before anyone asks for a map; its record and log are warm-up.job and
warm-up.log there. A worker that finds it running waits for it rather than compile the same code beside it.

Run the worker by hand with `python -m core.explore.umap_job RUN SPLIT LIMIT|all [--n-neighbors K --min-dist D --seed S]`.
"""
from __future__ import annotations
import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence
import numpy as np
from core.data import DataError, Dataset
from core.explore.encode import UNREADABLE, encodings_path, load_or_encode, read_encodings
from core.fileio import UntrustedFileError, atomic_path, locked, read_json, write_json
from core.schema import ListOf, Nullable, Num, Obj, Str
from core.runs import process
from core.runs.folder import Run
from core.explore.projection import Progress, UmapParams, umap_2d, warm_up
from core.explore.umap_warm import wait_for_warm_up


# The .job record (core.runs.process.RECORD plus the worker's arguments) and the worker's .progress file.
JOB = Obj({**process.RECORD.fields, "args": ListOf(Str(10_000), max_items=100)}, drop_invalid=True)
PROGRESS = Obj({"stage": Str(200), "fraction": Nullable(Num(0, 1))})

# How the launcher starts a worker; a list so tests can swap in a stand-in.
WORKER_COMMAND = [sys.executable, "-m", "core.explore.umap_job"]


def embedding_path(run: Run, split: str, limit: int | None, params: UmapParams) -> Path:
    """Where the UMAP of `run`'s `split` (first `limit` images, or all) with `params` is cached (.npz)."""
    count = "all" if limit is None else str(limit)
    return run.path / "embeddings" / f"umap-{run.config.data.dataset}-{split}-{count}-{params.key}.npz"


def _sidecar(path: Path, kind: str) -> Path:
    return path.with_suffix(f".{kind}")


def _fresh(path: Path, run: Run) -> bool:
    return path.is_file() and path.stat().st_mtime >= run.checkpoint_path.stat().st_mtime


def load_umap(run: Run, split: str, limit: int | None, params: UmapParams,
              index: np.ndarray | None = None) -> np.ndarray | None:
    """The cached (N, 2) UMAP, or None when there is none, the checkpoint is newer, or it maps other images
    than `index`."""
    path = embedding_path(run, split, limit, params)
    if not _fresh(path, run):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if index is not None and not np.array_equal(z["index"], index):
                return None
            return z["coords"]
    except UNREADABLE:
        return None  # damaged or foreign: compute it again


def load_encodings(run: Run, split: str, limit: int | None, dataset: Dataset | None = None) -> dict[str, np.ndarray]:
    """core.encode.load_or_encode, except that a run whose data set is not on this machine falls back to the
    cached file even when the checkpoint is newer (older encodings beat none)."""
    try:
        return load_or_encode(run, split, limit, dataset)
    except DataError as e:
        path = encodings_path(run, split, limit)
        if not path.is_file():
            raise DataError(f"{e}; no cached encodings at {path} either") from None
        try:
            return read_encodings(path)
        except UNREADABLE as bad:
            raise DataError(f"{e}; the cached encodings at {path} are unreadable ({bad})") from None


def cached_encodings(run: Run) -> list[tuple[str, int | None]]:
    """(split, limit) of every encodings file in the run folder: what a run without its data can still map."""
    pattern = re.compile(rf"{re.escape(run.config.data.dataset)}-(train|val|test|all)(?:-(\d+))?\.npz")
    found = []
    for path in sorted((run.path / "encodings").glob("*.npz")):
        match = pattern.fullmatch(path.name)
        if match:
            found.append((match[1], int(match[2]) if match[2] else None))
    return found


def compute_umap(run: Run, split: str, limit: int | None, params: UmapParams, dataset: Dataset | None = None,
                 progress: Progress | None = None) -> Path:
    """The worker's job: encodings (cached) -> UMAP -> RUN/embeddings/umap-....npz, written atomically."""
    report = progress or (lambda stage, fraction: None)
    report("loading encodings", None)
    encodings = load_encodings(run, split, limit, dataset)
    coords = umap_2d(encodings["mu"], params.n_neighbors, params.min_dist, params.seed, progress=report)
    report("saving", 1.0)
    path = embedding_path(run, split, limit, params)
    with atomic_path(path, inside=run.path) as tmp:  # never through a linked embeddings/ folder
        with open(tmp, "wb") as f:
            np.savez(f, coords=coords, index=encodings["index"], params=json.dumps(asdict(params)))
    return path


@dataclass(frozen=True)
class UmapJob:
    """Where a UMAP stands: "done" (coords), "running" (stage, fraction, elapsed) or "failed" (error)."""

    state: str
    coords: np.ndarray | None = None
    pid: int | None = None
    elapsed: float = 0.0
    stage: str = ""
    fraction: float | None = None
    error: str = ""


def umap_status(run: Run, split: str, limit: int | None, params: UmapParams,
                index: np.ndarray | None = None) -> UmapJob | None:
    """The job's state from the files alone (so every browser session sees the same), None if never started."""
    path = embedding_path(run, split, limit, params)
    coords = load_umap(run, split, limit, params, index)
    if coords is not None:
        return UmapJob("done", coords)
    job = process.read_record(_sidecar(path, "job"), JOB)
    if job is None:
        return None
    pid, started = job.get("pid"), float(job.get("started", 0.0))
    elapsed = time.time() - started
    if process.liveness(job) != process.DEAD:  # alive here, or on another machine (which we cannot check)
        progress = _read_json(_sidecar(path, "progress"), PROGRESS) or {}
        return UmapJob("running", pid=pid, elapsed=elapsed, stage=progress.get("stage", "starting"),
                       fraction=progress.get("fraction"))
    if path.is_file() and path.stat().st_mtime >= started:
        return None  # that job delivered; its result is only stale now (a newer checkpoint)
    return UmapJob("failed", pid=pid, elapsed=elapsed, error=_last_line(_sidecar(path, "log")) or
                   "the UMAP process stopped without a result")


def start_umap(run: Run, split: str, limit: int | None, params: UmapParams,
               index: np.ndarray | None = None) -> UmapJob:
    """Start the background worker unless a result exists or a worker for the same job is alive (a page reload
    or a second browser session finds that one); returns the job's state. A failed job is started again."""
    path = embedding_path(run, split, limit, params)
    run.folder("embeddings")  # created here; a symbolic link in its place is refused (UntrustedFileError)
    with locked(path.parent / ".jobs.lock"):
        job = umap_status(run, split, limit, params, index)
        if job is not None and job.state in ("done", "running"):
            return job
        _sidecar(path, "progress").unlink(missing_ok=True)
        count = "all" if limit is None else str(limit)
        args = [str(run.path.resolve()), split, count, "--n-neighbors", str(params.n_neighbors),
                "--min-dist", repr(params.min_dist), "--seed", str(params.seed)]
        record = process.start([*WORKER_COMMAND, *args], _sidecar(path, "job"), _sidecar(path, "log"), append=False,
                               fields={"args": args})
    return UmapJob("running", pid=record["pid"], stage="starting")


def main(argv: Sequence[str] | None = None) -> None:
    """The worker: compute one UMAP, reporting progress beside the result; errors end as the log's last line."""
    parser = argparse.ArgumentParser(prog="python -m core.explore.umap_job", description="Compute and cache one run's UMAP.")
    parser.add_argument("run", nargs="?")
    parser.add_argument("split", nargs="?", choices=["train", "val", "test", "all"])
    parser.add_argument("limit", nargs="?", help="number of images, or 'all'")
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--min-dist", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", action="store_true", help="only compile UMAP's code into the on-disk cache")
    args = parser.parse_args(argv)
    if not args.warm_up and args.limit is None:
        parser.error("RUN, SPLIT and LIMIT are needed (or --warm-up)")
    os.nice(10)  # a background job: the dashboard (and training) keep the CPU when they need it
    if args.warm_up:
        warm_up()
        return
    try:
        run = Run(args.run)
        limit = None if args.limit == "all" else int(args.limit)
        params = UmapParams(args.n_neighbors, args.min_dist, args.seed)
        progress_file = _sidecar(embedding_path(run, args.split, limit, params), "progress")
        last = [0.0]

        def progress(stage: str, fraction: float | None) -> None:
            if time.time() - last[0] >= 0.5 or fraction == 1.0:
                last[0] = time.time()
                write_json(progress_file, {"stage": stage, "fraction": fraction}, inside=run.path)

        wait_for_warm_up(progress)
        path = compute_umap(run, args.split, limit, params, progress=progress)
        for kind in ("progress", "job", "log"):  # done: only the result stays in the run folder
            _sidecar(path, kind).unlink(missing_ok=True)
    except Exception as e:  # the page shows this last line; the traceback above it is in the log for the curious
        import traceback

        traceback.print_exc()
        print(f"{type(e).__name__}: {e}", flush=True)
        sys.exit(1)


def _read_json(path: Path, schema: Obj) -> dict | None:
    """A job file through core.fileio (size, depth, numbers, `schema`), or None when missing or malformed."""
    try:
        return read_json(path, schema, max_bytes=1 << 20)
    except UntrustedFileError:
        return None


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


if __name__ == "__main__":
    main()
