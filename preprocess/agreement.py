"""How closely two runs of the backbones agree (float32 against bfloat16, TensorFlow against OpenVINO, int8):
scene maps, pose keypoints and people counts, face expressions.

Used by ``benchmarks/bench_preprocess.py`` (all clips it runs), ``tests/test_precision.py`` and
``tests/test_backend.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEYPOINT_PX = 2.0  # a keypoint agrees when the other run has the same keypoint within this many pixels


def keypoints_within(reference: np.ndarray, other: np.ndarray, pixels: float = KEYPOINT_PX) -> tuple[int, int]:
    """(agreeing, found) over the keypoints found in ``reference`` (P, 18, 3) of one frame: agreeing when ``other``
    (Q, 18, 3) has the same keypoint (any person) within ``pixels``.

    Parameters
    ----------
    reference : ndarray of shape (P, 18, 3)
        x, y, peak per keypoint of one frame's people; peak 0 where missing.
    other : ndarray of shape (Q, 18, 3)
        The same frame's people found by the other run.
    pixels : float
        Largest distance of agreeing keypoints.

    Returns
    -------
    agreeing, found : int
    """
    found = reference[..., 2] > 0  # (P, 18)
    if not found.any():
        return 0, 0
    if not len(other):
        return 0, int(found.sum())
    distance = np.linalg.norm(reference[:, None, :, :2] - other[None, :, :, :2], axis=-1)  # (P, Q, 18)
    near = ((distance <= pixels) & (other[None, :, :, 2] > 0)).any(axis=1)  # (P, 18)
    return int((near & found).sum()), int(found.sum())


def frame_cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cosine similarity per frame of two (n, ...) feature-map stacks -> (n,); 1.0 where both frames are zero.

    Parameters
    ----------
    reference, other : ndarray of shape (n, ...)
        The same frames' feature maps from two runs.

    Returns
    -------
    cosines : ndarray of shape (n,), float64
    """
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = other.reshape(len(other), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = norms == 0
    return np.where(both_zero, 1.0, (a * b).sum(axis=1) / np.where(both_zero, 1.0, norms))


@dataclass
class Agreement:
    """Running totals of the agreement between a reference run and another one, over frames and clips."""

    scene_cosines: list[float] = field(default_factory=list)  # one per real frame
    faces: int = 0  # faces scored (the same boxes in both runs)
    faces_same_top: int = 0  # faces whose top expression is the same
    keypoints: int = 0  # keypoints found (both directions: reference's in other, other's in reference)
    keypoints_near: int = 0  # of them, with the same keypoint within KEYPOINT_PX in the other run
    pose_frames: int = 0
    pose_frames_same_count: int = 0  # frames where both runs count the same people

    def add_scene(self, reference: np.ndarray, other: np.ndarray) -> None:
        """Feature maps (n, h, w, c) of the same frames.

        Parameters
        ----------
        reference, other : ndarray of shape (n, h, w, c)
        """
        self.scene_cosines.extend(frame_cosines(reference, other).tolist())

    def add_faces(self, reference: np.ndarray, other: np.ndarray) -> None:
        """FER scores (F, 7) of the same face crops.

        Parameters
        ----------
        reference, other : ndarray of shape (F, 7)
        """
        self.faces += len(reference)
        self.faces_same_top += int((reference.argmax(axis=1) == other.argmax(axis=1)).sum())

    def add_pose(self, reference: list[np.ndarray], other: list[np.ndarray]) -> None:
        """People (per frame (P, 18, 3) x, y, peak) found by two runs in the same frames.

        Parameters
        ----------
        reference, other : list of ndarrays of shape (P, 18, 3)
            One per frame, the same frames in both.
        """
        for mine, theirs in zip(reference, other, strict=True):
            for a, b in ((mine, theirs), (theirs, mine)):
                near, found = keypoints_within(a, b)
                self.keypoints_near += near
                self.keypoints += found
            self.pose_frames += 1
            self.pose_frames_same_count += int(len(mine) == len(theirs))

    def figures(self) -> dict[str, float]:
        """The limits' figures: the lowest and mean scene cosine, the share of faces with the same top expression,
        of keypoints within 2 px and of frames with the same people count (NaN where nothing was compared)."""

        def share(part: int, whole: int) -> float:
            return part / whole if whole else float("nan")

        return {
            "scene_cosine_min": min(self.scene_cosines) if self.scene_cosines else float("nan"),
            "scene_cosine_mean": float(np.mean(self.scene_cosines)) if self.scene_cosines else float("nan"),
            "face_top1_equal": share(self.faces_same_top, self.faces),
            "keypoints_within_2px": share(self.keypoints_near, self.keypoints),
            "people_count_equal": share(self.pose_frames_same_count, self.pose_frames),
            "keypoints": self.keypoints,
            "pose_frames": self.pose_frames,
            "frames": len(self.scene_cosines),
            "faces": self.faces,
        }
