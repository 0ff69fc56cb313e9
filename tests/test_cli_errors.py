"""The command line answers bad input and a refusing machine with one line, never a traceback: configs that
validate but cannot run are refused before a run folder exists; full disks, read-only folders, divergence before
the first checkpoint and out-of-memory are named with their fix."""
from __future__ import annotations

import errno
import shutil

import pytest
import torch

import core.runs.checkpoint
from core.cli import main
from core.config import ConfigError, RunConfig
from core.device import pick_device
from core.runs import jobs
from core.runs.folder import Run
from core.training.loop import Trainer

TINY = ["--dataset", "dsprites", "--steps", "10", "--batch-size", "16", "--latent-dim", "8", "--log-every", "5",
        "--val-every", "5", "--checkpoint-every", "5", "--sample-every", "5", "--threads", "1"]


def _one_line_error(capsys) -> str:
    """The one error line on stderr (after the progress bar of a training run, if any): no traceback."""
    err = capsys.readouterr().err
    last = err.rstrip("\n").split("\n")[-1].split("\r")[-1]
    assert last.startswith("error: ") and err.count("error: ") == 1 and "Traceback" not in err, err
    return last


@pytest.mark.parametrize("option, why", [
    (["--device", "tpu"], "train.device = 'tpu': use auto, cpu, cuda, cuda:N"),
    (["--device", "cuda:99"], "--device cuda:99"),
    (["--beta", "inf"], "loss.beta = inf: must be a finite number (--beta)"),
    (["--seed", "-1"], "train.seed = -1: must be between 0 and"),
    (["--threads", "-1"], "train.threads = -1: must be between 0 and 1024"),
    (["--epochs", "-1"], "epochs = -1.0: must be between 0 (excluded)"),
    (["--steps", "0"], "train.steps = 0: must be between 1 and"),
    (["--model", "modvae", "--batch-size", "24", "--group-size", "16"], "whole groups of modvae.group_size = 16"),
])
def test_a_config_that_cannot_run_is_refused_before_a_folder_exists(tmp_path, capsys, option, why):
    assert main(["--runs-dir", str(tmp_path / "runs"), "train", "--name", "x", *TINY, *option]) == 2
    assert why in _one_line_error(capsys)
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_gpu_index_beyond_the_gpus_is_refused_by_name(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"--device cuda:2: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        pick_device("cuda:2")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert main(["--runs-dir", str(tmp_path), "train", "--name", "x", *TINY, "--device", "cuda:7"]) == 2
    assert "this machine has 2 CUDA GPUs" in _one_line_error(capsys) and list(tmp_path.iterdir()) == []
    for bad in ("tpu", "cuda:", "cuda:-1", "cpu ", "CUDA", 3):
        with pytest.raises(ConfigError, match="use auto, cpu, cuda, cuda:N"):
            pick_device(bad)
    config = RunConfig("x")
    config.train.device = "xla:0"
    with pytest.raises(ConfigError, match="train.device = 'xla:0'"):
        config.validate()
    config.train.device = "cuda:5"  # the Train page's background launch checks the same, before the folder
    with pytest.raises(ConfigError, match="this machine has 2 CUDA GPUs"):
        jobs.launch(config, tmp_path)
    assert list(tmp_path.iterdir()) == []


def _copy(tiny_runs_dir, tmp_path) -> Run:
    shutil.copytree(tiny_runs_dir / "tiny-bvae", tmp_path / "runs" / "tiny-bvae")
    return Run(tmp_path / "runs" / "tiny-bvae")


def test_a_full_disk_is_one_line_naming_the_fix(tiny_runs_dir, tmp_path, capsys, monkeypatch):
    run = _copy(tiny_runs_dir, tmp_path)
    weights = run.checkpoint_path.read_bytes()

    def full_disk(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"\x00" * 100)  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(core.runs.checkpoint, "save_file", full_disk)
    assert main(["--runs-dir", str(tmp_path / "runs"), "export", "tiny-bvae"]) == 1
    err = _one_line_error(capsys)
    assert "no space left on the disk" in err and "free some space" in err
    assert run.checkpoint_path.read_bytes() == weights  # the previous file is intact
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_run_folder_is_one_line_naming_the_folder(tiny_runs_dir, tmp_path, capsys, monkeypatch):
    run = _copy(tiny_runs_dir, tmp_path)

    def read_only(dir=None, prefix="", suffix=""):  # what mkstemp raises in a folder without write permission
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr("core.fileio.tempfile.mkstemp", read_only)
    assert main(["--runs-dir", str(tmp_path / "runs"), "export", "tiny-bvae"]) == 1
    err = _one_line_error(capsys)
    assert f"permission denied ({run.path})" in err and "chmod" in err  # the folder, not the temp file
    monkeypatch.undo()
    monkeypatch.setattr("core.fileio.tempfile.mkstemp", lambda **kw: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system", kw["dir"])))
    assert main(["--runs-dir", str(tmp_path / "runs"), "export", "tiny-bvae"]) == 1
    assert "read-only file system" in _one_line_error(capsys)


def test_nan_before_the_first_checkpoint_never_claims_a_kept_checkpoint(tmp_path, capsys, monkeypatch):
    step = Trainer.train_step

    def poisoned(self, i):
        if i == 2:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    args = ["--runs-dir", str(tmp_path), "train", "--name", "nan", *TINY, "--checkpoint-every", "500"]
    assert main(args) == 2
    err = _one_line_error(capsys)
    assert "lower --lr" in err and "no checkpoint had been saved yet" in err and "checkpoint is kept" not in err
    run = Run(tmp_path / "nan")
    assert not run.checkpoint_path.exists() and "no checkpoint had been saved yet" in run.status()["error"]


def test_out_of_memory_reaches_the_command_line_as_one_line(tmp_path, capsys, monkeypatch):
    step = Trainer.train_step

    def exhausted(self, i):
        if i == 7:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", exhausted)
    assert main(["--runs-dir", str(tmp_path), "train", "--name", "oom", *TINY]) == 2
    err = _one_line_error(capsys)
    assert "out of memory" in err and "--batch-size 8" in err and "the last good checkpoint is kept" in err
