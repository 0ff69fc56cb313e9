"""Our own background processes: recognise them by pid and kernel start time.
"""
from __future__ import annotations
import os
from pathlib import Path
from typing import Any


def _proc_stat(pid: Any) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux only; None elsewhere or if gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: Any) -> int | None:
    """Kernel start time of a process, to tell a live run from a reused pid."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: Any, started: Any = None) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: trust the signal check
    # A zombie (killed, not yet reaped by the app that launched it) is dead; a new start time is a reused pid.
    return fields[0] != "Z" and (started is None or int(fields[19]) == started)
