"""What a server takes as a video: a file it can decode (never judged by its name), and the sample clips it offers.

The check runs in the request (about 0.1 s, a 4K clip included): the first frame is decoded with the project's
FrameSampler (OpenCV, as prediction will) and the duration read as prediction reads it (OpenCV's frame count and
rate, else the container header through ffmpeg). A video that passes but fails later fails its job with the reason.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from preprocess.decode import ClipDecodeError, FrameSampler

from .errors import RequestError

REPO = Path(__file__).resolve().parents[2]
SAMPLE_SPLITS = ("Train", "Val", "Test")


@dataclass
class VideoCheck:
    """What the check saw: the first frame's size and the duration (None when neither OpenCV nor ffmpeg says)."""

    width: int
    height: int
    duration_s: float | None


def check_video(path: Path, name: str, max_seconds: float) -> VideoCheck:
    """Decode the first frame of ``path`` and read its duration; ``name`` is what messages call it.

    RequestError 400 for an empty file, 415 for a file with no decodable frame (not a video, or a truncated one),
    422 for a video longer than ``max_seconds``.
    """
    if path.stat().st_size == 0:
        raise RequestError(400, f"{name} is empty (0 bytes); choose the video file again")
    sampler = FrameSampler(path, limit=1)
    try:
        first = next(kept.rgb for kept in sampler)
    except (ClipDecodeError, StopIteration) as error:
        why = str(error).replace(f"{path}: ", "").replace(str(path), name) or "no frame decoded"
        raise RequestError(
            415, f"{name} is not a video this server can read ({why}); upload an mp4, mkv, avi..."
        ) from None
    duration = sampler.duration()
    if duration is not None and math.isfinite(duration) and duration > max_seconds:
        raise RequestError(
            422,
            f"{name} is {duration / 60:.1f} min long; this server takes videos up to {max_seconds / 60:.1f} min "
            "(gvs serve --max-minutes); cut it shorter",
        )
    return VideoCheck(int(first.shape[1]), int(first.shape[0]), duration)


def shared_root() -> Path:
    """The shared folder of real clips: $GVS_SHARED, else ``shared`` beside the checkout."""
    return Path(os.environ.get("GVS_SHARED") or REPO.parent / "shared")


def find_samples(demo: Path | None = None, shared: Path | None = None) -> dict[str, Path]:
    """The sample clips a server offers, {name: path}: the shared real clips (``vgaf/<Split>/<clip>``) and the demo
    clips (``demo/<Split>/<clip>``, from data/demo of the checkout), whichever are present."""
    demo = REPO / "data" / "demo" if demo is None else demo
    vgaf = (shared_root() if shared is None else shared) / "data" / "vgaf"
    samples = {}
    for prefix, root, splits in (("vgaf", vgaf, ("Val", "Test")), ("demo", demo, SAMPLE_SPLITS)):
        for split in splits:
            clips = sorted((root / split).glob("*.mp4"), key=_natural) if (root / split).is_dir() else []
            samples |= {f"{prefix}/{split}/{clip.name}": clip for clip in clips if clip.is_file()}
    return samples


def _natural(path: Path) -> tuple:
    """Sort key putting Test_2 before Test_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))
