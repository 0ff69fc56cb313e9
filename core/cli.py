"""`python -m core <command>`: train, resume, encode, list runs, preview data sets."""
from __future__ import annotations

import argparse
import errno
import os
import re
import shlex
import sys
import time
from pathlib import Path

from torch import OutOfMemoryError

from core.config import DATASETS, ConfigError, DataConfig, RunConfig, all_settings, command_line
from core.data import DataError
from core.device import INFERENCE_BATCH, reuse_freed_memory
from core.models.family import FAMILIES
from core.runs.export import DTYPES
from core.fileio import UntrustedFileError
from core.runs.folder import RunError, default_runs_dir, find_run
from core.runs.summary import summaries
from core.training.loop import Diverged


def _train_parser(sub) -> None:
    """`train`'s options, one per setting of core.config (its flag, type, range and help), plus the CLI's own."""
    p = sub.add_parser("train", help="train a model into a new run folder (or --resume one)",
                       description="Every option's default is the model family's (see --model), else the one shown.")
    p.add_argument("--name", help="run folder name (default: <model>-<dataset>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint (other options but --steps "
                                                   "are ignored)")
    p.add_argument("--epochs", type=float, help="alternative to --steps: passes over the train split")
    for s in all_settings():
        if s.flag is None:
            continue
        options = s.spec.options()
        rule = "" if options else s.spec.rule()
        default = "" if s.default is None else f"default {s.default}"
        extra = "; ".join(filter(None, [default, rule]))
        help_text = s.spec.help + (f" ({extra})" if extra else "")
        if s.type is bool:
            p.add_argument(s.flag, dest=s.key, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            p.add_argument(s.flag, dest=s.key, type=s.type, choices=options, default=argparse.SUPPRESS,
                           metavar=None if options else s.name.split("_")[-1].upper(), help=help_text)
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--plain", dest="train.mode", action="store_const", const="plain", default=argparse.SUPPRESS,
                       help="plain fp32 eager steps (default on CPU); without it CUDA runs use bf16 autocast, "
                            "channels_last and fused Adam")
    speed.add_argument("--fast", dest="train.mode", action="store_const", const="fast", default=argparse.SUPPRESS,
                       help="the CUDA speed-ups on any device (on CPU usually slower)")


def config_from_args(a: argparse.Namespace) -> RunConfig:
    """The run `train`'s options describe (validated; --epochs is converted to steps by the caller)."""
    options = {k: v for k, v in vars(a).items() if k == "model" or "." in k}
    model = options.get("model", RunConfig.__dataclass_fields__["model"].default)
    dataset = options.get("data.dataset", DataConfig().dataset)
    return RunConfig.from_options(options, name=a.name or f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def cmd_train(a, argv, runs_dir: Path) -> int:
    """Under torchrun (`torchrun --nproc_per_node=N -m core train ...`) every process runs this."""
    from core.data import load_dataset
    from core.training import distributed
    from core.training import loop as training

    if a.resume:
        run = find_run(runs_dir, a.resume)
        device, start = run.config.train.device, lambda: training.resume(run, steps=vars(a).get("train.steps"))
    else:
        config = config_from_args(a)
        dataset = load_dataset(config.data)
        if a.epochs is not None:
            from core.training.batches import steps_for_epochs

            config.train.steps = steps_for_epochs(config, a.epochs, dataset)
            config.command = command_line(config)
        device, start = config.train.device, lambda: training.train(config, runs_dir, dataset=dataset)
    distributed.init(device)
    main = distributed.is_main()
    try:
        run = start()
    finally:
        distributed.shutdown()
    if main:
        state = run.status()["state"]
        print(f"{state}: {run.path}")
        if state == "finished" and os.environ.get("LATENTLAB_ENCODE_AFTER_TRAINING") != "0":
            _prepare_encodings(run, device)
    return 0


def _prepare_encodings(run, device: str) -> None:
    """The dashboard's default encodings, so the run's first visit does not wait for the encoder. The training
    is done whatever happens here: a failure is a warning naming the command that does it later."""
    from core.explore.encode import prepare_dashboard_encodings

    started = time.perf_counter()
    try:
        written = prepare_dashboard_encodings(run, device=device)
    except (OSError, ValueError, RuntimeError, DataError) as e:
        print(f"warning: the dashboard's encodings were not written ({' '.join(str(e).split())}); "
              f"`python -m core encode {shlex.quote(run.name)}` writes them", file=sys.stderr)
        return
    if written:
        print(f"encodings for the dashboard: {len(written)} files in {run.path / 'encodings'} "
              f"({time.perf_counter() - started:.1f} s)")


def cmd_encode(a, argv, runs_dir: Path) -> int:
    """`encode`: write the latent means of a run's data set split to RUN/encodings/ (without --split: the splits
    and sizes the dashboard's pages use)."""
    from core.explore.encode import encode_run, prepare_dashboard_encodings

    run = find_run(runs_dir, a.run)
    if a.split is None:
        paths = prepare_dashboard_encodings(run, device=a.device)
        print("\n".join(f"wrote {p}" for p in paths) or "the dashboard's encodings are up to date")
        return 0
    path = encode_run(run, split=a.split, limit=a.limit, batch_size=a.batch_size, device=a.device)
    print(f"wrote {path}")
    return 0


def cmd_runs(a, argv, runs_dir: Path) -> int:
    """`runs`: one line per run folder with its model, beta, data set, state and step; a broken folder is listed
    with its problem and never hides the others."""
    rows = summaries(runs_dir)
    if not rows:
        print(f"no runs in {runs_dir}")
    for r in rows:
        if r.model is None:
            print(f"{r.name:40s} BROKEN: {r.problem}")
            continue
        print(f"{r.name:40s} {r.model:9s} beta={r.beta:<5g} {r.dataset:11s} {r.state:10s} "
              f"step {r.step}/{r.total_steps}" + (f"  ({r.problem})" if r.problem else ""))
    return 0


def cmd_preview(a, argv, runs_dir: Path) -> int:
    """`preview`: save a PNG grid of a data set's images (factor sweeps first for ground-truth data)."""
    from core.data.preview import preview

    print(f"wrote {preview(a.dataset, Path(a.out), a.data_root)}")
    return 0


def cmd_import_weights(a, argv, runs_dir: Path) -> int:
    """`import-weights`: a legacy .pt/.pth state dict as a new run with the config of `--like`."""
    from core.runs.legacy import import_weights

    like = find_run(runs_dir, a.like)
    print(f"imported into {import_weights(a.file, like, a.name, runs_dir).path}")
    return 0


def cmd_export(a, argv, runs_dir: Path) -> int:
    """`export`: rewrite a run's checkpoint as weights only in `--dtype`, optionally pruning old sample PNGs."""
    from core.runs.export import export_weights, prune_samples

    run = find_run(runs_dir, a.run)
    size = export_weights(run, a.dtype)
    print(f"wrote {run.checkpoint_path} ({a.dtype}, weights only, {size / 1e6:.1f} MB)")
    if a.prune_samples:
        print(f"removed {len(prune_samples(run))} older sample PNGs")
    return 0


def cmd_evaluate(a, argv, runs_dir: Path) -> int:
    """`evaluate`: compute the chosen metrics into RUN/eval.json and print their summary table."""
    from core.metrics.evaluate import FILE, evaluate_run
    from core.metrics.registry import apply_overrides, default_settings, parse_metrics
    from core.metrics.report import summary
    from core.runs.labels import LabelError, load_labels
    from core.training.threads import ThreadGovernor

    metrics = parse_metrics(a.metrics)
    apply_overrides(default_settings(a.fast), a.set)  # a wrong metric or setting is named before the run is looked up
    run = find_run(runs_dir, a.run)
    # As many CPU threads as there are idle cores: on a loaded 2-core machine two threads of the attribute judge's
    # training took 6x the CPU time of one, most of it spinning.
    threads = ThreadGovernor()
    reuse_freed_memory()

    def progress(message: str) -> None:
        threads.recheck()
        print(message, flush=True)

    doc = evaluate_run(run, metrics, fast=a.fast, seed=a.seed, device=a.device, overrides=a.set, progress=progress)
    try:
        labels = load_labels(run)
    except LabelError as e:
        print(f"warning: {e}; dims are shown unlabelled", file=sys.stderr)
        labels = {}
    print(summary(doc, labels))
    print(f"wrote {run.path / FILE}")
    return 0


def cmd_verify(a, argv, runs_dir: Path) -> int:
    """`verify`: face verification from the run's latent codes and the baseline CNN -> RUN/verification.json."""
    from dataclasses import replace

    from core.metrics.verification import FILE, VerifySettings, verify_run
    from core.metrics.verification_tables import summary

    run = find_run(runs_dir, a.run)
    settings = VerifySettings.fast() if a.fast else VerifySettings()
    changes = {k: v for k, v in (("folds", a.folds), ("pairs", a.pairs), ("cnn_steps", a.cnn_steps)) if v is not None}
    doc = verify_run(run, replace(settings, **changes), fast=a.fast, seed=a.seed, device=a.device,
                     progress=lambda message: print(message, flush=True))
    print(summary(doc))
    print(f"wrote {run.path / FILE}")
    return 0


def family_table(markdown: bool = False) -> str:
    """The registered model families with their defaults and papers, as plain text or the README's Markdown table."""
    flags = {s.key: s.flag for s in all_settings()}
    rows = [(f"`{f.name}`" if markdown else f.name, f.title, f.summary,
             ", ".join(f"{flags[k]} {v:g}" for k, v in f.defaults.items()) or "-", f.reference) for f in FAMILIES]
    if markdown:
        lines = ["| `--model` | family | what it does | defaults | reference |", "|---|---|---|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    return "\n".join(f"{name:9s} {title:7s} {summary} (defaults: {defaults}; {ref})"
                     for name, title, summary, defaults, ref in rows)


def cmd_models(a, argv, runs_dir: Path) -> int:
    """`models`: the model families `train --model` accepts."""
    print(family_table(a.markdown))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `python -m core` argument parser: one subcommand per entry of COMMANDS."""
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, help="where run folders live (default: checkpoints/)")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    e = sub.add_parser("encode", help="write the latent means of a run's data set to RUN/encodings/")
    e.add_argument("run")
    e.add_argument("--split", choices=["train", "val", "test", "all"],
                   help="the split to encode (default: the splits and sizes the dashboard's pages use)")
    e.add_argument("--limit", type=int, help="with --split: encode at most this many images (a fixed random subset)")
    e.add_argument("--batch-size", type=int, default=INFERENCE_BATCH)
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
    vf = sub.add_parser("verify", help="face verification (same person or not?) from the latent codes, against an "
                                       "end-to-end CNN -> RUN/verification.json")
    vf.add_argument("run")
    vf.add_argument("--fast", action="store_true", help="fewer encoded images and training pairs, a 300-step CNN")
    vf.add_argument("--device", default="auto")
    vf.add_argument("--folds", type=int, help="person-disjoint folds (default 10; LFW's pairs.txt has its own)")
    vf.add_argument("--pairs", type=int, help="same-person pairs per fold, and as many different (default 300)")
    vf.add_argument("--cnn-steps", type=int, help="training steps of the baseline CNN, batch 64 (default 1500, "
                                                  "--fast 300; 0: no baseline)")
    vf.add_argument("--seed", type=int, default=0)
    sub.add_parser("runs", help="list run folders")
    m = sub.add_parser("models", help="list the model families (--model choices) with their defaults")
    m.add_argument("--markdown", action="store_true", help="as the README's table")
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
            "evaluate": cmd_evaluate, "models": cmd_models, "verify": cmd_verify}


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run its command; the exit status: 2 on a config, data, run or file error (bad input), 1 when
    the machine refuses (a file it may not write, a full disk, out of memory), 130 when interrupted. Every error is
    one line on stderr, `error: <what and where>: <what to do>`, never a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    runs_dir = a.runs_dir or default_runs_dir()
    try:
        return COMMANDS[a.command](a, argv, runs_dir)
    except (ConfigError, DataError, RunError, Diverged, UntrustedFileError) as e:
        _say(str(e))
        return 2
    except OSError as e:
        _say(os_error_message(e))
        return 1
    except (MemoryError, OutOfMemoryError):
        _say("out of memory: use a smaller --batch-size (or --limit), or --device cpu when the GPU is the one full")
        return 1
    except KeyboardInterrupt:
        _say("interrupted; a training run continues from its last checkpoint with --resume")
        return 130


def _say(message: str) -> None:
    """Print `message` on stderr as one line after "error: " (the CLI's one error format)."""
    print("error: " + " ".join(message.split()), file=sys.stderr)


def os_error_message(e: OSError) -> str:
    """An OSError as one sentence naming the file and the fix (a full disk, no permission, a read-only disk, ...)."""
    name = e.filename
    if name is not None and re.fullmatch(r"\..*\.tmp", Path(name).name):
        name = Path(name).parent  # the temp file of an atomic write: the folder is what matters
    where = f" ({name})" if name is not None else ""
    if e.errno == errno.ENOSPC:
        return (f"no space left on the disk{where}: free some space, or use --runs-dir (and LATENTLAB_CACHE) on "
                f"another disk, then run the command again; files written before stay intact")
    if e.errno == errno.EROFS:
        return f"read-only file system{where}: copy the runs folder to a writable disk and use --runs-dir"
    if isinstance(e, PermissionError):
        return (f"permission denied{where}: make it writable (chmod -R u+w on the run folder), or copy the run to "
                f"a folder of yours and use --runs-dir")
    return f"{e.strerror or e}{where}: check the path, its permissions and the free disk space"
