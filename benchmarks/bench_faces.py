"""Benchmark face detectors against the hand-counted faces of the shared clips (tests/data/face_counts.json).

    .venv/bin/python benchmarks/bench_faces.py [--source ../shared/data/vgaf] [--variants NAME ...] [--repeat 2]
        [--stage]

Per detector variant: recall (matched hand boxes / counted faces, and for faces >= 24 px tall), false positives
(detections matching no counted face and no "unsure" box; rule in preprocess/face_matching.py: each box's centre
inside the other), clips where it finds a face among the clips with counted faces, and seconds per clip (the 12
sampled frames; median and mean over the clips, after one warm-up clip). Recall is scored on the counted frames
(0, 4, 8, 11 of each clip). Slow variants (dlib CNN on a CPU: ~6 s a frame) run on the counted frames only and
their s/clip is s/frame x 12. ``--repeat`` times every variant that many times (the machine may be shared);
``--stage`` also times the whole default face stage (detection, alignment, FER) per clip.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GVS_MODEL_DIR", str(REPO.parent / "shared" / "models"))

from preprocess.config import PreprocessConfig  # noqa: E402
from preprocess.decode import decode_clip  # noqa: E402
from preprocess.face_matching import Tally, boxes_xywh, load_face_counts, score_frame  # noqa: E402
from preprocess.faces import FaceExtractor, find_faces  # noqa: E402

COUNTS = REPO / "tests" / "data" / "face_counts.json"


@dataclass(frozen=True)
class Variant:
    """One detector setting: find_faces arguments, and whether it is too slow to run on every frame."""

    detector: str
    min_size: int
    detect_width: int
    upsample: int = 0
    slow: bool = False

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        faces = find_faces(frames, self.detector, self.min_size, self.detect_width, self.upsample)
        return [f.boxes for f in faces]


DEFAULT = PreprocessConfig()
VARIANTS: dict[str, Variant] = {
    "hog up0 min 40 (old)": Variant("hog", 40, 1280),
    "hog up1 min 28": Variant("hog", 28, 1280, upsample=1),
    "cnn up0 min 28": Variant("cnn", 28, 1280, slow=True),
    "mtcnn min 40": Variant("mtcnn", 40, 640),
    "mtcnn min 32": Variant("mtcnn", 32, 640),
    "mtcnn min 28": Variant("mtcnn", 28, 640),
    "mtcnn min 24": Variant("mtcnn", 24, 640),
    "mtcnn min 28 width 960": Variant("mtcnn", 28, 960),
    "mtcnn min 28 width 1280": Variant("mtcnn", 28, 1280),
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


def run_variant(variant: Variant, clips: list[Clip]) -> tuple[Tally, list[float], dict[str, int]]:
    """Scores on the counted frames, seconds per clip (12 frames), and faces found per clip (all the frames it
    ran on: 12, or the counted ones for slow variants)."""
    tally, seconds, found = Tally(), [], {}
    variant.detect(clips[0].frames[:1] if variant.slow else clips[0].frames)  # warm-up (models, tracing)
    for clip in clips:
        indices = sorted(clip.counted) if variant.slow else list(range(len(clip.frames)))
        start = time.perf_counter()
        boxes = variant.detect(clip.frames[indices])
        seconds.append((time.perf_counter() - start) / len(indices) * 12)
        by_index = dict(zip(indices, boxes))
        for index, counted in clip.counted.items():
            tally.add(score_frame(boxes_xywh(by_index[index]), _hand(counted["faces"]), _hand(counted["unsure"])))
        found[clip.name] = sum(len(b) for b in boxes)
    return tally, seconds, found


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
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--repeat", type=int, default=1, help="time each variant this many times")
    parser.add_argument("--stage", action="store_true", help="also time the default face stage with FER")
    args = parser.parse_args()

    counts = load_face_counts(args.counts)
    clips = load_clips(args.source, counts)
    with_faces = [c.name for c in clips if any(f["faces"] for f in c.counted.values())]
    print(f"{len(clips)} clips, {sum(len(c.counted) for c in clips)} counted frames; {os.cpu_count()} CPUs")
    print(f"{'variant':26s} {'recall':>7s} {'>=24px':>7s} {'FP':>4s} {'clips':>6s}  s/clip median, mean")
    for name in args.variants:
        for _ in range(args.repeat):
            tally, seconds, found = run_variant(VARIANTS[name], clips)
            hit_clips = sum(found[c] > 0 for c in with_faces)
            note = " (counted frames only, x12)" if VARIANTS[name].slow else ""
            print(
                f"{name:26s} {tally.recall:7.3f} {tally.recall_large:7.3f} {tally.false_positives:4d} "
                f"{hit_clips:3d}/{len(with_faces):<2d}  {np.median(seconds):.2f}, {np.mean(seconds):.2f}{note}",
                flush=True,
            )
        frames = "counted frames" if VARIANTS[name].slow else "12 frames"
        print(f"  faces found per clip ({frames}): " + ", ".join(f"{Path(c).stem} {n}" for c, n in found.items()))
    if args.stage:
        for _ in range(args.repeat):
            seconds = stage_seconds(clips)
            print(
                f"default face stage (detect + align + FER): s/clip median {np.median(seconds):.2f}, "
                f"mean {np.mean(seconds):.2f}, max {np.max(seconds):.2f}"
            )


if __name__ == "__main__":
    main()
