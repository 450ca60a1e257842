"""`gvs preprocess` / `python -m preprocess`: extract the scene, pose, audio and face features of group videos."""

from __future__ import annotations

import argparse
from pathlib import Path

from gvs.core.cluster import check_engine_options
from gvs.core.command import add_engine_arguments, engine_options, positive_float, positive_int
from gvs.core.errors import Interrupted
from gvs.core.vocabulary import MODALITIES

from .config import AUDIO_BACKENDS, PRESETS, PreprocessConfig, preset
from .engine import BACKEND_HELP, BACKENDS, PRECISION_HELP
from .face_detector_names import FACE_DETECTORS, face_detector_help
from .precision import PRECISIONS

DESCRIPTION = __doc__
DEFAULTS = PreprocessConfig()  # what an option left out means (the `paper` preset's values)
DEMO_ROOT = Path("data/demo")

EPILOG = """\
sources:
  a VGAF root       split folders (Train/, Val/, Test/) of <clip>.mp4 with <Split>_labels.txt beside them
                    (header 'Vid_name Label', codes 1 Positive, 2 Neutral, 3 Negative); clips a label file
                    names but that are not on disk are counted and reported, not an error
  a CSV             columns video,label (label names or codes; video paths relative to the CSV)
  a video folder    unlabelled clips (split = folder name)

the cache (--cache):
  features/<modality>/<fingerprint>/<split>/<clip>.npz, one file per clip and modality. The fingerprint
  hashes every parameter, model file and package version the features depend on, so changed settings
  write to a new folder and never mix with old features. Re-running skips finished clips; files are
  written under a temporary name and renamed when complete, so an interrupted run leaves nothing that
  is later read as valid. Failed clips, and files found corrupt, are recomputed on the next run.
  One cache holds one dataset (CACHE/source.json); a run holds CACHE/.lock, so two runs never write
  the same cache at once.

examples:
  gvs demo                                           write the small demo dataset to data/demo
  gvs preprocess data/demo --cache cache/demo --workers 2
  gvs preprocess ../shared/data/vgaf --cache cache/vgaf --preset fast --only scene pose
  gvs preprocess ../shared/data/vgaf --cache cache/vgaf32 --precision float32   no bfloat16
  gvs preprocess /nfs/vgaf --cache /nfs/cache/vgaf --engine ray --ray-address auto   on a Ray cluster
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs preprocess` (and `python -m preprocess`)."""
    parser.add_argument(
        "source",
        help="dataset: VGAF root, CSV video,label, or video folder ('demo' writes the demo dataset, like `gvs demo`)",
    )
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="feature cache folder (default: cache)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="clips processed in parallel, one process (or Ray actor) each; each loads every model once "
        "(default 1; with --engine ray: one per --cpus-per-worker CPUs of the cluster)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MODALITIES,
        default=list(MODALITIES),
        help="extract only these modalities (default: all four)",
    )
    parser.add_argument("--splits", nargs="+", help="process only these splits (e.g. Val Test)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="paper",
        help="paper: the reference paper's settings (480x320 scene frames, pose input 368); "
        "fast: 240x160 scene frames and pose input 336, chosen to keep >= 95 %% of the paper preset's people and "
        ">= 90 %% of its faces (docs/presets.md)",
    )
    group = parser.add_argument_group("parameters (override the preset)")
    group.add_argument("--frame-step", type=positive_int, help="keep every Nth frame (paper: 10)")
    group.add_argument(
        "--frames", dest="n_frames", type=positive_int, help="frames kept per clip (paper: 12; fewer are zero-padded)"
    )
    group.add_argument(
        "--scene-size",
        nargs=2,
        type=positive_int,
        metavar=("WIDTH", "HEIGHT"),
        help="scene frame size (paper: 480 320)",
    )
    group.add_argument(
        "--scene-weights",
        help="ResNet-50 weights: auto (ImageNet if Keras can get them, else seeded "
        "random with a warning), imagenet, none, or a weights file",
    )
    group.add_argument(
        "--pose-size", dest="pose_input_size", type=positive_int, help="pose network input size (paper: 368)"
    )
    group.add_argument(
        "--pose-threshold", type=float, help=f"keypoint heatmap threshold (default {DEFAULTS.pose_threshold:g})"
    )
    group.add_argument(
        "--audio-backend",
        choices=AUDIO_BACKENDS,
        help="auto: OpenL3 when the openl3 package and its weights are installed, else the built-in log-mel "
        "embedding (the log says why)",
    )
    group.add_argument("--audio-hop", type=positive_float, help="seconds between audio embeddings (paper: 0.5)")
    group.add_argument(
        "--face-detector",
        choices=FACE_DETECTORS,
        help=face_detector_help(),
    )
    group.add_argument(
        "--face-every",
        type=positive_int,
        help=f"detect faces on every Nth sampled frame (default {DEFAULTS.face_every}); the frames between reuse the last detected "
        "frame's faces, scored on their own frame (docs/presets.md)",
    )
    group.add_argument(
        "--min-face",
        type=positive_int,
        help="ignore faces less than this many pixels tall in the source video frame (its own resolution, not "
        f"the {DEFAULTS.scene_width}-px scene frame): they are neither counted nor scored (default {DEFAULTS.min_face}; "
        "the paper's 40 keeps 0.76 of "
        "the faces a person sees)",
    )
    group.add_argument(
        "--face-upsample",
        type=int,
        help=f"hog/cnn upsampling passes (default {DEFAULTS.face_upsample}; 1 finds faces half as large, about 4x slower; mtcnn ignores it)",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=PRECISION_HELP,
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        help=BACKEND_HELP,
    )
    add_engine_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Preprocess ``args.source`` into ``args.cache`` and print the run summary."""
    if args.source == "demo":
        from .demo import make_demo

        print(f"demo dataset written to {make_demo(DEMO_ROOT)}")
        return 0
    from .pipeline import run_preprocess
    from .report import format_summary

    engine = engine_options(args)
    check_engine_options(engine)

    width, height = args.scene_size or (None, None)
    config = preset(
        args.preset,
        frame_step=args.frame_step,
        n_frames=args.n_frames,
        scene_width=width,
        scene_height=height,
        scene_weights=args.scene_weights,
        pose_input_size=args.pose_input_size,
        pose_threshold=args.pose_threshold,
        audio_backend=args.audio_backend,
        audio_hop=args.audio_hop,
        face_detector=args.face_detector,
        min_face=args.min_face,
        face_upsample=args.face_upsample,
        face_every=args.face_every,
        precision=args.precision,
        backend=args.backend,
    )
    try:
        summary = run_preprocess(
            args.source,
            args.cache,
            config,
            tuple(args.only),
            args.workers or 1,
            progress=not args.quiet,
            splits=tuple(args.splits) if args.splits else None,
            engine=engine,
        )
    except Interrupted as error:
        print(format_summary(error.summary))
        raise
    print(format_summary(summary))
    return 0
