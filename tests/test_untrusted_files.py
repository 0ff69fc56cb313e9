"""Files from strangers are data, never code: every loader refuses a pickle payload without running it."""
import json

import numpy as np
import pytest
import torch

from core.config import ConfigError
from core.explore.encode import encodings_path, load_or_encode
from core.runs.labels import LabelError, load_labels
from core.runs.legacy import import_weights, read_state_dict
from core.models.vae import VAE
from core.runs.folder import Run, RunError
from tests.tiny import TINY_ARCH


class Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def planted(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "payload.pt"
    torch.save({"weights": Payload(marker)}, path)
    return path, marker


def _copy_run(tiny_runs_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_runs_dir / "tiny-bvae", tmp_path / "runs" / "tiny-bvae")
    return Run(tmp_path / "runs" / "tiny-bvae")


def test_pickle_payload_is_refused_everywhere(planted, tiny_runs_dir, tmp_path):
    payload, marker = planted
    evil = payload.read_bytes()
    run = _copy_run(tiny_runs_dir, tmp_path)
    with pytest.raises(RunError, match="refused"):
        read_state_dict(payload)
    with pytest.raises(RunError, match="refused"):
        import_weights(payload, run, "imported", run.path.parent)
    assert not (run.path.parent / "imported").exists()
    good_weights = run.checkpoint_path.read_bytes()
    run.checkpoint_path.write_bytes(evil)
    with pytest.raises(RunError, match="checkpoint.safetensors"):
        run.load_model()
    run.checkpoint_path.write_bytes(good_weights)
    (run.path / "labels.json").write_bytes(evil)
    with pytest.raises(LabelError, match="labels.json"):
        load_labels(run)
    cache = encodings_path(run, "test", 20)
    cache.parent.mkdir(exist_ok=True)
    np.save(open(cache, "wb"), np.array([Payload(marker)], dtype=object), allow_pickle=True)
    assert load_or_encode(run, "test", 20)["mu"].shape == (20, 8)  # refused and recomputed
    config_bytes = (run.path / "config.json").read_bytes()
    (run.path / "config.json").write_bytes(evil)
    with pytest.raises(ConfigError, match="config.json"):
        run.config
    (run.path / "config.json").write_bytes(config_bytes)
    (run.path / "status.json").write_bytes(evil)
    assert run.status()["state"] == "unknown"
    (run.path / "metrics.jsonl").write_bytes(evil)
    assert run.metrics() == []
    assert not marker.exists()


def test_legacy_weights_import_as_a_new_safetensors_run(tiny_runs_dir, tmp_path):
    run = _copy_run(tiny_runs_dir, tmp_path)
    model = run.load_model()
    legacy = tmp_path / "old.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, legacy)
    new = import_weights(legacy, run, "imported", run.path.parent)
    z = torch.randn(2, 8)
    torch.testing.assert_close(new.load_model().decode(z), model.decode(z))
    assert new.status()["state"] == "finished"
    wrong = tmp_path / "wrong.pt"
    torch.save(VAE(type(TINY_ARCH)("t", (8, 8, 16, 16), 32, 4, "none")).state_dict(), wrong)
    with pytest.raises(RunError, match="shape"):
        import_weights(wrong, run, "wrong", run.path.parent)


@pytest.mark.parametrize("damage", ["truncate", "empty", "wrong_dtype", "missing_key"])
def test_damaged_checkpoints_are_refused_with_the_run_named(tiny_runs_dir, tmp_path, damage):
    from safetensors.torch import load_file, save_file

    run = _copy_run(tiny_runs_dir, tmp_path)
    data = run.checkpoint_path.read_bytes()
    if damage == "truncate":
        run.checkpoint_path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        run.checkpoint_path.write_bytes(b"")
    else:
        tensors = load_file(run.checkpoint_path)
        key = "model.decoder.head.0.weight"
        if damage == "wrong_dtype":
            tensors[key] = tensors[key].to(torch.int32)
        else:
            del tensors[key]
        save_file(tensors, run.checkpoint_path, metadata={"format": "latentlab-1", "step": "30"})
    with pytest.raises(RunError, match="tiny-bvae"):
        run.load_model()
    assert json.loads((run.path / "config.json").read_text())["name"] == "tiny-bvae"
