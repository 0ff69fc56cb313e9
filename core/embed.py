"""2-D maps of latent means: PCA (instant), UMAP (cached in the run folder and computed in a background process,
because a fresh process spends tens of seconds compiling numba), colourings, and the TensorFlow Embedding
Projector export.

RUN/embeddings/
  umap-<dataset>-<split>-<limit|all>-<params hash>.npz   coords (N, 2) float32, index (N,), params (JSON)
  umap-....job               {"pid", "pid_started", "started"}: written by the launcher; a live pid means "don't start another"
  umap-....progress          {"stage", "fraction"}: written by the worker while it runs
  umap-....log               the worker's output; its last line is the error when the worker dies

Run the worker by hand with `python -m core.embed RUN SPLIT LIMIT|all [--n-neighbors K --min-dist D --seed S]`.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.data import DataError, Dataset
from core.encode import UNREADABLE, encodings_path, load_or_encode, read_encodings
from core.fileio import atomic_path, locked, write_json
from core.runs import Run, process_alive, process_start

ROOT = Path(__file__).resolve().parents[1]
# How the launcher starts a worker; a list so tests can swap in a stand-in worker.
WORKER_COMMAND = [sys.executable, "-m", "core.embed"]
FORMAT = "umap-1"  # part of the cache key: bump it when the computation changes
MAX_THUMBNAILS = 48
MAX_LEVELS = 12  # factors with more levels are coloured on a continuous scale

Progress = Callable[[str, "float | None"], None]


class EmbedError(ValueError):
    """Bad embedding parameters or too little data; the message says what to change."""


# --- projections ------------------------------------------------------------------------------

def pca_2d(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) float32 coordinates on the two main axes of `mu` (N, D), and the fraction of the variance each
    explains. Signs are fixed (largest loading positive) so the map does not flip between runs."""
    mu = np.asarray(mu, dtype=np.float64)
    n, d = mu.shape
    coords, explained = np.zeros((n, 2), np.float32), np.zeros(2)
    if n < 2:
        return coords, explained
    centred = mu - mu.mean(axis=0)
    # Eigenvectors of the D x D scatter matrix: the same axes as an SVD of the data, ~10x faster for N >> D.
    variances, vectors = np.linalg.eigh(centred.T @ centred)
    variances, vectors = np.clip(variances[::-1], 0, None), vectors[:, ::-1]
    k = min(2, d)
    axes = vectors[:, :k].T
    axes *= np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])[:, None]
    coords[:, :k] = centred @ axes.T
    if variances.sum() > 0:
        explained[:k] = variances[:k] / variances.sum()
    return coords, explained


@dataclass(frozen=True)
class UmapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.n_neighbors <= 200:
            raise EmbedError(f"UMAP n_neighbors is {self.n_neighbors}; use 2 to 200 (15 is the usual choice)")
        if not 0.0 <= self.min_dist <= 1.0:
            raise EmbedError(f"UMAP min_dist is {self.min_dist}; use 0 to 1 (0.1 is the usual choice)")

    @property
    def key(self) -> str:
        text = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def umap_2d(mu: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            progress: Progress | None = None) -> np.ndarray:
    """(N, 2) float32 UMAP of `mu`. Seeded, hence single-threaded and reproducible. `progress(stage, fraction)`
    hears the stages and the layout epochs."""
    mu = np.asarray(mu, dtype=np.float32)
    if len(mu) < 4:
        raise EmbedError(f"UMAP needs at least 4 points, got {len(mu)}; choose a larger count")
    report = progress or (lambda stage, fraction: None)
    report("loading UMAP", None)
    import umap  # imported here: the import alone takes seconds, and PCA-only users never pay it

    report("nearest neighbours (a fresh process first compiles numba: tens of seconds)", None)
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(mu) - 1), min_dist=min_dist, random_state=seed,
                        tqdm_kwds={"disable": progress is None, "file": _EpochTap(report),
                                   "bar_format": "{n}/{total}", "mininterval": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and similar notices
        coords = reducer.fit_transform(mu)
    return np.asarray(coords, dtype=np.float32)


class _EpochTap(io.TextIOBase):
    """A file for UMAP's tqdm bar (formatted "{n}/{total}") that turns its updates into progress calls."""

    def __init__(self, report: Progress):
        self.report = report

    def write(self, text: str) -> int:
        counts = re.findall(r"(\d+)/(\d+)", text)
        if counts:
            done, total = map(int, counts[-1])
            self.report("layout epochs", done / max(total, 1))
        return len(text)


# --- the UMAP cache and its background worker ---------------------------------------------------

def embedding_path(run: Run, split: str, limit: int | None, params: UmapParams) -> Path:
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
    with atomic_path(path) as tmp:
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
    job = _read_json(_sidecar(path, "job"))
    if job is None:
        return None
    pid, started = job.get("pid"), float(job.get("started", 0.0))
    elapsed = time.time() - started
    if process_alive(pid, job.get("pid_started")):  # a zombie or a reused pid counts as gone
        progress = _read_json(_sidecar(path, "progress")) or {}
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent / ".jobs.lock"):
        job = umap_status(run, split, limit, params, index)
        if job is not None and job.state in ("done", "running"):
            return job
        _sidecar(path, "progress").unlink(missing_ok=True)
        count = "all" if limit is None else str(limit)
        args = [str(run.path.resolve()), split, count, "--n-neighbors", str(params.n_neighbors),
                "--min-dist", repr(params.min_dist), "--seed", str(params.seed)]
        with open(_sidecar(path, "log"), "wb") as log:
            # A session of its own, so the worker outlives a page rerun or a restarted dashboard.
            process = subprocess.Popen([*WORKER_COMMAND, *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        write_json(_sidecar(path, "job"), {"pid": process.pid, "pid_started": process_start(process.pid),
                                           "started": time.time(), "args": args})
        threading.Thread(target=process.wait, daemon=True).start()  # reap it, as core.jobs does
    return UmapJob("running", pid=process.pid, stage="starting")


def main(argv: Sequence[str] | None = None) -> None:
    """The worker: compute one UMAP, reporting progress beside the result; errors end as the log's last line."""
    parser = argparse.ArgumentParser(prog="python -m core.embed", description="Compute and cache one run's UMAP.")
    parser.add_argument("run")
    parser.add_argument("split", choices=["train", "val", "test", "all"])
    parser.add_argument("limit", help="number of images, or 'all'")
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--min-dist", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.nice(10)  # a background job: the dashboard (and training) keep the CPU when they need it
    try:
        run = Run(args.run)
        limit = None if args.limit == "all" else int(args.limit)
        params = UmapParams(args.n_neighbors, args.min_dist, args.seed)
        progress_file = _sidecar(embedding_path(run, args.split, limit, params), "progress")
        last = [0.0]

        def progress(stage: str, fraction: float | None) -> None:
            if time.time() - last[0] >= 0.5 or fraction == 1.0:
                last[0] = time.time()
                write_json(progress_file, {"stage": stage, "fraction": fraction})

        path = compute_umap(run, args.split, limit, params, progress=progress)
        for kind in ("progress", "job", "log"):  # done: only the result stays in the run folder
            _sidecar(path, kind).unlink(missing_ok=True)
    except Exception as e:  # the page shows this last line; the traceback above it is in the log for the curious
        import traceback

        traceback.print_exc()
        print(f"{type(e).__name__}: {e}", flush=True)
        sys.exit(1)


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


# --- colourings, selections, export ------------------------------------------------------------

@dataclass(frozen=True)
class Colouring:
    """Per-point colour values and how to read them: "none", "levels" (ticks name each integer level; binary
    attributes are two levels) or "continuous" (`diverging`: centred on 0, as latent means are)."""

    kind: str
    title: str = ""
    values: np.ndarray | None = None
    ticks: tuple[str, ...] = ()
    diverging: bool = False


def colour_options(encodings: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    """What a map can be coloured by: ("none", 0), ("attribute", i), ("factor", i), ("dim", d)."""
    options = [("none", 0)]
    options += [("attribute", i) for i in range(len(encodings["attribute_names"]))]
    options += [("factor", i) for i in range(len(encodings.get("factor_names", [])))]
    options += [("dim", d) for d in range(encodings["mu"].shape[1])]
    return options


def colouring(encodings: dict[str, np.ndarray], option: tuple[str, int], dim_label: Callable[[int], str] = str,
              dataset_name: str = "") -> Colouring:
    kind, i = option
    if kind == "attribute":
        name = str(encodings["attribute_names"][i])
        values = encodings["attributes"][:, i].astype(np.int8)
        on = int(values.sum())
        return Colouring("levels", name, values, (f"not {name} ({len(values) - on:,})", f"{name} ({on:,})"))
    if kind == "factor":
        name = str(encodings["factor_names"][i])
        values = encodings["factors"][:, i]
        levels = factor_levels(dataset_name, name, int(values.max()) + 1 if len(values) else 0)
        if len(levels) <= MAX_LEVELS:
            return Colouring("levels", name, values, tuple(levels))
        return Colouring("continuous", f"{name} (level)", values.astype(np.float32))
    if kind == "dim":
        return Colouring("continuous", dim_label(i), encodings["mu"][:, i], diverging=True)
    return Colouring("none")


def factor_levels(dataset_name: str, factor: str, count: int) -> list[str]:
    """Names of a factor's levels where the data set names them, else "0", "1", ..."""
    if dataset_name == "synthfaces":
        from core.data.synthfaces import LEVEL_NAMES

        if factor in LEVEL_NAMES:
            return list(LEVEL_NAMES[factor])
    if dataset_name == "dsprites":
        from core.data.dsprites import SHAPES, DSprites

        if factor == "shape":
            return list(SHAPES)
        if factor in DSprites.factor_names:
            return [f"{v:.3g}" for v in DSprites.factor_values[DSprites.factor_names.index(factor)]]
    return [str(level) for level in range(count)]


def plot_order(n: int) -> np.ndarray:
    """A fixed shuffle for drawing: no class is painted over another just because it comes later in the file."""
    return np.random.default_rng(0).permutation(n)


def selected_rows(order: np.ndarray, point_indices: Sequence[int]) -> np.ndarray:
    """Rows of the encodings behind a chart selection (positions in the drawn `order`), sorted; positions from
    an older, larger map are dropped."""
    picked = np.asarray([p for p in point_indices if 0 <= p < len(order)], dtype=np.int64)
    return np.sort(order[picked])


def thumbnail_rows(selected: Sequence[int], limit: int = MAX_THUMBNAILS) -> np.ndarray:
    """At most `limit` of the selected rows, spread evenly over the selection (sorted)."""
    selected = np.unique(np.asarray(selected, dtype=np.int64))
    if len(selected) <= limit:
        return selected
    return selected[np.linspace(0, len(selected) - 1, limit).round().astype(np.int64)]


def selection_summary(encodings: dict[str, np.ndarray], selected: Sequence[int], top: int = 5) -> list[tuple[str, float, float]]:
    """The attributes that set a selection apart: (name, share in the selection, share overall), largest
    difference first."""
    attributes = encodings["attributes"].astype(np.float64)
    if len(selected) == 0 or attributes.shape[1] == 0:
        return []
    inside, overall = attributes[np.asarray(selected)].mean(axis=0), attributes.mean(axis=0)
    order = np.argsort(-np.abs(inside - overall), kind="stable")[:top]
    return [(str(encodings["attribute_names"][a]), float(inside[a]), float(overall[a])) for a in order]


def projector_tsv(mu: np.ndarray, index: np.ndarray, attribute_names: Sequence[str], attributes: np.ndarray,
                  factor_names: Sequence[str] = (), factors: np.ndarray | None = None,
                  dataset_name: str = "") -> tuple[bytes, bytes]:
    """Files for https://projector.tensorflow.org: vectors (one row of latent means per image, tab-separated,
    no header) and metadata (header `index`, the attributes as 0/1, the factors by level name)."""
    vectors = io.BytesIO()
    np.savetxt(vectors, np.asarray(mu, dtype=np.float32), fmt="%.6g", delimiter="\t")
    columns = [np.asarray(index).astype(str)]
    columns += [np.where(attributes[:, a], "1", "0") for a in range(len(attribute_names))]
    for f, name in enumerate(factor_names):
        count = int(factors[:, f].max()) + 1 if len(factors) else 0
        columns.append(np.array([_field(v) for v in factor_levels(dataset_name, str(name), count)])[factors[:, f]])
    header = ["index", *(_field(v) for v in attribute_names), *(_field(v) for v in factor_names)]
    rows = ["\t".join(header), *("\t".join(row) for row in zip(*columns))]
    return vectors.getvalue(), ("\n".join(rows) + "\n").encode()


def _field(value: str) -> str:
    """A TSV field never holds a tab or a line break (they would shift columns or rows in the Projector)."""
    return re.sub(r"[\t\r\n]+", " ", str(value)).strip()


if __name__ == "__main__":
    main()
