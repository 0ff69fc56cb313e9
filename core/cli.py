"""`python -m core <command>`: train, resume, encode, list runs, preview data sets."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from core.config import (DATASETS, MODELS, PRESETS, RECONSTRUCTIONS, ArchConfig, ConfigError, DataConfig,
                         LossConfig, ModVAEConfig, RunConfig, TrainConfig, model_defaults)
from core.data import DataError
from core.runs.export import DTYPES
from core.runs.folder import Run, RunError, default_runs_dir, list_runs
from core.training.loop import Diverged


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a VAE / beta-VAE / ModVAE into a new run folder (or --resume one)")
    p.add_argument("--name", help="run folder name (default: <model>-<dataset>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint (other options but --steps are ignored)")
    p.add_argument("--model", choices=MODELS, default="beta-vae")
    p.add_argument("--dataset", choices=DATASETS, default="synthfaces")
    p.add_argument("--data-root", help="folder of celeba / lfw / folder data")
    p.add_argument("--attributes-csv", help="folder data set: CSV of file,attr1,attr2,...")
    p.add_argument("--data-seed", type=int, default=0, help="split seed for data sets without an official split")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--recon", choices=RECONSTRUCTIONS, default="bernoulli", help="reconstruction likelihood")
    p.add_argument("--beta", type=float, help="KL weight (default: 1 for vae/modvae, 4 for beta-vae)")
    p.add_argument("--warmup-steps", type=int, help="linear KL warm-up (default: 0, 500 for beta-vae)")
    p.add_argument("--capacity-max", type=float, default=0.0, help="nats; > 0 enables capacity annealing")
    p.add_argument("--capacity-steps", type=int, default=0)
    p.add_argument("--capacity-gamma", type=float, default=100.0)
    p.add_argument("--dims-per-factor", type=int, default=4, help="ModVAE latent block per factor")
    p.add_argument("--group-size", type=int, default=16, help="ModVAE images per one-factor group")
    p.add_argument("--clamp-weight", type=float, default=1.0, help="ModVAE weight of the clamp MSE")
    p.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    p.add_argument("--epochs", type=float, help="alternative to --steps: passes over the train split")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--plain", dest="mode", action="store_const", const="plain", default="auto",
                       help="plain fp32 eager steps (default on CPU); without it CUDA runs use bf16 autocast, "
                            "channels_last and fused Adam")
    speed.add_argument("--fast", dest="mode", action="store_const", const="fast",
                       help="the CUDA speed-ups on any device (on CPU usually slower)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (about a minute up front)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--val-every", type=int, default=0, help="validation interval in steps (default: every epoch)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--sample-every", type=int, default=500)


def config_from_args(a: argparse.Namespace, argv: list[str]) -> RunConfig:
    defaults = model_defaults(a.model)
    arch = PRESETS[a.preset]
    name = a.name or f"{a.model}-{a.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return RunConfig(
        name=name,
        model=a.model,
        arch=ArchConfig(arch.preset, arch.channels, arch.hidden, a.latent_dim, arch.norm),
        loss=LossConfig(a.recon, a.beta if a.beta is not None else defaults["beta"],
                        a.warmup_steps if a.warmup_steps is not None else defaults.get("warmup_steps", 0),
                        a.capacity_max, a.capacity_steps, a.capacity_gamma, a.clamp_weight),
        modvae=ModVAEConfig(a.dims_per_factor, a.group_size),
        data=DataConfig(a.dataset, a.data_root, a.attributes_csv, a.data_seed),
        train=TrainConfig(a.steps or 2000, a.batch_size, a.lr, a.seed, a.device, a.log_every, a.val_every,
                          512, a.checkpoint_every, a.sample_every, a.threads, a.mode, a.compile),
        command=shlex.join(["python", "-m", "core", *argv]),
    ).validate()


def cmd_train(a, argv, runs_dir: Path) -> int:
    """Under torchrun (`torchrun --nproc_per_node=N -m core train ...`) every process runs this."""
    from core.training import distributed
    from core.training import loop as training
    from core.data import load_dataset

    if a.resume:
        run = Run(runs_dir / a.resume)
        if not (run.path / "config.json").is_file():
            raise RunError(f"no run {a.resume!r} in {runs_dir}")
        device, start = run.config.train.device, lambda: training.resume(run, steps=a.steps)
    else:
        config = config_from_args(a, argv)
        dataset = load_dataset(config.data)
        if a.epochs is not None:
            from core.training.batches import make_batches

            batches = make_batches(dataset, config.model, config.train.batch_size, config.modvae.group_size, 0)
            config.train.steps = max(1, round(a.epochs * batches.steps_per_epoch))
        device, start = config.train.device, lambda: training.train(config, runs_dir, dataset=dataset)
    distributed.init(device)
    main = distributed.is_main()
    try:
        run = start()
    finally:
        distributed.shutdown()
    if main:
        print(f"{run.status()['state']}: {run.path}")
    return 0


def cmd_encode(a, argv, runs_dir: Path) -> int:
    from core.explore.encode import encode_run

    path = encode_run(Run(runs_dir / a.run), split=a.split, limit=a.limit, batch_size=a.batch_size, device=a.device)
    print(f"wrote {path}")
    return 0


def cmd_runs(a, argv, runs_dir: Path) -> int:
    runs = list_runs(runs_dir)
    if not runs:
        print(f"no runs in {runs_dir}")
    for run in runs:
        status = run.status()
        cfg = run.config
        print(f"{run.name:40s} {cfg.model:9s} beta={cfg.loss.beta:<5g} {cfg.data.dataset:11s} "
              f"{status.get('state', '?'):10s} step {status.get('step', 0)}/{cfg.train.steps}")
    return 0


def cmd_preview(a, argv, runs_dir: Path) -> int:
    from core.data.preview import preview

    print(f"wrote {preview(a.dataset, Path(a.out), a.data_root)}")
    return 0


def cmd_import_weights(a, argv, runs_dir: Path) -> int:
    from core.runs.legacy import import_weights

    like = Run(runs_dir / a.like)
    print(f"imported into {import_weights(a.file, like, a.name, runs_dir).path}")
    return 0


def cmd_export(a, argv, runs_dir: Path) -> int:
    from core.runs.export import export_weights, prune_samples

    run = Run(runs_dir / a.run)
    size = export_weights(run, a.dtype)
    print(f"wrote {run.checkpoint_path} ({a.dtype}, weights only, {size / 1e6:.1f} MB)")
    if a.prune_samples:
        print(f"removed {len(prune_samples(run))} older sample PNGs")
    return 0


def cmd_evaluate(a, argv, runs_dir: Path) -> int:
    from core.runs.labels import LabelError, load_labels
    from core.metrics.evaluate import FILE, evaluate_run
    from core.metrics.registry import parse_metrics
    from core.metrics.report import summary

    run = Run(runs_dir / a.run)
    doc = evaluate_run(run, parse_metrics(a.metrics), fast=a.fast, seed=a.seed, device=a.device, overrides=a.set,
                       progress=lambda message: print(message, flush=True))
    try:
        labels = load_labels(run)
    except LabelError as e:
        print(f"warning: {e}; dims are shown unlabelled", file=sys.stderr)
        labels = {}
    print(summary(doc, labels))
    print(f"wrote {run.path / FILE}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, help="where run folders live (default: checkpoints/)")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    e = sub.add_parser("encode", help="write the latent means of a run's data set to RUN/encodings/")
    e.add_argument("run")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    e.add_argument("--limit", type=int, help="encode at most this many images (a fixed random subset)")
    e.add_argument("--batch-size", type=int, default=512)
    e.add_argument("--device", default="auto")
    x = sub.add_parser("export", help="rewrite a stopped run's checkpoint as weights only (no optimizer state)")
    x.add_argument("run")
    x.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    x.add_argument("--prune-samples", action="store_true", help="keep only the last step's sample PNGs")
    ev = sub.add_parser("evaluate", help="disentanglement metrics, likelihood, reconstruction, attribute probes -> RUN/eval.json")
    ev.add_argument("run")
    ev.add_argument("--fast", action="store_true", help="about a tenth of the points or fewer: noisier, for tests and the dashboard")
    ev.add_argument("--metrics", help="comma-separated subset, e.g. mig,dci (default: all; a wrong name lists them)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--set", action="append", default=[], metavar="METRIC.SETTING=VALUE",
                    help="override one setting, e.g. dci.num_trees=50 (repeatable)")
    sub.add_parser("runs", help="list run folders")
    w = sub.add_parser("import-weights", help="import a legacy .pt/.pth state dict (tensors only, never code) as a new run")
    w.add_argument("file")
    w.add_argument("--like", required=True, metavar="RUN", help="existing run whose config.json the weights fit")
    w.add_argument("--name", required=True, help="name of the new run folder")
    v = sub.add_parser("preview", help="save a PNG grid of a data set (factor rows for ground-truth data)")
    v.add_argument("dataset", choices=DATASETS)
    v.add_argument("--out", default="preview.png")
    v.add_argument("--data-root")
    return parser


COMMANDS = {"train": cmd_train, "encode": cmd_encode, "runs": cmd_runs, "preview": cmd_preview,
            "import-weights": cmd_import_weights, "export": cmd_export,
            "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    runs_dir = a.runs_dir or default_runs_dir()
    try:
        return COMMANDS[a.command](a, argv, runs_dir)
    except (ConfigError, DataError, RunError, Diverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept (resume with --resume)", file=sys.stderr)
        return 130
