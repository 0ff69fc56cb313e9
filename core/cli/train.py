"""`train` and `encode`: the training command (every setting of core.config a flag), and the latent means the
dashboard reads, written when a run finishes."""
from __future__ import annotations

import argparse
import faulthandler
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from core import recipes
from core.config import DataConfig, RunConfig, all_settings, command_line
from core.data import DataError
from core.runs.folder import find_run


def add_train_parser(sub) -> None:
    """`train`'s options, one per setting of core.config (its flag, type, range and help), plus the CLI's own."""
    p = sub.add_parser("train", help="train a model into a new run folder (or --resume one)",
                       description="Every option's default is the model family's (see --model), else the one shown.")
    p.add_argument("--name", help="run folder name (default: <model>-<dataset>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint (other options but --steps "
                                                   "are ignored)")
    p.add_argument("--epochs", type=float, help="alternative to --steps: passes over the train split")
    p.add_argument("--recipe", choices=recipes.choices(), default=recipes.AUTO,
                   help="a measured bundle of settings for a kind of data; auto: the data set's ("
                        + "; ".join(f"{r.name} for {', '.join(r.datasets)}: {r.summary}" for r in recipes.RECIPES)
                        + "), none: the family's own defaults. Options you give win over the recipe's "
                          "(default auto)")
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
    given = {k: v for k, v in vars(a).items() if k == "model" or "." in k}
    dataset = given.get("data.dataset", DataConfig().dataset)
    options = recipes.with_recipe(given, a.recipe, dataset)
    model = options.get("model", RunConfig.__dataclass_fields__["model"].default)
    return RunConfig.from_options(options, name=a.name or f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def cmd_train(a, argv, runs_dir: Path) -> int:
    """Under torchrun (`torchrun --nproc_per_node=N -m core train ...`) every process runs this."""
    # `kill -USR1 PID` prints where every thread of a training process is, without stopping it: how a run that
    # seems stuck (e.g. one rank waiting in a collective) is diagnosed
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (OSError, ValueError):
        pass  # stderr is not a file (captured in-process, as under pytest): nowhere to print the stacks
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
