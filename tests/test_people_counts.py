"""Hand identities of the counted faces (tests/data/people_counts.json), the track scoring, and the tracker's
targets on the shared clips (issue 29)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gvs.people.scoring import (
    MERGE_TARGET,
    ONE_TRACK_TARGET,
    PeopleTotals,
    hand_frames,
    load_people_counts,
    score_clip,
)
from preprocess.face_matching import load_face_counts

DATA = Path(__file__).parent / "data"
FACES = load_face_counts(DATA / "face_counts.json")
PEOPLE = load_people_counts(DATA / "people_counts.json")


def test_people_counts_follow_the_face_counts():
    """Same clips and counted frames as face_counts.json, one label per counted face, 'people' = distinct labels."""
    assert PEOPLE["about"]
    assert set(PEOPLE["clips"]) == set(FACES["clips"])
    for clip, entry in PEOPLE["clips"].items():
        faces = FACES["clips"][clip]["frames"]
        assert set(entry["frames"]) == set(faces), clip
        for key, labels in entry["frames"].items():
            assert len(labels) == len(faces[key]["faces"]), (clip, key)
            assert len(set(labels)) == len(labels), (clip, key)  # one face per person on a frame
            assert all(isinstance(label, str) and label.isalpha() and label.isupper() for label in labels)
        assert entry["people"] == len({label for labels in entry["frames"].values() for label in labels}), clip
        assert entry["notes"], clip


def _person(number: int, sightings: list[tuple[int, list[int]]]) -> SimpleNamespace:
    """A stand-in for gvs.people.tracks.Person: (position, [x, y, w, h]) sightings as (top, right, bottom, left)."""
    return SimpleNamespace(
        id=number,
        sightings=[SimpleNamespace(position=p, box=np.array([y, x + w, y + h, x])) for p, (x, y, w, h) in sightings],
    )


def test_scoring_counts_one_track_splits_and_merges():
    """Two hand people on four counted frames: A kept in one track; B split in two tracks, the second of which also
    takes A's face on frame 11 (a merge); a track on no counted face is not scored."""
    a, b = [100, 100, 50, 60], [400, 100, 50, 60]
    frames = hand_frames(
        {"frames": {k: {"faces": [a, b], "unsure": []} for k in ("0", "4", "8", "11")}},
        {"frames": {k: ["A", "B"] for k in ("0", "4", "8", "11")}},
    )
    people = [
        _person(1, [(0, a), (4, a), (8, a)]),
        _person(2, [(0, b), (4, b)]),
        _person(3, [(8, b), (11, b), (11, a)]),
        _person(4, [(2, [700, 100, 40, 40])]),
    ]
    score = score_clip("clip", people, frames)
    assert (score.hand_people, score.tracks, score.scored_tracks) == (2, 4, 3)
    assert score.tracked == ["A", "B"]
    assert score.one_track == []  # A's frame-11 face went to track 3
    assert score.fragments == {"A": 2, "B": 2}
    assert score.merging == {3: ["A", "B"]}
    totals = PeopleTotals([score])
    assert (totals.one_track_share, totals.merge_share, totals.fragmentation) == (0.0, 1 / 3, 2.0)

    perfect = score_clip("clip", [_person(1, [(k, a) for k in (0, 4, 8, 11)]), _person(2, [(0, b), (4, b)])], frames)
    assert perfect.tracked == ["A"] and perfect.one_track == ["A"] and perfect.merging == {}


@pytest.mark.slow
def test_tracker_meets_the_targets_on_the_shared_clips(vgaf_root):
    """decode -> yuface -> FER -> PeopleTracker on the 11 shared clips: at least 90 % of the people matched on >= 3
    counted frames get one track, at most 5 % of the scored tracks merge two people (benchmarks/bench_people.py
    prints the table)."""
    from gvs.people.tracks import PeopleTracker
    from preprocess.decode import decode_clip
    from preprocess.faces import find_faces, load_fer_model, score_faces

    fer = load_fer_model()
    totals = PeopleTotals()
    for clip, entry in PEOPLE["clips"].items():
        path = vgaf_root / clip
        if not path.is_file():
            pytest.skip(f"{clip} not found under {vgaf_root}")
        decoded = decode_clip(path, sample_rate=None)
        frames, times = decoded.frames, decoded.frame_times or [0.4 * p for p in range(len(decoded.frames))]
        found = find_faces(frames, "yuface")
        scores = score_faces(fer, frames, [f.boxes for f in found], [f.eyes for f in found])
        tracker = PeopleTracker()
        for position, frame in enumerate(frames):
            tracker.add(position, times[position], frame, found[position].boxes, scores[position])
        totals.add(score_clip(clip, tracker.finish(), hand_frames(FACES["clips"][clip], entry)))
    misses = {
        c.clip: {p: n for p, n in c.fragments.items() if n > 1}
        for c in totals.clips
        if len(c.one_track) < len(c.tracked)
    }
    merges = {c.clip: c.merging for c in totals.clips if c.merging}
    assert totals.tracked >= 20  # people on >= 3 counted frames that yuface finds there (22 when measured)
    assert totals.one_track_share >= ONE_TRACK_TARGET, (
        f"{totals.one_track}/{totals.tracked} in one track; tracks of the others: {misses}"
    )
    assert totals.merge_share <= MERGE_TARGET, f"{totals.merges}/{totals.scored_tracks} tracks merge: {merges}"
