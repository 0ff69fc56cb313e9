"""Evaluations in the background: `python -m core evaluate RUN --fast` as a detached process (as core.jobs does
for training), so it survives page reloads and Streamlit restarts. Its files in the run folder:

  evaluate.log          the process's stdout and stderr: "[i/n] metric ..." progress lines, then the summary
  evaluate.status.json  pid, its kernel start time (to tell a live process from a reused pid) and the command
  .evaluate.lock        held while deciding whether to start, so two clicks never start two processes
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from core.fileio import locked, write_json
from core.runs.jobs import check_data, child_env, read_tail
from core.runs.folder import Run, RunError
from core.runs.process import process_alive, process_start

LOG = "evaluate.log"
STATUS = "evaluate.status.json"
_STEP = re.compile(r"^\[(\d+)/(\d+)\] (\w+) \.\.\.$")


@dataclass(frozen=True)
class EvaluationProgress:
    running: bool
    done: int  # metrics finished
    total: int  # metrics to compute (0 before the first progress line)
    current: str | None  # the metric being computed
    log: str  # the end of evaluate.log

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def start_evaluation(run: Run, fast: bool = True) -> None:
    """Start evaluating `run` in the background; refused while an evaluation of it runs or when its data set
    is not on this machine."""
    if not run.checkpoint_path.is_file():
        raise RunError(f"run {run.name!r} has no checkpoint yet: nothing to evaluate")
    check_data(run.config.data)  # a missing data folder is refused here, not found later in the log
    with locked(run.path / ".evaluate.lock"):
        if evaluation_running(run):
            raise RunError(f"an evaluation of {run.name!r} is already running; wait for it to finish")
        command = [sys.executable, "-m", "core", "--runs-dir", str(run.path.parent.resolve()), "evaluate", run.name,
                   *(["--fast"] if fast else [])]
        env = child_env()
        try:
            with open(run.path / LOG, "w") as log:
                process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise RunError(f"could not start the evaluation of {run.name!r}: {e}") from None
        write_json(run.path / STATUS, {"pid": process.pid, "pid_started": process_start(process.pid),
                                       "command": command, "started": time.time()})
    threading.Thread(target=process.wait, daemon=True).start()  # reap it: a zombie would look alive


def evaluation_running(run: Run) -> bool:
    try:
        status = json.loads((run.path / STATUS).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(status, dict) and process_alive(status.get("pid"), status.get("pid_started"))


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
