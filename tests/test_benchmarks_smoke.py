"""The benchmark scripts run end to end at tiny sizes and print tables of plausible numbers."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_throughput_tiny_prints_a_table_of_positive_numbers():
    done = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--tiny", "--device", "cpu", "--epoch"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if re.match(r"\| (standard|small) \|", line)]
    setups = [(r[0].strip(), r[1].strip()) for r in rows]
    for preset in ("standard", "small"):
        assert (preset, "eager fp32, batch 8") in setups
        assert (preset, "+ channels_last") in setups  # the CPU candidates are tried
        assert sum(s == preset and w.startswith("end to end") for s, w in setups) == 2
    for r in rows:
        batch, images_per_s, tflops, percent, memory = (float(c.replace(",", "")) for c in r[2:7])
        assert batch > 0 and images_per_s > 0 and tflops > 0 and percent > 0 and memory > 0, r
    assert re.search(r"matmul peak [0-9.]+ TFLOP/s", done.stdout)
    peer = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| peer |")]
    assert len(peer) == 1 and "VanillaVAE-style" in peer[0][1] and float(peer[0][3].replace(",", "")) > 0
    assert re.search(r"one epoch of 64 images \([0-9]+ steps of (8|16), 64 images\): [0-9.]+ s", done.stdout)
    assert "[train_throughput] small | eager fp32" in done.stderr  # each row as it is measured


def throughput_module():
    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_contention_mode_arguments(capsys):
    parse = throughput_module().parse_args
    a = parse(["--contention"])
    assert a.presets == ["small"] and a.wait_policies == ["inherit"] and a.competitors == 1
    assert parse(["--contention", "--wait-policies", "default, PASSIVE"]).wait_policies == ["default", "passive"]
    assert parse(["--smoke"]).tiny and parse([]).presets == ["standard", "small"]
    for bad, message in [(["--contention", "--competitors", "0"], "--competitors 0"),
                         (["--contention", "--wait-policies", "spin"], "--wait-policies spin"),
                         (["--wait-policies", "passive"], "belong to --contention"),
                         (["--contention", "--device", "cuda"], "CPU threads"),
                         (["--contention", "--epoch"], "--epoch"),
                         (["--presets", "huge"], "--presets huge"),
                         (["--steps", "0"], "--steps 0")]:
        with pytest.raises(SystemExit) as exit:
            parse(bad)
        assert exit.value.code == 2 and message in capsys.readouterr().err, bad


def test_contention_tiny_times_every_thread_setting_idle_and_beside_a_busy_process():
    done = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--contention", "--tiny",
                           "--wait-policies", "passive"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines()
            if re.match(r"\| (small|peer) \|", line)]
    assert [(r[0], r[1].rsplit(", ", 1)[1]) for r in rows] == [
        (subject, setting) for subject in ("small", "peer")
        for setting in ("1 thread", re.search(r"(\d+ threads fixed)", rows[1][1]).group(1), "automatic")]
    for r in rows:
        assert r[2] == "passive"  # measured in a child process with OMP_WAIT_POLICY=PASSIVE
        idle_threads, busy_threads = (int(n) for n in r[3].split(" / "))
        assert idle_threads >= 1 and busy_threads >= 1
        assert float(r[4].replace(",", "")) > 0 and float(r[5].replace(",", "")) > 0
    assert len(re.findall(r"target >= (80%|1.6x)\): (met|NOT met)", done.stdout)) == 4  # 2 targets x (small, peer)


GPU_CHECK = ["bash", "benchmarks/gpu_check.sh"]


def gpu_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GPU_CHECK, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_gpu_check_help_and_bad_options():
    shown = gpu_check("--help")
    assert shown.returncode == 0 and "--out DIR" in shown.stdout and "--dry-run" in shown.stdout
    assert "--quick" in shown.stdout
    for bad in (["--frobnicate"], ["--out"]):
        refused = gpu_check(*bad)
        assert refused.returncode == 2 and "gpu_check.sh:" in refused.stderr, bad


def test_gpu_check_refuses_without_a_gpu_and_names_it(tmp_path):
    refused = gpu_check("--out", str(tmp_path / "logs"), CUDA_VISIBLE_DEVICES="")
    assert refused.returncode == 2
    assert "no CUDA GPU is visible" in refused.stderr and "--dry-run" in refused.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_gpu_check_dry_run_lists_every_step(tmp_path):
    listed = gpu_check("--dry-run", "--out", str(tmp_path / "logs"), CUDA_VISIBLE_DEVICES="")
    assert listed.returncode == 0, listed.stderr
    steps = [line for line in listed.stdout.splitlines() if re.match(r"\d ", line)]
    assert [s.split()[1] for s in steps] == ["gpu", "cuda-tests", "throughput", "nccl", "torchrun"]
    assert "tests/test_fast_path.py" in steps[1] and "train_throughput.py --device cuda --presets standard" in steps[2]
    assert "--epoch" in steps[2] and "nccl_check.py" in steps[3]
    assert "--nproc_per_node=1 -m core" in steps[4] and "--device cuda" in steps[4]
    assert str(tmp_path / "logs") in listed.stdout and not (tmp_path / "logs").exists()
    limits = [int(re.search(r"\((\d+)s\)", s).group(1)) for s in steps]
    assert sum(limits) < 8 * 60  # each step's timeout, all together under 8 minutes
    quick = gpu_check("--dry-run", "--quick", CUDA_VISIBLE_DEVICES="")
    assert quick.returncode == 0 and "--steps 5" in quick.stdout


def test_family_sweep_trains_to_each_milestone_tabulates_plots_and_a_rerun_redoes_nothing(tmp_path):
    # one grid entry (each milestone is a training and an evaluating process, ~5 s each): the tables of several
    # entries are checked on records below, without training
    plot = tmp_path / "sweep.svg"
    command = [sys.executable, "benchmarks/family_sweep.py", "--grid", "beta-vae:--beta 4", "--seeds", "0",
               "--steps", "3,6", "--metrics", "mig,sap", "--fast", "--plot", str(plot), "--plot-metric", "mig",
               "--set", "mig.num_train=500",
               "--train-args", "--latent-dim 4 --batch-size 8 --val-every 3 --checkpoint-every 3 --sample-every 3"]
    env = {**os.environ, "LATENTLAB_CHECKPOINTS": str(tmp_path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run = "sweep-dsprites-beta-vae-beta-4-s0"
    assert f"{run}: step 3 evaluated" in done.stdout and f"{run}: step 6 evaluated" in done.stdout
    assert json.loads((tmp_path / run / "config.json").read_text())["loss"]["beta"] == 4
    lines = done.stdout.splitlines()
    rows = [line.split("|")[1:-1] for line in lines if re.match(r"\| beta-vae --beta 4 \| 1 \|", line)]
    assert len(rows) == 1  # MIG and SAP, each in [0, 1], then the source documents' ELBO and DCI for β-VAE
    assert all(0 <= float(c) <= 1 for c in rows[0][2:4]) and [c.strip() for c in rows[0][4:]] == ["-79.45", "0.18"]
    recorded = [json.loads(line) for line in (tmp_path / "sweep-dsprites.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recorded] == [3, 6] and all((r["train_seconds"] or 0) > 0 for r in recorded)
    curve = [r for r in (line.split("|")[1:-1] for line in lines if re.match(r"\| beta-vae --beta 4 \|", line))
             if len(r) == 3]
    assert len(curve) == 1 and all(float(c) >= 0 for c in curve[0][1:])  # the median at 3 and at 6 steps
    svg = ElementTree.parse(plot).getroot()
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 1  # one line per grid entry
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "evaluated" not in again.stdout
    assert [x for x in again.stdout.splitlines() if x.startswith("|")] == [x for x in lines if x.startswith("|")]
    by_beta = subprocess.run([*command[:-2], "--plot-x", "beta", "--no-train"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert by_beta.returncode == 0 and "beta (log scale)" in plot.read_text()


def _family_sweep():
    spec = importlib.util.spec_from_file_location("family_sweep", ROOT / "benchmarks" / "family_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = sweep
    spec.loader.exec_module(sweep)
    return sweep


def test_family_sweep_records_nothing_for_a_run_stopped_short_of_its_milestone(tmp_path, monkeypatch, capsys):
    sweep = _family_sweep()

    class Cancelled:  # a run whose trainer was cancelled at step 2,368 and exited cleanly
        def __init__(self, path):
            self.path = path

        def checkpoint_step(self):
            return 2368

    a = sweep.parse_args(["--grid", "vae", "--seeds", "0", "--steps", "6000", "--metrics", "probes"])
    a.runs = tmp_path
    monkeypatch.setattr(sweep, "Run", Cancelled)
    monkeypatch.setattr(sweep, "call", lambda a, name, command: command[0] == "train")  # evaluating would fail
    sweep.advance(a, a.grid[0], 0, set())
    assert "stopped at step 2368, before 6000: not evaluated" in capsys.readouterr().out
    assert not (tmp_path / f"{a.prefix}.jsonl").exists()


def test_family_sweep_recipe_table_gives_each_attributes_median_auc_and_the_lowest():
    sweep = _family_sweep()
    a = sweep.parse_args(["--grid", "vae", "vae:--lr 1e-3", "--seeds", "0,1", "--steps", "10,20"])
    record = lambda entry, seed, step, smile, mse: {  # noqa: E731
        "entry": entry, "seed": seed, "step": step, "probes": {"Smiling": smile, "Bangs": 0.9},
        "scores": {"reconstruction": mse, **({"ssim": 0.5 + smile / 10} if seed == 0 else {})},
        "train_seconds": 60.0 * (seed + 1)}
    rows = [record("vae", 0, 20, 0.6, 0.002), record("vae", 1, 20, 0.8, 0.004), record("vae", 0, 10, 0.5, 0.01),
            record("vae-lr-1e3", 0, 20, 0.95, 0.003)]
    lines = sweep.probe_table(a, rows).splitlines()
    assert lines[0] == "| entry | steps | Bangs | Smiling | lowest | recon MSE/pixel | recon SSIM | train min |"
    assert lines[2:] == ["| vae | 10 | 0.90 | 0.50 | 0.50 | 0.0100 | 0.550 | 1.0 |",
                         "| vae | 20 | 0.90 | 0.70 | 0.70 | 0.0030 | 0.560 | 1.5 |",  # medians over the two seeds
                         "| vae --lr 1e-3 | 20 | 0.90 | 0.95 | 0.90 | 0.0030 | 0.595 | 1.0 |"]


def test_dashboard_latency_measures_a_page_idle_and_beside_a_training_job():
    done = subprocess.run([sys.executable, "benchmarks/dashboard_latency.py", "--pages", "home", "--under-training",
                           "--training-warm-up", "1", "--skip-umap", "--skip-encode"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"training job \(.*\): [\d,]+ images/s alone, [\d,]+ images/s while", done.stdout)
    rows = {r[0]: r[1:] for r in ([c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines()
                                  if line.startswith("| ") and not line.startswith("| what"))}
    assert list(rows) == ["Home: first render (fresh process: imports, dashboard start)", "home: rerun, warm",
                          "64x9 traversal grid, cold (fresh process: model load + decode)"]
    for what, (*seconds, target) in rows.items():  # wall and CPU, idle and beside the job
        assert len(seconds) == 4 and all(float(x) > 0 for x in seconds), what
    assert [target for *_, target in rows.values()] == ["≤ 2 s", "", "≤ 1 s"]


def test_dashboard_latency_refuses_unknown_pages():
    done = subprocess.run([sys.executable, "benchmarks/dashboard_latency.py", "--pages", "home,frobnicate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--pages frobnicate" in done.stderr


def test_family_sweep_table_gives_each_entry_its_median_over_seeds_and_the_source_documents_numbers():
    sweep = _family_sweep()
    a = sweep.parse_args(["--grid", "vae", "beta-vae:--beta 4", "--seeds", "0,1", "--steps", "6"])
    rows = [{"entry": entry, "seed": seed, "step": 6, "scores": {"mig": mig}}
            for entry, seed, mig in (("vae", 0, 0.1), ("vae", 1, 0.3), ("beta-vae-beta-4", 0, 0.5))]
    lines = sweep.table(a, sweep.summary(a, rows, 6)).splitlines()
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    assert [(c[0], c[1], c[-2], c[-1]) for c in cells] == [("vae", "2", "-47.05", "0.05"),
                                                            ("beta-vae --beta 4", "1", "-79.45", "0.18")]
    assert cells[0][2].startswith("0.2") and cells[1][2].startswith("0.5")  # MIG: the median of 0.1 and 0.3
