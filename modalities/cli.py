"""`gvs train` / `python -m modalities.train` / `python -m modalities`: the options of modality training, parsed
and handed to modalities.train.train_modality."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gvs.core.command import positive_int, run_module
from gvs.core.errors import InputError
from gvs.core.vocabulary import MODALITIES
from gvs.core.workspace import RunFolder

from . import train
from .architectures import DEFAULT_SIZES, LEARNING_RATES
from .train import TRAIN_DEFAULTS, train_modality

DESCRIPTION = train.__doc__
EPILOG = """\
examples:
  gvs train pose --cache cache/demo --runs runs/demo
  gvs train scene --cache cache/vgaf --runs runs/vgaf --epochs 100 --patience 15
  gvs train audio --cache cache/vgaf --runs runs/vgaf --force          retrain even if an identical run exists
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs train` (and `python -m modalities.train`)."""
    parser.add_argument("modality", choices=MODALITIES, help="which modality's model to train")
    parser.add_argument("--cache", type=Path, required=True, help="feature cache written by `gvs preprocess`")
    parser.add_argument(
        "--runs",
        "--out",
        type=Path,
        default=Path("runs"),
        help="runs folder; the model goes to RUNS/<modality>, the partition to RUNS/partition.json",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"], help="most epochs (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=TRAIN_DEFAULTS["batch_size"], help="default %(default)s"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TRAIN_DEFAULTS["seed"],
        help="seeds weights, shuffling and the partition; same seed -> same metrics on CPU",
    )
    parser.add_argument(
        "--class-weight",
        choices=("balanced", "none"),
        default=TRAIN_DEFAULTS["class_weight"],
        help="weight training clips inversely to their class frequency (default %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=TRAIN_DEFAULTS["patience"],
        help="stop after this many epochs without improvement on the select part",
    )
    parser.add_argument(
        "--monitor",
        choices=("val_loss", "val_accuracy"),
        default=TRAIN_DEFAULTS["monitor"],
        help="select-part score for early stopping and the best checkpoint (default %(default)s)",
    )
    parser.add_argument(
        "--select-fraction",
        type=float,
        default=TRAIN_DEFAULTS["select_fraction"],
        help="fraction of the train split held out (stratified) for selection; with only one "
        "labelled split the same fraction is also held out for reporting",
    )
    parser.add_argument("--train-split", default=TRAIN_DEFAULTS["train_split"], help="default %(default)s")
    parser.add_argument(
        "--report-split",
        default=TRAIN_DEFAULTS["report_split"],
        help="split the reported numbers come from (never trained or selected on)",
    )
    parser.add_argument(
        "--protocol",
        choices=("ours", "paper"),
        default=TRAIN_DEFAULTS["protocol"],
        help="ours: select on a group-wise hold-out of the train split, report on the report split (default); "
        "paper: train on the whole train split, select and report on the report split (optimistic)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam learning rate (default per modality: "
        + ", ".join(
            f"{m} " + f"{rate:.0e}".replace("e-0", "e-") + (" decayed exponentially" if m == "audio" else "")
            for m, rate in LEARNING_RATES.items()
        )
        + ")",
    )
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=2.0,
        help="hold features in memory up to this size, else read them batch by batch",
    )
    parser.add_argument("--force", action="store_true", help="retrain even if an identical run exists")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    sizes = parser.add_argument_group("model sizes (defaults: the reference paper)")
    for name in dict.fromkeys(n for modality_sizes in DEFAULT_SIZES.values() for n in modality_sizes):
        users = {m: s[name] for m, s in DEFAULT_SIZES.items() if name in s}
        sample = next(iter(users.values()))
        sizes.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(sample[0] if isinstance(sample, tuple) else sample),
            nargs="+" if isinstance(sample, tuple) else None,
            default=None,
            help="default " + ", ".join(f"{m} {v}" for m, v in users.items()) + _SIZE_HELP.get(name, ""),
        )


_SIZE_HELP = {
    "heads": " (parallel ConvLSTM2D heads)",
    "filters": " (filters per ConvLSTM2D head)",
    "reduce_channels": " (1x1 conv channels before the heads; 0 = paper: ConvLSTM2D on all 2048 channels)",
    "kernel": " (convolution kernel size)",
    "l2": " (L2 penalty: scene classifier; pose BiLSTM and classifier)",
    "units": " (LSTM units per direction)",
    "pool": " (max-pool size after each Conv1D block)",
    "dropout": " (dropout after each Conv1D block)",
    "conv_filters": " (filters of each Conv1D block)",
    "lstm_units": " (units of each BiLSTM)",
    "dense": " (units of the hidden Dense layer)",
    "bn_momentum": " (batch-norm moving-average momentum)",
}


def run(args: argparse.Namespace) -> int:
    """Train ``args.modality`` and print its scores per part."""
    values = vars(args)
    options = {name: values[name] for name in TRAIN_DEFAULTS}
    for name in dict.fromkeys(n for s in DEFAULT_SIZES.values() for n in s):
        if values[name] is not None:
            if name not in DEFAULT_SIZES[args.modality]:
                raise InputError(f"--{name.replace('_', '-')} does not apply to {args.modality}")
            options[name] = tuple(values[name]) if isinstance(values[name], list) else values[name]
    out = train_modality(
        args.modality,
        args.cache,
        args.runs,
        force=args.force,
        verbose=0 if args.quiet else 2,
        max_memory_gb=args.max_memory_gb,
        **options,
    )
    metrics = json.loads(RunFolder(out).metrics.read_text())
    for part in ("train", "select", "report"):
        m = metrics[part]
        if m.get("n"):
            print(
                f"{args.modality} {part:6s} ({m['split']}): n={m['n']} accuracy={m['accuracy']:.3f} "
                f"macro_f1={m['macro_f1']:.3f}"
            )
    print(f"outputs: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m modalities.train` (and ``python -m modalities``): the same as `gvs train`; the entry point calls
    gvs.core.command.set_up_process before it imports this module."""
    return run_module("python -m modalities.train", DESCRIPTION, EPILOG, add_arguments, run, argv)
