"""`gvs explain` / `python -m saliency`: saliency and explanation figures for one clip or a split's picked clips."""

from __future__ import annotations

import argparse

from gvs.core.command import positive_int
from gvs.core.vocabulary import MODALITIES

DESCRIPTION = (
    "Saliency maps and explanation figures for the trained modality models and fused models. Every "
    "figure is titled with the clip, its true label and the prediction with its probability."
)
EPILOG = """\
examples:
  gvs explain --cache cache/demo --runs runs/demo --clip Val/1_1 --out figures
  gvs explain --cache cache/demo --runs runs/demo --split Val --top 2 --out figures --modality pose audio fusion
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs explain` (and `python -m saliency`)."""
    parser.add_argument("--cache", required=True, help="feature cache folder written by `gvs preprocess`")
    parser.add_argument("--runs", default="runs", help="runs folder with the trained models (default: runs)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--clip", help="explain one clip, by key <split>/<clip> (e.g. Val/1_1)")
    which.add_argument(
        "--split",
        help="explain the --top most confident correct and --top most confidently wrong "
        "clips of a split (Train, Val, Test) or part (train, select, report, test); "
        "also draws the audio projection",
    )
    parser.add_argument("--top", type=positive_int, default=3, help="clips per pick with --split (default: 3)")
    parser.add_argument(
        "--modality",
        nargs="+",
        default=list(MODALITIES),
        choices=[*MODALITIES, "fer", "fusion"],
        help="which models to explain (default: the four modalities; add fusion for the share of "
        "attribution per modality of a fused model)",
    )
    parser.add_argument(
        "--fusion",
        help="fusion to explain with --modality fusion, by its folder name under "
        "RUNS/fusion/ (default: the fc fusion with the most modalities)",
    )
    parser.add_argument(
        "--method",
        choices=("smoothgrad", "vanilla"),
        default="smoothgrad",
        help="saliency for pose, audio and faces (default: smoothgrad); scene always shows "
        "vanilla, SmoothGrad and Grad-CAM",
    )
    parser.add_argument(
        "--smooth-samples", type=positive_int, default=16, help="noisy copies per SmoothGrad map (default: 16)"
    )
    parser.add_argument(
        "--projection",
        choices=("pca", "tsne"),
        default="pca",
        help="2-D projection of the audio hidden layer with --split (default: pca)",
    )
    parser.add_argument("--out", required=True, help="folder for the figures (OUT/<modality>/*.png)")


def run(args: argparse.Namespace) -> int:
    """Write the figures and print their paths."""
    from .explain import explain

    written = explain(
        args.cache,
        args.runs,
        args.out,
        args.modality,
        clip=args.clip,
        split=args.split,
        top=args.top,
        fusion=args.fusion,
        method=args.method,
        smooth_samples=args.smooth_samples,
        projection=args.projection,
    )
    for path in written:
        print(path)
    return 0
