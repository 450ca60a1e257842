"""`gvs predict` and `gvs export`: the sentiment of any video, from a model bundle (or a RUNS folder)."""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

from gvs.core.cluster import EngineOptions, add_engine_arguments, check_engine_options
from gvs.core.command import positive_int
from gvs.core.errors import InputError
from gvs.core.vocabulary import VIDEO_EXTENSIONS
from preprocess.engine import BACKEND_HELP, BACKENDS, PRECISION_HELP
from preprocess.precision import PRECISIONS

DESCRIPTION = (
    "Say which class each video is (Positive, Neutral or Negative with VGAF's models; the bundle's own classes "
    "otherwise): windows over the whole video, each modality's model and the fusion per window, one verdict per "
    "video."
)
EPILOG = """\
inputs: video files, folders of videos (a VGAF root or split too), or a CSV video[,label] (paths relative to it;
labels name the bundle's classes).

outputs (in --out, default predictions/<first input's name>):
  predictions.csv   one row per video: status (done / flagged / failed), verdict, probabilities, share of windows
                    per class, flags, reason (a column per class of the bundle)
  windows.csv       one row per window: start_s, end_s, each modality's and the fused probabilities
  predictions.json  everything, with the bundle's manifest hash and the package version
  timelines/        one PNG per video: each class's probability over time, with thumbnails
  emotiw.zip        with --emotiw: EmotiW submission files (bundles of VGAF's three classes only)

examples:
  gvs predict ../shared/data/vgaf/Val/1_1.mp4                  with the last exported bundle
  gvs predict wedding.mp4 protest.mkv --model runs/demo/bundle
  gvs predict ../shared/data/vgaf/Test --model runs/demo --emotiw --out predictions/test
  gvs predict /nfs/videos --model /nfs/bundles/vgaf --engine ray --ray-address auto   on a Ray cluster
"""
EXPORT_DESCRIPTION = (
    "Write a model bundle: the modality models, the chosen fusion, the preprocessing parameters, "
    "the class names, the training data's size and metrics, and a manifest of sha256s."
)
EXPORT_EPILOG = """\
examples:
  gvs export --runs runs/demo --out bundles/demo                the default fusion (fc over the most modalities)
  gvs export --runs runs/vgaf --fusion soft-audio+pose+scene --out bundles/vgaf-soft
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs predict`."""
    parser.add_argument("inputs", nargs="+", type=Path, help="video files, folders or CSVs video[,label]")
    parser.add_argument(
        "--model",
        type=Path,
        help="a bundle folder or .zip from `gvs export`, or a RUNS folder (default: the last exported bundle)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: predictions/<first input's name>)")
    parser.add_argument(
        "--stride", type=positive_int, help="sampled frames between window starts (default: half a window, 6 of 12)"
    )
    parser.add_argument(
        "--pool",
        choices=("mean", "max"),
        default="mean",
        help="how window probabilities make the video's (default mean)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help=PRECISION_HELP,
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help=BACKEND_HELP,
    )
    parser.add_argument(
        "--emotiw", action="store_true", help="also write EmotiW submission files and their zip (VGAF's classes only)"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="with --engine ray: actors, each loading the bundle once (default: one per --cpus-per-worker CPUs of "
        "the cluster); locally one process predicts with every core",
    )
    add_engine_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs export`."""
    parser.add_argument("--runs", type=Path, required=True, help="runs folder with trained models and fusions")
    parser.add_argument(
        "--fusion", help="fusion folder name under RUNS/fusion/ (default: fc over the most modalities, else soft)"
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write (a .zip is written beside)")


def expand_inputs(
    inputs: list[Path], class_names: tuple[str, ...] | list[str], notes: dict[Path, str] | None = None
) -> tuple[list[tuple[Path, int | None]], dict[str, str]]:
    """(video path, label or None) for every video the inputs name, and {input: why nothing was taken}.

    Labels are indices into ``class_names`` (the bundle's classes). A CSV's labels must name one of them (else
    LabelFileError). A dataset folder's labels are translated by name (ignoring case); a video whose label the
    bundle does not know counts as unlabelled, and ``notes`` (when given) gets {video path: why} for it.
    """
    from preprocess.labels import discover, label_index

    index_of = {name.lower(): i for i, name in enumerate(class_names)}

    videos, skipped = [], {}
    for given in inputs:
        if given.is_dir():
            try:
                dataset = discover(given)
            except InputError as error:
                skipped[str(given)] = str(error)
                continue
            for clip in dataset.clips:
                name = None if clip.label is None else dataset.classes[clip.label]
                label = None if name is None else index_of.get(name.lower())
                if name is not None and label is None and notes is not None:
                    notes[clip.path] = (
                        f"label {name!r} of {given} is not a class of the bundle ({', '.join(class_names)}): "
                        "counted as unlabelled"
                    )
                videos.append((clip.path, label))
            skipped |= dataset.not_taken
        elif given.suffix.lower() == ".csv" and given.is_file():
            with given.open(newline="", encoding="utf-8-sig") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    label = (row.get("label") or "").strip()
                    videos.append(
                        (
                            (given.parent / row["video"].strip()).absolute(),
                            label_index(label, f"{given}:{line}", class_names) if label else None,
                        )
                    )
        else:  # a video (or something that is not one: decoding says so, for that video only)
            videos.append((given, None))
    return videos, skipped


def _summary(videos, out, skipped: dict[str, str], class_names: tuple[str, ...]) -> str:
    lines = [
        "| video | verdict | " + " | ".join(f"p {c}" for c in class_names) + " | windows | status |",
        "|---|---|" + "---|" * len(class_names) + "---|---|",
    ]
    for v in videos:
        probabilities = (
            " | ".join(f"{p:.2f}" for p in v.probabilities)
            if v.probabilities is not None
            else " | ".join("—" for _ in class_names)
        )
        lines.append(f"| {v.path.name} | {v.verdict or '—'} | {probabilities} | {len(v.windows)} | {v.status} |")
    counts = {s: sum(v.status == s for v in videos) for s in ("done", "flagged", "failed")}
    lines.append(
        f"\n{len(videos)} videos: {counts['done']} done, {counts['flagged']} flagged, {counts['failed']} failed"
    )
    for v in videos:
        if v.status == "failed":
            lines.append(f"  FAILED {v.reason}")
        elif v.flags:
            lines.append(f"  note   {v.path.name}: {'; '.join(v.flags)}")
    for path, why in skipped.items():
        lines.append(f"  not taken {path}: {why}")
    labelled = [v for v in videos if v.label is not None and v.label >= 0 and v.verdict]
    if labelled:
        right = sum(class_names[v.label] == v.verdict for v in labelled)
        lines.append(f"  accuracy on the {len(labelled)} labelled videos: {right / len(labelled):.3f}")
    lines.append(f"outputs: {out.videos_csv}, {out.windows_csv}, {out.json}, {out.timelines}/")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Predict every input video and write the outputs."""
    from .bundle import last_bundle, load_bundle
    from .outputs import write_outputs

    engine = EngineOptions.from_args(args)
    check_engine_options(engine)
    if engine.engine == "local" and (args.workers or 1) > 1:
        raise InputError("--workers needs --engine ray for gvs predict (locally one process uses every core)")
    model = args.model
    if model is None:
        model = last_bundle()
        if model is None:
            raise InputError(
                "no --model given and no bundle exported yet; run `gvs run` (it exports one) or "
                "`gvs export --runs RUNS --out BUNDLE`, or pass --model RUNS"
            )
        print(f"using the last exported bundle: {model}")
    bundle = load_bundle(model)
    notes: dict[Path, str] = {}
    videos, skipped = expand_inputs(args.inputs, tuple(bundle.class_names), notes)
    if not videos:
        raise InputError(f"no videos in {', '.join(map(str, args.inputs))} ({', '.join(VIDEO_EXTENSIONS)})")
    predict = _predict_on_ray if engine.engine == "ray" else _predict_here
    results, settings = predict(bundle, Path(model).absolute(), videos, args, engine)
    results = [_noted(video, notes.get(video.path)) for video in results]
    out = args.out or Path("predictions") / args.inputs[0].stem
    folder = write_outputs(out, results, bundle.modalities, bundle.summary(), settings, args.emotiw)
    print(_summary(results, folder, skipped, tuple(bundle.class_names)))
    return 0


def _predict_here(bundle, model: Path, videos: list, args: argparse.Namespace, engine: EngineOptions):
    """(VideoPredictions in input order, the predictor's settings), in this process."""
    from tqdm import tqdm

    from .predictor import Predictor

    predictor = Predictor(bundle, args.stride, args.pool, precision=args.precision, backend=args.backend)
    print(f"backbone precision: {predictor.precision}")
    results = []
    bar = tqdm(videos, unit="video", desc="predict", disable=args.quiet, dynamic_ncols=True)
    windows_bar = tqdm(unit="window", desc="windows", disable=args.quiet, dynamic_ncols=True, position=1, leave=False)
    try:
        for path, label in bar:
            results.append(predictor.predict_video(path, label, windows_bar))
            bar.set_postfix(failed=sum(r.status == "failed" for r in results), refresh=False)
    finally:
        windows_bar.close()
        bar.close()
    return results, predictor.settings()


def _predict_on_ray(bundle, model: Path, videos: list, args: argparse.Namespace, engine: EngineOptions):
    """(VideoPredictions in input order, the actors' settings) from a pool of Ray actors, each loading the bundle
    once; the bundle and the videos must be at the same path on every node."""
    import functools

    from tqdm import tqdm

    from gvs.core.cluster import ray_session, run_on_actors

    from .predictor import VideoPrediction

    factory = functools.partial(_predictor_on_node, model, args.stride, args.pool, args.precision, args.backend)
    items = [(index, path, label) for index, (path, label) in enumerate(videos)]
    results: list = [None] * len(items)
    precisions: set[str] = set()
    settings: dict = {}
    with (
        ray_session(engine) as ray,
        tqdm(total=len(items), unit="video", desc="predict", disable=args.quiet, dynamic_ncols=True) as bar,
    ):
        for (index, path, label), result in run_on_actors(ray, factory, items, engine):
            if isinstance(result, tuple):
                results[index], settings = result
                precisions.add(settings["precision"])
            else:  # its actor kept dying
                reason = f"{path}: worker failed: {type(result).__name__}: {result}"
                results[index] = VideoPrediction(
                    path, "failed", reason=reason, label=label, class_names=bundle.class_names
                )
            bar.update()
            bar.set_postfix(failed=sum(r is not None and r.status == "failed" for r in results), refresh=False)
    if precisions:
        print(f"backbone precision: {'; '.join(sorted(precisions))}")
    settings = dict(settings or {"pool": args.pool}, precision="; ".join(sorted(precisions)))
    return results, settings


def _predictor_on_node(model: Path, stride: int | None, pool: str, precision: str, backend: str = "auto"):
    """A Ray actor's predictor: (index, path, label) -> (VideoPrediction, the predictor's settings)."""
    from gvs.core.cluster import check_visible

    from .predictor import Predictor

    check_visible([model])
    predictor = Predictor(model, stride, pool, precision=precision, backend=backend)

    def predict(item: tuple[int, Path, int | None]):
        _, path, label = item
        return predictor.predict_video(path, label), predictor.settings()

    return predict


def _noted(video, note: str | None):
    """``video`` with ``note`` (why its label was dropped) among its flags: a done video becomes flagged."""
    if note is None:
        return video
    return replace(video, flags=[*video.flags, note], status="flagged" if video.status == "done" else video.status)


def run_export(args: argparse.Namespace) -> int:
    """Export a bundle and say where it is."""
    from gvs.core.workspace import BundleDir

    from .bundle import export_bundle

    folder = export_bundle(args.runs, args.out, args.fusion)
    print(f"bundle written to {folder} (and {BundleDir(folder).zip_path})")
    return 0
