"""How many CPU threads a training step uses, chosen from what the machine is doing and re-checked while it trains.

A step split over more intra-op threads than there are idle cores collapses: each parallel region waits for its
slowest thread, and a thread that has lost its core to another process waits a whole scheduler slice. Measured on
the project's 2-core CPU with one other busy process: the `small` step at 2 threads fell to 45-270 images/s while
1 thread kept ~500 (idle, 2 threads run ~1,100). So:

  threads = the cores this process may run on (os.sched_getaffinity), minus the CPU the *other* processes used on
            those cores over a short window (/proc/stat busy time minus this process's own CPU time), rounded down
            after a little slack, never below 1 and never above PyTorch's default (physical cores, or
            OMP_NUM_THREADS when set: torchrun sets 1 per process) nor a cgroup CPU quota.

`choose_threads` is that rule as a pure function (tested with injected loads). `ThreadGovernor` applies it: once
when the trainer is built (a 0.2 s sample) and again at logging steps at most every RECHECK_S seconds (two small
/proc reads), setting torch.set_num_threads (and the BLAS pool of SciPy / scikit-learn) when the answer changes.
`python -m core evaluate` uses it too, re-checked before each metric. `--threads N` (TrainConfig.threads > 0) fixes
N and turns the automatic choice off. Without /proc/stat (macOS) the 1-minute load average stands in for the busy
time; without either, every allowed core is used.

The OpenMP wait policy cannot be changed here: libgomp reads OMP_WAIT_POLICY once, when torch is imported. Waiting
threads that spin (the default, for a while) take CPU from whoever shares the cores, so background training jobs
are started with OMP_WAIT_POLICY=PASSIVE (core/runs/jobs.py, unless the user's environment sets it); a foreground
`python -m core train` uses whatever the shell sets. `describe()` records the policy in status.json.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

# A core the others keep busy less than this fraction of the time still counts as ours (a dashboard redraw, a shell).
SLACK = 0.3
# Going back up to more threads needs the others' load this much below the threshold, so the count does not flap.
HYSTERESIS = 0.15
RECHECK_S = 5.0  # seconds between re-checks while training (each is two small file reads)
FIRST_WINDOW_S = 0.2  # the first sample, taken when the trainer is built
HISTORY = 20  # changes kept in status.json

DEFAULT_THREADS = torch.get_num_threads()  # PyTorch's own choice, read when this module is first imported


def choose_threads(cores: int, others: float, *, limit: int | None = None, current: int | None = None,
                   slack: float = SLACK, hysteresis: float = HYSTERESIS) -> int:
    """Intra-op threads for a process allowed on `cores` cores while other processes keep `others` of those cores
    busy (CPU-seconds per second, this process excluded): the cores left free, counting a core busy less than
    `slack` of the time as free, at least 1 and at most `limit`. With `current` (the count in use), more threads
    than that are taken only when the load is a further `hysteresis` lower."""
    free = cores - max(0.0, others)
    threads = math.floor(free + slack + 1e-9)
    if current is not None and threads > current:
        threads = max(current, math.floor(free + slack - hysteresis + 1e-9))
    if limit is not None:
        threads = min(threads, limit)
    return max(1, min(threads, cores))


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def quota_cores(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Whole cores a cgroup v2 CPU quota allows (cpu.max "quota period"), None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def ceiling() -> int:
    """The most threads the automatic choice gives: PyTorch's default, within any cgroup CPU quota."""
    quota = quota_cores()
    return max(1, min(DEFAULT_THREADS, quota) if quota else DEFAULT_THREADS)


class LoadSampler:
    """CPU-seconds per second that other processes used on `cpus` between two calls of `others()`: the busy time
    /proc/stat counts on those CPUs (steal included: a hypervisor's share is gone too) minus this process's CPU time.
    Falls back to the 1-minute load average minus this process's own CPU rate where there is no /proc/stat."""

    def __init__(self, cpus: list[int] | None = None, stat: Path = Path("/proc/stat"),
                 clock: Callable[[], float] = time.monotonic, own: Callable[[], float] = time.process_time):
        self.cpus, self.stat, self.clock, self.own = set(allowed_cpus() if cpus is None else cpus), stat, clock, own
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._sample()

    def _busy_seconds(self) -> float | None:
        try:
            lines = self.stat.read_text().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in self.cpus):
                continue
            # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
            ticks = [int(v) for v in values[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]
        return busy / self.tick

    def _sample(self) -> tuple[float, float | None, float]:
        return self.clock(), self._busy_seconds(), self.own()

    def others(self) -> float | None:
        """Other processes' load since the previous call (or since this sampler was made); None when it cannot be
        measured (no /proc/stat and no load average)."""
        now = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        self._last = now
        wall = t1 - t0
        if wall <= 0:
            return None
        own = (own1 - own0) / wall
        if busy0 is not None and busy1 is not None:
            return max(0.0, (busy1 - busy0) / wall - own)
        try:
            return max(0.0, os.getloadavg()[0] - own)
        except (AttributeError, OSError):
            return None


class ThreadGovernor:
    """Sets torch's intra-op thread count for a trainer: `fixed` > 0 fixes it (--threads), 0 chooses it from the
    load and re-checks it with `recheck()` (call it at logging steps: it acts at most every `interval` seconds)."""

    def __init__(self, fixed: int = 0, *, interval: float = RECHECK_S, window: float = FIRST_WINDOW_S,
                 sampler: LoadSampler | None = None, clock: Callable[[], float] = time.monotonic,
                 cores: int | None = None, limit: int | None = None):
        self.auto, self.interval, self.clock = fixed <= 0, interval, clock
        self.cores = cores or len(allowed_cpus())
        self.limit = limit or ceiling()
        self.history: list[tuple[int, int]] = []  # (step, threads) at each change
        self.others: float | None = None
        self.sampler = None
        if not self.auto:
            self._set(fixed, 0)
            return
        self.sampler = sampler or LoadSampler()
        if window > 0:
            time.sleep(window)
        self._set(self._choice(None), 0)
        self._checked = clock()

    def _choice(self, current: int | None) -> int:
        self.others = self.sampler.others()
        if self.others is None:  # nothing to go by: every allowed core, as PyTorch would
            return max(1, min(self.limit, self.cores))
        return choose_threads(self.cores, self.others, limit=self.limit, current=current)

    def _set(self, threads: int, step: int) -> None:
        self.threads = threads
        torch.set_num_threads(threads)
        # SciPy's OpenBLAS (scikit-learn's fits in evaluation) keeps its own pool; on a loaded 2-core machine its
        # two spinning threads made a logistic regression take 5x the CPU time of one thread.
        threadpool_limits(threads, user_api="blas")
        self.history = (self.history + [(step, threads)])[-HISTORY:]

    def recheck(self, step: int = 0) -> bool:
        """Re-measure the load and adjust the thread count if `interval` seconds have passed since the last check;
        True when the count changed."""
        if not self.auto or self.clock() - self._checked < self.interval:
            return False
        self._checked = self.clock()
        threads = self._choice(self.threads)
        if threads == self.threads:
            return False
        self._set(threads, step)
        return True

    def describe(self) -> dict:
        """Fields for status.json: the thread count in use, how it was chosen, its changes and the wait policy."""
        info = {"threads": self.threads, "threads_auto": self.auto,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
        if self.auto:
            info["threads_history"] = [list(change) for change in self.history]
            if self.others is not None:
                info["others_load"] = round(self.others, 2)
        return info
