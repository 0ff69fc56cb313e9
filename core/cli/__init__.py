"""`python -m core <command>`: train, resume, encode, list runs, preview data sets, evaluate, verify."""
from __future__ import annotations

import argparse
import errno
import re
import sys
from pathlib import Path

from torch import OutOfMemoryError

from core.cli.commands import (cmd_evaluate, cmd_export, cmd_import_weights, cmd_models, cmd_preview, cmd_runs,
                               cmd_verify, family_table)
from core.cli.train import add_train_parser, cmd_encode, cmd_train, config_from_args
from core.config import DATASETS, ConfigError
from core.data import DataError
from core.device import INFERENCE_BATCH
from core.fileio import UntrustedFileError
from core.runs.export import DTYPES
from core.runs.folder import RunError, default_runs_dir
from core.training.failures import Diverged

__all__ = ["COMMANDS", "build_parser", "config_from_args", "family_table", "main", "os_error_message"]


def build_parser() -> argparse.ArgumentParser:
    """The `python -m core` argument parser: one subcommand per entry of COMMANDS."""
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, help="where run folders live (default: checkpoints/)")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
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
