"""Fuse the four modality models and ablate them: the whole chain, from videos to comparison tables.

    python run_ensemble.py                          demo: preprocess, train, fuse, ablate, print tables
    python run_ensemble.py DATASET                  the same on your data
    python run_ensemble.py --fusion fc --drop fer   fc fusion without the faces (FER) modality
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
stages (each skips finished work, so a re-run after an interruption resumes):
  1 dataset      DATASET (VGAF root, CSV video,label, or video folder); without it the demo dataset is
                 made in data/demo
  2 preprocess   features of every clip -> --cache (default cache/<dataset folder name>)
  3 train        one model per modality -> --runs (default runs/<dataset folder name>); all models share
                 RUNS/partition.json: train part, select part (early stopping), report part (the numbers)
  4 fuse         each model is run once over every clip, cut at its "hidden" and "probabilities" layers;
                 fusions are fitted on the train part, selected on the select part and reported on the
                 report part (Val for VGAF), which selection never saw. Tables: RUNS/fusion/comparison.*
  5 ablate       the chosen fusion (fc with --fusion all) on the full set and on every leave-one-out subset
                 (--ablation all: every subset): RUNS/ablation/<fusion>.md/.csv/.json and .png (one
                 confusion matrix per row)

fusions:
  hard      majority vote of the modalities' predicted classes; ties go to the tied class with the
            highest summed probability
  soft      mean of the modalities' probabilities
  weighted  weighted mean of the probabilities; --weights, or searched on the select part (highest
            accuracy, then lowest log-loss, on a 0.1 grid)
  fc        hidden vectors (standardised with train-part statistics) concatenated -> Dense + ReLU ->
            softmax(3), modality models frozen; early stopping on the select part
  vae       the same concatenation -> VAE with a 20-d latent (reconstruction + KL) -> classifier on the
            latent means; RUNS/fusion/vae-*/latents.png shows the latents (t-SNE) coloured by class
  all       every fusion, one comparison table (with each modality alone)

clips lacking a modality's features (its extraction failed) are left out of fusions over that modality;
the tables name them.
"""


def _weights(text: str) -> dict[str, float]:
    from ensemble.outputs import canonical_modality

    weights = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            weights[canonical_modality(name.strip())] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--weights: expected MODALITY=NUMBER, got {item!r}") from None
    return weights


def build_parser() -> argparse.ArgumentParser:
    from ensemble.ablation import ABLATION_MODES
    from ensemble.fusions import FUSIONS
    from preprocess.config import PRESETS

    parser = argparse.ArgumentParser(prog="python run_ensemble.py", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path,
                        help="VGAF root, CSV video,label or video folder (default: the demo dataset in data/demo)")
    parser.add_argument("--cache", type=Path, help="feature cache (default cache/<dataset folder name>)")
    parser.add_argument("--runs", type=Path, help="models, fusions and tables (default runs/<dataset folder name>)")
    parser.add_argument("--fusion", choices=[*FUSIONS, "all"], default="all",
                        help="which fusion to fit and ablate (default all: every fusion compared, fc ablated)")
    parser.add_argument("--drop", action="append", default=[], metavar="MODALITY",
                        help="leave a modality out of every fusion (repeatable; scene, pose, audio, faces; "
                        "'fer' = faces)")
    parser.add_argument("--weights", type=_weights, metavar="M=W,...",
                        help="weighted fusion weights, e.g. scene=0.4,pose=0.1,audio=0.3,faces=0.2 "
                        "(default: searched on the select part)")
    parser.add_argument("--ablation", choices=ABLATION_MODES, default="loo",
                        help="loo: full set + every leave-one-modality-out subset (default); all: every "
                        "non-empty subset; none: no ablation")
    parser.add_argument("--workers", type=int, default=1, help="preprocessing processes (default 1)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="preprocessing preset (see python -m preprocess --help; default paper)")
    parser.add_argument("--seed", type=int, default=0, help="partition, training and fusion seed (default 0)")
    parser.add_argument("--epochs", type=int, default=200, help="most epochs of fc/vae training (default 200)")
    parser.add_argument("--train-epochs", type=int, help="most epochs of each modality model (default: "
                        "modalities.train's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ensemble.chain import ChainSettings, run_chain
    from modalities.partition import PartitionError
    from modalities.train import StaleModelError
    from preprocess.cache import CacheError

    train_options = {"epochs": args.train_epochs} if args.train_epochs else {}
    settings = ChainSettings(dataset=args.dataset, cache=args.cache, runs=args.runs, fusion=args.fusion,
                             drop=args.drop, weights=args.weights, ablation=args.ablation, workers=args.workers,
                             preset=args.preset, seed=args.seed, train_options=train_options,
                             fusion_options={"epochs": args.epochs, "vae_epochs": args.epochs})
    try:
        tables = run_chain(settings)
    except (ValueError, FileNotFoundError, CacheError, StaleModelError, PartitionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n" + tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
