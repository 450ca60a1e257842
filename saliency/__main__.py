"""python -m saliency: draw saliency and explanation figures for one clip or for the picked clips of a split."""
from __future__ import annotations

import argparse
import os
import sys

from preprocess.cache import CacheError

from .explain import MODALITIES, ExplainError, explain


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m saliency",
        description="Saliency maps and explanation figures for the trained modality models (RUNS/<modality>/"
                    "model.keras) and fused models (RUNS/fusion/<name>/model.keras). Every figure is titled with "
                    "the clip, its true label and the prediction with its probability.")
    parser.add_argument("--cache", required=True, help="feature cache folder written by `python -m preprocess`")
    parser.add_argument("--runs", default="runs", help="runs folder with the trained models and predictions.csv "
                                                       "(default: runs)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--clip", help="explain one clip, by key <split>/<clip> (e.g. Val/1_1)")
    which.add_argument("--split", help="explain the --top most confident correct and --top most confidently wrong "
                                       "clips of a split (Train, Val, Test) or part (train, select, report, test), "
                                       "read from each model's predictions.csv; also draws the audio projection")
    parser.add_argument("--top", type=int, default=3, help="clips per pick with --split (default: 3)")
    parser.add_argument("--modality", nargs="+", default=list(MODALITIES), choices=list(MODALITIES) + ["fusion"],
                        help="which models to explain (default: the four modalities; add fusion for the share of "
                             "attribution per modality of a fused model)")
    parser.add_argument("--fusion", help="folder name under RUNS/fusion/ to explain with --modality fusion "
                                         "(default: the fc fusion with the most modalities)")
    parser.add_argument("--method", choices=("smoothgrad", "vanilla"), default="smoothgrad",
                        help="saliency for pose, audio and faces (default: smoothgrad); scene always shows "
                             "vanilla, SmoothGrad and Grad-CAM")
    parser.add_argument("--smooth-samples", type=int, default=16, help="noisy copies per SmoothGrad map (default: 16)")
    parser.add_argument("--projection", choices=("pca", "tsne"), default="pca",
                        help="2-D projection of the audio hidden layer with --split (default: pca)")
    parser.add_argument("--out", required=True, help="folder for the figures (OUT/<modality>/*.png)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    arguments = parse_arguments(argv)
    try:
        written = explain(arguments.cache, arguments.runs, arguments.out, arguments.modality, clip=arguments.clip,
                          split=arguments.split, top=arguments.top, fusion=arguments.fusion, method=arguments.method,
                          smooth_samples=arguments.smooth_samples, projection=arguments.projection)
    except (ExplainError, CacheError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
