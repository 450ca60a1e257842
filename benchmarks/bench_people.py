"""Person tracking (issue 29) against the hand identities of the shared clips (tests/data/people_counts.json).

    .venv/bin/python benchmarks/bench_people.py [--source ../shared/data/vgaf] [--parts distances tracks]
        [--boxes hand detected] [--same-person 0.45 0.5 0.55] [--max-link-gap 1]
    .venv/bin/python benchmarks/bench_people.py --parts cost --model BUNDLE --video /tmp/bench-pred/long-60s.mp4

distances: the face_recognition encoding (128-d, model "small", the one gvs.people.tracks merges tracks with) of
every hand-counted face on the counted frames (sampled frames 0, 4, 8, 11) and the distances between two faces of
one person on different frames ("same") and two faces of different people of one clip ("different"), pooled over
the clips: counts, quantiles, the largest same and smallest different distance, the share of each on the wrong
side of some thresholds, and the threshold with the least balanced error (mean of the two shares). ``--boxes``:
the hand boxes themselves ("hand": forehead to chin, ear to ear) and/or the yuface detections matched to them
("detected": the boxes the tracker encodes). "different, could merge" keeps only pairs of people never seen on
one counted frame: the tracker never merges tracks that share a frame, so only these can become a wrong merge.

tracks: decode -> find_faces(yuface) -> score_faces (FER) -> PeopleTracker on each clip's 12 sampled frames, the
tracks scored against the fixture (gvs/people/scoring.py: tracked people are hand people matched on >= 3 of the 4
counted frames; one track: all their matched sightings in one tracker person; merges: tracker people covering two
or more hand people), with the tracker's defaults, then once per other ``--same-person`` threshold and
``--max-link-gap`` (each with the other setting at its default). Per clip and in total:
hand people, tracker people, tracked people, how many got one track, fragments, merges; and seconds per clip of
detection + FER against the tracker's add + finish, with the encodings finish computed.

cost: what tracking adds to `gvs predict` (paper preset bundle) on one video, people on and off alternating in
one process (bench_predict.py's 60-s video is the one to give).
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import CLIPS, REPO, SHARED, use_shared_models

use_shared_models()

from gvs.people.scoring import (  # noqa: E402
    MERGE_TARGET,
    ONE_TRACK_TARGET,
    HandFrame,
    PeopleTotals,
    hand_frames,
    load_people_counts,
    matched_pairs,
    score_clip,
)
from preprocess.decode import decode_clip  # noqa: E402
from preprocess.face_matching import boxes_xywh, load_face_counts  # noqa: E402

FACE_COUNTS = REPO / "tests" / "data" / "face_counts.json"
PEOPLE_COUNTS = REPO / "tests" / "data" / "people_counts.json"
THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass
class Clip:
    """A shared clip's sampled frames, their times and its counted frames with hand identities."""

    name: str
    frames: np.ndarray  # (n, H, W, 3) uint8 RGB
    times: list[float]
    counted: dict[int, HandFrame]


def load_clips(source: Path, faces: dict, people: dict) -> list[Clip]:
    """Decode every shared clip found under ``source`` (one that is missing is reported and skipped)."""
    clips = []
    for name in CLIPS:
        path = source / name
        if not path.is_file():
            print(f"skipped {name}: not found under {source}")
            continue
        decoded = decode_clip(path, sample_rate=None)
        times = list(decoded.frame_times) or [i * 10 / (decoded.fps or 25.0) for i in range(len(decoded.frames))]
        clips.append(Clip(name, decoded.frames, times, hand_frames(faces["clips"][name], people["clips"][name])))
    return clips


def encode(frame: np.ndarray, boxes_trbl: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(F, 128) face_recognition encodings ("small" landmarks, as the tracker) of ``(top, right, bottom, left)``."""
    import face_recognition

    if not boxes_trbl:
        return np.zeros((0, 128))
    return np.asarray(face_recognition.face_encodings(np.ascontiguousarray(frame), boxes_trbl, model="small"))


def trbl(box_xywh) -> tuple[int, int, int, int]:
    x, y, w, h = (int(round(v)) for v in box_xywh)
    return y, x + w, y + h, x


def clip_faces(
    clip: Clip, boxes: str, detected: dict[int, np.ndarray] | None
) -> list[tuple[int, str, int, np.ndarray]]:
    """(frame, label, height, encoding) of every counted face: its hand box, or the detection matched to it."""
    faces = []
    for position, hand in clip.counted.items():
        if not hand.labels:
            continue
        if boxes == "hand":
            chosen = [(f, trbl(hand.faces[f])) for f in range(len(hand.labels))]
        else:
            found = detected[position]
            chosen = [(f, tuple(int(v) for v in found[d])) for d, f in matched_pairs(boxes_xywh(found), hand.faces)]
        encodings = encode(clip.frames[position], [box for _, box in chosen])
        for (f, box), encoding in zip(chosen, encodings):
            faces.append((position, hand.labels[f], box[2] - box[0], encoding))
    return faces


def pair_distances(clip: Clip, faces: list) -> dict[str, list[tuple[float, int]]]:
    """{"same", "different", "could merge"}: (distance, smaller face height) of each pair of the clip's faces."""
    together = {(a, b) for hand in clip.counted.values() for a in hand.labels for b in hand.labels}
    pairs = {"same": [], "different": [], "could merge": []}
    for (pos_a, label_a, h_a, enc_a), (pos_b, label_b, h_b, enc_b) in itertools.combinations(faces, 2):
        entry = (float(np.linalg.norm(enc_a - enc_b)), min(h_a, h_b))
        if label_a == label_b:
            if pos_a != pos_b:
                pairs["same"].append(entry)
        else:
            pairs["different"].append(entry)
            if (label_a, label_b) not in together:
                pairs["could merge"].append(entry)
    return pairs


def print_distribution(title: str, pairs: dict[str, list[tuple[float, int]]]) -> None:
    """Quantiles per kind of pair, the separation, error shares at THRESHOLDS and the least balanced error."""
    print(f"\n{title}")
    print(f"| {'pairs':28s} | {'n':>4s} | {'min':>5s} | " + " | ".join(f"q{q:.2f}" for q in QUANTILES) + " |   max |")
    print(f"|{'-' * 30}|{'-' * 6}|{'-' * 7}|" + "|".join("-" * 7 for _ in QUANTILES) + "|-------|")
    arrays = {}
    for kind, entries in pairs.items():
        for label, keep in (("", lambda h: True), (" (faces >= 60 px)", lambda h: h >= 60)):
            values = np.array([d for d, h in entries if keep(h)])
            arrays[kind + label] = values
            if not len(values):
                print(f"| {kind + label:28s} | {0:4d} |")
                continue
            quantiles = " | ".join(f"{q:5.3f}" for q in np.quantile(values, QUANTILES))
            print(
                f"| {kind + label:28s} | {len(values):4d} | {values.min():5.3f} | {quantiles} | {values.max():5.3f} |"
            )
    same, different, merge = arrays["same"], arrays["different"], arrays["could merge"]
    print(f"largest same {same.max():.3f}, smallest different {different.min():.3f} (could merge: {merge.min():.3f})")
    print("threshold t: same pairs > t (a split left) / different pairs <= t / could-merge pairs <= t")
    for t in THRESHOLDS:
        print(
            f"  {t:.2f}: {(same > t).mean():.3f} ({(same > t).sum()}) / {(different <= t).mean():.3f} "
            f"({(different <= t).sum()}) / {(merge <= t).mean():.3f} ({(merge <= t).sum()})"
        )
    grid = np.round(np.arange(0.30, 0.80, 0.01), 2)
    balanced = [((same > t).mean() + (different <= t).mean()) / 2 for t in grid]
    best = grid[int(np.argmin(balanced))]
    print(
        f"least balanced error: t = {best:.2f} ({min(balanced):.3f}: same > t {(same > best).mean():.3f}, "
        f"different <= t {(different <= best).mean():.3f})"
    )


def detect(clips: list[Clip]) -> tuple[dict, dict, dict]:
    """yuface boxes, eyes and FER scores of every sampled frame per clip, and seconds per clip (detection + FER)."""
    from preprocess.faces import find_faces, load_fer_model, score_faces

    fer = load_fer_model()
    score_faces(fer, clips[0].frames[:1], [np.array([[10, 60, 60, 10]])])  # warm-up (graph tracing)
    find_faces(clips[0].frames[:1], "yuface")
    boxes, scores, seconds = {}, {}, {}
    for clip in clips:
        started = time.perf_counter()
        found = find_faces(clip.frames, "yuface")
        scores[clip.name] = score_faces(fer, clip.frames, [f.boxes for f in found], [f.eyes for f in found])
        seconds[clip.name] = time.perf_counter() - started
        boxes[clip.name] = [f.boxes for f in found]
    return boxes, scores, seconds


def track(clip: Clip, boxes: list, scores: list, settings: dict):
    """The tracker's people of one clip, seconds of add + finish, and the encodings finish computed."""
    from gvs.people.tracks import PeopleTracker

    tracker = PeopleTracker(**settings)
    started = time.perf_counter()
    for position, frame in enumerate(clip.frames):
        tracker.add(position, clip.times[position], frame, boxes[position], scores[position])
    people = tracker.finish()
    return people, time.perf_counter() - started, tracker.encodings_computed


def run_tracks(clips: list[Clip], thresholds: list[float], gaps: list[int]) -> None:
    from gvs.people.tracks import MAX_LINK_GAP, SAME_PERSON

    boxes, scores, stage_seconds = detect(clips)
    runs = [{"same_person": SAME_PERSON, "max_link_gap": MAX_LINK_GAP}]
    runs += [{"same_person": t, "max_link_gap": MAX_LINK_GAP} for t in thresholds if t != SAME_PERSON]
    runs += [{"same_person": SAME_PERSON, "max_link_gap": g} for g in gaps if g != MAX_LINK_GAP]
    for settings in runs:
        totals, tracker_seconds, encodings = PeopleTotals(), [], []
        default = settings == runs[0]
        print(
            f"\nsame_person {settings['same_person']:.2f}, max_link_gap {settings['max_link_gap']}"
            + default * " (defaults)"
        )
        print(
            "| clip     | hand people | tracks | tracked (>=3) | one track | fragments | merges | det+FER s | tracker s | enc |"
        )
        print(
            "|----------|-------------|--------|---------------|-----------|-----------|--------|-----------|-----------|-----|"
        )
        for clip in clips:
            people, seconds, computed = track(clip, boxes[clip.name], scores[clip.name], settings)
            score = score_clip(clip.name, people, clip.counted)
            totals.add(score)
            tracker_seconds.append(seconds)
            encodings.append(computed)
            split = {label: n for label, n in score.fragments.items() if n > 1}
            merged = "; ".join(f"#{p}: {'+'.join(labels)}" for p, labels in score.merging.items())
            print(
                f"| {Path(clip.name).stem:8s} | {score.hand_people:11d} | {score.tracks:6d} | {len(score.tracked):13d} "
                f"| {len(score.one_track):9d} | {sum(score.fragments.values()):9d} | {len(score.merging):6d} "
                f"| {stage_seconds[clip.name]:9.2f} | {seconds:9.2f} | {computed:3d} |"
                + (f" split {split}" if split else "")
                + (f" merged {merged}" if merged else "")
            )
        verdict = "meets" if totals.meets_targets() else "misses"
        print(
            f"total: {totals.tracked} tracked people, {totals.one_track} in one track ({totals.one_track_share:.3f}, "
            f"target >= {ONE_TRACK_TARGET}), {totals.fragmentation:.2f} tracks per tracked person; {totals.merges} of "
            f"{totals.scored_tracks} scored tracks merge two people ({totals.merge_share:.3f}, target <= "
            f"{MERGE_TARGET}): {verdict} the targets"
        )
        det = np.array([stage_seconds[c.name] for c in clips])
        print(
            f"seconds per clip: detection + FER mean {det.mean():.2f}, tracker add + finish mean "
            f"{np.mean(tracker_seconds):.2f} (max {np.max(tracker_seconds):.2f}); encodings per clip mean "
            f"{np.mean(encodings):.1f} (max {np.max(encodings)})"
        )


def run_cost(model: Path, video_path: Path, rounds: int) -> None:
    """Seconds `gvs predict` takes on ``video_path`` with people tracked and without, alternating in one process
    (both predictors loaded first, one warm-up each), and what tracking took: the stream's "people" stage (linking
    and the encodings of the merge), the rest (the drops, the records) being in the difference."""
    from gvs.predict.predictor import Predictor

    predictors = {"people": Predictor(model, people=True), "no people": Predictor(model, people=False)}
    for predictor in predictors.values():
        predictor.predict_video(CLIPS[0])
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    stages: list[float] = []
    for _ in range(rounds):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            video = predictor.predict_video(video_path)
            seconds[name].append(time.perf_counter() - started)
            if name == "people":
                stages.append(predictor.stream.info.seconds.get("people", 0.0))
                people, encodings = len(video.people), predictor.stream.info.tracker.encodings_computed
    minutes = predictors["people"].stream.info.duration / 60
    with_people, without = np.median(seconds["people"]), np.median(seconds["no people"])
    print(f"\n{video_path.name} ({minutes * 60:.0f} s), {model}: median of {rounds} alternating runs")
    print("| | s | s per video minute |\n|---|---|---|")
    print(f"| without people | {without:.1f} | {without / minutes:.1f} |")
    print(f"| with people | {with_people:.1f} | {with_people / minutes:.1f} |")
    print(f"| difference | {with_people - without:+.1f} | {(with_people - without) / minutes:+.1f} |")
    print(f"people stage (linking + encodings) {np.median(stages):.1f} s; {people} people, {encodings} encodings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SHARED / "data" / "vgaf")
    parser.add_argument("--faces", type=Path, default=FACE_COUNTS, help="the hand face boxes")
    parser.add_argument("--people", type=Path, default=PEOPLE_COUNTS, help="the hand identities")
    parser.add_argument("--parts", nargs="+", choices=["distances", "tracks", "cost"], default=["distances", "tracks"])
    parser.add_argument("--model", type=Path, help="cost: the bundle gvs predict uses (paper preset)")
    parser.add_argument("--video", type=Path, help="cost: the video (bench_predict.py's 60-s video)")
    parser.add_argument("--rounds", type=int, default=2, help="cost: alternating runs per setting (2)")
    parser.add_argument("--boxes", nargs="+", choices=["hand", "detected"], default=["hand", "detected"])
    parser.add_argument(
        "--same-person", type=float, nargs="*", default=[], help="tracker thresholds to score besides its default"
    )
    parser.add_argument(
        "--max-link-gap", type=int, nargs="*", default=[], help="link gaps to score besides the default"
    )
    args = parser.parse_args()

    clips = load_clips(args.source, load_face_counts(args.faces), load_people_counts(args.people))
    counted = sum(len(hand.labels) for clip in clips for hand in clip.counted.values())
    print(f"{len(clips)} clips, {counted} counted faces, {sum(len(c.frames) for c in clips)} sampled frames")
    if "distances" in args.parts:
        detected = None
        if "detected" in args.boxes:
            from preprocess.faces import find_faces

            detected = {
                clip.name: dict(
                    zip(clip.counted, (f.boxes for f in find_faces(clip.frames[list(clip.counted)], "yuface")))
                )
                for clip in clips
            }
        for boxes in args.boxes:
            started, pooled, n_faces = time.perf_counter(), {"same": [], "different": [], "could merge": []}, 0
            for clip in clips:
                faces = clip_faces(clip, boxes, detected[clip.name] if detected else None)
                n_faces += len(faces)
                for kind, entries in pair_distances(clip, faces).items():
                    pooled[kind] += entries
            seconds = time.perf_counter() - started
            name = "hand boxes" if boxes == "hand" else "yuface detections matched to the hand boxes"
            print_distribution(f"encoding distances, {name}: {n_faces} faces encoded in {seconds:.1f} s", pooled)
    if "tracks" in args.parts:
        run_tracks(clips, args.same_person, args.max_link_gap)
    if "cost" in args.parts:
        if args.model is None or args.video is None:
            parser.error("--parts cost needs --model BUNDLE and --video VIDEO")
        run_cost(args.model, args.video, args.rounds)


if __name__ == "__main__":
    main()
