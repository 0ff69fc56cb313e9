"""Background training jobs: real processes on tiny runs in a temporary runs folder."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.runs import jobs, process
from core.config import ConfigError, RunConfig
from core.data import DataError
from core.runs.folder import Run, RunError, create_run
from core.training import loop
from core.training.cancel import CancellableSetup
from tests.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def wait_for(run: Run, done, timeout: float = 120) -> jobs.Progress:
    """Poll like the Train page does until `done(progress)` holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = jobs.progress(run)
        if done(p):
            return p
        time.sleep(0.2)
    raise AssertionError(f"{run.name}: timed out at {jobs.progress(run)}\n{jobs.log_tail(run)}")


def test_of_two_simultaneous_launches_of_one_name_exactly_one_starts(tmp_path):
    config = tiny_config("dup", dataset="synthfaces", steps=100_000)
    outcomes, barrier = [], threading.Barrier(2)

    def launch():
        barrier.wait()
        try:
            outcomes.append(jobs.launch(config, tmp_path))
        except RunError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = [o for o in outcomes if isinstance(o, Run)]
    refused = [o for o in outcomes if isinstance(o, RunError)]
    assert len(runs) == 1 and len(refused) == 1 and "already exists" in str(refused[0])
    assert jobs.progress(runs[0]).state == "running"
    jobs.cancel(runs[0])
    assert wait_for(runs[0], lambda p: p.state != "running").state in ("cancelled", "failed")  # stopped either way


def test_a_job_outlives_its_launcher_cancels_with_a_checkpoint_and_resumes_to_the_end(tmp_path):
    # launched by a process that exits at once, as a job outlives a Streamlit server that is restarted
    launcher = ("from core.runs import jobs; from tests.tiny import tiny_config; import sys; "
                "jobs.launch(tiny_config('job', dataset='synthfaces', steps=100_000, log_every=2, "
                "checkpoint_every=1000), sys.argv[1])")
    subprocess.run([sys.executable, "-c", launcher, str(tmp_path)], cwd=ROOT, check=True, timeout=120)
    run = Run(tmp_path / "job")

    p = wait_for(run, lambda p: p.step >= 4)
    assert p.state == "running" and p.total == 100_000 and p.images_per_s > 0 and p.eta_s > 0
    with pytest.raises(RunError, match="already running"):
        jobs.resume(run)
    jobs.cancel(run)
    p = wait_for(run, lambda p: p.state != "running")
    assert p.state == "cancelled" and p.eta_s is None
    stopped = run.checkpoint_step()
    assert stopped == p.step >= 4  # the clean stop wrote a checkpoint at the step it reached
    with pytest.raises(RunError, match="not running"):
        jobs.cancel(run)

    jobs.resume(run, stopped + 6)
    p = wait_for(run, lambda p: p.state != "running")
    assert p.state == "finished" and p.step == p.total == run.checkpoint_step() == stopped + 6
    steps = [r["step"] for r in run.metrics("train")]
    assert steps == sorted(set(steps)) and steps[-1] == stopped + 6  # one continuous history
    log = jobs.log_tail(run, lines=200)
    assert log.count("cancelled:") == 1 and "finished:" in log  # both processes appended to train.log
    with pytest.raises(RunError, match="at step"):
        jobs.resume(run)  # nothing left to do


def test_invalid_input_is_refused_before_anything_starts(tmp_path):
    runs = tmp_path / "runs"
    (runs / "taken").mkdir(parents=True)
    celeba = tmp_path / "celeba"
    (celeba / "inner").mkdir(parents=True)
    (celeba / "inner" / "list_attr_celeba.txt").write_text("0\n")
    bad = [
        (RunConfig(name="../escape"), ConfigError, "run name"),
        (_with_data(tiny_config("c1"), "celeba", str(tmp_path / "nowhere")), DataError, "nowhere"),
        (_with_data(tiny_config("c2"), "celeba", str(celeba)), DataError, "one level too high"),
        (_with_data(tiny_config("l1"), "lfw", str(celeba)), DataError, "LFW person folders"),
        (_with_data(tiny_config("f1"), "folder", str(celeba)), DataError, "no images"),
        (tiny_config("taken", dataset="synthfaces"), RunError, "already exists"),
    ]
    for config, error, message in bad:
        with pytest.raises(error, match=message):
            jobs.launch(config, runs)
    assert sorted(p.name for p in runs.iterdir()) == ["taken"] and not any((runs / "taken").iterdir())


def _with_data(config, dataset, root):
    config.data.dataset, config.data.root = dataset, root
    return config


def test_progress_of_a_run_started_elsewhere_and_of_a_broken_folder(tiny_runs_dir, tmp_path):
    p = jobs.progress(Run(tiny_runs_dir / "tiny-bvae"))
    assert (p.state, p.step, p.total, p.fraction, p.eta_s) == ("finished", 30, 30, 1.0, None)
    assert p.images_per_s > 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert jobs.progress(Run(broken)).state == "unknown" and "config" in jobs.progress(Run(broken)).error


@pytest.mark.skipif(not process.HAS_PROC, reason="SKIPPED: needs Linux /proc")
def test_a_forged_status_naming_a_live_unrelated_process_is_never_signalled(tmp_path, sleeper):
    run = create_run(tiny_config("forged"), tmp_path)
    started = process.process_start(sleeper.pid)
    for forged in ({"state": "running", "pid": sleeper.pid},
                   {"state": "running", "pid": sleeper.pid, "pid_started": started - 1}):
        (run.path / "status.json").write_text(json.dumps(forged))
        with pytest.raises(RunError, match="not running"):
            jobs.cancel(run)
        assert jobs.progress(run).state == "failed"  # no process of ours runs it
        assert json.loads((run.path / "status.json").read_text()) == forged  # read, never rewritten
    time.sleep(0.2)
    assert sleeper.poll() is None  # still alive: it was never signalled


def test_a_run_recorded_on_another_machine_is_running_elsewhere_not_dead(tmp_path, sleeper):
    run = create_run(tiny_config("away", steps=50), tmp_path)
    ended = subprocess.Popen(["true"])
    ended.wait()
    for pid in (ended.pid, sleeper.pid):  # whatever that pid means on this machine
        run.write_status("running", pid=pid, pid_started=12345, host="gpu-box.invalid", step=10, total_steps=50)
        before = (run.path / "status.json").read_bytes()
        p = jobs.progress(run)
        assert (p.state, p.host, p.step, p.error) == ("elsewhere", "gpu-box.invalid", 10, None)
        with pytest.raises(RunError, match="gpu-box.invalid"):
            jobs.cancel(run)
        with pytest.raises(RunError, match="already running .*gpu-box.invalid"):
            jobs.resume(run)
        with pytest.raises(RunError, match="already running"):
            loop.resume(run)
        assert run.repair_status()["state"] == "running"
        assert (run.path / "status.json").read_bytes() == before
    assert sleeper.poll() is None


@pytest.mark.skipif(not process.HAS_PROC, reason="SKIPPED: needs Linux /proc")
def test_resuming_a_run_that_is_training_is_refused_instead_of_starting_a_second_writer(tmp_path):
    run = create_run(tiny_config("busy", steps=20), tmp_path)
    # a live training process as jobs records one (a sleep stands in for the trainer)
    record = process.start(["sleep", "60"], run.path / "status.json", run.path / jobs.LOG,
                           fields={"state": "running", "updated": time.time(), "step": 0, "total_steps": 20})
    try:
        status, config = (run.path / "status.json").read_bytes(), (run.path / "config.json").read_bytes()
        with pytest.raises(RunError, match=f"run 'busy' is already running \\(pid {record['pid']}\\)"):
            loop.resume(run, steps=40)
        cli = subprocess.run([sys.executable, "-m", "core", "--runs-dir", str(tmp_path), "train", "--resume", "busy"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert cli.returncode == 2 and "run 'busy' is already running" in cli.stderr, cli.stderr
        with pytest.raises(RunError, match="already running"):
            jobs.resume(run, 40)
        assert (run.path / "status.json").read_bytes() == status and (run.path / "config.json").read_bytes() == config
        jobs.cancel(run)  # the recorded process is ours: it is signalled
        assert wait_for(run, lambda p: p.state != "running", timeout=30).state == "failed"
    finally:
        if process.liveness(record) == process.ALIVE:
            process.cancel(record)


def test_a_cancel_while_the_trainer_still_loads_ends_the_run_cancelled_not_failed(tmp_path):
    run = create_run(tiny_config("early", dataset="synthfaces", steps=50), tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    with CancellableSetup(run) as setup:
        os.kill(os.getpid(), signal.SIGTERM)  # the dashboard's Cancel, before the first step
        time.sleep(5)  # never reached: the handler raises at the next bytecode
        raise AssertionError("the cancel did not interrupt the setup")
    status = run.status()
    assert setup.cancelled and status["state"] == "cancelled" and status["step"] == 0
    assert signal.getsignal(signal.SIGTERM) == before  # fit() installs its own handler next
    with pytest.raises(DataError), CancellableSetup(run) as setup:  # any other error goes on as it was
        raise DataError("the data set is gone")
    assert not setup.cancelled


def test_a_rank_that_finished_loading_stops_when_another_rank_was_cancelled_during_setup(tmp_path, monkeypatch):
    from core.training import distributed

    run = create_run(tiny_config("ranks", dataset="synthfaces", steps=50), tmp_path)
    with CancellableSetup(run) as setup:
        pass  # this rank loaded without a signal
    monkeypatch.setattr(distributed, "any_rank", lambda flag: flag)  # no other rank was cancelled
    assert not setup.agreed() and run.status()["state"] != "cancelled"
    monkeypatch.setattr(distributed, "any_rank", lambda flag: True)  # the all-reduce saw another rank's cancel
    assert setup.agreed() and run.status()["state"] == "cancelled" and run.status()["step"] == 0
