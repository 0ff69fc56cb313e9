"""CPU thread choice under contention (core/training/threads.py): the rule with injected loads, the /proc/stat
arithmetic on a fake file, the re-check while training, the --threads override, and the background job's
OpenMP wait policy."""
from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from core.runs import jobs, process
from core.runs.folder import create_run
from core.training import threads as th
from core.training.loop import Trainer
from tests.tiny import tiny_config


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, others, expected", [
    (2, 0.0, 2),    # idle: every core
    (2, 0.2, 2),    # a core busy 20% of the time still counts as free
    (2, 0.67, 1),   # one busy process sharing with our 2 threads gets ~2/3 of a core: drop to 1
    (2, 1.0, 1),    # one busy process
    (2, 3.5, 1),    # never below 1
    (2, -0.1, 2),   # measurement noise below zero is no load
    (16, 5.5, 10),  # 10.5 free cores
    (16, 0.0, 16),
    (1, 0.0, 1),
])
def test_threads_are_the_free_cores_never_below_one(cores, others, expected):
    assert th.choose_threads(cores, others) == expected


def test_the_limit_caps_the_choice():
    assert th.choose_threads(16, 0.0, limit=8) == 8
    assert th.choose_threads(16, 12.0, limit=8) == 4
    assert th.choose_threads(2, 0.0, limit=1) == 1


def test_going_back_up_needs_the_load_a_bit_lower_so_the_count_does_not_flap():
    assert th.choose_threads(2, 0.25) == 2  # a fresh choice
    assert th.choose_threads(2, 0.25, current=1) == 1  # from 1 thread: not yet
    assert th.choose_threads(2, 0.1, current=1) == 2
    assert th.choose_threads(2, 0.8, current=2) == 1  # going down needs no margin


def test_the_sampler_counts_other_processes_busy_time_on_our_cpus_only(tmp_path):
    stat = tmp_path / "stat"
    clock, own = [0.0], [0.0]

    def write(cpu0: tuple, cpu1: tuple, cpu2: tuple):
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
        for i, (busy, idle) in enumerate([cpu0, cpu1, cpu2]):
            # user nice system idle iowait irq softirq steal guest guest_nice (ticks of 1/100 s)
            lines.append(f"cpu{i} {busy} 0 0 {idle} 0 0 0 0 {busy} 0")
        stat.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n")

    write((0, 0), (0, 0), (0, 0))
    sampler = th.LoadSampler([0, 1], stat, clock=lambda: clock[0], own=lambda: own[0])
    sampler.tick = 100
    # over 2 s: cpu0 busy 2 s, cpu1 busy 1 s, cpu2 (not ours) busy 2 s; we used 0.5 s of CPU ourselves
    write((200, 0), (100, 100), (200, 0))
    clock[0], own[0] = 2.0, 0.5
    assert sampler.others() == pytest.approx((3.0 - 0.5) / 2)
    clock[0] = 4.0  # nothing more happened: no load (guest time is not counted twice)
    assert sampler.others() == 0.0


def test_the_sampler_reads_this_machine():
    sampler = th.LoadSampler()
    assert sampler.others() is None or sampler.others() >= 0.0  # the first may cover no time at all


class Scripted:
    def __init__(self, loads):
        self.loads = list(loads)

    def others(self):
        return self.loads.pop(0)


def test_the_governor_chooses_then_rechecks_at_most_every_interval():
    now = [0.0]
    governor = th.ThreadGovernor(0, sampler=Scripted([1.0, 0.0, 1.0]), window=0, interval=5.0,
                                 clock=lambda: now[0], cores=2, limit=2)
    assert governor.threads == 1 and torch.get_num_threads() == 1
    now[0] = 4.0
    assert not governor.recheck(10)  # too soon: no sample taken
    now[0] = 5.0
    assert governor.recheck(20) and governor.threads == 2 and torch.get_num_threads() == 2
    now[0] = 10.0
    assert governor.recheck(30) and governor.threads == 1
    info = governor.describe()
    assert info["threads"] == 1 and info["threads_auto"] is True
    assert info["threads_history"] == [[0, 1], [20, 2], [30, 1]] and info["others_load"] == 1.0


def test_the_governor_sets_the_blas_pool_of_scikit_learn_with_torchs():
    th.ThreadGovernor(1, sampler=Scripted([]))
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and set(blas) == {1}  # numpy's own OpenBLAS is always loaded


def test_threads_n_overrides_and_turns_the_automatic_choice_off():
    governor = th.ThreadGovernor(1, sampler=Scripted([]), clock=lambda: 1e9, cores=2, limit=2)
    assert governor.threads == 1 and torch.get_num_threads() == 1
    assert not governor.recheck(100)  # never samples (the script is empty) and never changes
    assert governor.describe()["threads_auto"] is False and "threads_history" not in governor.describe()


def test_without_a_measurement_every_allowed_core_is_used():
    governor = th.ThreadGovernor(0, sampler=Scripted([None]), window=0, cores=4, limit=3)
    assert governor.threads == 3


def test_a_training_run_records_its_threads_and_adjusts_them_while_it_trains(tmp_path, monkeypatch):
    run = create_run(tiny_config("auto-threads", steps=20, threads=0), tmp_path)
    trainer = Trainer(run, progress=False)
    assert trainer.threads.auto and trainer.threads.threads >= 1
    trainer.threads._set(2, 0)  # as if it had started on an idle machine
    trainer.threads.sampler = Scripted([5.0] * 10)  # from now on the machine is busy: one thread
    trainer.threads.interval = 0.0  # re-checked at every logging step (every 5 steps here)
    written = []
    write_status = run.write_status
    monkeypatch.setattr(run, "write_status", lambda state, **f: (written.append(dict(f)), write_status(state, **f)))
    trainer.fit()
    assert torch.get_num_threads() == 1
    assert all("threads" in f for f in written if "speedups" in f)
    running = [f for f in written if "speedups" in f]  # the status at the start and at each change
    assert [f["threads"] for f in running] == [2, 1] and running[-1]["threads_history"][-2:] == [[0, 2], [5, 1]]


def test_a_fixed_thread_count_is_in_the_status(tmp_path):
    run = create_run(tiny_config("fixed-threads", steps=5, threads=1), tmp_path)
    trainer = Trainer(run, progress=False)
    trainer._status("running", **trainer.threads.describe())
    status = run.status()
    assert status["threads"] == 1 and status["threads_auto"] is False


def test_background_jobs_start_with_passive_openmp_waiting_unless_the_user_set_it(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(process, "start", lambda command, record, log, env=None, **kw: seen.append(env))
    run = create_run(tiny_config("job-env", steps=5), tmp_path)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    jobs._start(run, [], step=0)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    jobs._start(run, [], step=0)
    assert [env["OMP_WAIT_POLICY"] for env in seen] == ["PASSIVE", "ACTIVE"]
