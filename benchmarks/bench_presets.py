"""Choose the fast preset from a table: pose input, face detection stride and scene size against the paper preset.

    .venv/bin/python benchmarks/bench_presets.py [--pose-sizes 256 320 336 352 368] [--face-every 1 2]
        [--scene-sizes 480x320 360x240 240x160] [--repeats 1] [--backend auto]

On the 11 shared clips (their 12 sampled frames, decoded once, not timed) each stage runs with each of its options
through the extractor preprocessing uses (SceneExtractor, PoseExtractor, FaceExtractor: model, grouping, filters,
FER), every option on every clip, options taking turns clip by clip so that other jobs on the shared cores slow
them alike. The stages do not depend on one another, so a preset's seconds per clip are the sum of its three
stages' (decoding and audio are the same for every row and left out), and its people and faces are its pose and
face stages' alone.

Kept, against the paper preset (pose 368, faces on every sampled frame, scene 480x320), per sampled frame:
people: min(people found, paper's people found), summed over frames and clips / paper's sum (more people than the
paper's in one frame does not make up for fewer in another); faces: paper's face boxes that a box of the row
matches (preprocess/face_matching.py: each centre inside the other box), summed / paper's faces. Rule for fast:
people >= 95 % and faces >= 90 % of the paper preset's; fast is the fastest row that keeps both.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field, replace
from itertools import product

import numpy as np
from _common import CLIPS, SHARED, use_shared_models

use_shared_models()
PEOPLE_KEPT, FACES_KEPT = 0.95, 0.90  # the rule for the fast preset

from preprocess.config import PRESETS, PreprocessConfig  # noqa: E402
from preprocess.decode import DecodedClip, decode_clip  # noqa: E402
from preprocess.face_matching import boxes_xywh, match  # noqa: E402
from preprocess.faces import FaceExtractor  # noqa: E402
from preprocess.pose import PoseExtractor  # noqa: E402
from preprocess.scene import SceneExtractor  # noqa: E402

PAPER = PRESETS["paper"]


@dataclass
class Option:
    """One stage with one setting: its extractor, and per clip its seconds and what it found."""

    stage: str  # scene | pose | faces
    value: object  # pose input size, face stride, or (scene width, height)
    extractor: object
    seconds: list[float] = field(default_factory=list)
    found: dict[str, list] = field(default_factory=dict)  # clip -> per frame: people count, or face boxes

    def run(self, name: str, clip: DecodedClip) -> None:
        """Extract ``clip`` (timed); keep the people counts or the face boxes per sampled frame."""
        start = time.perf_counter()
        result = self.extractor.extract(clip)
        self.seconds.append(time.perf_counter() - start)
        arrays = result.arrays
        if self.stage == "pose":
            self.found[name] = arrays["people_per_frame"][: len(clip.frames)].tolist()
        elif self.stage == "faces":
            ends = np.cumsum(arrays["faces_per_frame"][: len(clip.frames)])
            self.found[name] = np.split(arrays["boxes"], ends[:-1])


def options(args: argparse.Namespace) -> list[Option]:
    """Every stage option (the paper preset's setting of each stage among them), its extractor loaded."""
    base = replace(PAPER, **({"backend": args.backend} if args.backend else {}))
    made = [Option("pose", size, PoseExtractor(replace(base, pose_input_size=size))) for size in args.pose_sizes]
    made += [Option("faces", every, FaceExtractor(replace(base, face_every=every))) for every in args.face_every]
    for width, height in args.scene_sizes:
        config = replace(base, scene_width=width, scene_height=height)
        made.append(Option("scene", (width, height), SceneExtractor(config)))
    return made


def measure(made: list[Option], clips: dict[str, DecodedClip], repeats: int) -> None:
    """Every option on every clip ``repeats`` times, options taking turns (each clip starts with another)."""
    first = next(iter(clips.values()))
    for option in made:  # warm-up: models load and trace on the first call
        option.extractor.extract(first)
    for _ in range(repeats):
        for number, (name, clip) in enumerate(clips.items()):
            shift = number % len(made)
            for option in made[shift:] + made[:shift]:
                option.run(name, clip)


def people_kept(row: Option, paper: Option) -> float:
    """Share of the paper's people a pose setting keeps: per frame min(row, paper), summed, over paper's sum."""
    kept = sum(min(a, b) for name in paper.found for a, b in zip(row.found[name], paper.found[name]))
    return kept / max(sum(sum(counts) for counts in paper.found.values()), 1)


def faces_kept(row: Option, paper: Option) -> float:
    """Share of the paper's face boxes that the row's boxes match on the same frame (one to one)."""
    kept = total = 0
    for name, frames in paper.found.items():
        for mine, theirs in zip(row.found[name], frames):
            hit, _ = match(boxes_xywh(mine), boxes_xywh(theirs))
            kept, total = kept + int(hit.sum()), total + len(theirs)
    return kept / max(total, 1)


def table(made: list[Option]) -> list[dict]:
    """One row per preset (pose x faces x scene option): kept shares, seconds per clip per stage and in all."""
    by_stage = {stage: [o for o in made if o.stage == stage] for stage in ("pose", "faces", "scene")}
    paper_pose = next(o for o in by_stage["pose"] if o.value == PAPER.pose_input_size)
    paper_faces = next(o for o in by_stage["faces"] if o.value == PAPER.face_every)
    rows = []
    for pose, faces, scene in product(by_stage["pose"], by_stage["faces"], by_stage["scene"]):
        seconds = {o.stage: float(np.mean(o.seconds)) for o in (pose, faces, scene)}
        rows.append(
            {
                "pose": pose.value,
                "face_every": faces.value,
                "scene": "x".join(map(str, scene.value)),
                "people": people_kept(pose, paper_pose),
                "faces": faces_kept(faces, paper_faces),
                **{f"s_{stage}": value for stage, value in seconds.items()},
                "s_total": sum(seconds.values()),
            }
        )
    return sorted(rows, key=lambda row: row["s_total"])


def print_table(rows: list[dict], clips: int) -> None:
    """The rows as a Markdown table, fastest first, then the fastest row that keeps the rule."""
    print("| pose input | faces on | scene | people kept | faces kept | s/clip pose + faces + scene = total | rule |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        every = "every frame" if row["face_every"] == 1 else f"every {row['face_every']}"
        keeps = row["people"] >= PEOPLE_KEPT and row["faces"] >= FACES_KEPT
        print(
            f"| {row['pose']} | {every} | {row['scene']} | {row['people']:.1%} | {row['faces']:.1%} | "
            f"{row['s_pose']:.2f} + {row['s_faces']:.2f} + {row['s_scene']:.2f} = {row['s_total']:.2f} | "
            f"{'keeps' if keeps else '-'} |"
        )
    chosen = next((r for r in rows if r["people"] >= PEOPLE_KEPT and r["faces"] >= FACES_KEPT), None)
    print(f"\n{clips} clips; rule: people >= {PEOPLE_KEPT:.0%}, faces >= {FACES_KEPT:.0%} of the paper preset's")
    if chosen:
        print(
            f"fast: pose {chosen['pose']}, faces every {chosen['face_every']}, scene {chosen['scene']} "
            f"({chosen['s_total']:.2f} s/clip)"
        )


def scene_size(text: str) -> tuple[int, int]:
    """'480x320' -> (480, 320)."""
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pose-sizes", type=int, nargs="+", default=[256, 320, 336, 352, 368])
    parser.add_argument("--face-every", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scene-sizes", type=scene_size, nargs="+", default=[(480, 320), (360, 240), (240, 160)])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--backend", help="scene and pose engine (default: the preset's)")
    args = parser.parse_args()
    for needed, values in (
        (PAPER.pose_input_size, args.pose_sizes),
        (PAPER.face_every, args.face_every),
        ((PAPER.scene_width, PAPER.scene_height), args.scene_sizes),
    ):
        if needed not in values:
            parser.error(f"the paper preset's {needed} must be among the options (the reference)")
    clips = {name: decode_clip(SHARED / "data" / "vgaf" / name, sample_rate=None) for name in CLIPS}
    made = options(args)
    with open("/proc/loadavg") as load:
        print(f"load average before: {load.read().split()[0]} ({os.cpu_count()} CPUs; other jobs may share them)")
    default = PreprocessConfig()
    print(f"backend {args.backend or getattr(default, 'backend', '-')}, face detector {default.face_detector}")
    measure(made, clips, args.repeats)
    print_table(table(made), len(clips))
    current = PRESETS["fast"]
    print(
        f"PRESETS['fast'] now: pose {current.pose_input_size}, faces every {current.face_every}, "
        f"scene {current.scene_width}x{current.scene_height}"
    )


if __name__ == "__main__":
    main()
