"""The benchmark scripts run end to end at tiny sizes and print tables of plausible numbers."""
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]


def test_train_throughput_tiny_prints_a_table_of_positive_numbers():
    done = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--tiny", "--device", "cpu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
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


def test_beta_sweep_trains_evaluates_tabulates_and_plots_and_a_rerun_redoes_nothing(tmp_path):
    plot = tmp_path / "sweep.svg"
    command = [sys.executable, "benchmarks/beta_sweep.py", "--betas", "1,4", "--seeds", "0", "--steps", "4",
               "--metrics", "mig,sap", "--fast", "--plot", str(plot),
               "--train-args", "--latent-dim 4 --batch-size 8 --val-every 4 --checkpoint-every 4 --sample-every 4"]
    env = {**os.environ, "LATENTLAB_CHECKPOINTS": str(tmp_path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained sweep-beta-vae-dsprites-") == 2 and done.stdout.count("evaluated") == 2
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if re.match(r"\| [0-9]", line)]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("1", "1"), ("4", "1")]
    for r in rows:  # MIG and SAP as "mean (min–max)", each in [0, 1]
        for cell in r[2:]:
            mean = float(cell.split()[0])
            assert 0 <= mean <= 1, r
    svg = ElementTree.parse(plot).getroot()
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 2  # one line per metric
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "trained" not in again.stdout and "evaluated" not in again.stdout
    assert again.stdout.splitlines()[:4] == done.stdout.splitlines()[-5:-1]  # the same table
