"""Dashboard latency on this machine: first render of every page, warm reruns, switching runs, traversal grids,
the arithmetic slider, encoding and UMAP; optionally again while a training job runs in the background.

    python benchmarks/dashboard_latency.py [--run checkpoints/demo-beta-vae] [--other checkpoints/demo-vae]
                                           [--under-training] [--pages traversals,arithmetic] [--skip-umap]

Works on copies of the runs in a temporary runs folder (caches are written into the copies). Page timings are
script runs through Streamlit's AppTest (server side: the script, its caches and the encoding of its elements; not
the websocket or the browser's drawing), each page in a fresh Python process on fresh copies of the runs, so its
first render pays for everything a first visit pays for: imports, model load, encoding the faces it needs. Home
is rendered first, as a browser opening the dashboard does, then the page. The scripts' bytecode is compiled once
per process, as the server does (AppTest alone would recompile Home and the page on every run, ~20 ms). Every
figure is wall and CPU seconds of the process doing it (CPU includes all its threads, so it can exceed wall, and
the UMAP worker's for the UMAP row).

--under-training starts a real training job the way the Train page does (core.runs.jobs.launch: a detached
`python -m core train` with the page's environment) and measures the same rows again while it trains, with the
job's images/s alone and meanwhile. Prints one table.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = ("home", "train", "traversals", "embeddings", "arithmetic", "generate", "photo", "compare", "metrics",
         "verification")
SWITCH_PAGES = ("traversals", "arithmetic", "embeddings")  # pages whose content is computed from the chosen run
CYCLE = ("traversals", "arithmetic", "generate", "compare", "home")  # the warm page switch goes round these
FIRST, SWITCH, TRAVERSAL_WARM = "≤ 2 s", "≤ 2 s", "≤ 0.1 s"
# The job the benchmark trains beside the dashboard: the Home page's demo, made long enough to outlast it.
TRAINING = {"model": "beta-vae", "data.dataset": "synthfaces", "train.steps": 1_000_000, "train.val_every": 1000}
TRAINING_RUN = "bench-training"


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of the child processes it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(fn) -> tuple[float, float]:
    """Wall and CPU seconds while `fn` runs (CPU counts a child process `fn` runs to its end)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def median_of(fn, n: int = 5) -> tuple[float, float]:
    """The median wall time of n calls, with the CPU time of that same call."""
    return sorted((measure(fn) for _ in range(n)), key=lambda t: t[0])[n // 2]


# --- in a fresh process (one per page): what a browser session sees -------------------------------------------

def page_path(name: str) -> str:
    return str(ROOT / "pages" / f"{name}.py")


def checked(app):
    assert not app.exception, f"{app.exception}"
    return app


def dashboard():
    """An AppTest of the dashboard whose runs share one cache of compiled scripts, like the server's sessions."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import AppTest, app_test, local_script_runner

    shared = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared
    return AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=600)


def page_session(page: str, run: str, other: str | None, think: str = "0") -> dict[str, tuple[float, float]]:
    """Home, then `page`, first render; its warm rerun; for a run-dependent page, picking `other` in the sidebar (a
    run this process has not loaded yet) and back. Runs in a fresh process; the runs folder comes from the
    environment."""
    app = dashboard()
    app.query_params["run"] = run
    times = {"start": measure(lambda: checked(app.run()))}  # imports, Home's run table
    time.sleep(float(think))  # a user reading Home before the click, while the dashboard preloads the other pages
    if page != "home":
        app.switch_page(page_path(page))
        times["first"] = measure(lambda: checked(app.run()))
    times["warm"] = median_of(lambda: checked(app.run()))
    if page == "arithmetic":
        values = iter([0.5, 1.5] * 10)
        times["slider"] = median_of(lambda: checked(app.slider(key="arith_alpha").set_value(next(values)).run()))
    if other is not None and page in SWITCH_PAGES:
        picker = lambda: app.selectbox(key="run_picker")  # noqa: E731  (the element is new after every run)
        times["switch"] = measure(lambda: checked(picker().set_value(other).run()))
        times["switch_back"] = measure(lambda: checked(picker().set_value(run).run()))
    return times


def page_switching(run: str, *pages: str) -> dict[str, tuple[float, float]]:
    """Moving between `pages` once each has been visited (their caches filled)."""
    app = dashboard()
    app.query_params["run"] = run
    checked(app.run())
    names = itertools.cycle(pages)

    def switch():
        app.switch_page(page_path(next(names)))
        checked(app.run())

    for _ in pages:
        switch()
    return {"page_switch": median_of(switch, n=5)}


def grid_cold(run_path: str) -> dict[str, tuple[float, float]]:
    """First 64x9 traversal grid in a fresh process: model load and one batched decode."""
    import numpy as np

    from core.explore.traverse import decode_grid, dim_ranges, traversal_values
    from core.runs.folder import Run

    def grid():
        model = Run(run_path).load_model()
        d = model.latent_dim
        lo, hi = dim_ranges("prior", d)
        decode_grid(model, traversal_values(np.zeros(d, np.float32), list(range(d)), 9, lo, hi))

    return {"grid": measure(grid)}


def encode_10k(run_path: str) -> dict[str, tuple[float, float]]:
    """Encoding 10,000 test images, model loaded: rendering + encoding, and rendering alone."""
    from core.data import load_dataset
    from core.explore.encode import encode
    from core.runs.folder import Run

    run = Run(run_path)
    model, data = run.load_model(), load_dataset(run.config.data)
    index = data.indices("test")[:10_000]
    encode(model, data, index[:512])
    return {"encode": measure(lambda: encode(model, data, index)),
            "render": measure(lambda: [data.images(index[i:i + 512]) for i in range(0, len(index), 512)])}


def child(task: str, args: list[str]) -> None:
    """Entry point of the fresh process: one task, its timings as JSON on stdout."""
    tasks = {"page": page_session, "switching": page_switching, "grid": grid_cold, "encode": encode_10k}
    times = tasks[task](*args)
    print(json.dumps(times))


def in_fresh_process(task: str, *args: str) -> dict[str, tuple[float, float]]:
    # No UMAP warm-up (core.explore.umap_job.start_warm_up, once per machine): it would compile for a minute beside
    # whatever is measured next.
    done = subprocess.run([sys.executable, __file__, "--child", task, *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "LATENTLAB_UMAP_WARM_UP": "0"})
    if done.returncode:
        raise RuntimeError(f"{task} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return {k: tuple(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


# --- the parent: copies of the runs, each measurement in a fresh process --------------------------------------

def fresh_copies(runs: Path, sources: list[Path]) -> None:
    """The runs as they were shipped (a demo with the encodings `python -m core train` writes at the end), no other
    file the dashboard caches in a run folder."""
    for source in sources:
        shutil.rmtree(runs / source.name, ignore_errors=True)
        shutil.copytree(source, runs / source.name)


def umap_cold_and_cached(run_path: Path, n: int) -> dict[str, tuple[float, float]]:
    from core.explore.encode import load_or_encode
    from core.explore.projection import UmapParams
    from core.explore.umap_job import load_umap
    from core.runs.folder import Run

    run = Run(run_path)
    # The Embeddings page encodes the points (and draws their PCA) before it offers UMAP: the worker reads them.
    load_or_encode(run, "train", n)
    command = [sys.executable, "-m", "core.explore.umap_job", str(run_path), "train", str(n)]
    cold = measure(lambda: subprocess.run(command, cwd=ROOT, check=True, capture_output=True))
    return {"umap_cold": cold, "umap_cached": median_of(lambda: load_umap(run, "train", n, UmapParams()))}


def measure_all(a, runs: Path) -> list[tuple[str, tuple[float, float], str]]:
    """(what, (wall, CPU), target) rows, every page from fresh copies of the runs."""
    run, other = a.run.name, a.other.name
    rows = []
    for page in a.pages:
        fresh_copies(runs, [a.run, a.other])
        times = in_fresh_process("page", page, run, other, str(a.think))
        if page == "home":
            rows.append(("Home: first render (fresh process: imports, dashboard start)", times["start"], FIRST))
        else:
            rows.append((f"{page}: first render (fresh process, run as shipped)", times["first"], FIRST))
        target = TRAVERSAL_WARM if page == "traversals" else ""
        rows.append((f"{page}: rerun, warm", times["warm"], target))
        if "slider" in times:
            rows.append(("arithmetic: α slider round trip", times["slider"], "≤ 0.3 s"))
        if "switch" in times:
            rows.append((f"{page}: switch to another run (first visit of it)", times["switch"], SWITCH))
            rows.append((f"{page}: switch back (visited)", times["switch_back"], ""))
    if len(cycle := [page for page in CYCLE if page in a.pages]) > 1:
        rows.append((f"page switch (warm caches: {', '.join(cycle)})",
                     in_fresh_process("switching", run, *cycle)["page_switch"], ""))
    fresh_copies(runs, [a.run])
    rows.append(("64x9 traversal grid, cold (fresh process: model load + decode)",
                 in_fresh_process("grid", str(runs / run))["grid"], "≤ 1 s"))
    if not a.skip_encode:
        times = in_fresh_process("encode", str(runs / run))
        rows += [("encode 10,000 test images (rendering included)", times["encode"], "≤ 5 s"),
                 ("of which rendering them (in the same 512-image chunks)", times["render"], "")]
    return rows


def training_rate(run, since: tuple[int, float]) -> float:
    """Images/s of the job from `since` (step, time) to now, from its run folder."""
    from core.runs import jobs

    step, t = since
    return (jobs.progress(run).step - step) * run.config.train.batch_size / (time.time() - t)


def mark(run) -> tuple[int, float]:
    from core.runs import jobs

    return jobs.progress(run).step, time.time()


def start_training(runs: Path, warm_up_s: float):
    """The job, and its images/s over `warm_up_s` seconds alone (after its first logged steps)."""
    from core.config import RunConfig
    from core.runs import jobs

    job = jobs.launch(RunConfig.from_options(TRAINING, TRAINING_RUN), runs)
    try:
        deadline = time.time() + 600
        while jobs.progress(job).step == 0:  # imports, data set, first logging interval
            if jobs.progress(job).state != "running" or time.time() > deadline:
                raise RuntimeError(f"the training job did not start: {jobs.log_tail(job)}")
            time.sleep(1)
        since = mark(job)
        time.sleep(warm_up_s)
        return job, training_rate(job, since)
    except BaseException:
        stop_training(job)
        raise


def stop_training(job) -> None:
    """Cancel the job (it stops after its current step) and wait for its process to end."""
    from core.runs import jobs

    if jobs.progress(job).state == "running":
        jobs.cancel(job)
    deadline = time.time() + 120
    while jobs.progress(job).state == "running" and time.time() < deadline:
        time.sleep(0.5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=ROOT / "checkpoints" / "demo-beta-vae")
    p.add_argument("--other", type=Path, default=ROOT / "checkpoints" / "demo-vae",
                   help="the run switched to on the run-dependent pages")
    p.add_argument("--think", type=float, default=0.0,
                   help="seconds between Home's first render and opening the page (a user reading Home; the "
                        "dashboard preloads the other pages' imports meanwhile). Default 0: the worst case")
    p.add_argument("--pages", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=list(PAGES),
                   help=f"comma-separated, from: {', '.join(PAGES)}")
    p.add_argument("--under-training", action="store_true", help="measure again while a training job runs")
    p.add_argument("--training-warm-up", type=float, default=30.0,
                   help="seconds the job trains alone before its images/s is taken")
    p.add_argument("--umap-points", type=int, default=10_000)
    p.add_argument("--skip-umap", action="store_true")
    p.add_argument("--skip-encode", action="store_true")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is None:
        if bad := [page for page in a.pages if page not in PAGES]:
            p.error(f"--pages {','.join(bad)}: choose from {', '.join(PAGES)}")
        for run in (a.run, a.other):
            if not (run / "checkpoint.safetensors").is_file():
                p.error(f"{run} is not a trained run folder")
    return a


def seconds(t: tuple[float, float] | None) -> str:
    return "—" if t is None else f"{t[0]:.3f} | {t[1]:.3f}"


def main() -> None:
    a = parse_args()
    if a.child:
        child(a.child[0], a.child[1:])
        return
    runs = Path(tempfile.mkdtemp())
    os.environ["LATENTLAB_CHECKPOINTS"] = str(runs)  # the children inherit it
    clock = time.perf_counter()
    try:
        idle = measure_all(a, runs)
        if not a.skip_umap:
            fresh_copies(runs, [a.run])
            times = umap_cold_and_cached(runs / a.run.name, a.umap_points)
            idle += [(f"UMAP {a.umap_points:,} points, fresh worker process, points already encoded (compiling "
                      "unless numba's cache is warm)", times["umap_cold"], "≤ 15 s"),
                     (f"UMAP {a.umap_points:,} points, cached", times["umap_cached"], "≤ 0.5 s")]
        busy, rates = {}, None
        if a.under_training:
            job, alone = start_training(runs, a.training_warm_up)
            try:
                since = mark(job)
                busy = {what: t for what, t, _ in measure_all(a, runs)}
                rates = alone, training_rate(job, since)
            finally:
                stop_training(job)
        print(f"run: {a.run.name}, switching to {a.other.name}; {time.perf_counter() - clock:.0f} s in all")
        if rates:
            print(f"training job ({TRAINING['model']} on {TRAINING['data.dataset']}, small preset): "
                  f"{rates[0]:,.0f} images/s alone, {rates[1]:,.0f} images/s while the dashboard was measured")
        print("| what | idle wall s | idle CPU s |" + (" training wall s | training CPU s |" if a.under_training
                                                        else "") + " target |")
        print("|---|---|---|" + ("---|---|" if a.under_training else "") + "---|")
        for what, t, target in idle:
            print(f"| {what} | {seconds(t)} |" + (f" {seconds(busy.get(what))} |" if a.under_training else "")
                  + f" {target} |")
    finally:
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
