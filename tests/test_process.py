"""core.runs.process, our one way to start, watch and stop background processes, and run status that is read
without ever being written (Run.status) apart from an explicit repair (Run.repair_status)."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main as cli
from core.runs import jobs, process
from core.runs.folder import STOPPED, Run, RunError
from core.runs.summary import summarize
from tests.tiny import tiny_config

OTHER_HOST = "some-other-machine.invalid"


def dead_pid() -> int:
    ended = subprocess.Popen(["true"])
    ended.wait()
    return ended.pid


def gone(pid: int, timeout: float = 10) -> bool:
    """Whether /proc/<pid> disappears, i.e. the process ended and was reaped (a zombie keeps its entry)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


def make_run(tmp_path: Path, name: str = "r") -> Run:
    run = Run(tmp_path / name)
    run.path.mkdir(parents=True)
    run.write_config(tiny_config(name))
    return run


needs_proc = pytest.mark.skipif(not process.HAS_PROC, reason="SKIPPED: needs Linux /proc")


@needs_proc
def test_start_records_the_process_reaps_it_and_cancels_only_it(tmp_path):
    record = process.start(["sleep", "60"], tmp_path / "job.json", tmp_path / "job.log", fields={"kind": "test"})
    assert json.loads((tmp_path / "job.json").read_text()) == record
    assert record["kind"] == "test" and record["command"] == ["sleep", "60"] and record["host"] == socket.gethostname()
    assert record["pid_started"] == process.process_start(record["pid"]) and time.time() - record["started"] < 30
    assert process.liveness(record) == process.ALIVE and not process.is_self(record)

    process.cancel(record, "the test sleeper")
    assert gone(record["pid"])  # ended by SIGTERM, then reaped by start()'s thread: no zombie left behind
    assert process.liveness(record) == process.DEAD
    with pytest.raises(RunError, match="the test sleeper is not running"):
        process.cancel(record, "the test sleeper")


@needs_proc
def test_the_child_is_detached_with_our_environment_and_its_log_appended_or_truncated(tmp_path):
    report = ("import os, sys; print(os.getsid(0) == os.getpid(), repr(sys.stdin.read()), "
              "os.environ['PYTHONPATH'].split(os.pathsep)[0], os.environ['PYTHONUNBUFFERED'], os.environ.get('EXTRA'))")
    log = tmp_path / "child.log"

    def run_once(**options) -> None:
        record = process.start([sys.executable, "-c", report], tmp_path / "child.json", log, **options)
        assert gone(record["pid"], timeout=60)

    run_once(env=process.child_env(EXTRA="yes"))
    assert log.read_text().split() == ["True", "''", str(process.ROOT), "1", "yes"]
    assert (process.ROOT / "core" / "__init__.py").is_file()  # the repository root, so `python -m core` imports
    run_once()
    assert len(log.read_text().splitlines()) == 2  # appended by default
    run_once(append=False)
    assert log.read_text().split() == ["True", "''", str(process.ROOT), "1", "None"]


def test_a_process_that_cannot_start_is_an_os_error_and_nothing_is_recorded(tmp_path):
    with pytest.raises(OSError):
        process.start([str(tmp_path / "no-such-program")], tmp_path / "job.json", tmp_path / "job.log")
    assert not (tmp_path / "job.json").exists()


@needs_proc
def test_forged_or_reused_records_are_never_signalled(sleeper):
    started = process.process_start(sleeper.pid)
    here = socket.gethostname()
    forged = [
        ({"pid": sleeper.pid}, process.DEAD),  # no start time: not a record we wrote
        ({"pid": sleeper.pid, "pid_started": started + 1, "host": here}, process.DEAD),  # a reused pid
        ({"pid": sleeper.pid, "pid_started": str(started), "host": here}, process.DEAD),
        ({"pid": sleeper.pid, "pid_started": started, "host": OTHER_HOST}, process.UNKNOWN),  # not this machine's
    ]
    for record, expected in forged:
        assert process.liveness(record) == expected, record
        with pytest.raises(RunError, match="nothing was signalled|not on this machine"):
            process.cancel(record, "the forged job")
    for garbage in (None, "12", [sleeper.pid], {}, {"pid": "1"}, {"pid": -1}, {"pid": 0}, {"pid": 2**80},
                    {"pid": True, "pid_started": 1}):
        assert process.liveness(garbage) == process.DEAD, garbage
        with pytest.raises(RunError):
            process.cancel(garbage)
    time.sleep(0.2)
    assert sleeper.poll() is None  # never signalled


def test_a_record_from_another_machine_is_unknown_never_dead():
    for pid in (dead_pid(), os.getpid(), 2**80, "x"):
        assert process.liveness({"pid": pid, "pid_started": 1, "host": OTHER_HOST}) == process.UNKNOWN


@needs_proc
def test_a_record_naming_this_process_is_recognised():
    assert process.is_self(process.identity(os.getpid()))
    assert not process.is_self({**process.identity(os.getpid()), "pid_started": 1})
    assert not process.is_self({**process.identity(os.getpid()), "host": OTHER_HOST})


def test_without_proc_a_live_pid_is_trusted(monkeypatch):
    monkeypatch.setattr(process, "HAS_PROC", False)
    monkeypatch.setattr(process, "_proc_stat", lambda pid: None)
    assert process.liveness({"pid": os.getpid()}) == process.ALIVE
    assert process.liveness({"pid": dead_pid()}) == process.DEAD


# --- run status: read only, repaired explicitly ----------------------------------------------------------------------

def test_reading_a_stale_status_never_writes_and_repair_records_failed(tmp_path, capsys):
    run = make_run(tmp_path)
    run.write_status("running", pid=dead_pid(), step=7, total_steps=20)
    before = (run.path / "status.json").read_bytes()
    stamp = (run.path / "status.json").stat().st_mtime_ns

    status = run.status()
    assert status["state"] == "failed" and status["error"] == STOPPED and status["step"] == 7
    p = jobs.progress(run)
    assert (p.state, p.error, p.step, p.eta_s) == ("failed", STOPPED, 7, None)
    row = summarize(run)
    assert row.state == "failed" and row.error == STOPPED
    assert cli(["--runs-dir", str(tmp_path), "runs"]) == 0 and "failed" in capsys.readouterr().out
    with pytest.raises(RunError, match="not running"):
        jobs.cancel(run)
    assert (run.path / "status.json").read_bytes() == before  # byte-identical: nothing above wrote it
    assert (run.path / "status.json").stat().st_mtime_ns == stamp

    assert run.repair_status()["state"] == "failed"
    written = json.loads((run.path / "status.json").read_text())
    assert (written["state"], written["error"], written["step"], written["total_steps"]) == ("failed", STOPPED, 7, 20)
    repaired = (run.path / "status.json").read_bytes()
    assert run.repair_status()["state"] == "failed" and (run.path / "status.json").read_bytes() == repaired


def test_repair_leaves_live_finished_and_other_machines_runs_alone(tmp_path):
    run = make_run(tmp_path)
    for write in (lambda: run.write_status("running", pid=os.getpid(), step=3),
                  lambda: run.write_status("finished", step=20),
                  lambda: run.write_status("running", pid=dead_pid(), host=OTHER_HOST, step=3)):
        write()
        before = (run.path / "status.json").read_bytes()
        run.repair_status()
        assert (run.path / "status.json").read_bytes() == before
    (run.path / "status.json").write_text("{garbage")
    assert run.repair_status() == {"state": "unknown"} and (run.path / "status.json").read_text() == "{garbage"


@needs_proc
def test_a_running_status_records_how_to_recognise_its_process(tmp_path):
    run = make_run(tmp_path)
    run.write_status("running", pid=os.getpid(), step=1)
    status = run.status()
    assert status["state"] == "running" and status["host"] == socket.gethostname()
    assert status["pid_started"] == process.process_start(os.getpid()) and "elsewhere" not in status
