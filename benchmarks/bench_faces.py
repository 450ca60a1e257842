"""Benchmark face detectors against the hand-counted faces of the shared clips (tests/data/face_counts.json).

    .venv/bin/python benchmarks/bench_faces.py [--source ../shared/data/vgaf] [--variants NAME ...] [--repeat 2]
        [--stage] [--all]

Per detector variant: recall (matched hand boxes / counted faces, and for faces >= 24 px tall), false positives
(detections matching no counted face and no "unsure" box; rule in preprocess/face_matching.py: each box's centre
inside the other), clips where it finds a face among the clips with counted faces, milliseconds per frame and
seconds per clip (the 12 sampled frames; median and mean over the clips, after one warm-up clip per variant).
Recall is scored on the counted frames (0, 4, 8, 11 of each clip). All variants run in one process and take turns
clip by clip, each clip starting with a different one, so that other jobs on shared cores slow every variant
alike: only figures of the same run compare. Slow variants (dlib CNN on a CPU: ~6 s a frame; only with --all or
--variants) run on the counted frames only and their s/clip is s/frame x 12. ``--repeat`` runs the whole table
that many times; ``--stage`` also times the whole default face stage (detection, alignment, FER) per clip.

Candidates whose network ships inside a pip package: ``yuface`` (libfacedetection, compiled into the wheel) and
OpenCV's Haar cascade (an XML file in opencv-python). MediaPipe's BlazeFace is not here: the mediapipe wheels that
still carry its .tflite files (<= 0.10.21) pin protobuf < 5 and numpy < 2, which TensorFlow 2.20 cannot share an
environment with, and the later ones (0.10.30 on, 1.x) ship no face model (the Tasks API downloads it).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import REPO, use_shared_models

use_shared_models()

from preprocess import faces  # noqa: E402
from preprocess.config import PreprocessConfig  # noqa: E402
from preprocess.decode import decode_clip  # noqa: E402
from preprocess.face_detector_names import detect_width  # noqa: E402
from preprocess.face_matching import Tally, boxes_xywh, load_face_counts, score_frame  # noqa: E402
from preprocess.faces import FaceExtractor, find_faces  # noqa: E402

COUNTS = REPO / "tests" / "data" / "face_counts.json"


@dataclass(frozen=True)
class Variant:
    """One detector setting: find_faces arguments, and whether it is too slow to run on every frame."""

    detector: str  # a --face-detector choice, or "haar" (OpenCV's frontal-face cascade, benchmark only)
    min_size: int
    detect_width: int
    upsample: int = 0
    slow: bool = False
    threshold: float | None = None  # yuface's score threshold (None: faces.YUFACE_THRESHOLD)
    extra: bool = False  # run only when named or with --all

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """Boxes (F, 4) ``(top, right, bottom, left)`` in source pixels per frame of (n, H, W, 3) RGB uint8."""
        if self.detector == "haar":
            return [_haar(frame, self.min_size, self.detect_width) for frame in frames]
        chosen = faces.YUFACE_THRESHOLD
        faces.YUFACE_THRESHOLD = chosen if self.threshold is None else self.threshold
        try:
            found = find_faces(frames, self.detector, self.min_size, self.detect_width, self.upsample)
        finally:
            faces.YUFACE_THRESHOLD = chosen
        return [f.boxes for f in found]


def _haar(frame: np.ndarray, min_size: int, detect_width: int) -> np.ndarray:
    """OpenCV's Haar frontal-face cascade (the file inside opencv-python) on one (H, W, 3) RGB frame."""
    import cv2

    if not hasattr(_haar, "cascade"):
        _haar.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    height, width = frame.shape[:2]
    scale = min(1.0, detect_width / width)
    gray = cv2.cvtColor(cv2.resize(frame, (round(width * scale), round(height * scale))), cv2.COLOR_RGB2GRAY)
    side = max(1, round(min_size * scale))
    found = _haar.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    x, y, w, h = (np.asarray(found, np.float64).reshape(-1, 4) / scale).T
    return np.round(np.stack([y, x + w, y + h, x], axis=1)).astype(np.int32)


DEFAULT = PreprocessConfig()
VARIANTS: dict[str, Variant] = {
    "hog up0 min 40 (old)": Variant("hog", 40, 1280, extra=True),
    "hog up1 min 28": Variant("hog", 28, 1280, upsample=1, slow=True),
    "cnn up0 min 28": Variant("cnn", 28, 1280, slow=True, extra=True),
    "haar min 28": Variant("haar", 28, 640),
    "mtcnn min 40": Variant("mtcnn", 40, 640, extra=True),
    "mtcnn min 28": Variant("mtcnn", 28, 640),
    "mtcnn min 24": Variant("mtcnn", 24, 640, extra=True),
    "mtcnn min 28 width 1280": Variant("mtcnn", 28, 1280, extra=True),
    **{
        f"yuface {width} t{threshold}": Variant("yuface", 28, width, threshold=threshold)
        for width in (640, 480, 320)
        for threshold in (0.5, 0.6, 0.7, 0.8)
    },
    "yuface 960 t0.7": Variant("yuface", 28, 960, threshold=0.7, extra=True),
    "default": Variant(DEFAULT.face_detector, DEFAULT.min_face, DEFAULT.face_detect_width, DEFAULT.face_upsample),
}


@dataclass
class Clip:
    """A shared clip's 12 sampled frames and its hand counts."""

    name: str
    frames: np.ndarray
    counted: dict[int, dict]  # sampled-frame index -> {"faces": [[x, y, w, h]...], "unsure": [...]}


def load_clips(source: Path, counts: dict) -> list[Clip]:
    """Decode every counted clip under ``source`` (a clip missing there is reported and skipped)."""
    clips = []
    for name, entry in counts["clips"].items():
        path = source / name
        if not path.is_file():
            print(f"skipped {name}: not found under {source}")
            continue
        frames = decode_clip(path, sample_rate=None).frames
        clips.append(Clip(name, frames, {int(k): v for k, v in entry["frames"].items()}))
    return clips


def _hand(boxes: list) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


@dataclass
class Result:
    """One variant's scores on the counted frames, seconds per clip (12 frames) and faces found per clip (on all
    the frames it ran on: 12, or the counted ones for slow variants)."""

    tally: Tally
    seconds: list[float]
    found: dict[str, int]


def run_clip(variant: Variant, clip: Clip, result: Result) -> None:
    """Detect on ``clip`` with ``variant``; add its scores, seconds and face count to ``result``."""
    indices = sorted(clip.counted) if variant.slow else list(range(len(clip.frames)))
    start = time.perf_counter()
    boxes = variant.detect(clip.frames[indices])
    result.seconds.append((time.perf_counter() - start) / len(indices) * 12)
    by_index = dict(zip(indices, boxes))
    for index, counted in clip.counted.items():
        result.tally.add(score_frame(boxes_xywh(by_index[index]), _hand(counted["faces"]), _hand(counted["unsure"])))
    result.found[clip.name] = sum(len(b) for b in boxes)


def run_variants(variants: dict[str, Variant], clips: list[Clip]) -> dict[str, Result]:
    """Every variant on every clip, taking turns clip by clip (each clip starts with another variant)."""
    for variant in variants.values():  # warm-up (models, tracing)
        variant.detect(clips[0].frames[:1] if variant.slow else clips[0].frames)
    results = {name: Result(Tally(), [], {}) for name in variants}
    names = list(variants)
    for number, clip in enumerate(clips):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            run_clip(variants[name], clip, results[name])
    return results


def stage_seconds(clips: list[Clip]) -> list[float]:
    """Seconds per clip of the whole default face stage (FaceExtractor.extract: detection, alignment, FER)."""
    from preprocess.decode import DecodedClip

    extractor = FaceExtractor(PreprocessConfig())
    seconds = []
    for clip in [clips[0], *clips]:  # the first run warms up
        decoded = DecodedClip(clip.name, clip.frames, list(range(len(clip.frames))), 25.0, 12)
        start = time.perf_counter()
        extractor.extract(decoded)
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "vgaf")
    parser.add_argument("--counts", type=Path, default=COUNTS)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--all", action="store_true", help="also the extra variants (cnn: minutes a clip)")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole table this many times")
    parser.add_argument("--stage", action="store_true", help="also time the default face stage with FER")
    args = parser.parse_args()
    names = args.variants or [name for name, variant in VARIANTS.items() if args.all or not variant.extra]

    counts = load_face_counts(args.counts)
    clips = load_clips(args.source, counts)
    with_faces = [c.name for c in clips if any(f["faces"] for f in c.counted.values())]
    print(f"{len(clips)} clips, {sum(len(c.counted) for c in clips)} counted frames; {os.cpu_count()} CPUs")
    width = detect_width(DEFAULT.face_detector, DEFAULT.face_detect_width)
    print(f"default: {DEFAULT.face_detector}, min_face {DEFAULT.min_face}, width {width}")
    for _ in range(args.repeat):
        results = run_variants({name: VARIANTS[name] for name in names}, clips)
        print(
            f"| {'variant':26s} | {'recall':>6s} | {'>=24px':>6s} | {'FP':>4s} | {'clips':>5s} | {'ms/frame':>8s} "
            f"| s/clip median, mean |"
        )
        print(f"|{'-' * 28}|{'-' * 8}|{'-' * 8}|{'-' * 6}|{'-' * 7}|{'-' * 10}|{'-' * 21}|")
        for name, result in results.items():
            tally, seconds = result.tally, result.seconds
            hit_clips = sum(result.found[c] > 0 for c in with_faces)
            note = " (counted frames, x12)" if VARIANTS[name].slow else ""
            print(
                f"| {name:26s} | {tally.recall:6.3f} | {tally.recall_large:6.3f} | {tally.false_positives:4d} | "
                f"{hit_clips:2d}/{len(with_faces):<2d} | {np.mean(seconds) / 12 * 1000:8.1f} | "
                f"{np.median(seconds):.3f}, {np.mean(seconds):.3f}{note} |",
                flush=True,
            )
        for name, result in results.items():
            found = ", ".join(f"{Path(c).stem} {n}" for c, n in result.found.items())
            print(f"  {name}: faces found per clip: {found}")
    if args.stage:
        for _ in range(args.repeat):
            seconds = stage_seconds(clips)
            print(
                f"default face stage (detect + align + FER): s/clip median {np.median(seconds):.2f}, "
                f"mean {np.mean(seconds):.2f}, max {np.max(seconds):.2f}"
            )


if __name__ == "__main__":
    main()
