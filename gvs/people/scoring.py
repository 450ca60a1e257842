"""Score person tracks against the hand identities of the shared clips (tests/data/people_counts.json).

The fixture names, for every hand-counted face box of tests/data/face_counts.json (sampled frames 0, 4, 8 and 11
of each clip), which person it is. A tracker's sightings on those frames are matched to the hand boxes with the
face benchmark's rule (preprocess.face_matching.match: each box's centre inside the other, one to one, nearest
first), which gives some of the tracker's people a hand label on some frames. Then, per clip:

- **tracked people**: hand people matched on at least ``MIN_FRAMES`` (3) of the counted frames, i.e. people with a
  readable face (a hand box) that the detector found on 3 or more counted frames; these are the issue's "people
  with a readable face in >= 3 sampled frames" (faces the detector missed are the detector's error, scored by
  benchmarks/bench_faces.py, not the tracker's).
- **one track**: a tracked person all of whose matched sightings belong to one of the tracker's people;
  **fragments**: how many of the tracker's people their matched sightings spread over (1 when in one track).
- **merges**: tracker people whose matched sightings cover two or more hand people, among the **scored tracks**
  (tracker people with at least one matched sighting on a counted frame).

Targets (issue 29): at least ``ONE_TRACK_TARGET`` of the tracked people in one track, at most ``MERGE_TARGET`` of
the scored tracks merging two people, over all clips.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError
from preprocess.face_matching import boxes_xywh, match

MIN_FRAMES = 3  # counted frames (of 4) a hand person must be matched on to be a tracked person
ONE_TRACK_TARGET = 0.90  # share of tracked people whose matched sightings all lie in one track
MERGE_TARGET = 0.05  # largest share of scored tracks that may cover two hand people


@dataclass(frozen=True)
class HandFrame:
    """One counted frame: its (F, 4) ``(x, y, w, h)`` hand face boxes and the (F,) person label of each."""

    faces: np.ndarray
    labels: list[str]


def load_people_counts(path: str | Path) -> dict:
    """The hand identities: ``{"about": ..., "clips": {clip: {"people": n, "frames": {index: [label...]}}}}``."""
    path = Path(path)
    try:
        counts = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the people counts {path}: {error}; restore it from git") from error
    if "clips" not in counts:
        raise InputError(f"{path} has no 'clips' entry; restore it from git")
    return counts


def hand_frames(face_entry: dict, people_entry: dict) -> dict[int, HandFrame]:
    """A clip's counted frames {sampled index: HandFrame} from its face_counts.json and people_counts.json entries."""
    frames = {}
    for key, counted in face_entry["frames"].items():
        labels = list(people_entry["frames"].get(key, []))
        if len(labels) != len(counted["faces"]):
            raise InputError(f"frame {key}: {len(labels)} person labels for {len(counted['faces'])} counted faces")
        frames[int(key)] = HandFrame(np.asarray(counted["faces"], np.float64).reshape(-1, 4), labels)
    return frames


def matched_pairs(detections: np.ndarray, faces: np.ndarray) -> list[tuple[int, int]]:
    """(detection, hand face) index pairs of face_matching.match's one-to-one matching of (D, 4) detections to
    (F, 4) hand faces (both xywh). match() says which boxes matched, not with which: this runs its rule again,
    pair by pair (allowed: match() of the two boxes alone; nearest centres first), and checks it agrees."""
    centre = lambda boxes: boxes[:, :2] + boxes[:, 2:] / 2  # noqa: E731
    distance = np.linalg.norm(centre(detections)[:, None] - centre(faces)[None], axis=2)
    pairs: list[tuple[int, int]] = []
    used, hit = set(), set()
    for flat in np.argsort(distance, axis=None, kind="stable"):
        d, f = (int(i) for i in np.unravel_index(flat, distance.shape))
        if d in used or f in hit or not match(detections[d : d + 1], faces[f : f + 1])[0][0]:
            continue
        pairs.append((d, f))
        used.add(d)
        hit.add(f)
    expected_hit, expected_used = match(detections, faces)
    assert hit == set(np.flatnonzero(expected_hit)) and used == set(np.flatnonzero(expected_used))
    return pairs


def matched_labels(people: Iterable, frames: dict[int, HandFrame]) -> list[tuple[int, int, str]]:
    """(tracker person id, counted frame, hand label) for every sighting on a counted frame matched to a hand box.

    ``people`` are gvs.people.tracks.Person (anything with ``.id`` and ``.sightings`` whose items have
    ``.position`` and ``.box`` ``(top, right, bottom, left)``)."""
    by_position: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for person in people:
        for sighting in person.sightings:
            if int(sighting.position) in frames:
                by_position[int(sighting.position)].append((int(person.id), np.asarray(sighting.box)))
    found = []
    for position, hand in frames.items():
        seen = by_position.get(position, [])
        if not seen or not len(hand.labels):
            continue
        detections = boxes_xywh(np.stack([box for _, box in seen]))
        for d, f in matched_pairs(detections, hand.faces):
            found.append((seen[d][0], position, hand.labels[f]))
    return found


@dataclass
class ClipPeopleScore:
    """How one clip's tracks compare with its hand people (see the module doc for each figure)."""

    clip: str
    hand_people: int  # distinct hand labels of the clip (any number of counted frames)
    tracks: int  # the tracker's people of the clip
    scored_tracks: int  # of them, those matched to a hand box on some counted frame
    tracked: list[str] = field(default_factory=list)  # hand people matched on >= MIN_FRAMES counted frames
    one_track: list[str] = field(default_factory=list)  # of them, those whose matched sightings lie in one track
    fragments: dict[str, int] = field(default_factory=dict)  # tracked person -> tracks their matches spread over
    merging: dict[int, list[str]] = field(default_factory=dict)  # tracker person id -> the 2+ hand people it covers


def score_clip(clip: str, people: Sequence, frames: dict[int, HandFrame], min_frames: int = MIN_FRAMES):
    """Score one clip's tracker ``people`` against its counted ``frames`` (hand_frames)."""
    matches = matched_labels(people, frames)
    tracks_of: dict[str, set[int]] = defaultdict(set)
    frames_of: dict[str, set[int]] = defaultdict(set)
    labels_of: dict[int, set[str]] = defaultdict(set)
    for person, position, label in matches:
        tracks_of[label].add(person)
        frames_of[label].add(position)
        labels_of[person].add(label)
    hand_people = {label for hand in frames.values() for label in hand.labels}
    tracked = sorted(label for label in frames_of if len(frames_of[label]) >= min_frames)
    return ClipPeopleScore(
        clip=clip,
        hand_people=len(hand_people),
        tracks=len(people),
        scored_tracks=len(labels_of),
        tracked=tracked,
        one_track=[label for label in tracked if len(tracks_of[label]) == 1],
        fragments={label: len(tracks_of[label]) for label in tracked},
        merging={person: sorted(labels) for person, labels in sorted(labels_of.items()) if len(labels) > 1},
    )


@dataclass
class PeopleTotals:
    """The clips' scores added up: the issue's two targets over all clips."""

    clips: list[ClipPeopleScore] = field(default_factory=list)

    def add(self, score: ClipPeopleScore) -> None:
        self.clips.append(score)

    @property
    def tracked(self) -> int:
        return sum(len(c.tracked) for c in self.clips)

    @property
    def one_track(self) -> int:
        return sum(len(c.one_track) for c in self.clips)

    @property
    def scored_tracks(self) -> int:
        return sum(c.scored_tracks for c in self.clips)

    @property
    def merges(self) -> int:
        return sum(len(c.merging) for c in self.clips)

    @property
    def one_track_share(self) -> float:
        return self.one_track / self.tracked if self.tracked else float("nan")

    @property
    def merge_share(self) -> float:
        return self.merges / self.scored_tracks if self.scored_tracks else float("nan")

    @property
    def fragmentation(self) -> float:
        """Mean tracks per tracked person (1.0: none split)."""
        counts = [n for c in self.clips for n in c.fragments.values()]
        return float(np.mean(counts)) if counts else float("nan")

    def meets_targets(self) -> bool:
        return self.one_track_share >= ONE_TRACK_TARGET and self.merge_share <= MERGE_TARGET
