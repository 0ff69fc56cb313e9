"""Run configuration: nested dataclasses of settings (core.settings) that round-trip to JSON.

This is the one source of every default, valid range and help text: `python -m core train`'s options and the
Train page's widgets are built from these fields, and everything is checked by `RunConfig.validate` with one message
format. A model family's own defaults (β-VAE's β = 4, ...) come from its registry entry (core.models.family), so
`RunConfig(name, model="beta-vae")` in Python, the CLI and the Train page build the same run.

`config.json` in a run folder is `RunConfig.to_dict()`; loading it back validates every field, so a hand-edited or
foreign config fails with a message naming the file and the field.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from core.models.family import FAMILIES, Family
from core.models.arch import MAX_CHANNELS, PRESETS, ArchConfig
from core.objectives import LIKELIHOOD_NAMES
from core.fileio import UntrustedFileError, read_json
from core.settings import ConfigError, Setting, check_section, from_plain, setting, settings_of

__all__ = ["ArchConfig", "ConfigError", "DataConfig", "LossConfig", "ModVAEConfig", "PRESETS", "RunConfig",
           "TrainConfig", "DATASETS", "all_settings", "option_value"]

DATASETS = ("synthfaces", "dsprites", "celeba", "lfw", "folder")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_STEPS = 10**9
MAX_SEED = 2**32 - 1
MAX_CONFIG_BYTES = 1 << 20
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]{1,4})?"  # train.device; core.device checks it exists


@dataclass
class LossConfig:
    """The objective: reconstruction likelihood, KL weight and its schedule, family regulariser weights."""

    reconstruction: str = setting("bernoulli", "reconstruction likelihood", label="Likelihood",
                                  choices=LIKELIHOOD_NAMES, flag="--recon")
    beta: float | None = setting(None, "KL weight; 1 is the plain VAE, larger pushes towards disentangled, blurrier "
                                       "codes (default: the model family's)", label="β (KL weight)",
                                 low=0, high=1000, step=0.5)
    warmup_steps: int | None = setting(None, "steps of linear KL warm-up from 0 to β (default: the model family's)",
                                       label="KL warm-up steps", low=0, high=MAX_STEPS)
    # masked edits (issue 15, §4): the mask head's loss, and the reconstruction restricted to the person
    # 0.1: at 1 the head slowed the mouth on SynthFaces (Smiling probe 0.87 vs 1.00 at 6,000 steps), masks as good
    mask_weight: float = setting(0.1, "weight of the mask head's BCE + Dice loss (with --mask-head)",
                                 label="Mask loss weight", low=0, high=1e4)
    recon_region: str = setting("image", "where the reconstruction is scored: the whole image, or only the person "
                                "(face, hair, shoulders) where the data set has masks, so no capacity goes to the "
                                "background (composite edits over the original then)", label="Reconstruct",
                                choices=("image", "person"))
    capacity_max: float = setting(0.0, "nats; > 0 turns on Burgess et al. capacity annealing", label="Capacity (nats)",
                                  low=0, high=1e4)
    capacity_steps: int = setting(0, "steps over which the capacity grows to its maximum", label="Capacity steps",
                                  low=0, high=MAX_STEPS)
    capacity_gamma: float = setting(100.0, "weight of |KL - capacity|", label="Capacity γ", low=0, high=1e6)
    clamp_weight: float = setting(1.0, "ModVAE: weight of the MSE pulling clamped dims to their group mean",
                                  label="Clamp weight", low=0, high=1e6)
    # β-TCVAE (Chen et al. 2018): the KL split into three terms, each weighted
    tc_alpha: float = setting(1.0, "β-TCVAE: weight α of the index-code mutual information I(x; z)",
                              label="α (mutual information)", low=0, high=1000, step=0.5)
    tc_beta: float = setting(6.0, "β-TCVAE: weight β of the total correlation of q(z)", label="β (total correlation)",
                             low=0, high=1000, step=1)
    tc_gamma: float = setting(1.0, "β-TCVAE: weight γ of the dimension-wise KL to the prior",
                              label="γ (dimension-wise KL)", low=0, high=1000, step=0.5)
    # mss by default: unbiased for q(z), so the logged terms are on their true scale; mws, the paper's lower bound,
    # shifts the logged TC by about (latent dims - 1) * log(data set size) (core.objectives.tc)
    tc_sampling: str = setting("mss", "β-TCVAE: estimator of q(z) from the minibatch: mss (minibatch-stratified, "
                                      "unbiased) or mws (minibatch-weighted, a lower bound whose logged terms carry "
                                      "a constant offset)", label="q(z) estimator", choices=("mss", "mws"))
    # FactorVAE (Kim & Mnih 2018): a discriminator estimates the total correlation
    factor_gamma: float = setting(10.0, "FactorVAE: weight γ of the discriminator's total-correlation estimate",
                                  label="γ (total correlation)", low=0, high=1e4, step=1)
    factor_disc_width: int = setting(256, "FactorVAE: units per hidden layer of the discriminator (paper: 1000)",
                                     label="Discriminator width", low=1, high=16384)
    factor_disc_layers: int = setting(4, "FactorVAE: hidden layers of the discriminator (paper: 6)",
                                      label="Discriminator layers", low=1, high=64)
    factor_disc_lr: float = setting(1e-4, "FactorVAE: the discriminator's Adam learning rate (paper: 1e-4)",
                                    label="Discriminator learning rate", low=1e-8, high=1.0)
    # DIP-VAE (Kumar et al. 2018): a covariance of the codes pulled to the identity
    dip_lambda_od: float = setting(10.0, "DIP-VAE: weight λ_od of the squared off-diagonal covariance entries",
                                   label="λ_od (off-diagonal)", low=0, high=1e6, step=1)
    dip_lambda_d: float | None = setting(None, "DIP-VAE: weight λ_d of the squared distance of the covariance's "
                                               "diagonal to 1 (default: the family's, 10 λ_od for DIP-VAE-I and λ_od "
                                               "for DIP-VAE-II, as in the paper)",
                                         label="λ_d (diagonal)", low=0, high=1e6, step=1)


@dataclass
class ModVAEConfig:
    """ModVAE's factor blocks and groups."""

    dims_per_factor: int = setting(4, "ModVAE: latent block per generative factor (or for identity on real faces)",
                                   label="Dims per factor", low=1, high=1024)
    group_size: int = setting(16, "ModVAE: images per one-factor (or one-identity) group in a batch",
                              label="Group size", low=2, high=4096)


@dataclass
class DataConfig:
    """Which data set, where it lives, and the seed of its split."""

    dataset: str = setting("synthfaces", "data set", label="Data set", choices=DATASETS)
    root: str | None = setting(None, "folder of celeba / lfw / folder data", label="Data root folder",
                               flag="--data-root")
    attributes_csv: str | None = setting(None, "folder data set: CSV of file,attr1,attr2,...",
                                         label="Attributes CSV (optional)")
    seed: int = setting(0, "split seed for data sets without an official split", label="Split seed", low=0,
                        high=MAX_SEED, flag="--data-seed")


@dataclass
class TrainConfig:
    """Length, batch, optimiser, device and the logging intervals of a run."""

    steps: int = setting(2000, "optimizer steps", label="Steps", low=1, high=MAX_STEPS, step=500)
    batch_size: int = setting(64, "images per step", label="Batch size", low=1, high=65536)
    # 1e-3 diverged in 6,000-step VAE and ModVAE runs on SynthFaces; 5e-4 ran clean (benchmarks/RESULTS.md)
    lr: float = setting(5e-4, "Adam learning rate", label="Learning rate", low=1e-8, high=1.0)
    lr_warmup_steps: int = setting(0, "steps of linear learning-rate warm-up from 0 to --lr", label="LR warm-up steps",
                                   low=0, high=MAX_STEPS)
    lr_decay: str = setting("constant", "the learning rate after the warm-up: constant, or cosine (down to 0 at the "
                                        "last step)", label="LR decay", choices=("constant", "cosine"))
    seed: int = setting(0, "seed of the weights, batches and sampling noise", label="Seed", low=0, high=MAX_SEED)
    device: str = setting("auto", "auto (CUDA if present), cpu, cuda, cuda:1, ..., mps", label="Device",
                          pattern=DEVICE_PATTERN, forms="auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps")
    log_every: int = setting(10, "steps between logged training losses", label="Log every", low=1, high=MAX_STEPS)
    val_every: int = setting(0, "steps between validations (0: at the end of every epoch)", label="Validate every",
                             low=0, high=MAX_STEPS)
    val_images: int = setting(512, "held-out images per validation", label="Validation images", low=1, high=100_000)
    checkpoint_every: int = setting(500, "steps between checkpoints", label="Checkpoint every", low=1, high=MAX_STEPS)
    sample_every: int = setting(500, "steps between sample pictures", label="Samples every", low=1, high=MAX_STEPS)
    threads: int = setting(0, "CPU threads (0: chosen from the machine's load and re-checked while training)",
                           label="CPU threads", low=0, high=1024)
    # step speed-ups (core.training.speed): auto = fast on CUDA, plain on CPU
    mode: str = setting("auto", "step speed-ups: auto (fast on CUDA), fast or plain", label="Speed-ups",
                        choices=("auto", "fast", "plain"), flag=None)
    compile: bool = setting(False, "torch.compile the network (about a minute up front)", label="Compile")


# The optional loss settings' values for families that give none (the family-dependent ones are None by default).
PLAIN_LOSS = {"beta": 1.0, "warmup_steps": 0, "dip_lambda_d": 100.0}

SECTIONS = {"arch": ArchConfig, "loss": LossConfig, "modvae": ModVAEConfig, "data": DataConfig, "train": TrainConfig}


@dataclass
class RunConfig:
    """Everything that defines a run; `config.json` of its folder. Unset family-dependent fields (None) take the
    model family's defaults when the config is built."""

    name: str
    model: str = setting("beta-vae", "model family", label="Model", choices=lambda: FAMILIES.names())
    arch: ArchConfig = field(default_factory=ArchConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    modvae: ModVAEConfig = field(default_factory=ModVAEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    command: str = ""  # a command line that recreates the run

    def __post_init__(self) -> None:
        if self.model in FAMILIES:
            for key, value in FAMILIES[self.model].defaults.items():
                section, name = key.split(".")
                if getattr(getattr(self, section), name) is None:
                    setattr(getattr(self, section), name, value)
        # a family that sets no value for an optional number leaves the plain default
        for name, value in PLAIN_LOSS.items():
            if getattr(self.loss, name) is None:
                setattr(self.loss, name, value)

    @property
    def family(self) -> Family:
        """The model family's registry entry."""
        return FAMILIES[self.model]

    @classmethod
    def from_options(cls, options: dict[str, Any], name: str | None = None) -> "RunConfig":
        """A validated config from `{"section.field": value}` (the CLI's parsed options, the Train page's form):
        the preset first, then the family's defaults, then every given value. Unknown keys are refused."""
        known = {s.key: s for s in all_settings()}
        unknown = set(options) - set(known)
        if unknown:
            raise ConfigError(f"unknown settings {sorted(unknown)}")
        model = options.get("model", cls.__dataclass_fields__["model"].default)
        known["model"].check(model)
        preset = options.get("arch.preset", ArchConfig().preset)
        known["arch.preset"].check(preset)
        config = cls(name=name or "unnamed", model=model, arch=dataclasses.replace(PRESETS[preset]),
                     loss=LossConfig(**_given(options, "loss")))
        for key, value in options.items():
            if "." in key and not key.startswith("loss."):
                known[key].check(value)  # before it is stored: a wrong type must not reach later checks
                section, attr = key.split(".")
                setattr(getattr(config, section), attr, value)
        config.command = command_line(config)
        return config.validate()

    def validate(self) -> "RunConfig":
        """Check every setting's type and range and the rules between settings; ConfigError names the field."""
        if not isinstance(self.name, str) or not RUN_NAME.fullmatch(self.name) or ".." in self.name:
            raise ConfigError(f"run name {self.name!r}: use letters, digits, '_', '-', '.' (no '/' or '..'), "
                              "at most 100 characters, starting with a letter or digit")
        check_section(self)
        for section, cls in SECTIONS.items():
            check_section(getattr(self, section), section)
        channels = self.arch.channels
        if len(channels) != 4 or not all(isinstance(c, int) and 0 < c <= MAX_CHANNELS for c in channels):
            raise ConfigError(f"arch.channels = {list(channels)!r}: need 4 channel counts from 1 to {MAX_CHANNELS} "
                              "(64 -> 4 px in four stride-2 steps)")
        if "arch.perspective_dim" in self.family.settings and self.arch.perspective_dim >= self.arch.latent_dim:
            raise ConfigError(f"arch.perspective_dim = {self.arch.perspective_dim}: must be below arch.latent_dim = "
                              f"{self.arch.latent_dim}, whose other dims are the appearance code (--perspective-dim)")
        batch, group = self.train.batch_size, self.modvae.group_size
        if self.family.grouped and batch > group and batch % group:
            raise ConfigError(f"train.batch_size = {batch}: {self.model} batches are made of whole groups of "
                              f"modvae.group_size = {group} images; use --batch-size {batch // group * group} or "
                              f"{(batch // group + 1) * group}, or another --group-size")
        if self.data.dataset not in ("synthfaces", "dsprites") and not self.data.root:
            raise ConfigError(f"dataset {self.data.dataset!r} needs --data-root pointing at its folder")
        if self.arch.cond_dim and not self.family.conditional:
            raise ConfigError(f"arch.cond_dim = {self.arch.cond_dim}: only a conditional model family (cvae) takes "
                              f"attributes as a condition; model {self.model!r} does not, so leave it at 0")
        if self.family.conditional and self.data.dataset == "folder" and not self.data.attributes_csv:
            raise ConfigError(f"model {self.model!r} is conditioned on the data set's binary attributes, and an image "
                              "folder has none without --attributes-csv: give one, or pick another model")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """config.json's text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """A validated config from parsed JSON. A config.json written before the decoder choice existed describes a
        plain decoder (today's default is film), so its weights still load."""
        if isinstance(data, dict) and isinstance(data.get("arch"), dict) and "decoder" not in data["arch"]:
            data = {**data, "arch": {**data["arch"], "decoder": "plain"}}
        return from_plain(cls, data, "config").validate()

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        """Read and validate a config.json; ConfigError names the file."""
        try:  # size, depth, number and UTF-8 limits: core.fileio; the fields are checked by from_dict below
            data = read_json(path, max_bytes=MAX_CONFIG_BYTES, finite=False,  # validate() names a non-finite setting
                             fix="fix it (python -m core train --help lists every setting) or copy a config.json "
                                 "from another run")
        except UntrustedFileError as e:
            raise ConfigError(str(e)) from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def all_settings() -> Iterator[Setting]:
    """Every setting of a run: the model, then each section's, in declaration order."""
    yield from settings_of(RunConfig)
    for section, cls in SECTIONS.items():
        yield from settings_of(cls, section)


def option_value(config: RunConfig, key: str) -> Any:
    """The value of setting `key` ("model" or "section.field") in `config`."""
    if "." not in key:
        return getattr(config, key)
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def command_line(config: RunConfig) -> str:
    """`python -m core train ...` naming every setting that differs from what the family and preset would give."""
    base = RunConfig(name=config.name, model=config.model)
    words = ["python", "-m", "core", "train", "--name", config.name]
    for s in all_settings():
        value = option_value(config, s.key)
        if s.flag is None or value == option_value(base, s.key) and s.key not in ("model",):
            continue
        if s.type is bool:
            words += [s.flag] if value else []
        else:
            words += [s.flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if config.train.mode != "auto":
        words.append(f"--{config.train.mode}")
    return shlex.join(words)


def _given(options: dict[str, Any], section: str) -> dict[str, Any]:
    """The options of one section, by field name, each checked before the dataclass is built."""
    known = {s.key: s for s in settings_of(SECTIONS[section], section)}
    out = {}
    for key, value in options.items():
        if key.startswith(section + "."):
            known[key].check(value)
            out[key.split(".", 1)[1]] = value
    return out
