"""Score face detections against hand-counted faces (tests/data/face_counts.json): recall and false positives.

Matching rule (the one benchmarks/bench_faces.py and tests/test_faces.py share): a detection matches a hand box
when each box's centre lies inside the other box, so a detection must sit on the face and be of a comparable size
(a box over two faces, or one on a hand beside a face, matches nothing). Each hand box takes at most one
detection and each detection one hand box, nearest centres first. Detections matching no counted face but one of
the frame's "unsure" boxes (faces too dark, blurred or turned to tell) are neither hits nor false positives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError

LARGE_FACE = 24  # px: hand boxes at least this tall (source-frame pixels) form the "large" recall


def boxes_xywh(boxes_trbl: np.ndarray) -> np.ndarray:
    """``(top, right, bottom, left)`` boxes as ``(x, y, w, h)``.

    Parameters
    ----------
    boxes_trbl : array_like of shape (n, 4)
        ``(top, right, bottom, left)``.

    Returns
    -------
    boxes : ndarray of shape (n, 4), float64
        ``(x, y, w, h)``.
    """
    boxes = np.asarray(boxes_trbl, dtype=np.float64).reshape(-1, 4)
    top, right, bottom, left = boxes.T
    return np.stack([left, top, right - left, bottom - top], axis=1)


def _centre_inside(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bool: the centre of box a[i] lies inside box b[j] (both (n, 4) xywh)."""
    cx = boxes_a[:, 0] + boxes_a[:, 2] / 2
    cy = boxes_a[:, 1] + boxes_a[:, 3] / 2
    x, y, w, h = (boxes_b[:, k][None] for k in range(4))
    return (cx[:, None] >= x) & (cx[:, None] <= x + w) & (cy[:, None] >= y) & (cy[:, None] <= y + h)


def _centre_distance(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) distances between box centres."""
    centres_a = boxes_a[:, :2] + boxes_a[:, 2:] / 2
    centres_b = boxes_b[:, :2] + boxes_b[:, 2:] / 2
    return np.linalg.norm(centres_a[:, None] - centres_b[None], axis=2)


def match(detections: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches of detections to hand boxes (the module's rule: centres inside each other, nearest first).

    Parameters
    ----------
    detections : array_like of shape (D, 4)
        ``(x, y, w, h)``.
    faces : array_like of shape (F, 4)
        Hand boxes, ``(x, y, w, h)``.

    Returns
    -------
    hit : ndarray of shape (F,), bool
        Each hand box matched by a detection.
    used : ndarray of shape (D,), bool
        Each detection matched to a hand box.
    """
    detections, faces = (np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in (detections, faces))
    allowed = _centre_inside(detections, faces) & _centre_inside(faces, detections).T
    distance = np.where(allowed, _centre_distance(detections, faces), np.inf)
    hit, used = np.zeros(len(faces), bool), np.zeros(len(detections), bool)
    for flat in np.argsort(distance, axis=None):
        d, f = np.unravel_index(flat, distance.shape)
        if not np.isfinite(distance[d, f]):
            break
        if not used[d] and not hit[f]:
            used[d] = hit[f] = True
    return hit, used


@dataclass
class FrameScore:
    """Hits and misses of one frame: counted face heights, which were found, and the false positives."""

    heights: np.ndarray  # (F,) hand box heights, source-frame pixels
    hit: np.ndarray  # (F,) bool
    false_positives: int


def score_frame(detections: np.ndarray, faces: np.ndarray, unsure: np.ndarray) -> FrameScore:
    """Score a frame's detections against its counted and unsure hand boxes.

    Parameters
    ----------
    detections : array_like of shape (D, 4)
        ``(x, y, w, h)``.
    faces : array_like of shape (F, 4)
        Counted hand boxes, ``(x, y, w, h)``.
    unsure : array_like of shape (U, 4)
        Unsure hand boxes, ``(x, y, w, h)``: detections on them are neither hits nor false positives.

    Returns
    -------
    score : FrameScore
        ``heights`` (F,), ``hit`` (F,) bool and the count of false positives.
    """
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    hit, used = match(detections, faces)
    leftover = np.asarray(detections, dtype=np.float64).reshape(-1, 4)[~used]
    _, on_unsure = match(leftover, unsure)
    return FrameScore(faces[:, 3], hit, int((~on_unsure).sum()))


@dataclass
class Tally:
    """Recall (all counted faces, and those >= LARGE_FACE px tall) and false positives over many frames."""

    frames: list[FrameScore] = field(default_factory=list)

    def add(self, score: FrameScore) -> None:
        """Count one more frame.

        Parameters
        ----------
        score : FrameScore
            The frame's score (see score_frame).
        """
        self.frames.append(score)

    def _pool(self) -> tuple[np.ndarray, np.ndarray]:
        heights = np.concatenate([f.heights for f in self.frames]) if self.frames else np.zeros(0)
        hit = np.concatenate([f.hit for f in self.frames]) if self.frames else np.zeros(0, bool)
        return heights, hit

    @property
    def faces(self) -> int:
        return len(self._pool()[1])

    @property
    def hits(self) -> int:
        return int(self._pool()[1].sum())

    @property
    def recall(self) -> float:
        _, hit = self._pool()
        return float(hit.mean()) if len(hit) else float("nan")

    @property
    def recall_large(self) -> float:
        heights, hit = self._pool()
        large = heights >= LARGE_FACE
        return float(hit[large].mean()) if large.any() else float("nan")

    @property
    def false_positives(self) -> int:
        return sum(f.false_positives for f in self.frames)


def load_face_counts(path: str | Path) -> dict:
    """The hand counts (tests/data/face_counts.json).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    counts : dict
        ``{"about": ..., "clips": {relative clip path: {"frames": {index: {...}}}}}``.

    Raises
    ------
    InputError
        The file cannot be read, is not JSON, or has no "clips" entry.
    """
    path = Path(path)
    try:
        counts = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the face counts {path}: {error}; restore it from git") from error
    if "clips" not in counts:
        raise InputError(f"{path} has no 'clips' entry; restore it from git")
    return counts
