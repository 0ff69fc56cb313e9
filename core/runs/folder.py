"""Run folders: everything the dashboard needs, readable without the training data.

checkpoints/<name>/
  config.json              RunConfig (rebuilds model and data)
  metrics.jsonl            one JSON object per line: {"type": "train" | "val", "step", ...}
  status.json              {"state": running | finished | failed | cancelled, "pid", "pid_started", "host", "step",
                            "total_steps", "error", "updated", ...}; written by the trainer (and the job launcher)
  checkpoint.safetensors   "model.*" weights + "optim.*" Adam state; metadata: step, format
  samples/                 recon_<step>.png, prior_<step>.png
  encodings/               <dataset>-<split>.npz latent means (python -m core encode)
"""
from __future__ import annotations
import json
import os
import time
from pathlib import Path
from typing import Any
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from core.config import RunConfig
from core.fileio import atomic_path, locked, write_json
from core.models.vae import VAE
from core.runs import process


CHECKPOINT = "checkpoint.safetensors"


FORMAT = "latentlab-1"


STATES = ("running", "finished", "failed", "cancelled")


# The error of a run whose status says "running" although its process is gone from this machine.
STOPPED = ("the training process stopped without finishing (killed or crashed); "
           "resume it to continue from the last checkpoint")


class RunError(ValueError):
    """A run folder is missing, incomplete or holds something that does not match its config."""


def default_runs_dir() -> Path:
    """`$LATENTLAB_CHECKPOINTS`, else `checkpoints/` at the repository root."""
    env = os.environ.get("LATENTLAB_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # --- config -------------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        if not (self.path / "config.json").is_file():
            raise RunError(f"{self.path}: no config.json; is this a LatentLab run folder?")
        return RunConfig.load(self.path / "config.json")

    def write_config(self, config: RunConfig) -> None:
        write_json(self.path / "config.json", config.to_dict())

    # --- metrics ------------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All metric records (optionally of one type). A torn or corrupt line is skipped, not fatal."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and (kind is None or rec.get("type") == kind):
                records.append(rec)
        return records

    def truncate_metrics(self, step: int) -> None:
        """Drop records past `step` (written after the last checkpoint of a run that is being resumed)."""
        keep = [r for r in self.metrics() if r.get("step", 0) <= step]
        with atomic_path(self.path / "metrics.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))

    # --- status -------------------------------------------------------------------------------
    def write_status(self, state: str, **fields: Any) -> None:
        """Write status.json. A "running" status also records how to recognise its process later: pid_started
        (kernel start time) and host, unless given."""
        assert state in STATES, state
        if state == "running":
            for key, value in process.identity(fields.get("pid")).items():
                fields.setdefault(key, value)
        write_json(self.path / "status.json", {"state": state, "updated": time.time(), **fields})

    def status(self) -> dict[str, Any]:
        """The run's status, read only: this never writes. A "running" record whose process is gone from this
        machine reads as "failed" with the STOPPED error (repair_status() writes that down); one recorded on another
        machine stays "running", with "elsewhere": True, since it cannot be checked from here. A missing or
        unreadable status.json reads as {"state": "unknown"}."""
        return _derived(self._recorded_status())

    def repair_status(self) -> dict[str, Any]:
        """Write down what status() derives: a "running" record whose process is gone from this machine becomes
        "failed" with the STOPPED error. For the places that decide (before a resume), not for displays, which
        read status(). Returns the status."""
        recorded = self._recorded_status()
        status = _derived(recorded)
        if recorded.get("state") == "running" and status["state"] == "failed":
            self.write_status("failed", **{k: v for k, v in status.items() if k not in ("state", "updated")})
        return status

    def job_lock(self):
        """Held while deciding whether to start training the run, so two starts never both go ahead."""
        return locked(self.path / ".job.lock")

    def check_not_running(self, status: dict[str, Any] | None = None) -> None:
        """RunError naming the run if a live process trains it: on this machine, or recorded on another one."""
        status = self.status() if status is None else status
        if status.get("state") == "running":
            where = f"on {status.get('host')}, which cannot be checked from here" if status.get("elsewhere") else \
                f"pid {status.get('pid')}"
            raise RunError(f"run {self.name!r} is already running ({where}); cancel it first, or wait for it to end")

    def claim(self) -> None:
        """Record this process as the one training the run ("running", this pid, the step so far), after making
        sure no other live process does (RunError if one does). Hold job_lock() around it."""
        status = self.status()
        if not process.is_self(status):
            self.check_not_running(status)
        self.write_status("running", pid=os.getpid(), **{k: status[k] for k in ("step", "total_steps") if k in status})

    def _recorded_status(self) -> dict[str, Any]:
        """status.json as written, or {"state": "unknown"} if it is missing, unreadable or not a status."""
        try:
            status = json.loads((self.path / "status.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {"state": "unknown"}
        if not isinstance(status, dict) or status.get("state") not in STATES:
            return {"state": "unknown"}
        return status

    def remove_partial_writes(self) -> None:
        """Delete temp files of the trainer's atomic writes left by a killed process (readers never see them).
        Only the trainer's own files: a label or cache write from the dashboard may be in flight."""
        for pattern in (f".{CHECKPOINT}.*.tmp", ".status.json.*.tmp", ".metrics.jsonl.*.tmp", "samples/.*.png.*.tmp"):
            for tmp in self.path.glob(pattern):
                tmp.unlink(missing_ok=True)

    # --- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    def save_checkpoint(self, model: VAE, optimizer: torch.optim.Optimizer | None, step: int,
                        dtype: torch.dtype | None = None) -> None:
        tensors = {f"model.{k}": _cpu(v, dtype) for k, v in model.state_dict().items()}
        if optimizer is not None:
            tensors.update(_flatten_optimizer(optimizer))
        with atomic_path(self.checkpoint_path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "step": str(step)})

    def checkpoint_step(self) -> int:
        with self._open() as f:
            return int(f.metadata()["step"])

    def load_model(self, device: str | torch.device = "cpu") -> VAE:
        """Rebuild the model from config.json and load its weights (float32, eval mode)."""
        config = self.config
        model = config.family.build(config.arch)
        with self._open() as f:
            state = {k[len("model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
        model.load_state_dict(check_state(model, state, self.checkpoint_path))
        return model.to(device).eval()

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        with self._open() as f:
            tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith("optim.")}
        _unflatten_optimizer(optimizer, tensors)

    def _open(self):
        if not self.checkpoint_path.is_file():
            raise RunError(f"{self.path}: no {CHECKPOINT} yet (the run has not saved a checkpoint)")
        try:
            handle = safe_open(str(self.checkpoint_path), framework="pt")
        except Exception as e:  # safetensors raises its own error types for truncated/garbled headers
            raise RunError(f"{self.checkpoint_path}: not a readable safetensors file ({e})") from None
        if handle.metadata() is None or handle.metadata().get("format") != FORMAT:
            raise RunError(f"{self.checkpoint_path}: not a LatentLab checkpoint (format tag missing)")
        return handle


def _derived(status: dict[str, Any]) -> dict[str, Any]:
    """What a recorded status means now (see Run.status); never written here."""
    if status.get("state") != "running":
        return status
    alive = process.liveness(status)
    if alive == process.DEAD:
        return {**status, "state": "failed", "error": STOPPED}
    if alive == process.UNKNOWN:
        return {**status, "elsewhere": True}
    return status


def check_state(model: VAE, state: dict[str, Any], source: Path) -> dict[str, torch.Tensor]:
    """`state` as float32 tensors if it fits `model` exactly; otherwise a RunError naming `source` and the problem."""
    expected = model.state_dict()
    missing, extra = expected.keys() - state.keys(), state.keys() - expected.keys()
    if missing or extra:
        raise RunError(f"{source}: weights do not match config.json "
                       f"(missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})")
    for k, ref in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise RunError(f"{source}: {k} is not a floating-point tensor")
        if t.shape != ref.shape:
            raise RunError(f"{source}: {k} has shape {tuple(t.shape)}, config.json implies {tuple(ref.shape)}")
    return {k: v.float() for k, v in state.items()}


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """Run folders (those with a config.json), newest first."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: (r.path / "config.json").stat().st_mtime, reverse=True)


def _cpu(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    t = t.detach().to("cpu")
    return (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous()


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam-style state as flat tensors: optim.<param index>.<name>; hyper-parameters stay in config."""
    out = {}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            out[f"optim.{i}.{name}"] = _cpu(torch.as_tensor(value), None)
    return out


def _unflatten_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, i, name = key.split(".", 2)
        state.setdefault(int(i), {})[name] = value
    sd["state"] = state
    optimizer.load_state_dict(sd)


def create_run(config: RunConfig, runs_dir: Path | None = None) -> Run:
    """Make the run folder; refuses an existing name (mkdir is atomic, so two launches cannot share one)."""
    config.validate()
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    run = Run(root / config.name)
    try:
        run.path.mkdir()
    except FileExistsError:
        raise RunError(f"run {config.name!r} already exists in {root}: pick another --name, or --resume it") from None
    run.write_config(config)
    return run
