"""Run folders: everything the dashboard needs, readable without the training data.

checkpoints/<name>/
  config.json              RunConfig (rebuilds model and data)
  metrics.jsonl            one JSON object per line: {"type": "train" | "val", "step", ...}
  status.json              {"state": running | finished | failed | cancelled, "pid", "pid_started", "host", "step",
                            "total_steps", "error", "updated", ...}; written by the trainer (and the job launcher)
  checkpoint.safetensors   "model.*" weights + "optim.*" Adam state (+ "reg.<name>.*" weights and "regoptim.<name>.*"
                           Adam state of a regulariser's own network, e.g. FactorVAE's discriminator); metadata:
                           step, format
  samples/                 recon_<step>.png, prior_<step>.png
  encodings/               <dataset>-<split>.npz latent means (python -m core encode)
"""
from __future__ import annotations
import errno
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from safetensors import safe_open
from core.config import RUN_NAME, RunConfig
from core.fileio import (UntrustedFileError, atomic_path, check_inside, locked, open_append, read_json, read_json_lines,
                         write_json)
from core.schema import Int, ListOf, Num, Obj, OneOf, Str
from core.runs import process

if TYPE_CHECKING:
    import torch
    from torch import nn

    from core.models.vae import VAE


CHECKPOINT = "checkpoint.safetensors"


FORMAT = "latentlab-1"


STATES = ("running", "finished", "failed", "cancelled")


# The error of a run whose status says "running" although its process is gone from this machine.
STOPPED = ("the training process stopped without finishing (killed or crashed); "
           "resume it to continue from the last checkpoint")


# A hidden folder in the runs folder that create_run fills before renaming it to the run's name; one left by a killed
# process is ignored by every listing and removed by the next create_run once it is older than STALE_CREATING_S.
CREATING = ".creating-"
STALE_CREATING_S = 3600.0

MAX_STEP = 10**12
_NUMBER = Num()
# One line of metrics.jsonl. "type" and "step" are needed; a field of the wrong type is dropped from the record, a
# record without a valid type or step is skipped. Other fields (the file grows: each regulariser logs its own terms,
# "clamp", "tc", "mi", ...) are kept when they are finite numbers or lists of them, and dropped otherwise.
_NUMBERS = ListOf(_NUMBER, max_items=1 << 16)
METRIC_RECORD = Obj({"type": Str(20), "step": Int(0, MAX_STEP), "epoch": Num(0), "loss": _NUMBER, "recon": _NUMBER,
                     "kl": _NUMBER, "kl_dims": _NUMBERS, "beta": _NUMBER, "lr": _NUMBER, "images_per_s": Num(0),
                     "wall": Num(0), "neg_elbo": _NUMBER},
                    required=("type", "step"), extra=OneOf(_NUMBER, _NUMBERS), drop_invalid=True)
# status.json (also a process record, core.runs.process.RECORD): "state" is needed; a known field of the wrong type
# is dropped (a running record without a valid pid then reads as stopped), unknown fields are kept.
STATUS = Obj({**process.RECORD.fields, "state": Str(20, choices=STATES), "step": Int(0, MAX_STEP),
              "total_steps": Int(0, MAX_STEP), "device": Str(100), "error": Str(), "updated": Num()},
             required=("state",), drop_invalid=True)
MAX_STATUS_BYTES = 1 << 20


class RunError(ValueError):
    """A run folder is missing, incomplete or holds something that does not match its config."""


def find_run(runs_dir: str | Path, name: str) -> "Run":
    """The run called `name` in `runs_dir`, as given on a command line (RUN): a valid run name (no '/', '..' or
    absolute path), a real folder directly inside runs_dir (never a symbolic link, which could lead anywhere) holding
    a config.json. RunError saying which rule failed otherwise."""
    root = Path(runs_dir)
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or ".." in name:
        raise RunError(f"{name!r} is not a run name: give the name of a folder in {root} (letters, digits, '_', '-', "
                       "'.'; no '/' or '..'), as `python -m core runs` lists them")
    path = root / name
    if path.is_symlink():
        raise RunError(f"{path} is a symbolic link: LatentLab uses only real run folders inside {root}; copy the run "
                       "there instead of linking it")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise RunError(f"no run {name!r} in {root} (`python -m core runs` lists them)")
    return Run(path)


def default_runs_dir() -> Path:
    """`$LATENTLAB_CHECKPOINTS`, else `checkpoints/` at the repository root."""
    env = os.environ.get("LATENTLAB_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


class Run:
    """One run folder (see the module docstring): its config, metrics, status and checkpoint, read and written
    through here. Nothing is cached, so what a page shows is what is on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        """The folder's name, which is the run's name."""
        return self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # --- config -------------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        """config.json, validated (ConfigError names the file; RunError when there is none)."""
        if not (self.path / "config.json").is_file():
            raise RunError(f"{self.path}: no config.json; is this a LatentLab run folder?")
        return RunConfig.load(self.path / "config.json")

    def write_config(self, config: RunConfig) -> None:
        """Write config.json atomically."""
        write_json(self.path / "config.json", config.to_dict())

    # --- metrics ------------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record as a line of metrics.jsonl (a torn last line is skipped by readers); never through a
        symbolic link."""
        with open_append(self.path / "metrics.jsonl") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All metric records (optionally of one type), checked against METRIC_RECORD: a torn, corrupt or
        mistyped line is skipped, a mistyped field dropped, never fatal (core.fileio.read_json_lines). A file that
        cannot be read at all (a link, no permission) is an UntrustedFileError."""
        records = read_json_lines(self.path / "metrics.jsonl", METRIC_RECORD,
                                  fix="make it a readable file, or delete it (the loss history is lost, not the weights)")
        return [r for r in records if kind is None or r["type"] == kind]

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
        """status.json as written (cleaned by STATUS), or {"state": "unknown"} if it is missing, unreadable or not
        a status."""
        try:
            status = read_json(self.path / "status.json", STATUS, max_bytes=MAX_STATUS_BYTES)
        except UntrustedFileError:
            return {"state": "unknown"}
        status.pop("elsewhere", None)  # derived by status(), never taken from the file
        return status

    def remove_partial_writes(self) -> None:
        """Delete temp files of the trainer's atomic writes left by a killed process (readers never see them).
        Only the trainer's own files: a label or cache write from the dashboard may be in flight."""
        for pattern in (f".{CHECKPOINT}.*.tmp", ".status.json.*.tmp", ".metrics.jsonl.*.tmp", "samples/.*.png.*.tmp"):
            for tmp in self.path.glob(pattern):
                tmp.unlink(missing_ok=True)

    def folder(self, name: str) -> Path:
        """RUN/<name> (samples, encodings, embeddings), created if absent, for writing: refused (UntrustedFileError)
        when it is a symbolic link or otherwise resolves outside the run folder."""
        path = self.path / name
        if not path.is_symlink():
            path.mkdir(exist_ok=True)
        check_inside(path / "x", self.path)
        return path

    # --- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        """Where the weights (and Adam state) live: checkpoint.safetensors."""
        return self.path / CHECKPOINT

    # The tensor work lives in core/runs/checkpoint.py, imported on use: listing runs and reading their configs
    # (the dashboard's Home page, `python -m core runs`) must not wait for torch to load.
    def save_checkpoint(self, model: VAE, optimizer: torch.optim.Optimizer | None, step: int,
                        dtype: torch.dtype | None = None, extra: Mapping[str, nn.Module] | None = None,
                        extra_optimizers: Mapping[str, torch.optim.Optimizer] | None = None) -> None:
        """Write weights (cast to `dtype` if given), the optimizer state if given, and `step`, atomically. `extra`:
        more modules by name (a regulariser's own network), saved in fp32 as "reg.<name>.*", and `extra_optimizers`
        their optimizers' state, as "regoptim.<name>.*"."""
        from core.runs import checkpoint

        checkpoint.save(self, model, optimizer, step, dtype, extra, extra_optimizers)

    def checkpoint_step(self) -> int:
        """The training step the checkpoint was saved at (read from its header: no tensors, no torch)."""
        with self._open("numpy") as f:
            return int(f.metadata()["step"])

    def load_model(self, device: str | torch.device = "cpu") -> VAE:
        """Rebuild the model from config.json and load its weights (float32, eval mode)."""
        from core.runs import checkpoint

        return checkpoint.load_model(self, device)

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Load the checkpoint's Adam state into `optimizer` (nothing for a weights-only export)."""
        from core.runs import checkpoint

        checkpoint.load_optimizer(self, optimizer)

    def load_extra(self, modules: Mapping[str, nn.Module],
                   optimizers: Mapping[str, torch.optim.Optimizer] | None = None) -> list[str]:
        """Load what save_checkpoint(extra=, extra_optimizers=) wrote into `modules` and `optimizers` (by name);
        the names of modules with weights that the checkpoint lacks (one saved before they existed, or an export),
        which keep their current state. RunError when saved weights do not fit."""
        from core.runs import checkpoint

        return checkpoint.load_extra(self, modules, optimizers)

    def _open(self, framework: str = "pt"):
        """The checkpoint's safetensors handle, checked to be ours; RunError naming the file otherwise."""
        if not self.checkpoint_path.is_file():
            raise RunError(f"{self.path}: no {CHECKPOINT} yet (the run has not saved a checkpoint)")
        try:
            handle = safe_open(str(self.checkpoint_path), framework=framework)
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


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """Run folders (those with a config.json), newest first. Hidden folders (a run being created) and symbolic links
    (find_run refuses them) are not runs."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir()
            if not p.name.startswith(".") and not p.is_symlink() and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: _mtime(r.path / "config.json"), reverse=True)


def _mtime(path: Path) -> float:
    """The file's modification time; 0 when it has gone (a run deleted while it is listed)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def create_run(config: RunConfig, runs_dir: Path | None = None) -> Run:
    """Make the run folder with its config.json, atomically: the config is written into a hidden folder
    (CREATING...) that is then renamed to the run's name, so a kill at any moment leaves no run or a complete one,
    never a name that can be neither resumed nor reused. Refuses an existing name; of two simultaneous launches of
    one name exactly one wins (the other's rename fails). Hidden folders left by killed launches are removed once
    they are older than STALE_CREATING_S."""
    config.validate()
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_creations(root)
    run = Run(root / config.name)
    taken = RunError(f"run {config.name!r} already exists in {root}: pick another --name, or --resume it")
    if run.path.exists() or run.path.is_symlink():
        raise taken
    tmp = root / f"{CREATING}{config.name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        Run(tmp).write_config(config)
        try:
            os.rename(tmp, run.path)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise taken from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run


def _remove_stale_creations(root: Path) -> None:
    """Delete the hidden CREATING folders of launches killed more than STALE_CREATING_S ago (never a link)."""
    now = time.time()
    for path in root.glob(CREATING + "*"):
        try:
            if path.is_dir() and not path.is_symlink() and now - path.stat().st_mtime > STALE_CREATING_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # another launch removed it first
