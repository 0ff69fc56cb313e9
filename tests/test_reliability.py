"""Resource limits and concurrent use: out of memory, odd image sizes, two labellers, a run deleted under a page."""
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.folder import ImageFolder
from core.data.dsprites import DSprites
from core.explore.projection import UmapParams
from core.explore.umap_job import embedding_path, load_umap
from core.runs.labels import DimLabel, load_labels, save_label
from core.runs.folder import Run
from core.training.failures import OutOfMemory
from core.training.loop import Trainer
from core.runs.folder import create_run
from tests.tiny import fail_at, tiny_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["home", "train", "traversals", "embeddings", "arithmetic", "generate", "photo", "compare", "metrics"]


def test_out_of_memory_suggests_a_smaller_batch(tmp_path):
    trainer = Trainer(create_run(tiny_config("oom", steps=20, batch_size=16), tmp_path), DSprites(), progress=False)

    def exhausted(trainer):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    fail_at(trainer, 12, exhausted)
    with pytest.raises(OutOfMemory, match="--batch-size 8"):
        trainer.fit()
    status = trainer.run.status()
    assert status["state"] == "failed" and "--batch-size 8" in status["error"]
    assert trainer.run.checkpoint_step() == 10  # the last completed checkpoint survives


def test_huge_and_tiny_images_are_handled(tmp_path, monkeypatch, loader_cache_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (120, 100), (200, 10, 10)).save(photos / "huge.png")
    Image.new("RGB", (1, 1), (10, 200, 10)).save(photos / "one_pixel.png")
    Image.new("L", (3, 2), 90).save(photos / "three_by_two.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 12,000 px is then a decompression bomb (> 2x)
    data = ImageFolder(photos, cache_dir=loader_cache_dir, progress=False)
    assert data.skipped_count == 1 and "bomb" in data.cache.failed[0][1].lower()
    images = data.images(np.arange(len(data)))
    assert images.shape == (2, 3, 64, 64)
    assert (images[data.files.index("one_pixel.png"), 1] == 200).all()  # one pixel scaled up, not garbage


def test_two_labellers_at_once_lose_nothing(tiny_runs_dir, tmp_path):
    run = Run(shutil.copytree(tiny_runs_dir / "tiny-bvae", tmp_path / "tiny-bvae"))
    threads = [threading.Thread(target=save_label, args=(run, d, DimLabel(f"dim {d}", True, "")))
               for d in range(8) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {d: v.label for d, v in load_labels(run).items()} == {d: f"dim {d}" for d in range(8)}


def test_damaged_umap_cache_is_recomputed_not_fatal(tiny_runs_dir, tmp_path):
    run = Run(shutil.copytree(tiny_runs_dir / "tiny-bvae", tmp_path / "tiny-bvae"))
    path = embedding_path(run, "test", 100, UmapParams())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert load_umap(run, "test", 100, UmapParams()) is None


@pytest.mark.parametrize("page", PAGES)
def test_a_run_deleted_while_a_page_shows_it(tiny_runs_dir, tmp_path, monkeypatch, page):
    runs = shutil.copytree(tiny_runs_dir, tmp_path / "runs")
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(runs))
    app = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=120)
    app.query_params["run"] = "tiny-bvae"
    app.run()
    app.switch_page(str(ROOT / "pages" / f"{page}.py")).run()
    assert not app.exception
    shutil.rmtree(runs / "tiny-bvae")
    app.run()
    assert not app.exception, app.exception
    shutil.rmtree(runs / "tiny-modvae")  # no runs left at all
    app.run()
    assert not app.exception, app.exception
