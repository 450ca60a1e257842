"""A video prediction with people made by hand (no bundle, no decoding): person records as
gvs.people.summary.person_record writes them, thumbnails, and the windows' group figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gvs.predict.predictor import FUSED, VideoPrediction, WindowPrediction
from preprocess.faces import EXPRESSIONS

STEP_S = 1 / 3  # seconds between sampled frames (the paper preset)
DROPS = {1: 0.05, 2: -0.03, 3: 0.12, 4: 0.2, 5: 0.0}  # person id -> drop_fused; person 4 is seen on 2 frames only


def person(
    person_id: int, first: int, frames: int, drop: float | None, tops: list[str] | None = None, seed: int = 0
) -> dict:
    """A person record seen on ``frames`` sampled frames from sampled frame ``first``; ``tops`` cycles through the
    sightings' top expressions."""
    rng = np.random.default_rng(seed + person_id)
    times = [round((first + k) * STEP_S, 3) for k in range(frames)]
    tops = tops or ["happy", "neutral"]
    strip = [tops[(k * len(tops)) // frames] for k in range(frames)]
    means = rng.dirichlet(np.ones(len(EXPRESSIONS)))
    return {
        "id": person_id,
        "first_s": times[0],
        "last_s": times[-1],
        "frames_seen": frames,
        "mean_face_px": 40.0 + person_id,
        "expressions": dict(zip(EXPRESSIONS, np.round(means, 4).tolist())),
        "trend": dict(zip(EXPRESSIONS, [0.0] * len(EXPRESSIONS))),
        "top_expression": max(tops, key=strip.count),
        "drop_fused": drop,
        "drop_faces": None if drop is None else 2 * drop,
        "strip": {"times": times, "top": strip},
    }


def checkerboard(size: int = 60, cell: int = 3) -> np.ndarray:
    """(size, size, 3) uint8 black and white squares: a thumbnail whose pixels vary a lot (blurring shows)."""
    y, x = np.mgrid[:size, :size]
    board = (((y // cell) + (x // cell)) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def people_video(
    drops: dict[int, float | None] | None = None, windows: int = 6, tracked: bool = True
) -> VideoPrediction:
    """A Negative video of ``windows`` windows (2.2 s apart) with the people of ``drops`` (person id -> drop_fused;
    default DROPS) and their thumbnails; ``tracked`` False gives the video people tracking did not run on."""
    drops = DROPS if drops is None else drops
    shapes = {1: (0, 30, ["happy", "neutral"]), 2: (3, 24, ["sad"]), 3: (9, 12, ["angry", "sad", "neutral"])}
    records = []
    for person_id, drop in drops.items():
        first, frames, tops = shapes.get(person_id, (20 + person_id, 2 if person_id == 4 else 6, ["surprise"]))
        records.append(person(person_id, first, frames, drop, tops))
    made = []
    for i in range(windows):
        p = np.array([0.2, 0.2, 0.6]) if i % 2 else np.array([0.1, 0.3, 0.6])
        window = WindowPrediction(i, 2.2 * i, 2.2 * i + 4.4, {FUSED: p, "faces": p}, ["faces"])
        if tracked:
            window.people, window.dominant, window.agreement = (i % 3) + 1, "happy", [1.0, 0.5, 2 / 3][i % 3]
        made.append(window)
    return VideoPrediction(
        Path("party.mp4"),
        "done",
        made,
        np.array([0.15, 0.25, 0.6]),
        {"Negative": 1.0},
        duration_s=2.2 * windows + 2.2,
        people=records if tracked else [],
        thumbnails={r["id"]: checkerboard() for r in records} if tracked else {},
    )
