"""What the people of a video did: one record per person, the group figures of each window, and how much each
person carried the verdict (the verdict's probability with their faces taken out of the windows' statistics).

A window's face rows are its sampled frames' faces as (scores (F, 7), person ids (F,)) pairs, one per real frame
(the faces modality's input is their min / max / mean per expression and the count, preprocess.faces.face_features).
Taking a person out recomputes those statistics from the other faces; a frame left without faces becomes a frame
without faces (NO_FACE), and a window left without any is fused without the faces model, as such windows are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from preprocess.faces import EXPRESSIONS, face_features

from .tracks import Person

FaceRows = list[tuple[np.ndarray, np.ndarray]]  # per real frame of a window: (F, 7) scores, (F,) person ids


@dataclass
class WindowGroup:
    """The people of one window: ``people`` distinct persons seen, the ``dominant`` top expression among them
    (None without faces) and ``agreement``, the share of them whose top expression is the dominant one."""

    people: int
    dominant: str | None
    agreement: float | None


def window_group(rows: FaceRows) -> WindowGroup:
    """The group figures of a window's face rows: each person's top expression is that of their mean scores
    over the window's frames; ties for dominant go to EXPRESSIONS order."""
    scores = [s for s, _ in rows if len(s)]
    if not scores:
        return WindowGroup(0, None, None)
    scores, ids = np.concatenate(scores), np.concatenate([i for s, i in rows if len(s)])
    tops = [int(scores[ids == person].mean(axis=0).argmax()) for person in np.unique(ids)]
    counts = Counter(tops)
    dominant = max(sorted(counts), key=lambda index: counts[index])
    return WindowGroup(len(tops), EXPRESSIONS[dominant], counts[dominant] / len(tops))


def people_in(rows: FaceRows) -> np.ndarray:
    """(k,) the person ids seen in a window's face rows."""
    ids = [i for _, i in rows if len(i)]
    return np.unique(np.concatenate(ids)) if ids else np.zeros(0, int)


def faces_without(rows: FaceRows, person: int, n_frames: int) -> np.ndarray:
    """(n_frames, 22) the window's faces input with ``person``'s faces taken out (padding rows stay zero)."""
    return face_features([scores[ids != person] for scores, ids in rows], n_frames)


def carried(
    rows: list[FaceRows],
    fused: np.ndarray,
    faces: np.ndarray,
    verdict: int,
    n_frames: int,
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]],
    pool: Callable[[np.ndarray], np.ndarray],
) -> dict[int, tuple[float, float]]:
    """How much each person carried the verdict: {person id: (drop_fused, drop_faces)}.

    Parameters
    ----------
    rows : per window, its face rows with person ids
    fused, faces : ndarray of shape (n_windows, C), the windows' fused and faces-model probabilities
    verdict : the class index the video's verdict is
    n_frames : frames per window (the faces input's steps)
    score : ``score(x, faces_left, windows)`` -> {"faces", "fused": (P, C)}: the probabilities of windows
        ``windows`` (P,) with faces input ``x`` (P, n_frames, 22); ``faces_left`` (P,) bool, whether any face
        remains (a window without faces is fused without the faces model)
    pool : (n_windows, C) -> (C,), how window probabilities make the video's

    Returns
    -------
    drops : drop_fused is how far the video's pooled p(verdict) falls when the person's faces are taken out of
        every window they appear in; drop_faces the mean fall of the faces model's p(verdict) over those windows
    """
    pairs = [(w, int(person)) for w, window_rows in enumerate(rows) for person in people_in(window_rows)]
    if not pairs:
        return {}
    x = np.stack([faces_without(rows[w], person, n_frames) for w, person in pairs])
    windows = np.array([w for w, _ in pairs])
    without = score(x, (x[..., -1] > 0).any(axis=1), windows)
    drops = {}
    for person in sorted({p for _, p in pairs}):
        mine = np.array([i for i, (_, p) in enumerate(pairs) if p == person])
        changed = fused.copy()
        changed[windows[mine]] = without["fused"][mine]
        drop_fused = float(pool(fused)[verdict] - pool(changed)[verdict])
        drop_faces = float(np.mean(faces[windows[mine], verdict] - without["faces"][mine, verdict]))
        drops[person] = (drop_fused, drop_faces)
    return drops


def person_record(person: Person, drop_fused: float | None, drop_faces: float | None) -> dict:
    """One person's JSON record (people.csv's row, predictions.json's "people" entry)."""
    return {
        "id": person.id,
        "first_s": round(person.first_s, 3),
        "last_s": round(person.last_s, 3),
        "frames_seen": person.frames_seen,
        "skeleton_frames": person.skeleton_frames,
        "mean_face_px": round(person.mean_height, 1),
        "expressions": dict(zip(EXPRESSIONS, _rounded(person.mean_scores()))),
        "trend": dict(zip(EXPRESSIONS, _rounded(person.trend()))),
        "top_expression": EXPRESSIONS[int(person.mean_scores().argmax())],
        "drop_fused": None if drop_fused is None else _rounded([drop_fused])[0],
        "drop_faces": None if drop_faces is None else _rounded([drop_faces])[0],
        "strip": {
            "times": [round(s.time, 3) for s in person.sightings],
            "top": [EXPRESSIONS[int(s.scores.argmax())] for s in person.sightings],
        },
    }


def _rounded(values: np.ndarray) -> list[float]:
    """Numbers for JSON: 4 decimals, no float32 residue, no negative zero."""
    return [round(float(v), 4) + 0.0 for v in values]
