"""The `gvs` command: one subcommand per job, each a thin shell over a library function.

gvs run        the whole chain (what `python run_ensemble.py` does)
gvs demo       write the demo dataset
gvs preprocess videos -> feature cache
gvs train      one modality's model
gvs fuse       fusions, comparison and ablation tables
gvs explain    saliency and explanation figures
gvs export     a model bundle
gvs predict    the sentiment of any video
gvs report     one HTML page per video explaining its verdict
gvs serve      a web app: upload a video, get its verdict, timeline and report
gvs models     the model files and weights: status, fetch, import
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from gvs import __version__
from gvs.core.command import add_debug, guarded, positive_int, set_up_process
from gvs.core.errors import InputError
from gvs.core.vocabulary import canonical_modality

RUN_EPILOG = (
    """\
stages (each skips finished work, so a re-run after an interruption resumes):
  1 dataset      DATASET (VGAF root, CSV video,label, or video folder); without it the demo dataset is
                 made in data/demo
  2 preprocess   features of every clip -> --cache (default cache/<dataset folder name>)
  3 train        one model per modality -> --runs (default runs/<dataset folder name>); all models share
                 RUNS/partition.json: train part, select part (early stopping), report part (the numbers);
                 the select hold-out is drawn by whole source videos (VGAF <video>_<clip>, a CSV's group
                 column), so sibling clips never sit in train and select
  4 fuse         each model is run once over every clip, cut at its "hidden" and "probabilities" layers;
                 fusions are fitted on the train part, selected on the select part and reported on the
                 report part (Val for VGAF). Tables: RUNS/fusion/comparison.* with 95 % bootstrap intervals,
                 ECE, paired tests against the best single modality, and RUNS/fusion/reliability.png
  5 ablate       the chosen fusion (fc with --fusion all) on the full set and on every leave-one-out subset
                 (--ablation all: every subset): RUNS/ablation/<fusion>.md/.csv/.json and .png (one
                 confusion matrix per row); with --seeds, RUNS/seeds.md: mean ± std over seeds
  6, 7           export the bundle, predict one clip (skipped when training from a --cache alone)

RUNS/config.toml holds the resolved settings of the run; `gvs run --config RUNS/config.toml` repeats it
(options typed on the command line override the file).
"""
    + """
fusions:
  hard      majority vote of the modalities' predicted classes; ties go to the tied class with the
            highest summed probability
  soft      mean of the modalities' probabilities
  weighted  weighted mean of the probabilities; --weights, or searched on the select part (highest
            accuracy, then lowest log-loss, on a 0.1 grid)
  fc        hidden vectors (standardised with train-part statistics) and a presence mask concatenated ->
            Dense + ReLU -> softmax, modality models frozen; early stopping on the select part
  vae       the same concatenation -> VAE with a 20-d latent (reconstruction + KL) -> classifier on the
            latent means; RUNS/fusion/vae-*/latents.png shows the latents (t-SNE) coloured by class
  attention each modality's per-step outputs (12 steps, 0.4 s apart) attend to the other modalities' steps
            (cross-attention with a relative-time bias) -> pooled -> classifier; random steps dropped in
            training; RUNS/fusion/attention-*/attention.png shows where each modality looked
  lstm      per step, the modalities' projected outputs weighted by learned weights (alpha) and
            concatenated -> LSTM -> classifier
  all       every fusion, one comparison table (with each modality alone)

every fusion predicts every clip that has at least one modality: votes count the modalities a clip has,
the learned fusions take a presence mask and are trained with modality dropout; the tables count the clips missing
each modality. One cache holds one dataset and one runs folder one cache: a second dataset with the same
folder name is refused (pass --cache and --runs for it).

examples:
  gvs run                                    demo: preprocess, train, fuse, ablate, print tables
  gvs run --fusion fc --drop fer             fc fusion without the faces (FER) modality
  gvs run ../shared/data/vgaf --workers 2    the same on your data
  gvs run --seeds 0 1 2 3 4 --calibrate      five seeds (features reused), mean ± std, temperature scaling
  gvs run --protocol paper                   the reference paper's protocol (select and report on Val)
  gvs run --cache cache/vgaf --oof 5         train and fuse from an existing cache; fc/vae learn from
                                             5-fold out-of-fold hidden vectors
  gvs run --config exp.toml --seeds 3        an experiment file, one option overridden
"""
)
FUSE_EPILOG = """\
examples:
  gvs fuse --cache cache/demo --runs runs/demo                       every fusion compared, fc ablated
  gvs fuse --cache cache/demo --runs runs/demo --fusion weighted --weights scene=0.4,pose=0.2,audio=0.2,faces=0.2
"""
DEMO_EPILOG = """\
examples:
  gvs demo                    write data/demo (30 clips: Train 18, Val 9, Test 3), once
  gvs demo --out /tmp/demo --force
"""


def _weights(text: str) -> dict[str, float]:
    weights = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            weights[canonical_modality(name)] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected MODALITY=NUMBER, got {item!r}") from None
    return weights


def _add_fusion_arguments(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The fusion options of `gvs fuse` and `gvs run`; ``defaults`` False leaves unset options None (gvs run takes
    its defaults from ChainSettings, so an experiment file can set them)."""
    from ensemble.ablation import ABLATION_MODES
    from ensemble.fusions import FUSIONS

    def default(value):
        return value if defaults else None

    parser.add_argument(
        "--fusion",
        choices=[*FUSIONS, "all"],
        default=default("all"),
        help="which fusion to fit and ablate (default all: every fusion compared, fc ablated)",
    )
    parser.add_argument(
        "--drop",
        action="append",
        default=default([]),
        metavar="MODALITY",
        help="leave a modality out of every fusion (repeatable; scene, pose, audio, faces; 'fer' = faces)",
    )
    parser.add_argument(
        "--weights",
        type=_weights,
        metavar="M=W,...",
        help="weighted fusion weights, e.g. scene=0.4,pose=0.1,audio=0.3,faces=0.2 "
        "(default: searched on the select part)",
    )
    parser.add_argument(
        "--ablation",
        choices=ABLATION_MODES,
        default=default("loo"),
        help="loo: full set + every leave-one-modality-out subset (default); all: every "
        "non-empty subset; none: no ablation",
    )
    parser.add_argument("--seed", type=int, default=default(0), help="partition, training and fusion seed (default 0)")
    parser.add_argument(
        "--epochs", type=positive_int, default=default(200), help="most epochs of fc/vae training (default 200)"
    )
    parser.add_argument(
        "--calibrate",
        action="store_const",
        const=True,
        default=default(False),
        help="temperature-scale every model on the select part; tables show the ECE before and after",
    )
    parser.add_argument(
        "--bootstrap",
        type=positive_int,
        default=default(2000),
        help="resamples of the 95%% bootstrap intervals and paired tests (default 2000)",
    )
    parser.add_argument(
        "--oof",
        type=int,
        default=default(0),
        metavar="K",
        help="the learned fusions learn from K-fold out-of-fold outputs of the train part (K fold models "
        "per modality, under RUNS/oof/); 0 = off (default)",
    )


def _fusion_options(args: argparse.Namespace) -> dict:
    return {"seed": args.seed, "weights": args.weights, "epochs": args.epochs, "vae_epochs": args.epochs}


def _add_run(parser: argparse.ArgumentParser) -> None:
    from preprocess.config import PRESETS

    parser.add_argument(
        "dataset",
        nargs="?",
        type=Path,
        help="VGAF root, CSV video,label or video folder (default: the demo dataset in data/demo)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="feature cache (default cache/<dataset folder name>); without DATASET, train and fuse from this "
        "cache alone (no preprocessing)",
    )
    parser.add_argument("--runs", type=Path, help="models, fusions and tables (default runs/<dataset folder name>)")
    parser.add_argument(
        "--config",
        type=Path,
        help="experiment file (TOML; every option below; RUNS/config.toml of a run repeats it); options given "
        "here override it",
    )
    _add_fusion_arguments(parser, defaults=False)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="N",
        help="run the chain once per seed (features reused; RUNS/seed-<N>/) and add a mean ± std table",
    )
    parser.add_argument(
        "--protocol",
        choices=("ours", "paper"),
        help="ours (default): select on a group-wise hold-out of Train, report on Val; paper: train on Train, "
        "select and report on Val, as the reference paper (optimistic)",
    )
    parser.add_argument(
        "--select-fraction", type=float, help="share of Train held out (by whole groups) for selection (default 0.2)"
    )
    parser.add_argument("--workers", type=positive_int, help="preprocessing processes (default 1)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="preprocessing preset (see `gvs preprocess --help`; default paper)",
    )
    parser.add_argument(
        "--train-epochs", type=positive_int, help="most epochs of each modality model (default: `gvs train`'s)"
    )


RUN_FIELDS: tuple[str, ...] = (
    "dataset", "cache", "runs", "fusion", "drop", "weights", "ablation", "workers", "preset", "seeds", "protocol",
    "select_fraction", "oof", "calibrate", "bootstrap",
)  # fmt: skip


def _given_run_options(args: argparse.Namespace) -> dict:
    """The ChainSettings fields the command line set (options left out are None and come from the file or the
    defaults)."""
    if args.seed is not None and args.seeds is not None:
        raise InputError("give --seed N or --seeds N [N ...], not both")
    given = {name: getattr(args, name) for name in RUN_FIELDS if getattr(args, name) is not None}
    if args.seed is not None:
        given["seeds"] = [args.seed]
    if args.train_epochs is not None:
        given["train_options"] = {"epochs": args.train_epochs}
    if args.epochs is not None:
        given["fusion_options"] = {"epochs": args.epochs, "vae_epochs": args.epochs}
    return given


def _run(args: argparse.Namespace) -> int:
    from gvs.chain import run_chain
    from gvs.experiment import load_config, settings_from

    settings = settings_from(load_config(args.config) if args.config else {}, _given_run_options(args))
    if settings.dataset is not None and Path(settings.dataset).exists():  # absent: the chain trains from --cache
        _check_labelled(Path(settings.dataset))
    run_chain(settings)  # prints each stage, the tables and the prediction
    return 0


def _check_labelled(dataset: Path) -> None:
    """InputError before any preprocessing when ``dataset`` has no labelled clip (nothing could be trained)."""
    from preprocess.labels import discover

    found = discover(dataset)
    if found.clips and all(clip.label is None for clip in found.clips):
        raise InputError(
            f"{dataset}: none of its {len(found.clips)} videos has a label, so no model can be trained; give a VGAF "
            "root (<Split>_labels.txt beside the split folders) or a CSV video,label (to predict unlabelled videos, "
            "use `gvs predict`)"
        )


def _add_fuse(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", type=Path, required=True, help="feature cache the models were trained from")
    parser.add_argument("--runs", type=Path, required=True, help="runs folder with the trained modality models")
    _add_fusion_arguments(parser)


def _fuse(args: argparse.Namespace) -> int:
    from gvs.chain import kept_modalities, run_fusions

    kept = [m for m in kept_modalities(args.drop) if args.runs.joinpath(m).is_dir()]
    if not kept:
        raise InputError(
            f"{args.runs}: no trained modality models; run `gvs train MODALITY --cache {args.cache} "
            f"--runs {args.runs}` first"
        )
    print(
        run_fusions(
            args.cache,
            args.runs,
            kept,
            args.fusion,
            args.ablation,
            _fusion_options(args),
            calibrate=args.calibrate,
            bootstrap=args.bootstrap,
            oof=args.oof,
        )
    )
    return 0


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="where to write it (default data/demo)")
    parser.add_argument("--force", action="store_true", help="write it again even if it is complete")


def _demo(args: argparse.Namespace) -> int:
    from preprocess.demo import make_demo

    print(f"demo dataset written to {make_demo(args.out, force=args.force)}")
    return 0


def _own(description: str, epilog: str, add_arguments, run):
    return lambda: (description, epilog, add_arguments, run)


def _stage_command(module_name: str):
    """Loads a stage's command module only when that command is used (so `gvs --help` imports no TensorFlow)."""

    def load():
        module = importlib.import_module(module_name)
        return module.DESCRIPTION, module.EPILOG, module.add_arguments, module.run

    return load


# name -> (one-line help, loader of (description, epilog, add_arguments, run))
SUBCOMMANDS: dict[str, tuple[str, object]] = {
    "run": (
        "the whole chain on a dataset (default: the demo): preprocess, train, fuse, ablate",
        _own(
            "Preprocess, train the four modality models, fuse and ablate them; print the tables.",
            RUN_EPILOG,
            _add_run,
            _run,
        ),
    ),
    "demo": (
        "write the small demo dataset",
        _own("Write the demo dataset in the VGAF layout.", DEMO_EPILOG, _add_demo, _demo),
    ),
    "preprocess": ("videos -> feature cache", _stage_command("preprocess.cli")),
    "train": ("train one modality's model", _stage_command("modalities.cli")),
    "fuse": (
        "fit and compare fusions of trained models, ablate one",
        _own(
            "Fit fusions over the trained modality models; write comparison and ablation tables.",
            FUSE_EPILOG,
            _add_fuse,
            _fuse,
        ),
    ),
    "explain": ("saliency and explanation figures", _stage_command("saliency.cli")),
    "export": ("write a model bundle (models, fusion, parameters, manifest)", lambda: _export_command()),
    "predict": ("the sentiment of any video, window by window and per video", _stage_command("gvs.predict.cli")),
    "report": ("one HTML page per video: what drove its verdict", _stage_command("gvs.report.cli")),
    "serve": ("a web app: upload a video, get its verdict and report", _stage_command("gvs.serve.cli")),
    "models": ("list, check, fetch and import the model files and weights", _stage_command("gvs.models_cli")),
}


def _export_command():
    from gvs.predict import cli

    return cli.EXPORT_DESCRIPTION, cli.EXPORT_EPILOG, cli.add_export_arguments, cli.run_export


def build_parser(prog: str = "gvs", command: str | None = None) -> argparse.ArgumentParser:
    """The `gvs` parser; only ``command``'s options are loaded (all of them when None)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`gvs COMMAND --help` shows each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"gvs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, load) in SUBCOMMANDS.items():
        if command not in (None, name):
            commands.add_parser(name, help=summary)
            continue
        description, epilog, add_arguments, run = load()
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(sub)
        add_debug(sub)
        sub.set_defaults(run=run)
    return parser


def _file_like_option(argv: list[str]) -> str | None:
    """The first word before any ``--`` that starts with '-' but names a file or video (``-x.mp4``), which argparse
    would take for an option."""
    from gvs.core.vocabulary import VIDEO_EXTENSIONS

    for word in argv:
        if word == "--":
            return None
        named = Path(word).suffix.lower() in (*VIDEO_EXTENSIONS, ".csv") and not word.startswith("--")
        if word.startswith("-") and (named or Path(word).exists()):
            return word
    return None


def main(argv: list[str] | None = None, prog: str = "gvs") -> int:
    """Parse ``argv`` and run the chosen subcommand under the error guard."""
    set_up_process()  # before the subcommand's module is loaded
    argv = sys.argv[1:] if argv is None else argv
    command = next((word for word in argv if not word.startswith("-")), "")  # the first word names the command
    dashed = _file_like_option(argv)
    if dashed is not None:
        print(
            f"{prog} {command}: error: {dashed} starts with '-', so it reads as an option; to pass the file {dashed}, "
            f"put -- before it (`{prog} {command} -- {dashed}`) or write ./{dashed}",
            file=sys.stderr,
        )
        return 2
    args = build_parser(prog, command).parse_args(argv)
    return guarded(lambda: args.run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
