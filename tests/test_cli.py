import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.cli import main
from core.runs.folder import Run

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "10", "--batch-size", "16", "--latent-dim", "8", "--log-every", "5", "--val-every", "5",
        "--checkpoint-every", "5", "--sample-every", "5", "--threads", "1"]


def test_train_encode_and_list(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), "train", "--dataset", "dsprites", "--name", "cli", *TINY]) == 0
    run = Run(tmp_path / "cli")
    config = run.config
    assert config.model == "beta-vae" and config.loss.beta == 4.0 and config.arch.latent_dim == 8
    assert config.command.startswith("python -m core") and "--name cli" in config.command
    assert main(["--runs-dir", str(tmp_path), "encode", "cli", "--limit", "100", "--split", "val"]) == 0
    with np.load(tmp_path / "cli" / "encodings" / "dsprites-val-100.npz", allow_pickle=False) as z:
        assert z["mu"].shape == (100, 8) and z["factors"].shape == (100, 5)
        assert list(z["attribute_names"])[:3] == ["Square", "Ellipse", "Heart"]
    assert main(["--runs-dir", str(tmp_path), "runs"]) == 0
    assert "cli" in capsys.readouterr().out


def test_epochs_are_converted_to_steps(tmp_path):
    args = ["--runs-dir", str(tmp_path), "train", "--dataset", "dsprites", "--name", "ep", *TINY[2:]]
    assert main([*args, "--epochs", "0.0005", "--batch-size", "64"]) == 0
    assert Run(tmp_path / "ep").config.train.steps == round(0.0005 * (len(__import__("core.data.dsprites", fromlist=["x"]).DSprites().indices("train")) // 64))


def test_bad_input_gives_a_message_not_a_traceback(tmp_path, capsys):
    base = ["--runs-dir", str(tmp_path), "train", *TINY]
    assert main([*base, "--name", "../escape"]) == 2
    assert "run name" in capsys.readouterr().err
    assert main([*base, "--beta", "-1"]) == 2
    assert main([*base, "--dataset", "celeba"]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert main([*base, "--dataset", "celeba", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["--runs-dir", str(tmp_path), "train", "--resume", "ghost"]) == 2
    assert not any(p.name != "nowhere" for p in tmp_path.iterdir())  # nothing half-created


def test_preview_writes_a_factor_grid(tmp_path):
    assert main(["preview", "dsprites", "--out", str(tmp_path / "d.png")]) == 0
    image = Image.open(tmp_path / "d.png")
    assert image.size == (2 * (8 * 66 + 2), 2 * (7 * 66 + 2))  # 5 factor rows + 2 random rows, 2x


def test_sigterm_stops_cleanly_with_a_checkpoint_and_resume_finishes(tmp_path):
    cmd = [sys.executable, "-m", "core", "--runs-dir", str(tmp_path), "train", "--dataset", "dsprites", "--name", "sig",
           *TINY[2:], "--steps", "100000"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = Run(tmp_path / "sig")
    deadline = time.time() + 120
    while not run.metrics("train") and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    status = run.status()
    assert proc.returncode == 0 and status["state"] == "cancelled"
    assert run.checkpoint_step() == status["step"] > 0
    assert main(["--runs-dir", str(tmp_path), "train", "--resume", "sig", "--steps", str(status["step"] + 5)]) == 0
    assert run.status()["state"] == "finished" and run.checkpoint_step() == status["step"] + 5
    assert os.path.exists(run.path / "config.json")
