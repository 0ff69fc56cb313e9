"""Run configuration: nested dataclasses that round-trip to JSON.

`config.json` in a run folder is `RunConfig.to_dict()`; loading it back validates every
field, so a hand-edited or foreign config fails with a message naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

MODELS = ("vae", "beta-vae", "modvae")
DATASETS = ("synthfaces", "dsprites", "celeba", "lfw", "folder")
RECONSTRUCTIONS = ("bernoulli", "gaussian", "laplace")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ConfigError(ValueError):
    """A config value is missing, of the wrong type or out of range."""


@dataclass
class ArchConfig:
    """The shared conv encoder/decoder family for 64x64 images."""

    preset: str = "small"
    channels: tuple[int, ...] = (32, 32, 64, 64)
    hidden: int = 256
    latent_dim: int = 64
    norm: str = "none"  # "none" or "group"


PRESETS = {
    # Burgess et al. 2018 layout: trains on a laptop CPU in minutes.
    "small": ArchConfig("small", (32, 32, 64, 64), 256, 64, "none"),
    # Wider with GroupNorm (BatchNorm would see ModVAE's near-identical batches): for GPU and CelebA.
    "standard": ArchConfig("standard", (64, 128, 256, 512), 512, 64, "group"),
}


@dataclass
class LossConfig:
    reconstruction: str = "bernoulli"
    beta: float = 1.0
    warmup_steps: int = 0  # linear KL warm-up from 0 to beta
    capacity_max: float = 0.0  # nats; > 0 turns on Burgess et al. capacity annealing
    capacity_steps: int = 0
    capacity_gamma: float = 100.0
    clamp_weight: float = 1.0  # ModVAE only: weight of the MSE pulling clamped dims to the batch mean


@dataclass
class ModVAEConfig:
    dims_per_factor: int = 4  # latent block per generative factor (or for identity on real data)
    group_size: int = 16  # images per one-factor (or one-identity) group inside a batch


@dataclass
class DataConfig:
    dataset: str = "synthfaces"
    root: str | None = None  # folder for celeba / lfw / folder
    attributes_csv: str | None = None  # folder data set only
    seed: int = 0  # split seed for data sets without an official split


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 5e-4  # 1e-3 diverged in 6,000-step VAE and ModVAE runs on SynthFaces; 5e-4 ran clean (RESULTS.md)
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    val_every: int = 0  # 0: at the end of every epoch
    val_images: int = 512
    checkpoint_every: int = 500
    sample_every: int = 500
    threads: int = 0  # 0: torch default
    mode: str = "auto"  # step speed-ups (core.speed): auto = fast on CUDA, plain on CPU; or "fast" / "plain"
    compile: bool = False  # torch.compile the network


@dataclass
class RunConfig:
    name: str
    model: str = "beta-vae"
    arch: ArchConfig = field(default_factory=ArchConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    modvae: ModVAEConfig = field(default_factory=ModVAEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    command: str = ""  # the exact command line that created the run

    def validate(self) -> "RunConfig":
        checks = [
            (RUN_NAME.match(self.name), f"run name {self.name!r}: use letters, digits, '_', '-', '.' (no '/' or '..'), at most 100 characters"),
            (".." not in self.name, f"run name {self.name!r} must not contain '..'"),
            (self.model in MODELS, f"model {self.model!r}: use one of {', '.join(MODELS)}"),
            (self.data.dataset in DATASETS, f"dataset {self.data.dataset!r}: use one of {', '.join(DATASETS)}"),
            (self.loss.reconstruction in RECONSTRUCTIONS, f"reconstruction {self.loss.reconstruction!r}: use one of {', '.join(RECONSTRUCTIONS)}"),
            (self.train.mode in ("auto", "fast", "plain"), f"train.mode {self.train.mode!r}: use auto, fast or plain"),
            (self.arch.norm in ("none", "group"), f"arch.norm {self.arch.norm!r}: use 'none' or 'group'"),
            (1 <= self.arch.latent_dim <= 1024, f"latent_dim {self.arch.latent_dim}: must be between 1 and 1024"),
            (len(self.arch.channels) == 4 and all(c > 0 for c in self.arch.channels), "arch.channels: need 4 positive channel counts (64->4 px in four stride-2 steps)"),
            (self.arch.hidden > 0, "arch.hidden must be positive"),
            (self.loss.beta >= 0, f"beta {self.loss.beta}: must be >= 0"),
            (self.loss.warmup_steps >= 0 and self.loss.capacity_steps >= 0, "warm-up and capacity steps must be >= 0"),
            (self.loss.capacity_max >= 0, "capacity_max must be >= 0"),
            (self.loss.clamp_weight >= 0, "clamp_weight must be >= 0"),
            (self.modvae.dims_per_factor >= 1 and self.modvae.group_size >= 2, "modvae: dims_per_factor >= 1 and group_size >= 2"),
            (self.train.steps >= 1, f"steps {self.train.steps}: must be >= 1"),
            (1 <= self.train.batch_size <= 65536, f"batch_size {self.train.batch_size}: must be between 1 and 65536"),
            (0 < self.train.lr < 1, f"lr {self.train.lr}: must be in (0, 1)"),
            (min(self.train.log_every, self.train.checkpoint_every, self.train.sample_every) >= 1 and self.train.val_every >= 0,
             "log/checkpoint/sample intervals must be >= 1 (val_every >= 0; 0 means every epoch)"),
            (self.data.dataset in ("synthfaces", "dsprites") or self.data.root, f"dataset {self.data.dataset!r} needs --data-root pointing at its folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        return _build(cls, data, "config").validate()

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not a readable JSON config ({e})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def _build(cls, data: Any, where: str):
    """Build dataclass `cls` from plain JSON data, checking keys and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {f.name!r}")
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    text = str(hint)
    if text.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: expected a list of integers")
        return tuple(value)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{where}: must not be null")
    for typ in (bool, int, float, str):
        if hint is typ or text.startswith(typ.__name__):
            break
    else:
        raise ConfigError(f"{where}: unsupported type {hint}")
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value


def model_defaults(model: str) -> dict[str, Any]:
    """The documented recipe per model name (overridable from the CLI)."""
    return {"vae": {"beta": 1.0}, "beta-vae": {"beta": 4.0, "warmup_steps": 500}, "modvae": {"beta": 1.0}}[model]
