"""How closely two precisions of the backbones agree (float32 against bfloat16): scene maps and face expressions.

Used by ``benchmarks/bench_preprocess.py --precision`` (all clips it runs) and ``tests/test_precision.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def frame_cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cosine similarity per frame of two (n, ...) feature-map stacks -> (n,); 1.0 where both frames are zero."""
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

    def add_scene(self, reference: np.ndarray, other: np.ndarray) -> None:
        """Feature maps (n, h, w, c) of the same frames."""
        self.scene_cosines.extend(frame_cosines(reference, other).tolist())

    def add_faces(self, reference: np.ndarray, other: np.ndarray) -> None:
        """FER scores (F, 7) of the same face crops."""
        self.faces += len(reference)
        self.faces_same_top += int((reference.argmax(axis=1) == other.argmax(axis=1)).sum())

    def figures(self) -> dict[str, float]:
        """The limits' figures: the lowest and mean scene cosine and the share of faces with the same top expression
        (NaN where nothing was compared)."""

        def share(part: int, whole: int) -> float:
            return part / whole if whole else float("nan")

        return {
            "scene_cosine_min": min(self.scene_cosines) if self.scene_cosines else float("nan"),
            "scene_cosine_mean": float(np.mean(self.scene_cosines)) if self.scene_cosines else float("nan"),
            "face_top1_equal": share(self.faces_same_top, self.faces),
            "frames": len(self.scene_cosines),
            "faces": self.faces,
        }
