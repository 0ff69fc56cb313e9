"""Verifications in the background: `python -m core verify RUN --fast` as a detached process recorded by
core.runs.process (as the Metrics page's evaluations), so it survives page reloads. Its files in the run folder:

  verify.log          its output: "[i/4] stage ..." progress lines, then the table and "wrote ..."
  verify.status.json  the process record (pid, kernel start time, host, command, start time)
  .verify.lock        held while deciding whether to start, so two clicks never start two processes
"""
from __future__ import annotations

import json
import os
import re
import sys

from core.data import DataError
from core.fileio import locked
from core.metrics.verification import unsupported
from core.runs import process
from core.runs.folder import Run, RunError
from core.runs.jobs import check_data, read_tail

LOG = "verify.log"
STATUS = "verify.status.json"
_STAGE = re.compile(r"^\[(\d+)/(\d+)\] (.*?) \.\.\.$")
_ENDED = ("wrote ", "error: ", "Traceback (most recent call last)")  # lines that end `python -m core verify`


def start_verification(run: Run, fast: bool = True) -> None:
    """Start `python -m core verify RUN [--fast]` detached; refused while one runs, or when the run has no
    checkpoint, its data set has no people, or its data folder is missing."""
    if not run.checkpoint_path.is_file():
        raise RunError(f"run {run.name!r} has no checkpoint yet: nothing to verify")
    if reason := unsupported(run.config):
        raise DataError(f"cannot verify {run.name!r}: {reason}")
    check_data(run.config.data)
    with locked(run.path / ".verify.lock"):
        if verification_running(run):
            raise RunError(f"a verification of {run.name!r} is already running; wait for it to finish")
        command = [sys.executable, "-m", "core", "--runs-dir", str(run.path.parent.resolve()), "verify", run.name,
                   *(["--fast"] if fast else [])]
        try:
            # passive OpenMP waits, as for training jobs (core/runs/jobs.py): spinning threads starve other processes
            env = process.child_env(OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
            process.start(command, run.path / STATUS, run.path / LOG, append=False, env=env)
        except OSError as e:
            raise RunError(f"could not start the verification of {run.name!r}: {e}") from None


def verification_running(run: Run) -> bool:
    """Whether the recorded verification process of `run` runs (on another machine: until its log shows its end)."""
    try:
        record = json.loads((run.path / STATUS).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    state = process.liveness(record)
    if state == process.UNKNOWN:
        return not any(line.startswith(_ENDED) for line in verification_log(run).splitlines())
    return state == process.ALIVE


def verification_stage(run: Run) -> tuple[int, int, str] | None:
    """(stage, stages, what) of the last progress line of RUN/verify.log ("[2/4] pairs ..."), or None."""
    for line in reversed(verification_log(run, lines=200).splitlines()):
        if m := _STAGE.match(line):
            return int(m.group(1)), int(m.group(2)), m.group(3)
    return None


def verification_log(run: Run, lines: int = 15) -> str:
    """The last lines of RUN/verify.log ('' when none was started here)."""
    path = run.path / LOG
    return "\n".join(read_tail(path).splitlines()[-lines:]) if path.is_file() else ""


