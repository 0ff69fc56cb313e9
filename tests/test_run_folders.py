"""Run folders from strangers: one broken run never hides the others, RUN arguments never leave the runs folder,
writes never follow a linked subfolder, and creating a run is atomic (a kill leaves no half-made name)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main
from core.fileio import UntrustedFileError, atomic_path, check_inside
from core.runs.export import prune_samples
from core.runs.folder import CREATING, Run, RunError, create_run, find_run, list_runs
from core.runs.summary import summaries, summarize
from tests.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _good(root: Path, name: str) -> Run:
    """A complete-looking run folder (no training: the listing reads files, it does not load weights)."""
    run = create_run(tiny_config(name), root)
    run.write_status("finished", step=20, total_steps=20)
    for step in (10, 20):
        run.append_metrics({"type": "train", "step": step, "epoch": 0.1, "loss": 5.0, "recon": 4.0, "kl": 1.0})
    run.append_metrics({"type": "val", "step": 20, "epoch": 0.1, "recon": 4.5, "kl": 1.0, "neg_elbo": 5.5})
    run.checkpoint_path.write_bytes(b"weights are not read by the listing")
    return run


# One run per kind of breakage, each next to the good run: (name, how to break it, what its row must say).
BREAKAGES = {
    "no-config": (lambda r: (r.path / "config.json").unlink(), "no config.json"),
    "config-garbage": (lambda r: (r.path / "config.json").write_bytes(b"\x80\x04garbage"), "config.json: not UTF-8"),
    "config-deep": (lambda r: (r.path / "config.json").write_text("[" * 100_000 + "]" * 100_000), "nested deeper"),
    "config-huge-int": (lambda r: (r.path / "config.json").write_text(
        (r.path / "config.json").read_text().replace('"steps": 20', '"steps": ' + "9" * 5000)), "5000 digits"),
    "config-wrong-type": (lambda r: (r.path / "config.json").write_text(
        (r.path / "config.json").read_text().replace('"latent_dim": 8', '"latent_dim": "abc"')), "expected int"),
    "config-is-a-link": (lambda r: _replace_with_link(r.path / "config.json"), "symbolic link"),
    "status-garbage": (lambda r: (r.path / "status.json").write_text("{garbage"), None),
    "status-deep": (lambda r: (r.path / "status.json").write_text('{"state":' + "[" * 50_000 + "]" * 50_000 + "}"),
                    None),
    "status-wrong-types": (lambda r: (r.path / "status.json").write_text(
        '{"state": "running", "pid": "abc", "step": "x", "total_steps": [1], "error": {"a": 1}}'), None),
    "metrics-garbage": (lambda r: (r.path / "metrics.jsonl").write_bytes(b"\xff\n[[[[\n" + b"9" * 5000 + b"\n"), None),
    "metrics-wrong-types": (lambda r: (r.path / "metrics.jsonl").write_text(
        '{"type": "train", "step": "abc"}\n{"type": "train", "step": 3, "loss": "x", "kl_dims": ["a"]}\n'), None),
    "metrics-is-a-folder": (lambda r: ((r.path / "metrics.jsonl").unlink(), (r.path / "metrics.jsonl").mkdir()),
                            "metrics.jsonl: not a regular file"),
    "checkpoint-garbage": (lambda r: r.checkpoint_path.write_bytes(b"\x00" * 7), None),
    "checkpoint-missing": (lambda r: r.checkpoint_path.unlink(), "no checkpoint yet"),
    "checkpoint-is-a-folder": (lambda r: (r.checkpoint_path.unlink(), r.checkpoint_path.mkdir()), "no checkpoint yet"),
}


def _replace_with_link(path: Path) -> None:
    target = path.with_name("real-config.json")
    path.rename(target)
    path.symlink_to(target)


def test_one_broken_run_never_hides_the_others(tmp_path, capsys):
    runs = tmp_path / "runs"
    _good(runs, "good")
    for name, (damage, _) in BREAKAGES.items():
        damage(_good(runs, name))
    outside = _good(tmp_path / "elsewhere", "linked")
    (runs / "linked").symlink_to(outside.path)
    rows = {r.name: r for r in summaries(runs)}
    assert set(rows) == {"good", "linked", *BREAKAGES}
    assert rows["good"].model == "β-VAE" and rows["good"].step == 20 and rows["good"].loss == 5.0
    assert rows["good"].problem is None and rows["good"].val_neg_elbo == 5.5
    for name, (_, why) in BREAKAGES.items():
        if why is not None:
            assert why in (rows[name].problem or ""), (name, rows[name])
    assert rows["status-garbage"].state == "no status" and rows["status-wrong-types"].state == "failed"
    assert rows["metrics-wrong-types"].loss is None and rows["checkpoint-garbage"].problem is None
    assert "symbolic link" in rows["linked"].problem
    assert main(["--runs-dir", str(runs), "runs"]) == 0
    out = capsys.readouterr()
    lines = {line.split()[0]: line for line in out.out.splitlines()}
    assert set(lines) == set(rows) and "BROKEN" not in lines["good"] and "step 20/20" in lines["good"]
    assert "BROKEN: " in lines["config-deep"] and "BROKEN: " in lines["no-config"] and not out.err
    assert "linked" not in [r.name for r in list_runs(runs)]  # not followed


# --- RUN arguments ------------------------------------------------------------------------------------------------

def test_find_run_takes_names_of_real_folders_inside_the_runs_folder_only(tmp_path):
    runs = tmp_path / "runs"
    good = _good(runs, "good")
    outside = _good(tmp_path, "outside")
    (runs / "linked").symlink_to(outside.path)
    (runs / "empty").mkdir()
    assert find_run(runs, "good").path == good.path
    for name, why in [("../outside", "not a run name"), (str(outside.path), "not a run name"), ("a/b", "not a run name"),
                      (".hidden", "not a run name"), ("", "not a run name"), ("good/..", "not a run name"),
                      ("linked", "symbolic link"), ("empty", "no run 'empty'"), ("ghost", "no run 'ghost'")]:
        with pytest.raises(RunError, match=why):
            find_run(runs, name)


@pytest.mark.parametrize("command", [["export", "{}"], ["encode", "{}"], ["evaluate", "{}"], ["train", "--resume", "{}"],
                                     ["import-weights", "w.pth", "--like", "{}", "--name", "new"]])
def test_no_command_reaches_outside_the_runs_folder(tmp_path, capsys, command):
    runs = tmp_path / "runs"
    _good(runs, "good")
    outside = _good(tmp_path, "outside")
    before = {p.name: p.stat().st_mtime_ns for p in outside.path.iterdir()}
    for target in ("../outside", str(outside.path)):
        assert main(["--runs-dir", str(runs), *[target if w == "{}" else w for w in command]]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "not a run name" in err and err.count("\n") == 1
    assert {p.name: p.stat().st_mtime_ns for p in outside.path.iterdir()} == before
    assert sorted(p.name for p in runs.iterdir()) == ["good"]


# --- writes never follow a linked subfolder -----------------------------------------------------------------------

def test_writes_into_a_run_never_follow_a_linked_subfolder(tmp_path):
    run = _good(tmp_path / "runs", "good")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "prior_0000010.png").write_bytes(b"someone's file")
    (victim / "prior_0000020.png").write_bytes(b"someone's file")
    for name in ("samples", "encodings", "embeddings"):
        (run.path / name).symlink_to(victim)
        with pytest.raises(UntrustedFileError, match=f"{name}/x: leads outside .*remove the link"):
            run.folder(name)
        with pytest.raises(UntrustedFileError, match="leads outside"):
            with atomic_path(run.path / name / "file.npz", inside=run.path) as tmp:
                tmp.write_bytes(b"x")
        (run.path / name).unlink()
    (run.path / "samples").symlink_to(victim)
    with pytest.raises(UntrustedFileError):
        prune_samples(run)  # would delete the victim's older "sample"
    assert sorted(p.name for p in victim.iterdir()) == ["prior_0000010.png", "prior_0000020.png"]
    (run.path / "samples").unlink()
    (run.path / "samples").mkdir()
    assert run.folder("samples") == run.path / "samples"
    assert check_inside(run.path / "samples" / "a.png", run.path)
    # files the trainer appends to or locks are never opened through a link either
    (run.path / "metrics.jsonl").unlink()
    (run.path / "metrics.jsonl").symlink_to(victim / "prior_0000010.png")
    with pytest.raises(OSError):
        run.append_metrics({"type": "train", "step": 30})
    with pytest.raises(UntrustedFileError, match="symbolic link"):
        run.metrics()
    assert (victim / "prior_0000010.png").read_bytes() == b"someone's file"


def test_encode_and_umap_refuse_a_linked_subfolder(tiny_runs_dir, tmp_path, capsys):
    from core.explore.projection import UmapParams
    from core.explore.umap_job import start_umap

    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs_dir / "tiny-bvae", runs / "tiny-bvae")
    victim = tmp_path / "victim"
    victim.mkdir()
    run = Run(runs / "tiny-bvae")
    (run.path / "encodings").symlink_to(victim)
    assert main(["--runs-dir", str(runs), "encode", "tiny-bvae", "--limit", "10", "--device", "cpu"]) == 2
    assert "leads outside" in capsys.readouterr().err
    (run.path / "embeddings").symlink_to(victim)
    with pytest.raises(UntrustedFileError, match="leads outside"):
        start_umap(run, "test", 10, UmapParams())
    assert list(victim.iterdir()) == []


# --- creating a run is atomic -------------------------------------------------------------------------------------

KILL_BEFORE_RENAME = """
import os, signal, sys
from pathlib import Path
from core.runs import folder
from tests.tiny import tiny_config
folder.os.rename = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)  # killed with the config written
folder.create_run(tiny_config("killed"), Path(sys.argv[1]))
"""


def test_a_kill_while_creating_a_run_leaves_no_half_made_name(tmp_path):
    done = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, str(tmp_path)], cwd=ROOT, capture_output=True)
    assert done.returncode == -9
    leftovers = [p for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(CREATING + "killed-")
    assert (leftovers[0] / "config.json").is_file()  # the kill came after the config was written
    assert list_runs(tmp_path) == [] and summaries(tmp_path) == []  # hidden: not a run
    run = create_run(tiny_config("killed"), tmp_path)  # the name is free to use
    assert run.config.name == "killed" and leftovers[0].exists()  # a fresh leftover may be a launch in progress
    with pytest.raises(RunError, match="run 'killed' already exists in .*pick another --name, or --resume it"):
        create_run(tiny_config("killed"), tmp_path)
    old = time.time() - 2 * 3600
    os.utime(leftovers[0], (old, old))
    create_run(tiny_config("another"), tmp_path)
    assert not leftovers[0].exists()  # leftovers older than an hour are cleaned
    assert sorted(p.name for p in tmp_path.iterdir()) == ["another", "killed"]


def test_create_run_leaves_nothing_when_writing_the_config_fails(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Run, "write_config", full)
    with pytest.raises(OSError):
        create_run(tiny_config("full"), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert "no config.json" in summarize(Run(tmp_path / "full")).problem  # an absent folder: a problem, no error
