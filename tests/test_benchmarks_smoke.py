"""benchmarks/train_throughput.py --tiny runs end to end and prints a table of positive numbers."""
import re
import subprocess
import sys
from pathlib import Path

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
