"""The face detectors `--face-detector` offers: one list, importable without OpenCV or TensorFlow (the cli reads it
at --help time; preprocess/faces.py runs them). Figures: benchmarks/bench_faces.py on the hand-counted faces of the
shared clips (tests/data/face_counts.json)."""

from __future__ import annotations

# The default first; every name here has a branch in preprocess.faces.find_faces.
FACE_DETECTORS: tuple[str, ...] = ("yuface", "mtcnn", "hog", "cnn")
# Width (px) frames are downscaled to for detection when PreprocessConfig.face_detect_width is 0. yuface at 320
# keeps MTCNN's recall on the hand-counted faces at a tenth of its time (bench_faces.py); MTCNN's cost is set by
# min_face rather than width, and a narrower image makes its pyramid upsample.
DETECT_WIDTHS: dict[str, int] = {"yuface": 320, "mtcnn": 640, "hog": 640, "cnn": 640}


def detect_width(detector: str, width: int) -> int:
    """The detection width: ``width`` when set (> 0), else ``detector``'s own (DETECT_WIDTHS)."""
    return width if width > 0 else DETECT_WIDTHS[detector]
