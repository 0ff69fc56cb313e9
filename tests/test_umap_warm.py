"""UMAP's compiled-code cache and warm-up (core.explore.projection, core.explore.umap_job): numba compiles into
$LATENTLAB_CACHE/numba, a damaged cache is rebuilt instead of failing the map, the dashboard starts one warm-up,
and a UMAP worker waits for a running warm-up instead of compiling beside it.

No test here compiles UMAP itself (a minute of CPU): a one-line numba function stands in for its code."""
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.explore import projection, umap_job, umap_warm
from core.runs import process
from core.runs.folder import Run
from tests.test_embed import PCA_WORKER, wait_for

ROOT = Path(__file__).resolve().parents[1]
# A warm-up that only sleeps; its command line names core.explore.umap_job like the real one.
SLEEPING_WARM_UP = [sys.executable, "-c", "import time; time.sleep(60)  # stands in for core.explore.umap_job"]
TINY_JIT = "import numba\n\n\n@numba.njit(cache=True)\ndef plus_one(x):\n    return x + 1\n"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """$LATENTLAB_CACHE for this test, warm-ups allowed; returns its numba folder."""
    monkeypatch.setenv("LATENTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LATENTLAB_UMAP_WARM_UP", "1")
    return tmp_path / "cache" / "numba"


@pytest.fixture
def stop_warm_up(cache):
    """Kills the warm-up a test started (by its record, so nothing else is touched)."""
    yield
    record = process.read_record(cache / "warm-up.job")
    if process.liveness(record) == process.ALIVE:
        os.kill(record["pid"], 9)


def python(code: str, tmp_path: Path) -> str:
    """Run `code` in a fresh interpreter that can import core and tmp_path's modules; returns its output."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_cache_folder_is_private_and_refused_when_others_can_write_it(cache):
    assert projection.numba_cache_dir() == cache and cache.stat().st_mode & 0o777 == 0o700
    cache.chmod(0o777)
    assert projection.numba_cache_dir() is None and not projection.umap_is_warm()
    cache.rmdir()
    cache.symlink_to(cache.parent)
    assert projection.numba_cache_dir() is None
    assert umap_warm.start_warm_up() is None  # no usable cache: nothing to warm


def test_compiled_code_is_cached_in_the_folder_and_a_damaged_cache_is_rebuilt(cache, tmp_path):
    (tmp_path / "tiny_jit.py").write_text(TINY_JIT)
    out = python("""
        import sys
        from pathlib import Path
        import numpy as np
        from core.explore import projection

        def fit(mu, *args):  # UMAP itself would compile for a minute; its cache is handled alike
            projection._use_numba_cache()
            sys.modules.pop("tiny_jit", None)  # a fresh function each time, as in a fresh process
            import tiny_jit
            print("plus_one", tiny_jit.plus_one(1))
            return np.zeros((len(mu), 2), np.float32)

        projection._fit = fit
        projection.umap_2d(np.zeros((10, 3)))
        cache = projection.numba_cache_dir()
        written = sorted(cache.rglob("*.nb[ic]"))
        print(sorted({p.suffix for p in written}), all("tiny_jit" in p.name for p in written))
        for path in written:
            path.write_bytes(b"garbage")  # numba raises on these instead of compiling again
        stages = []
        projection.umap_2d(np.zeros((10, 3)), progress=lambda stage, fraction: stages.append(stage))
        print(stages, projection.umap_is_warm(), any(p.read_bytes() == b"garbage" for p in cache.rglob("*.nb[ic]")))
    """, tmp_path)
    assert out.splitlines() == ["plus_one 2", "['.nbc', '.nbi'] True", "plus_one 2",
                                "['the compiled-code cache was damaged: cleared, compiling again'] True False"]


def test_other_errors_are_not_retried_and_keep_the_cache(cache, monkeypatch):
    calls = []

    def failing(*args):
        calls.append(1)
        raise ValueError("boom")

    monkeypatch.setattr(projection, "_fit", failing)
    projection.numba_cache_dir()
    (cache / "kept").touch()
    with pytest.raises(ValueError, match="boom"):
        projection.umap_2d(np.zeros((10, 3)))
    assert calls == [1] and (cache / "kept").exists() and not projection.umap_is_warm()


def test_one_warm_up_at_a_time_and_none_once_warm_or_turned_off(cache, monkeypatch, stop_warm_up):
    monkeypatch.setattr(umap_warm, "WARM_UP_COMMAND", SLEEPING_WARM_UP)
    first = umap_warm.start_warm_up()
    assert first and process.liveness(first) == process.ALIVE
    assert umap_warm.start_warm_up()["pid"] == first["pid"]  # a second dashboard, or a restart: not started twice
    monkeypatch.setenv("LATENTLAB_UMAP_WARM_UP", "0")
    assert umap_warm.start_warm_up() is None
    monkeypatch.setenv("LATENTLAB_UMAP_WARM_UP", "1")
    projection._warm_marker(cache).touch()  # what a finished UMAP leaves
    assert projection.umap_is_warm() and umap_warm.start_warm_up() is None


def test_the_dashboard_starts_the_warm_up_when_it_starts(cache, tmp_path, monkeypatch, stop_warm_up):
    from dashboard.startup import warm_up_umap

    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(tmp_path / "runs"))
    monkeypatch.setattr(umap_warm, "WARM_UP_COMMAND", SLEEPING_WARM_UP)
    warm_up_umap.clear()  # once per dashboard process: a dashboard run earlier in this process may have done it
    at = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    record = process.read_record(cache / "warm-up.job")
    assert record and record["command"] == SLEEPING_WARM_UP and process.liveness(record) == process.ALIVE
    warm_up_umap.clear()


def test_a_umap_worker_waits_for_the_running_warm_up(cache, monkeypatch, stop_warm_up, tiny_runs_dir, tmp_path):
    release = tmp_path / "warm-up-done"  # the stand-in warm-up ends when the test says so
    monkeypatch.setattr(umap_warm, "WARM_UP_COMMAND", [
        sys.executable, "-c", (f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.1)"
                               "  # stands in for core.explore.umap_job")])
    monkeypatch.setattr(umap_job, "WORKER_COMMAND", PCA_WORKER)
    run = Run(shutil.copytree(tiny_runs_dir, tmp_path / "runs") / "tiny-bvae")
    params = projection.UmapParams()
    umap_job.load_encodings(run, "test", 100)  # the page encodes first; the worker reads the cached file
    warm_up = umap_warm.start_warm_up()
    umap_job.start_umap(run, "test", 100, params)
    waiting = wait_for(lambda: (job := umap_job.umap_status(run, "test", 100, params)).stage.startswith("waiting")
                       and job, timeout=60)
    assert waiting.state == "running" and "warm-up" in waiting.stage
    time.sleep(1)
    assert umap_job.umap_status(run, "test", 100, params).state == "running"  # no map while the warm-up runs
    release.touch()
    wait_for(lambda: umap_job.umap_status(run, "test", 100, params).state == "done", timeout=60)
    assert process.liveness(warm_up) == process.DEAD


def test_waiting_gives_up_after_the_timeout(cache, monkeypatch, stop_warm_up):
    monkeypatch.setattr(umap_warm, "WARM_UP_COMMAND", SLEEPING_WARM_UP)
    umap_warm.start_warm_up()
    stages, started = [], time.monotonic()
    umap_warm.wait_for_warm_up(lambda stage, fraction: stages.append(stage), timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 5 and stages and all("warm-up" in s for s in stages)
