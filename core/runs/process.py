"""Our own background processes (training, evaluation, UMAP workers): start them detached, record them, tell
whether they still run, and stop them, never touching a process that is not the one recorded.

A record is a JSON file that the caller names (a run's status.json, evaluate.status.json, a UMAP .job file):

  pid          process id
  pid_started  its kernel start time (/proc/<pid>/stat), which tells our process from a later one with a reused pid
  host         socket.gethostname(): a run folder on a shared disk may be read on another machine
  command      the command line it was started with
  started      time.time() when it was started

Liveness comes from the record alone, so a page reload, a restarted dashboard or the CLI all judge it alike:
ALIVE (ours, running on this machine), DEAD (gone, a zombie, a reused pid, or a record we did not write), or
UNKNOWN (recorded on another machine: it cannot be checked from here, so it is never called dead). Linux /proc is
the target; without /proc a pid that answers os.kill(pid, 0) is trusted.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from core.fileio import UntrustedFileError, open_append, read_json, write_json
from core.schema import Int, ListOf, Nullable, Num, Obj, Str

ROOT = Path(__file__).resolve().parents[2]  # the repository root: where `core` is imported from
ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"
HAS_PROC = os.path.isdir("/proc/self")
# What a record's fields must be when present (core.fileio schema): a mistyped field is dropped (a record without a
# valid pid and start time names no live process of ours); other fields are the caller's.
RECORD = Obj({"pid": Int(1, 2**31 - 1), "pid_started": Nullable(Int(0, 2**63)), "host": Nullable(Str(255)),
              "command": ListOf(Str(10_000), max_items=1000), "started": Num(0)}, drop_invalid=True)
MAX_RECORD_BYTES = 1 << 20


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a background `python -m core ...` process: `core` importable, output unbuffered, plus `extra`."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def start(command: list[str], record: Path, log: Path, *, append: bool = True, env: dict[str, str] | None = None,
          fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start `command` detached and record it; returns the record.

    The process gets a session of its own (it outlives the caller, a page rerun or a restarted dashboard), stdin from
    /dev/null, stdout and stderr into `log` (appended, or truncated when `append` is False), and `env` (default:
    child_env()); it keeps the caller's working folder, so relative paths mean what they meant to the caller.
    `record` gets {**fields, pid, pid_started, host, command, started}. A daemon thread reaps the process when it
    ends, so it never lingers as a zombie. Raises OSError when it cannot be started or recorded (nothing is left
    running then)."""
    if not append:
        Path(log).unlink(missing_ok=True)  # truncate by replacing: never write through a link planted as the log
    with open_append(log) as out:
        process = subprocess.Popen(command, env=child_env() if env is None else env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    entry = {**(fields or {}), **identity(process.pid), "command": list(command), "started": time.time()}
    try:
        write_json(record, entry)
    except OSError:
        process.kill()  # an unrecorded process could never be watched or cancelled
        process.wait()
        raise
    threading.Thread(target=process.wait, daemon=True).start()
    return entry


def read_record(path: Path, fields: Obj | None = None) -> dict[str, Any] | None:
    """The process record in file `path` (cleaned by RECORD, or by `fields`, a schema that extends it), or None
    when it is missing, unreadable or not an object: a record we cannot read names no process of ours."""
    try:
        return read_json(path, fields or RECORD, max_bytes=MAX_RECORD_BYTES)
    except UntrustedFileError:
        return None


def identity(pid: Any) -> dict[str, Any]:
    """{pid, pid_started, host} of process `pid` on this machine: the fields that recognise it later."""
    return {"pid": pid, "pid_started": process_start(pid), "host": socket.gethostname()}


def process_start(pid: Any) -> int | None:
    """Kernel start time of a process (clock ticks since boot), None when it is gone or there is no /proc."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def liveness(record: Any) -> str:
    """ALIVE, DEAD or UNKNOWN for the process a record names.

    UNKNOWN when the record names another host. Otherwise ALIVE only if the pid runs, is not a zombie and has the
    recorded kernel start time; a record without a start time cannot be ours where /proc exists (we always record
    one), so it is DEAD, as is anything that is not a record at all. A record without a host counts as this
    machine's (records written before hosts were)."""
    if not isinstance(record, dict):
        return DEAD
    host = record.get("host")
    if host is not None and host != socket.gethostname():
        return UNKNOWN
    pid, started = record.get("pid"), record.get("pid_started")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return DEAD
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return DEAD
    except PermissionError:
        pass  # another user's process: the start time decides
    if not HAS_PROC:
        return ALIVE  # no /proc: trust the signal check
    fields = _proc_stat(pid)
    # gone since the signal check, a zombie (ended, not yet reaped), or a reused pid
    if fields is None or fields[0] == "Z" or not isinstance(started, int) or int(fields[19]) != started:
        return DEAD
    return ALIVE


def is_self(record: Any) -> bool:
    """Whether `record` names this very process."""
    return isinstance(record, dict) and record.get("pid") == os.getpid() and liveness(record) == ALIVE


def cancel(record: Any, what: str = "the process") -> None:
    """Send SIGTERM to the recorded process, but only if its pid, kernel start time and host all match a live
    process on this machine; otherwise raise RunError saying why (`what` names it), and signal nothing."""
    pid = record.get("pid") if isinstance(record, dict) else None
    pidfd = _pidfd(pid)  # pins the process: should the pid be reused after the check, the signal cannot reach it
    try:
        state = liveness(record)
        if state == UNKNOWN:
            raise _error(f"{what} runs on {record['host']}, not on this machine ({socket.gethostname()}): "
                         "stop it there")
        if state == DEAD:
            raise _error(f"{what} is not running: no live process of this machine matches its record "
                         f"(pid {pid}, its start time and host), so nothing was signalled")
        if pidfd is None:
            os.kill(pid, signal.SIGTERM)
        else:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended between the check and the signal
    except PermissionError:
        raise _error(f"{what} (pid {pid}) belongs to another user: stop it as that user") from None
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: Any) -> int | None:
    """A pidfd for `pid` (Linux 5.3+), or None where there is none (the signal then goes by pid)."""
    if not isinstance(pid, int) or pid <= 0 or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except (OSError, OverflowError):
        return None


def _proc_stat(pid: Any) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux only; None elsewhere or if gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _error(message: str) -> Exception:
    from core.runs.folder import RunError  # folder.py imports this module, so not at the top

    return RunError(message)
