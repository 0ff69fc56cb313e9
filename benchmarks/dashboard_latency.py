"""Dashboard latency on this machine: traversal grid, arithmetic slider, encoding, UMAP, page switches.

    python benchmarks/dashboard_latency.py [--run checkpoints/demo-beta-vae] [--skip-umap]

Works on a copy of the run (caches are written into the copy). Page timings are full script reruns
through Streamlit's AppTest (server side; the browser's drawing is not included). Prints one table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn, n: int = 5) -> float:
    return statistics.median(timed(fn) for _ in range(n))


def in_fresh_process(code: str) -> list[float]:
    """The numbers `code` prints, run in a new Python process (cold caches, nothing imported yet)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()]


def encode_10k(run_path: Path) -> tuple[float, float]:
    """Encoding 10,000 test images in a fresh process, model loaded: (rendering + encoding, rendering alone)."""
    code = ("import time; from core.runs.folder import Run; from core.data import load_dataset; from core.explore.encode import encode; "
            f"run = Run({str(run_path)!r}); model = run.load_model(); data = load_dataset(run.config.data); "
            "index = data.indices('test')[:10000]; encode(model, data, index[:512]); "
            "t = time.perf_counter(); encode(model, data, index); total = time.perf_counter() - t; "
            "t = time.perf_counter(); [data.images(index[i:i + 512]) for i in range(0, len(index), 512)]; "
            "print(total, time.perf_counter() - t)")
    total, rendering = in_fresh_process(code)
    return total, rendering


def grid_cold_and_warm(run_path: Path) -> tuple[float, float]:
    """First 64x9 grid decode in a fresh process (model load included), then the same page rerun from cache."""
    code = ("import time, numpy as np; from core.runs.folder import Run; from core.explore.traverse import *; "
            f"run = Run({str(run_path)!r}); t = time.perf_counter(); model = run.load_model(); "
            "D = model.latent_dim; lo, hi = dim_ranges('prior', D); "
            "decode_grid(model, traversal_values(np.zeros(D, np.float32), list(range(D)), 9, lo, hi)); "
            "print(time.perf_counter() - t)")
    (cold,) = in_fresh_process(code)
    app = page("traversals")
    warm = median_of(lambda: app.run())
    return cold, warm


def page(name: str):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=300)
    app.run()
    app.switch_page(str(ROOT / "pages" / f"{name}.py"))
    app.run()
    assert not app.exception, app.exception
    return app


def slider_round_trip() -> float:
    app = page("arithmetic")
    values = iter([0.5, 1.5] * 10)
    return median_of(lambda: app.slider(key="arith_alpha").set_value(next(values)).run())


def page_switch() -> float:
    app = page("home")
    names = iter(["traversals", "arithmetic", "generate", "compare", "home"] * 3)

    def switch():
        app.switch_page(str(ROOT / "pages" / f"{next(names)}.py"))
        app.run()

    switch()  # first visits fill the caches
    return median_of(switch, n=5)


def umap_cold_and_cached(run_path: Path, n: int) -> tuple[float, float]:
    from core.explore.projection import UmapParams
    from core.explore.umap_job import load_umap
    from core.runs.folder import Run

    cold = timed(lambda: subprocess.run([sys.executable, "-m", "core.explore.umap_job", str(run_path), "train", str(n)],
                                        cwd=ROOT, check=True, capture_output=True))
    run = Run(run_path)
    cached = median_of(lambda: load_umap(run, "train", n, UmapParams()))
    return cold, cached


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", type=Path, default=ROOT / "checkpoints" / "demo-beta-vae")
    p.add_argument("--umap-points", type=int, default=10_000)
    p.add_argument("--skip-umap", action="store_true")
    a = p.parse_args()
    runs = Path(tempfile.mkdtemp())
    shutil.copytree(a.run, runs / a.run.name)
    os.environ["LATENTLAB_CHECKPOINTS"] = str(runs)
    run_path = runs / a.run.name
    try:
        cold, warm = grid_cold_and_warm(run_path)
        rows = [("64x9 traversal grid, cold (fresh process, model load + decode)", cold, "<= 1 s"),
                ("traversal page rerun, warm (cached grid)", warm, "<= 0.1 s"),
                ("arithmetic alpha slider round trip", slider_round_trip(), "<= 0.3 s"),
                ("page switch (warm caches)", page_switch(), "")]
        total, rendering = encode_10k(run_path)
        rows += [("encode 10,000 test images (rendering included)", total, "<= 5 s"),
                 ("of which rendering them (in the same 512-image chunks)", rendering, "")]
        if not a.skip_umap:
            u_cold, u_cached = umap_cold_and_cached(run_path, a.umap_points)
            rows += [(f"UMAP {a.umap_points:,} points, cold (fresh process, numba compile)", u_cold, ""),
                     (f"UMAP {a.umap_points:,} points, cached", u_cached, "<= 0.5 s")]
        print(f"run: {a.run.name}\n| what | seconds | target |\n|---|---|---|")
        for what, seconds, target in rows:
            print(f"| {what} | {seconds:.3f} | {target} |")
    finally:
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
