"""The leaderboard (core/metrics/leaderboard.py): runs grouped by family, data set, hyper-parameters and step, with
each score's mean, std, median, min and max over the seeds checked against hand-computed values."""
import math

import pytest

from core.config import RunConfig
from core.metrics.leaderboard import (Spread, group_runs, hyperparameter_text, hyperparameters, leaderboard_rows,
                                      scatter_points, sort_groups, spread_text)
from core.runs.folder import list_runs
from tests.tiny import evaluated_run, tiny_config

DCI, MSE, MIG, SAP = "DCI disentanglement", "reconstruction MSE/pixel", "MIG", "SAP"
# (family, hyper-parameter setting) -> per seed 0, 1, 2: DCI disentanglement, MSE per pixel, MIG (None: not computed)
GRID = {
    ("beta-vae", "beta 2"): [(0.2, 0.010, 0.1), (0.4, 0.012, 0.3), (0.9, 0.014, None)],
    ("beta-vae", "beta 8"): [(0.6, 0.030, None), (0.7, 0.020, None), (0.8, 0.040, None)],
    ("vae", "8 dims"): [(0.1, 0.005, None), (0.1, 0.006, None), (0.4, 0.007, None)],
    ("vae", "10 dims"): [(0.3, 0.004, None), (0.5, 0.004, None), (0.1, 0.004, None)],
}


def config(family: str, setting: str, seed: int):
    c = tiny_config(f"{family}-{setting.replace(' ', '')}-s{seed}", model=family, threads=seed + 1,
                    log_every=5 + seed)  # threads and logging differ between seeds: no hyper-parameters
    c.train.seed = c.data.seed = seed
    if setting.startswith("beta"):
        c.loss.beta = float(setting.split()[1])
    else:
        c.arch.latent_dim = int(setting.split()[0])
    return c.validate()


def results(dci: float, mse: float, mig: float | None) -> dict:
    out = {"dci": {"disentanglement": dci, "completeness": 0.5, "informativeness_train": 0.9,
                   "informativeness_test": 0.8},
           "reconstruction": {"mse_per_pixel": mse}}
    return out | ({"mig": {"mig": mig}} if mig is not None else {})


@pytest.fixture
def runs(tmp_path):
    """2 families x 2 hyper-parameter settings x 3 seeds of evaluated dSprites runs, and nothing else."""
    for (family, setting), seeds in GRID.items():
        for seed, scores in enumerate(seeds):
            evaluated_run(tmp_path, config(family, setting, seed), results(*scores))
    return tmp_path


def by_hparams(groups) -> dict:
    return {(g.family, g.hparams): g for g in groups}


def test_runs_are_grouped_over_seeds_with_hand_computed_spreads(runs):
    groups = group_runs(list_runs(runs))
    assert [(g.dataset, g.family, g.seeds, g.step, g.note) for g in groups] == \
        [("dsprites", "beta-vae", 3, 20, "")] * 2 + [("dsprites", "vae", 3, 20, "")] * 2
    found = by_hparams(groups)
    common = "--batch-size 16 --lr 0.002 --preset tiny --steps 20 --warmup-steps 5"
    beta2 = found["beta-vae", "--batch-size 16 --beta 2 --lr 0.002 --preset tiny --steps 20 --warmup-steps 5"]
    assert sorted(beta2.runs) == ["beta-vae-beta2-s0", "beta-vae-beta2-s1", "beta-vae-beta2-s2"]
    # vae's β is 1 and its warm-up 0, so the tiny config's β = 2 and warm-up 5 are hyper-parameters of it too
    assert set(found) == {("beta-vae", beta2.hparams),
                          ("beta-vae", common.replace("--lr", "--beta 8 --lr")),
                          ("vae", common.replace("--lr", "--beta 2 --lr")),
                          ("vae", common.replace("--lr", "--beta 2 --latent-dim 10 --lr"))}
    for g in groups:
        assert "seed" not in g.hparams and "threads" not in g.hparams and "log-every" not in g.hparams

    d = beta2.scores[DCI]  # 0.2, 0.4, 0.9
    assert (d.n, d.median, d.min, d.max) == (3, 0.4, 0.2, 0.9)
    assert d.mean == pytest.approx(0.5) and d.std == pytest.approx(math.sqrt((0.3**2 + 0.1**2 + 0.4**2) / 2))
    m = beta2.scores[MIG]  # computed for two of the three seeds
    assert (m.n, m.mean, m.median, m.min, m.max) == (2, pytest.approx(0.2), pytest.approx(0.2), 0.1, 0.3)
    assert m.std == pytest.approx(math.sqrt(0.02))
    assert beta2.scores[SAP] is None
    beta8 = found["beta-vae", common.replace("--lr", "--beta 8 --lr")]
    assert beta8.scores[DCI].mean == pytest.approx(0.7) and beta8.scores[DCI].std == pytest.approx(0.1)
    assert beta8.scores[MSE].median == 0.03 and beta8.scores[MSE].mean == pytest.approx(0.03)
    assert beta8.scores[MIG] is None
    flat = found["vae", common.replace("--lr", "--beta 2 --latent-dim 10 --lr")].scores[MSE]
    assert (flat.mean, flat.std, flat.min, flat.max) == (pytest.approx(0.004), 0, 0.004, 0.004)


def test_a_broken_config_or_another_step_gets_a_row_of_its_own(runs):
    broken = evaluated_run(runs, config("beta-vae", "beta 2", 3), results(0.99, 0.001, 0.9))
    (broken / "config.json").write_text('{"name": "beta-vae-beta2-s3", "model": ')
    evaluated_run(runs, config("beta-vae", "beta 2", 4), results(0.0, 0.5, 0.0), step=10)
    groups = group_runs(list_runs(runs))
    assert len(groups) == 6
    alone = [g for g in groups if g.note]
    assert [(g.hparams, g.runs, g.seeds) for g in alone] == \
        [("config.json unreadable: beta-vae-beta2-s3", ("beta-vae-beta2-s3",), 1)]
    assert "config.json" in alone[0].note and alone[0].scores[DCI].mean == 0.99 and alone[0].scores[DCI].std is None
    early = [g for g in groups if g.step == 10]
    assert [g.runs for g in early] == [("beta-vae-beta2-s4",)]
    assert sorted(g.seeds for g in groups) == [1, 1, 3, 3, 3, 3]  # the full groups are as before
    beta2 = [g for g in groups if g.step == 20 and not g.note and g.runs[0].startswith("beta-vae-beta2")]
    assert len(beta2) == 1 and beta2[0].scores[DCI].mean == pytest.approx(0.5)


def test_settings_that_do_not_change_the_model_are_left_out():
    a, b = config("beta-vae", "beta 2", 0), config("beta-vae", "beta 2", 1)
    b.train.device, b.train.compile, b.train.checkpoint_every, b.data.root = "cpu", True, 7, "/data/celeba"
    b.arch.cond_dim = 40  # filled in from the data set for a conditional family
    assert hyperparameters(a) == hyperparameters(b)
    b.data.dataset = "folder"  # an image folder's root is what it is
    assert ("--data-root", "/data/celeba") in hyperparameters(b)
    b.arch.channels = (4, 8, 16, 16)
    assert "arch.channels 4,8,16,16" in hyperparameter_text(hyperparameters(b))
    assert hyperparameter_text(hyperparameters(RunConfig("plain", model="vae"))) == "family defaults"


def test_sorting_table_rows_scatter_points_and_text(runs):
    groups = group_runs(list_runs(runs))
    order = [g.scores[DCI].mean for g in sort_groups(groups, DCI)]
    assert order == pytest.approx([0.7, 0.5, 0.3, 0.2])
    assert [g.scores[MSE].mean for g in sort_groups(groups, MSE, descending=False)] == \
        pytest.approx([0.004, 0.006, 0.012, 0.03])
    assert [g.scores[MIG] is not None for g in sort_groups(groups, MIG, descending=False)] == [True] + [False] * 3

    rows = leaderboard_rows(groups, [DCI, MIG])
    assert list(rows[0]) == ["family", "data set", "hyper-parameters", "seeds", "step", DCI, f"{DCI} ±", MIG,
                             f"{MIG} ±"]
    assert [r[DCI] for r in rows] == pytest.approx([0.5, 0.7, 0.3, 0.2]) and rows[1][MIG] is None

    points = scatter_points(groups, MSE, DCI)
    assert len(points) == 4 and points[2][f"{MSE} ±"] == 0 and points[1][f"{DCI} ±"] == pytest.approx(0.1)
    assert len(scatter_points(groups, MSE, MIG)) == 1

    assert spread_text(Spread.of([0.2, 0.4, 0.9])) == "0.4 (0.2–0.9)"
    assert spread_text(Spread.of([0.6, 0.7, 0.8]), "mean") == "0.7 ± 0.1"
    assert spread_text(Spread.of([0.123456])) == "0.123" and spread_text(None) == "–" and Spread.of([]) is None
