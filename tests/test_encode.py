import os

import numpy as np

from core.data.dsprites import DSprites
from core.cli import main
from core.explore.encode import DASHBOARD_ENCODINGS, encodings_path, load_or_encode
from core.runs.folder import Run
from core.training.loop import resume, train
from tests.tiny import tiny_config


def test_encodings_are_cached_in_the_run_folder_and_refreshed_after_training(tmp_path):
    data = DSprites()
    run = train(tiny_config("enc", steps=5), tmp_path, progress=False, dataset=data)
    first = load_or_encode(run, "val", limit=50, dataset=data)
    path = encodings_path(run, "val", 50)
    assert first["mu"].shape == (50, 8) and np.isin(first["index"], data.indices("val")).all()
    np.testing.assert_array_equal(first["attributes"], data.attributes.values[first["index"]])
    stamp = path.stat().st_mtime_ns
    load_or_encode(run, "val", limit=50, dataset=data)
    assert path.stat().st_mtime_ns == stamp  # read back, not recomputed
    resume(run, steps=10, progress=False, dataset=data)  # a newer checkpoint
    load_or_encode(run, "val", limit=50, dataset=data)
    assert path.stat().st_mtime_ns != stamp


def test_encodings_follow_the_checkpoint_not_file_times(tmp_path):
    data = DSprites()
    run = train(tiny_config("enc", steps=5), tmp_path, progress=False, dataset=data)
    path = encodings_path(run, "val", 50)
    load_or_encode(run, "val", limit=50, dataset=data)
    stamp = path.stat().st_mtime_ns
    # a clone or copy: the encodings written before the checkpoint, the same weights -> read back
    os.utime(path, ns=(stamp - 10**10, stamp - 10**10))
    load_or_encode(run, "val", limit=50, dataset=data)
    assert path.stat().st_mtime_ns == stamp - 10**10
    # other weights at the same step, the encodings newer than them -> computed again
    other = train(tiny_config("other", steps=5, seed=1), tmp_path, progress=False, dataset=data)
    run.checkpoint_path.write_bytes(other.checkpoint_path.read_bytes())
    os.utime(path, ns=(stamp + 10**10, stamp + 10**10))
    load_or_encode(run, "val", limit=50, dataset=data)
    assert path.stat().st_mtime_ns != stamp + 10**10


def test_a_finished_cli_run_has_the_dashboards_encodings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATENTLAB_ENCODE_AFTER_TRAINING", "1")
    args = ["--runs-dir", str(tmp_path)]
    assert main([*args, "train", "--dataset", "dsprites", "--name", "r", "--preset", "tiny", "--steps", "5",
                 "--batch-size", "16", "--threads", "1"]) == 0
    assert "encodings for the dashboard: 2 files" in capsys.readouterr().out
    run = Run(tmp_path / "r")
    for split, limit in DASHBOARD_ENCODINGS:
        encodings = load_or_encode(run, split, limit)
        assert encodings["mu"].shape == (limit, run.config.arch.latent_dim)
        assert "checkpoint_sha256" not in encodings  # the fingerprint is bookkeeping, not a column
    written = {p: p.stat().st_mtime_ns for p in (run.path / "encodings").iterdir()}
    assert main([*args, "encode", "r"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (run.path / "encodings").iterdir()} == written
