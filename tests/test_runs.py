import json
import subprocess
import sys

import pytest
import torch

from core.models.vae import VAE
from core.runs.folder import Run, RunError, list_runs
from tests.tiny import TINY_ARCH, tiny_config


def _run(tmp_path, name="r"):
    run = Run(tmp_path / name)
    run.path.mkdir()
    run.write_config(tiny_config(name))
    return run


def test_dead_process_is_not_reported_as_running(tmp_path):
    run = _run(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.write_status("running", pid=int(dead.stdout))
    assert run.status()["state"] == "failed"
    run.write_status("running", pid=__import__("os").getpid())
    assert run.status()["state"] == "running"
    (run.path / "status.json").write_text("{garbage")
    assert run.status()["state"] == "unknown"


def test_list_runs_finds_run_folders_only(tmp_path):
    _run(tmp_path, "one")
    _run(tmp_path, "two")
    (tmp_path / "not-a-run").mkdir()
    assert sorted(r.name for r in list_runs(tmp_path)) == ["one", "two"]
    assert list_runs(tmp_path / "missing") == []


def test_checkpoints_that_do_not_match_the_config_are_refused(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(RunError, match="no checkpoint"):
        run.load_model()
    other = VAE(type(TINY_ARCH)("tiny", (8, 8, 16, 16), 32, 4, "none"))  # 4 latent dims, config says 8
    run.save_checkpoint(other, None, 1)
    with pytest.raises(RunError, match="shape"):
        run.load_model()
    for payload in (b"", b"\x00" * 7, b"garbage that is not safetensors"):
        run.checkpoint_path.write_bytes(payload)
        with pytest.raises(RunError, match="checkpoint.safetensors"):
            run.load_model()


def test_checkpoint_holds_no_pickle(tmp_path):
    run = _run(tmp_path)
    run.save_checkpoint(VAE(TINY_ARCH), torch.optim.Adam(VAE(TINY_ARCH).parameters()), 3)
    data = run.checkpoint_path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    assert header["__metadata__"] == {"format": "latentlab-1", "step": "3"}
    assert b"\x80\x04" not in data[:64]  # no pickle protocol marker at the start
