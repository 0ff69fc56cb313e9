"""One line per run folder, for the runs table on the Home page.

Read fresh from disk every time, so a run copied into the runs folder shows up at once; a folder that is not a
readable run is listed with its problem instead of breaking the listing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError
from core.fileio import UntrustedFileError
from core.runs.jobs import progress
from core.runs.folder import Run, RunError, default_runs_dir

# status.json 'unknown' is a folder whose job has not written it (e.g. copied without it): say so plainly;
# 'elsewhere' is a run whose status says it runs on another machine (which cannot be checked from here)
STATE_NOTE = {"unknown": "no status", "elsewhere": "running elsewhere"}


@dataclass(frozen=True)
class RunSummary:
    """One row of the run tables (Home, `python -m core runs`): what a run is and how far it got."""

    name: str
    path: Path
    # when the trainer last recorded the run's state in status.json ("updated", seconds since the epoch): when it
    # finished, stopped or failed, or, while it runs, when it started (or last changed its thread count). Read from
    # the file rather than the files' times, which a copy or a git clone sets to when it was made (the shipped demo
    # runs would all read as made today).
    trained: float | None = None
    model: str | None = None  # the family's title (core.models.family)
    beta: float | None = None
    dataset: str | None = None
    step: int = 0
    total_steps: int = 0
    epochs: float | None = None
    loss: float | None = None  # last training interval's means
    recon: float | None = None
    kl: float | None = None
    val_neg_elbo: float | None = None  # last validation
    state: str = "unknown"
    problem: str | None = None  # why the folder cannot be used, if it cannot
    error: str | None = None  # why training stopped, for a failed run


def summarize(run: Run) -> RunSummary:
    """The summary of one run folder; a broken folder (a damaged or missing config, status, metrics or checkpoint, a
    symbolic link, a folder it may not read) gives a summary with `problem` set, never an exception."""
    if run.path.is_symlink():
        return RunSummary(run.name, run.path, problem="a symbolic link, not a run folder: LatentLab does not follow "
                                                      "links out of the runs folder; copy the run here")
    try:
        return _summarize(run)
    except (ConfigError, RunError, UntrustedFileError, OSError) as e:
        return RunSummary(run.name, run.path, problem=str(e))


def _summarize(run: Run) -> RunSummary:
    config = run.config
    where = progress(run)
    records = run.metrics()
    train = [r for r in records if r["type"] == "train"]
    val = [r for r in records if r["type"] == "val"]
    last = train[-1] if train else {}
    has_checkpoint = run.checkpoint_path.is_file()
    trained = _number(run.status().get("updated"))
    return RunSummary(
        run.name, run.path, trained, config.family.title, config.loss.beta, config.data.dataset,
        step=where.step, total_steps=where.total, epochs=_number(last.get("epoch")), loss=_number(last.get("loss")),
        recon=_number(last.get("recon")), kl=_number(last.get("kl")),
        val_neg_elbo=_number(val[-1].get("neg_elbo")) if val else None,
        state=STATE_NOTE.get(where.state, where.state),
        problem=None if has_checkpoint or where.state in ("running", "elsewhere") else
        "no checkpoint yet (it stopped before its first one): resume it on the Train page to start it again",
        error=where.error if where.state == "failed" else None)


def summaries(runs_dir: str | Path | None = None) -> list[RunSummary]:
    """Every folder in the runs folder (hidden ones aside), the most recently trained first (those that never
    recorded a state last)."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    rows = [summarize(Run(p)) for p in folders]
    return sorted(rows, key=lambda r: r.trained or 0.0, reverse=True)


def _number(value) -> float | None:
    """`value` if it is a real number, else None (metric files are read as found, so check)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else None

