"""Pose stage per network input size on the 11 shared clips: people per sampled frame and seconds per clip.

    .venv/bin/python benchmarks/bench_pose.py [--sizes 256 320 368] [--repeats 2]

Each clip's 12 sampled frames are decoded once (not timed). Seconds per clip: what PoseExtractor.extract runs on
them (network, part-affinity grouping, static-skeleton filter), one network loaded for all sizes. Sizes take turns
clip by clip, so that other jobs on the shared cores slow every size alike; each repeat is printed on its own line.
People: mean per sampled frame, as the grouping finds them ("found") and after the static-skeleton filter ("kept",
what the features count).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import CLIPS, SHARED, use_shared_models

use_shared_models()

from preprocess import model_files  # noqa: E402
from preprocess.decode import read_frames  # noqa: E402
from preprocess.pose import PoseNet, detect_people, drop_static, grey_frames  # noqa: E402


def run_clip(net: PoseNet, frames: np.ndarray, size: int) -> tuple[float, float, float]:
    """(seconds, found people per frame, kept people per frame) for one clip's frames (n, H, W, 3) at ``size``."""
    started = time.perf_counter()
    found = detect_people(net, frames, size)
    kept = drop_static(found, grey_frames(frames))
    seconds = time.perf_counter() - started
    return seconds, np.mean([len(p) for p in found]), np.mean([len(p) for p in kept])


def measure(net: PoseNet, clips: dict[str, np.ndarray], sizes: list[int], repeats: int) -> dict:
    """{(size, clip): (found, kept)} and {(size, repeat): seconds per clip}, sizes interleaved clip by clip."""
    people, seconds = {}, {}
    for repeat in range(repeats):
        for index, (name, frames) in enumerate(clips.items()):
            order = sizes[index % len(sizes) :] + sizes[: index % len(sizes)]  # a different size goes first
            for size in order:
                elapsed, found, kept = run_clip(net, frames, size)
                people[size, name] = (found, kept)
                seconds.setdefault((size, repeat), []).append(elapsed)
    return people, seconds


def report(people: dict, seconds: dict, clips: list[str], sizes: list[int], repeats: int) -> None:
    """Print people per frame per clip and size, then the means and the seconds per clip of each repeat."""
    print("people per sampled frame, found / kept (after the static-skeleton filter)")
    print(f"{'clip':<18}" + "".join(f"{size:>14}" for size in sizes))
    for name in clips:
        print(f"{name:<18}" + "".join("{:>8.2f} /{:>4.2f}".format(*people[size, name]) for size in sizes))
    means = {size: np.mean([people[size, name] for name in clips], axis=0) for size in sizes}
    print(f"{'mean':<18}" + "".join("{:>8.2f} /{:>4.2f}".format(*means[size]) for size in sizes))
    reference = sizes[-1]
    print(f"{'kept vs ' + str(reference):<18}" + "".join(f"{means[s][1] / means[reference][1]:>13.0%} " for s in sizes))
    for repeat in range(repeats):
        row = [np.mean(seconds[size, repeat]) for size in sizes]
        print(f"{f's/clip, run {repeat + 1}':<18}" + "".join(f"{value:>13.2f} " for value in row))
        print(f"{'  speed-up':<18}" + "".join(f"{row[-1] / value:>13.2f}x" for value in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 368], help="input sizes, reference last")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    clips = {name: read_frames(SHARED / "data" / "vgaf" / name)[0] for name in CLIPS}
    net = PoseNet(model_files.resolve("openpose"))
    shapes = {frames.shape[1:3]: frames[:1] for frames in clips.values()}
    for size in args.sizes:  # warm-up: TensorFlow traces the graph once per input shape
        for frames in shapes.values():
            run_clip(net, frames, size)
    with open("/proc/loadavg") as load:
        print(f"load average before: {load.read().split()[0]} (2 cores; above ~1 other jobs share them)")
    people, seconds = measure(net, clips, args.sizes, args.repeats)
    report(people, seconds, CLIPS, args.sizes, args.repeats)


if __name__ == "__main__":
    main()
