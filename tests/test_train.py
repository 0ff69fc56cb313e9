import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.training.batches import GroupedBatches, ShuffledBatches
from core.data.base import Attributes, DataError, Dataset
from core.data.dsprites import DSprites
from core.runs.folder import Run
from core.training.loop import Trainer, resume, train
from core.runs.folder import create_run
from tests.tiny import tiny_config

DSPRITES = DSprites()


def test_tiny_run_reduces_the_loss_and_writes_the_run_folder(tmp_path):
    run = train(tiny_config("learn", steps=60, lr=3e-3), tmp_path, progress=False, dataset=DSPRITES)
    records = run.metrics("train")
    assert [r["step"] for r in records] == list(range(5, 65, 5))
    assert records[-1]["recon"] < 0.5 * records[0]["recon"]
    assert len(records[0]["kl_dims"]) == 8 and records[0]["images_per_s"] > 0
    assert {r["step"] for r in run.metrics("val")} == {10, 20, 30, 40, 50, 60}
    assert run.status()["state"] == "finished" and run.checkpoint_step() == 60
    assert (run.path / "samples" / "recon_0000060.png").is_file()
    assert (run.path / "samples" / "prior_0000060.png").is_file()


@pytest.mark.parametrize("model", ["beta-vae", "modvae"])
def test_resume_continues_exactly(tmp_path, model):
    def config(name: str, steps: int):
        config = tiny_config(name, model=model, steps=steps)
        config.modvae.dims_per_factor, config.modvae.group_size = 1, 8
        return config

    straight = train(config("straight", 20), tmp_path, progress=False, dataset=DSPRITES)
    half = train(config("half", 10), tmp_path, progress=False, dataset=DSPRITES)
    resumed = resume(half, steps=20, progress=False, dataset=DSPRITES)
    a, b = load_file(straight.checkpoint_path), load_file(resumed.checkpoint_path)
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    la = [(r["step"], r["loss"]) for r in straight.metrics("train")]
    lb = [(r["step"], r["loss"]) for r in resumed.metrics("train")]
    assert la == lb


def test_resume_drops_metrics_logged_after_the_last_checkpoint(tmp_path):
    run = train(tiny_config("torn", steps=10), tmp_path, progress=False, dataset=DSPRITES)
    run.append_metrics({"type": "train", "step": 15, "loss": 1.0})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"type": "train", "st')  # a line torn by a crash
    assert run.metrics("train")[-1]["step"] == 15  # readers skip the torn line
    resume(run, steps=20, progress=False, dataset=DSPRITES)
    steps = [r["step"] for r in run.metrics("train")]
    assert steps == [5, 10, 15, 20] and run.metrics("train")[2]["loss"] != 1.0


def test_checkpoint_round_trip_gives_the_same_model(tmp_path):
    run = train(tiny_config("rt", steps=10), tmp_path, progress=False, dataset=DSPRITES)
    trainer = Trainer(run, DSPRITES, progress=False)
    trainer.resume()
    model = run.load_model()
    x = torch.rand(4, 3, 64, 64)
    trainer.model.eval()
    torch.testing.assert_close(model.encode(x)[0], trainer.model.encode(x)[0], rtol=0, atol=0)
    half = Run(tmp_path / "half")
    half.path.mkdir()
    half.write_config(run.config)
    half.save_checkpoint(model, None, 10, dtype=torch.float16)
    torch.testing.assert_close(half.load_model().decode(torch.zeros(1, 8)), model.decode(torch.zeros(1, 8)), atol=2e-3, rtol=0)


def test_existing_run_name_is_refused(tmp_path):
    create_run(tiny_config("dup"), tmp_path)
    with pytest.raises(ValueError, match="already exists"):
        create_run(tiny_config("dup"), tmp_path)


def test_modvae_trains_on_one_factor_groups(tmp_path):
    config = tiny_config("mod", model="modvae", steps=10)
    config.modvae.dims_per_factor = 1
    config.modvae.group_size = 8
    run = train(config, tmp_path, progress=False, dataset=DSPRITES)
    record = run.metrics("train")[-1]
    assert record["clamp"] >= 0 and np.isfinite(record["loss"])


def test_one_factor_batches_fix_every_other_factor():
    batches = GroupedBatches(DSPRITES, batch_size=32, group_size=8, seed=0)
    batch = batches(3)
    assert batch.index.shape == (32,) and batch.groups.tolist() == np.repeat(np.arange(4), 8).tolist()
    assert (batch.fixed.sum(1) == DSPRITES.num_factors - 1).all()
    factors = DSPRITES.index_to_factors(batch.index)
    for g in range(4):  # exactly the factors the mask calls fixed are constant within each group
        rows = factors[batch.groups == g]
        assert ((rows == rows[0]).all(0) | ~batch.fixed[batch.groups == g][0]).all()
    assert np.array_equal(batches(3).index, batch.index)  # a pure function of the step


class People(Dataset):
    """Six people with 1..6 images each; the pixel value encodes the person, so batches can be checked."""

    name = "people"

    def __init__(self):
        self.identities = np.repeat(np.arange(6), np.arange(1, 7))
        self.split = np.zeros(len(self.identities), np.int8)
        self.attributes = Attributes(["Any"], np.zeros((len(self.identities), 1), bool))

    def images(self, index):
        return np.broadcast_to(self.identities[index, None, None, None].astype(np.uint8) * 40, (len(index), 3, 64, 64)).copy()


def test_identity_groups_hold_one_person_each_in_contiguous_rows_of_equal_size():
    data = People()
    batches = GroupedBatches(data, batch_size=12, group_size=4, seed=0)
    sizes = set()
    for step in range(20):
        batch = batches(step)
        assert len(batch.index) == 12 and batch.groups.tolist() == np.repeat(np.arange(3), 4).tolist()
        for rows in batch.index.reshape(3, 4):  # group g is rows 4g..4g+3
            people = np.unique(data.identities[rows])
            assert len(people) == 1 and people[0] != 0  # person 0 has one image and cannot form a group
            members = np.flatnonzero(data.identities == people[0])
            # all of a person's images when they have at most 4, each repeated as evenly as possible
            counts = np.array([np.sum(rows == m) for m in members])
            assert counts.sum() == 4 and counts.max() - counts.min() <= 1
            sizes.add(len(members))
        assert np.array_equal(batches(step).index, batch.index)  # a pure function of (seed, step)
    assert {2, 3, 6} <= sizes  # people with fewer images than the group size and more are both drawn
    assert not np.array_equal(GroupedBatches(data, 12, 4, seed=1)(0).index, batches(0).index)


def test_modvae_batches_must_hold_whole_groups():
    with pytest.raises(DataError, match="not a multiple of --group-size 8"):
        GroupedBatches(DSPRITES, batch_size=20, group_size=8, seed=0)
    assert GroupedBatches(DSPRITES, batch_size=4, group_size=8, seed=0)(0).groups.tolist() == [0] * 4  # one group


def test_shuffled_batches_cover_the_train_split_once_per_epoch():
    batches = ShuffledBatches(People(), batch_size=3, seed=0)
    epoch = batches.steps_per_epoch
    first = np.concatenate([batches(s).index for s in range(epoch)])
    second = np.concatenate([batches(s).index for s in range(epoch, 2 * epoch)])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(len(People())))
    assert not np.array_equal(first, second)  # every epoch reshuffles


def test_validation_runs_at_every_epoch_end_by_default(tmp_path):
    run = train(tiny_config("epochs", steps=14, batch_size=3, val_every=0), tmp_path, progress=False, dataset=People())
    assert [(r["step"], r["epoch"]) for r in run.metrics("val")] == [(7, 1.0), (14, 2.0)]


REAL_CELEBA = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"


@pytest.mark.skipif(not REAL_CELEBA.is_dir(), reason=f"SKIPPED: the real CelebA sample is not at {REAL_CELEBA}")
def test_modvae_trains_on_real_celeba_with_same_person_groups(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTLAB_CACHE", str(tmp_path / "cache"))
    config = tiny_config("celeba-mod", model="modvae", steps=10, batch_size=32)
    config.data.dataset, config.data.root = "celeba", str(REAL_CELEBA)
    config.modvae.group_size = 4
    run = train(config, tmp_path, progress=False)
    record = run.metrics("train")[-1]
    assert run.status()["state"] == "finished" and record["clamp"] > 0 and np.isfinite(record["loss"])


def test_the_learning_rate_warms_up_then_follows_its_cosine_to_zero(tmp_path):
    from core.objectives.schedules import LearningRate

    cosine = LearningRate(1e-3, warmup=4, decay="cosine", total=20)
    assert [cosine(s) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert cosine(4) == pytest.approx(1e-3) and cosine(12) == pytest.approx(5e-4) and cosine(20) == pytest.approx(0)
    assert LearningRate(1e-3, warmup=0, decay="constant", total=20)(19) == 1e-3
    run = train(tiny_config("sched", steps=20, lr=1e-3, lr_warmup_steps=4, lr_decay="cosine"), tmp_path,
                progress=False, dataset=DSPRITES)
    # the rate logged at step s is the one its last optimizer step (index s - 1) used
    assert [r["lr"] for r in run.metrics("train")] == pytest.approx([cosine(s - 1) for s in (5, 10, 15, 20)])
