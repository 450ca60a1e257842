"""`gvs predict` and `gvs export`: the sentiment of any video, from a model bundle (or a RUNS folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gvs.core.cluster import EngineOptions, check_engine_options
from gvs.core.command import add_engine_arguments, add_people_arguments, engine_options, positive_int
from gvs.core.errors import InputError, Interrupted
from gvs.core.vocabulary import VIDEO_EXTENSIONS
from gvs.predict.inputs import expand_inputs
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
  videos/           one JSON record per video, written the moment it is predicted
  timelines/        one PNG per video: each class's probability over time, with thumbnails
  run.json          the run manifest: which videos are complete, with which bundle and options
  emotiw.zip        with --emotiw: EmotiW submission files (bundles of VGAF's three classes only)
each video is written as soon as it is predicted; a re-run into the same --out skips the videos already predicted
with the same bundle and options (--force predicts them again); two runs into one --out at once are refused.
files are named after each video's file name without the extension (d1/clip, d2/clip where two share one).

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
        "--force", action="store_true", help="predict every video again, even those --out holds already"
    )
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
        "--ood-threshold",
        type=float,
        metavar="F",
        help="familiarity (0-1) below which a window or video is flagged unlike the training data (default: the "
        "bundle's, the 1st percentile of its select part; see docs/predict.md)",
    )
    parser.add_argument(
        "--emotiw", action="store_true", help="also write EmotiW submission files and their zip (VGAF's classes only)"
    )
    add_people_arguments(parser)
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


def _summary(run, videos: list, skipped: dict[str, str]) -> str:
    """The table of ``videos`` (a PredictionRun's), notes, what was not taken, kept or removed, the files."""
    out, class_names = run.folder, run.class_names
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
        name = run.names.get(v.path, v.path.stem)  # unique per input (d1/clip, d2/clip), as the files are named
        lines.append(f"| {name} | {v.verdict or '—'} | {probabilities} | {len(v.windows)} | {v.status} |")
    counts = {s: sum(v.status == s for v in videos) for s in ("done", "flagged", "failed")}
    lines.append(
        f"\n{len(videos)} videos: {counts['done']} done, {counts['flagged']} flagged, {counts['failed']} failed"
    )
    for v in videos:
        if v.status == "failed":
            lines.append(f"  FAILED {v.reason}")
        elif v.flags:
            lines.append(f"  note   {run.names.get(v.path, v.path.stem)}: {'; '.join(v.flags)}")
    for path, why in skipped.items():
        lines.append(f"  not taken {path}: {why}")
    labelled = [v for v in videos if v.label is not None and v.label >= 0 and v.verdict]
    if labelled:
        right = sum(class_names[v.label] == v.verdict for v in labelled)
        lines.append(f"  accuracy on the {len(labelled)} labelled videos: {right / len(labelled):.3f}")
    if run.reused:
        lines.append(
            f"  kept   {run.reused} videos {out.root} holds already, predicted with this bundle and these options "
            "(--force predicts them again)"
        )
    if run.removed:
        lines.append(f"  removed the outputs of {len(run.removed)} videos of an earlier run that are not inputs now")
    if run.manifest.note:
        lines.append(f"  note   {run.manifest.note}")
    lines.append(f"outputs: {out.videos_csv}, {out.windows_csv}, {out.json}, {out.timelines}/, {out.manifest}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Predict every input video, writing each one's outputs as it finishes; exit 1 when not one succeeded."""
    from gvs.core.workspace import PredictionsDir

    from .batch import PredictionRun, unique_inputs
    from .bundle import last_bundle, load_bundle

    engine = engine_options(args)
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
    for note in bundle.notes():  # the demo banner; no familiarity data
        print(f"note: {note}")
    notes: dict[Path, str] = {}
    videos, skipped = expand_inputs(args.inputs, tuple(bundle.class_names), notes)
    videos, repeats = unique_inputs(videos)
    skipped |= {str(path): "listed again: predicted once" for path in repeats}
    if not videos:
        raise InputError(f"no videos in {', '.join(map(str, args.inputs))} ({', '.join(VIDEO_EXTENSIONS)})")
    folder = PredictionsDir(args.out or Path("predictions") / args.inputs[0].stem)
    if folder.root.exists() and not folder.root.is_dir():
        raise InputError(f"--out {folder.root} is a file; give a folder (it is made if missing)")
    options = {
        "stride": args.stride,
        "pool": args.pool,
        "precision": args.precision,
        "backend": args.backend,
        "ood_threshold": args.ood_threshold,
        "people": args.people,
        "blur_faces": args.blur_faces,
    }
    with folder.lock():
        run = PredictionRun(folder, bundle, videos, options, notes, args.force, args.blur_faces)
        try:
            if engine.engine == "ray":
                _predict_on_ray(run, Path(model).absolute(), args, engine)
            else:
                _predict_here(run, bundle, args)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; {run.progress()}; re-run to resume") from None
        results = run.finish(args.emotiw)
    print(_summary(run, results, skipped))
    if all(v.status == "failed" for v in results):
        print(f"error: not one of the {len(results)} videos could be predicted (reasons above)", file=sys.stderr)
        return 1
    return 0


def _predict_here(run, bundle, args: argparse.Namespace) -> None:
    """Predict the videos ``run`` has still to do in this process, writing each as it finishes."""
    from .batch import predict_locally
    from .predictor import Predictor

    def make_predictor():
        predictor = Predictor(
            bundle,
            args.stride,
            args.pool,
            precision=args.precision,
            backend=args.backend,
            ood_threshold=args.ood_threshold,
            people=args.people,
        )
        print(f"backbone precision: {predictor.precision}")
        return predictor

    predict_locally(run, make_predictor, args.quiet)


def _predict_on_ray(run, model: Path, args: argparse.Namespace, engine: EngineOptions) -> None:
    """Predict the videos ``run`` has still to do on a pool of Ray actors, each loading the bundle once, writing
    each as it comes back; the bundle and the videos must be at the same path on every node."""
    import functools

    from tqdm import tqdm

    from gvs.engine.ray_pool import ray_session, run_on_actors

    from .predictor import VideoPrediction

    items = run.todo()
    if not items:
        return
    factory = functools.partial(
        _predictor_on_node, model, args.stride, args.pool, args.precision, args.backend, args.ood_threshold, args.people
    )
    precisions: set[str] = set()
    failed = 0
    with (
        ray_session(engine) as ray,
        tqdm(total=len(items), unit="video", desc="predict", disable=args.quiet, dynamic_ncols=True) as bar,
    ):
        for (index, path, label), result in run_on_actors(ray, factory, items, engine):
            if isinstance(result, tuple):
                video, settings = result
                precisions.add(settings["precision"])
                run.set_settings(dict(settings, precision="; ".join(sorted(precisions))))
            else:  # its actor kept dying
                reason = f"{path}: worker failed: {type(result).__name__}: {result}"
                video = VideoPrediction(path, "failed", reason=reason, label=label, class_names=run.class_names)
            run.add(index, video)
            failed += video.status == "failed"
            bar.update()
            bar.set_postfix(failed=failed, refresh=False)
    if precisions:
        print(f"backbone precision: {'; '.join(sorted(precisions))}")


def _predictor_on_node(
    model: Path,
    stride: int | None,
    pool: str,
    precision: str,
    backend: str = "auto",
    ood_threshold: float | None = None,
    people: bool = True,
):
    """A Ray actor's predictor: (index, path, label) -> (VideoPrediction, the predictor's settings)."""
    from gvs.engine.ray_pool import check_visible

    from .predictor import Predictor

    check_visible([model])
    predictor = Predictor(
        model, stride, pool, precision=precision, backend=backend, ood_threshold=ood_threshold, people=people
    )

    def predict(item: tuple[int, Path, int | None]):
        _, path, label = item
        return predictor.predict_video(path, label), predictor.settings()

    return predict


def run_export(args: argparse.Namespace) -> int:
    """Export a bundle and say where it is."""
    from gvs.core.workspace import BundleDir

    from .bundle import export_bundle

    folder = export_bundle(args.runs, args.out, args.fusion)
    print(f"bundle written to {folder} (and {BundleDir(folder).zip_path})")
    return 0
