"""Background training jobs: real processes on tiny runs in a temporary runs folder."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.runs import jobs
from core.config import ConfigError, RunConfig
from core.data import DataError
from core.data.synthfaces import SynthFaces
from core.runs.folder import Run, RunError
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
    launcher = ("from core import jobs; from tests.tiny import tiny_config; import sys; "
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


def test_cli_options_become_a_validated_config_with_its_command():
    config = jobs.config_from_cli(["--model", "modvae", "--steps", "300", "--name", "m1", "--dims-per-factor", "2"])
    assert (config.model, config.train.steps, config.modvae.dims_per_factor, config.loss.beta) == ("modvae", 300, 2,
                                                                                                 1.0)
    assert config.command == "python -m core train --model modvae --steps 300 --name m1 --dims-per-factor 2"
    epochs = jobs.config_from_cli(["--epochs", "0.5", "--batch-size", "64"])
    assert epochs.train.steps == round(0.5 * (len(SynthFaces().indices("train")) // 64)) > 500
    for options, message in [(["--steps", "ten"], "invalid int"), (["--lr", "0"], "lr"), (["--beta", "-1"], "beta"),
                             (["--name", "a/b"], "run name"), (["--epochs", "0"], "epochs"),
                             (["--resume", "x"], "--resume")]:
        with pytest.raises(ConfigError, match=message):
            jobs.config_from_cli(options)


def test_progress_of_a_run_started_elsewhere_and_of_a_broken_folder(tiny_runs_dir, tmp_path):
    p = jobs.progress(Run(tiny_runs_dir / "tiny-bvae"))
    assert (p.state, p.step, p.total, p.fraction, p.eta_s) == ("finished", 30, 30, 1.0, None)
    assert p.images_per_s > 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert jobs.progress(Run(broken)).state == "unknown" and "config" in jobs.progress(Run(broken)).error
