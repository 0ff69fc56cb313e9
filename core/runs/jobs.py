"""Training jobs in the background: start, watch, cancel and resume runs from the dashboard.

A job is `python -m core --runs-dir DIR train --resume NAME` in its own session, so it outlives page reloads
and restarts of the Streamlit server. Everything about a job lives in its run folder:

  config.json   written here, before the process starts (create_run's atomic rename reserves the name)
  status.json   state, pid, its start time and host (written here at start, through core.runs.process, then by the
                trainer); reading it never writes it: a run whose process is gone reads as failed
  metrics.jsonl progress: the step, images/s and losses of the last logging interval
  train.log     the process's stdout and stderr (appended by each resume), for errors the trainer never saw

Every check a user can fail (config values, data folder layout, a taken name, a job already running) runs
before anything is started, so bad input never leaves a half-made run behind.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError, DataConfig, RunConfig
from core.data import DataError
from core.runs import process
from core.fileio import UntrustedFileError, read_json_lines
from core.runs.folder import METRIC_RECORD, Run, RunError, default_runs_dir
from core.runs.folder import create_run

LOG = "train.log"
TAIL_BYTES = 65536  # enough for the last few metric records however long the run


@dataclass(frozen=True)
class Progress:
    """Where a run stands, for the Train page's job panel and the run tables."""

    # running | finished | failed | cancelled | unknown, or elsewhere: running on another machine as far as its
    # status says (it cannot be checked or cancelled from here). A run whose process is gone reads as failed.
    state: str
    step: int
    total: int
    images_per_s: float | None  # over the last few logging intervals; None before the first
    eta_s: float | None  # None when not running or not yet measurable
    error: str | None = None
    host: str | None = None  # the machine it runs on, when elsewhere

    @property
    def fraction(self) -> float:
        """Steps done out of the total, 0 to 1."""
        return min(1.0, self.step / self.total) if self.total else 0.0


def check_data(data: DataConfig) -> None:
    """Fail fast on a data folder that is missing or laid out wrongly. Only the layout is checked: the full load
    (which may decode many thousands of images) happens in the job, whose log reports any later problem."""
    if data.dataset in ("synthfaces", "dsprites"):
        return
    if not data.root:
        raise DataError(f"data set {data.dataset!r} reads images from a folder: give its data root")
    root = Path(data.root).expanduser()
    if data.dataset == "celeba":
        from core.data.celeba import _check_layout

        _check_layout(root)  # names the right folder when the given one is a level off
    elif data.dataset == "lfw":
        from core.data.lfw import IMAGE_DIRS, _has_person_folders

        if not any(_has_person_folders(folder) for folder in (root, *(root / name for name in IMAGE_DIRS))):
            raise DataError(f"{root} holds no LFW person folders (<Name>/<Name>_0001.jpg); give the extracted lfw/ "
                            "or lfw-deepfunneled/ folder, or the folder that contains it")
    elif data.dataset == "folder":
        from core.data.decode import IMAGE_EXTENSIONS, list_images

        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist; give the folder that holds your images")
        if not list_images(root):
            raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root} or its subfolders")
        if data.attributes_csv and not Path(data.attributes_csv).expanduser().is_file():
            raise DataError(f"attribute file {data.attributes_csv} does not exist; give a CSV with a header "
                            "file,attr1,attr2,... or leave it empty")


def device_choices() -> list[str]:
    """What a job can train on here: auto (CUDA when present), the CPU, and each visible GPU."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["auto", "cpu", *(["cuda"] if gpus else []), *(f"cuda:{i}" for i in range(1, gpus))]


def launch(config: RunConfig, runs_dir: str | Path | None = None) -> Run:
    """Start training `config` in the background; returns its run as soon as the process is started.
    Raises ConfigError / DataError / RunError (a taken name: exactly one of two simultaneous launches wins)
    before anything is started."""
    config.validate()
    from core.device import pick_device  # torch, loaded only when a job starts

    pick_device(config.train.device)  # a CUDA request on a machine without CUDA is refused here, not in the log
    check_data(config.data)
    run = create_run(config, Path(runs_dir) if runs_dir else default_runs_dir())
    _start(run, [], step=0)
    return run


def resume(run: Run, steps: int | None = None) -> None:
    """Continue `run` in the background from its last checkpoint, to `steps` in all (default: its configured
    total). Refused while it runs (here or on another machine), when there is nothing left to do, or when its data
    set is not here."""
    config = run.config
    with run.job_lock():  # two resume clicks must not start two processes
        run.check_not_running()
        run.repair_status()  # a run whose process is gone is recorded as failed, whatever happens next
        done = run.checkpoint_step() if run.checkpoint_path.is_file() else 0
        total = config.train.steps if steps is None else steps
        if total <= done:
            raise RunError(f"run {run.name!r} is at step {done}: give a total number of steps above {done} to "
                           "train it further")
        check_data(config.data)
        _start(run, ["--steps", str(total)], step=done, total=total)


def cancel(run: Run) -> None:
    """Ask a running job to stop: it finishes its current step, writes a checkpoint and ends 'cancelled'. Only the
    recorded process is signalled, and only if its pid, start time and host match a live process here."""
    status = run.status()
    if status.get("state") != "running":
        raise RunError(f"run {run.name!r} is not running (state: {status.get('state')})")
    process.cancel(status, f"the training of {run.name!r}")


def progress(run: Run) -> Progress:
    """Where a run stands, from its run folder alone (any process may have started it); reads only."""
    status = run.status()
    state = "elsewhere" if status.get("elsewhere") else status.get("state", "unknown")
    try:
        config = run.config
    except (ConfigError, RunError) as e:
        return Progress("unknown", 0, 0, None, None, str(e))
    total = int(status.get("total_steps") or config.train.steps)
    records = _last_train_records(run)
    step = max([int(status.get("step") or 0), *(int(r.get("step", 0)) for r in records[-1:])])
    rates = [r["images_per_s"] for r in records[-5:] if isinstance(r.get("images_per_s"), (int, float))]
    images_per_s = sum(rates) / len(rates) if rates else None
    eta = None
    if state in ("running", "elsewhere") and images_per_s:
        eta = max(0, total - step) * config.train.batch_size / images_per_s
    return Progress(state, step, total, images_per_s, eta, status.get("error"),
                    status.get("host") if state == "elsewhere" else None)


def log_tail(run: Run, lines: int = 20) -> str:
    """The end of the job's train.log (empty if the run was not started from here)."""
    path = run.path / LOG
    if not path.is_file():
        return ""
    # tqdm redraws its bar with carriage returns: keep only the last state of each line
    shown = []
    for line in read_tail(path).replace("\r\n", "\n").split("\n"):
        shown += [part for part in line.split("\r") if part.strip()][-1:]
    return "\n".join(shown[-lines:])


def _start(run: Run, options: list[str], step: int, total: int | None = None) -> None:
    command = [sys.executable, "-m", "core", "--runs-dir", str(run.path.parent.resolve()), "train",
               "--resume", run.name, *options]
    # The job keeps this process's working folder, so a relative data root means what it meant when it was
    # checked. Unbuffered, so the log is current; a progress-bar line every 10 s in the log file, not ten a second.
    # OpenMP threads that wait sleep instead of spinning (read once, when torch loads: core/training/threads.py),
    # so a job does not take CPU from whoever shares the cores; the user's own OMP_WAIT_POLICY wins.
    status = {"state": "running", "updated": time.time(), "step": step, "total_steps": total or run.config.train.steps}
    try:
        process.start(command, run.path / "status.json", run.path / LOG,
                      env=process.child_env(TQDM_MININTERVAL="10",
                                            OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE")),
                      fields=status)
    except OSError as e:
        run.write_status("failed", step=step, error=f"could not start the training process: {e}")
        raise RunError(f"could not start the training process for {run.name!r}: {e}") from None


def read_tail(path: Path) -> str:
    """The whole lines in the last TAIL_BYTES of a file."""
    with open(path, "rb") as f:
        start = max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES)
        f.seek(start)
        data = f.read()
    return (data if start == 0 else data.partition(b"\n")[2]).decode(errors="replace")


def _last_train_records(run: Run) -> list[dict]:
    """The train records at the end of metrics.jsonl, without reading a long run's whole file: the lines of its
    last TAIL_BYTES through core.fileio with Run.metrics' schema (bad lines skipped, mistyped fields dropped)."""
    try:
        records = read_json_lines(run.path / "metrics.jsonl", METRIC_RECORD, tail_bytes=TAIL_BYTES)
    except UntrustedFileError:  # not a readable file: no progress to show from it
        return []
    return [r for r in records if r["type"] == "train"]

