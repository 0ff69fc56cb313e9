"""Evaluations in the background: `python -m core evaluate RUN --fast` as a detached process (as core.jobs does
for training), so it survives page reloads and Streamlit restarts. Its files in the run folder:

  evaluate.log          the process's stdout and stderr: "[i/n] metric ..." progress lines, then the summary
  evaluate.status.json  the process record (core.runs.process): pid, its kernel start time (to tell a live process
                        from a reused pid), host, command and start time
  .evaluate.lock        held while deciding whether to start, so two clicks never start two processes

An evaluation recorded on another machine (a shared runs folder) cannot be checked from here: it counts as running
until its log shows its end.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from core.fileio import locked
from core.runs import process
from core.runs.jobs import check_data, read_tail
from core.runs.folder import Run, RunError

LOG = "evaluate.log"
STATUS = "evaluate.status.json"
_STEP = re.compile(r"^\[([0-9]{1,6})/([0-9]{1,6})\] (\w+) \.\.\.$")  # bounded: the log is read as found
_ENDED = ("wrote ", "error: ", "Traceback (most recent call last)")  # lines that end `python -m core evaluate`


@dataclass(frozen=True)
class EvaluationProgress:
    """Where a background evaluation stands, read from its log and process record."""

    running: bool
    done: int  # metrics finished
    total: int  # metrics to compute (0 before the first progress line)
    current: str | None  # the metric being computed
    log: str  # the end of evaluate.log

    @property
    def fraction(self) -> float:
        """Metrics done out of those to compute, 0 to 1 (0 before the first progress line)."""
        return self.done / self.total if self.total else 0.0


def start_evaluation(run: Run, fast: bool = True) -> None:
    """Start evaluating `run` in the background; refused while an evaluation of it runs or when its data set
    is not on this machine."""
    if not run.checkpoint_path.is_file():
        raise RunError(f"run {run.name!r} has no checkpoint yet: nothing to evaluate")
    check_data(run.config.data)  # a missing data folder is refused here, not found later in the log
    with locked(run.path / ".evaluate.lock"):
        if evaluation_running(run):
            record = _record(run) or {}
            where = f" on {record.get('host')}" if process.liveness(record) == process.UNKNOWN else ""
            raise RunError(f"an evaluation of {run.name!r} is already running{where}; wait for it to finish")
        command = [sys.executable, "-m", "core", "--runs-dir", str(run.path.parent.resolve()), "evaluate", run.name,
                   *(["--fast"] if fast else [])]
        try:
            process.start(command, run.path / STATUS, run.path / LOG, append=False)
        except OSError as e:
            raise RunError(f"could not start the evaluation of {run.name!r}: {e}") from None


def evaluation_running(run: Run) -> bool:
    """Whether an evaluation of `run` runs: its recorded process is alive here, or it was recorded on another
    machine and its log does not show its end yet. A record naming no live process of ours (a stale or forged
    evaluate.status.json) is not running. Reads only."""
    state = process.liveness(_record(run))
    if state == process.UNKNOWN:
        path = run.path / LOG
        text = read_tail(path) if path.is_file() else ""
        return not any(line.startswith(_ENDED) for line in text.splitlines())
    return state == process.ALIVE


def _record(run: Run) -> dict | None:
    """evaluate.status.json through core.runs.process.read_record (None: missing or malformed, so not running)."""
    return process.read_record(run.path / STATUS)


def evaluation_progress(run: Run, lines: int = 15) -> EvaluationProgress:
    """Where the last background evaluation of `run` stands, from its log (empty when none was started here)."""
    path = run.path / LOG
    text = read_tail(path) if path.is_file() else ""
    steps = [m.groups() for m in map(_STEP.match, text.splitlines()) if m]
    running = evaluation_running(run)
    done, total, current = 0, 0, None
    if steps:
        i, total, current = int(steps[-1][0]), int(steps[-1][1]), steps[-1][2]
        finished = not running and "\nwrote " in text  # the CLI's last line; absent when it failed
        done = total if finished else i - 1
    return EvaluationProgress(running, done, total, current if running else None,
                              "\n".join(text.splitlines()[-lines:]))
