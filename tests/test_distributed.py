"""torchrun training (2 CPU processes, gloo) against a single process with the same global batch and seed.

Each rank trains on its half of the same deterministic global batch with its rows of the same sampling
noise, so the loss curves agree up to float summation order: measured about 1.4e-7 relative after 20 steps
of this tiny run; TOLERANCE leaves three orders of magnitude of margin. A rank that trained on the wrong
rows (or on the whole batch) would be off by percent.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.training import distributed
from core.training.batches import Batch
from core.runs.folder import Run, RunError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "dsprites", "--name", "r", "--latent-dim", "8", "--batch-size", "32", "--log-every", "5",
        "--val-every", "1000", "--checkpoint-every", "1000", "--sample-every", "1000", "--device", "cpu"]
TOLERANCE = 1e-4  # relative, on every logged train loss and the final validation neg-ELBO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _core(runs: Path, *args: str, nproc: int = 1) -> list[str]:
    launcher = ([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                 f"--master-port={_free_port()}", "-m", "core"] if nproc > 1 else [sys.executable, "-m", "core"])
    return [*launcher, "--runs-dir", str(runs), "train", *args]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    # one thread per process, as torchrun sets for its workers: the same arithmetic in both runs
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _lines(run: Run) -> list[dict]:
    return [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def _files(run: Run) -> set[str]:
    """The run's files, without the hidden lock files that resuming leaves (.job.lock)."""
    return {str(p.relative_to(run.path)) for p in run.path.rglob("*") if not p.name.endswith(".lock")}


def _communicate_or_dump_stacks(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """proc's output; if it has not ended within `timeout`, every rank's thread stacks (the trainer prints them on
    SIGUSR1) in the failure, so a hang seen once on CI says where each rank waits."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        for pid in (children.read_text().split() if children.is_file() else []):
            os.kill(int(pid), signal.SIGUSR1)
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not end {timeout} s after the cancel; its ranks' stacks:\n{err[-12000:]}")


def test_torchrun_matches_one_process_and_stops_and_resumes_cleanly(tmp_path):
    ddp = Run(tmp_path / "ddp" / "r")
    # far more steps than can finish before the signal lands: a short run raced to "finished" on a fast CI box
    proc = subprocess.Popen(_core(tmp_path / "ddp", *TINY, "--steps", "100000", nproc=2), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    # the first logged step: both ranks are training (on a loaded CI box, starting two processes took over 60 s)
    deadline = time.time() + 240
    while not (ddp.path / "metrics.jsonl").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert (ddp.path / "metrics.jsonl").is_file(), "torchrun did not reach its first logged step in 240 s"
    # SIGTERM to rank 0 only (the pid in status.json, which the dashboard's cancel button signals)
    signal_target = ddp.status()["pid"]
    os.kill(signal_target, signal.SIGTERM)
    out, err = _communicate_or_dump_stacks(proc, timeout=120)
    status = ddp.status()
    assert proc.returncode == 0, err[-3000:]
    assert status["state"] == "cancelled" and status["pid"] == signal_target
    stopped = ddp.checkpoint_step()
    assert stopped == status["step"] and stopped % 5 == 0 and 0 < stopped < 100000  # all ranks stop at a log step

    total = stopped + 10
    resumed = _run(_core(tmp_path / "ddp", "--resume", "r", "--steps", str(total), nproc=2))
    assert resumed.stdout.count("finished:") == 1  # printed by rank 0 only
    single = Run(tmp_path / "single" / "r")
    _run(_core(tmp_path / "single", *TINY, "--steps", str(total)))

    assert ddp.status()["state"] == "finished" and ddp.checkpoint_step() == total
    ddp_lines, single_lines = _lines(ddp), _lines(single)
    assert [r["step"] for r in ddp_lines if r["type"] == "train"] == list(range(5, total + 1, 5))  # no duplicates
    assert [(r["type"], r["step"]) for r in ddp_lines] == [(r["type"], r["step"]) for r in single_lines]
    for a, b in zip(ddp_lines, single_lines):
        key = "loss" if a["type"] == "train" else "neg_elbo"
        assert a[key] == pytest.approx(b[key], rel=TOLERANCE), (a["step"], a[key], b[key])
        assert a.get("images_per_s", 1) > 0
    assert _files(ddp) == _files(single)  # the same files, written once, by rank 0
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["r"]


def test_batches_split_into_contiguous_equal_shards(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    batch = Batch(np.arange(8), groups=np.arange(8) // 4, fixed=np.eye(8, dtype=bool))
    shard = distributed.shard_batch(batch)
    assert shard.index.tolist() == [4, 5, 6, 7] and shard.groups.tolist() == [1, 1, 1, 1]
    assert shard.fixed.shape == (4, 8) and shard.fixed[0, 4]
    with pytest.raises(RunError, match="multiple of 2"):
        distributed.check_batch_size(15)
    distributed.check_batch_size(32, group_size=8)  # 16 rows a rank: two whole groups
    with pytest.raises(RunError, match="multiple of 32"):
        distributed.check_batch_size(16, group_size=16)  # 8 rows a rank: half a group each


def test_a_shard_never_splits_a_modvae_group(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    batch = Batch(np.arange(12), groups=np.arange(12) // 4, fixed=np.ones((12, 1), bool))  # rank 0: rows 0-5
    with pytest.raises(RunError, match="split a ModVAE group"):
        distributed.shard_batch(batch)


def test_each_rank_draws_exactly_its_rows_of_the_single_process_noise(monkeypatch):
    def noise(rank: int, world: int) -> torch.Tensor:
        monkeypatch.setattr(distributed, "world", lambda: world)
        monkeypatch.setattr(distributed, "rank", lambda: rank)
        return distributed.rank_noise(torch.Generator().manual_seed(7), 12, 5)  # 12 x 5: not a multiple of 16

    single = noise(0, 1)
    assert single.shape == (12, 5) and single.dtype == torch.float32
    assert torch.equal(torch.cat([noise(r, 3) for r in range(3)]), single)
