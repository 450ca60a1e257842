"""The face detectors `--face-detector` offers: one list, importable without OpenCV or TensorFlow (the cli reads it
at --help time; preprocess/faces.py runs them). Figures: benchmarks/bench_faces.py on the hand-counted faces of the
shared clips (tests/data/face_counts.json)."""

from __future__ import annotations

# name -> what `--help` says of it; the default first; every name here has a branch in preprocess.faces.find_faces.
FACE_DETECTOR_NOTES: dict[str, str] = {
    "yuface": "libfacedetection: finds 0.89 of the hand-counted faces on the shared clips, as mtcnn does, with "
    "fewer false positives, about 11x faster",
    "mtcnn": "",
    "hog": "face_recognition's; 0.30 with --face-upsample 1",
    "cnn": "face_recognition's; 0.47, about a minute a clip on 2 CPU cores",
}
FACE_DETECTORS: tuple[str, ...] = tuple(FACE_DETECTOR_NOTES)
# Width (px) frames are downscaled to for detection when PreprocessConfig.face_detect_width is 0. yuface at 320
# keeps MTCNN's recall on the hand-counted faces at a tenth of its time (bench_faces.py); MTCNN's cost is set by
# min_face rather than width, and a narrower image makes its pyramid upsample.
DETECT_WIDTHS: dict[str, int] = {"yuface": 320, "mtcnn": 640, "hog": 640, "cnn": 640}


def face_detector_help() -> str:
    """The help of `--face-detector`: every detector with its note, the default marked."""
    described = [
        f"{name} ({'; '.join(filter(None, ['default' if index == 0 else '', note]))})" if index == 0 or note else name
        for index, (name, note) in enumerate(FACE_DETECTOR_NOTES.items())
    ]
    return ", ".join(described) + "; see benchmarks/bench_faces.py"


def detect_width(detector: str, width: int) -> int:
    """The detection width: ``width`` when set (> 0), else ``detector``'s own (DETECT_WIDTHS).

    Parameters
    ----------
    detector : str
        A name of DETECT_WIDTHS.
    width : int
        The asked width in pixels; 0 or less for the detector's own.

    Returns
    -------
    width : int
    """
    return width if width > 0 else DETECT_WIDTHS[detector]
