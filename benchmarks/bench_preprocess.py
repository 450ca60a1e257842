"""Benchmark preprocessing on real clips: seconds per clip per stage, clips/s, peak memory, per worker count.

    .venv/bin/python benchmarks/bench_preprocess.py [--source ../shared/data/vgaf] [--workers 1 2]
        [--preset paper fast] [--backend tensorflow auto] [--precision float32 bfloat16] [--engine local ray]

With ``--engine local ray`` each worker count runs as local processes and as Ray actors (a Ray started once on this
machine, its start-up timed apart; each actor gets the cores / workers CPUs a local worker gets as threads), and a
line per worker count gives the Ray path's throughput as a share of the local one's.

Each configuration runs on a fresh cache. Stage figures are medians over clips (the first clip of each worker
also pays model loading and graph tracing, which the wall-clock clips/s includes). Each preset and worker count
runs once per --backend and --precision (by default the TensorFlow path and the new default, auto, side by side);
the rows of one preset and worker count sit together, followed by each run's speed-up over the first one (clips/s,
and the scene + pose stages) and the agreement of its features with the first one's: the lowest and mean cosine of
the scene maps per frame, the share of keypoints within 2 px and of frames with the same people count, and the
share of faces with the same top FER expression.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, use_shared_models

from gvs.core.cluster import ENGINES, EngineOptions  # noqa: E402
from gvs.core.vocabulary import MODALITIES  # noqa: E402
from gvs.core.workspace import CacheDir  # noqa: E402
from gvs.engine.ray_pool import ray_session  # noqa: E402
from preprocess.agreement import Agreement  # noqa: E402
from preprocess.config import preset  # noqa: E402
from preprocess.engine import BACKENDS, resolve_backends  # noqa: E402
from preprocess.pipeline import RunSummary, run_preprocess  # noqa: E402
from preprocess.precision import PRECISIONS  # noqa: E402

SPEED_STAGES = ("scene", "pose")  # the stages issue 17's speed-up is measured on


def agreement(reference: Path, other: Path, ref_summary: RunSummary, other_summary: RunSummary) -> Agreement:
    """Scene maps, pose keypoints and face expressions of every clip both caches hold (faces only where the boxes
    are the same)."""
    totals = Agreement()
    for modality in ("scene", "pose", "faces"):
        if modality not in ref_summary.fingerprints or modality not in other_summary.fingerprints:
            continue
        stores = [
            CacheDir(root).store(modality, s.fingerprints[modality])
            for root, s in ((reference, ref_summary), (other, other_summary))
        ]
        for key in sorted(set(stores[0].keys()) & set(stores[1].keys())):
            (a, _), (b, _) = stores[0].read(key), stores[1].read(key)
            if modality == "scene":
                real = a["mask"].astype(bool)
                totals.add_scene(a["features"][real].astype(np.float32), b["features"][real].astype(np.float32))
            elif modality == "pose":
                totals.add_pose(*(people_per_frame(arrays) for arrays in (a, b)))
            elif np.array_equal(a["boxes"], b["boxes"]):
                totals.add_faces(a["scores"], b["scores"])
    return totals


def people_per_frame(arrays: dict) -> list[np.ndarray]:
    """A cached pose clip's keypoints (all people, (P, 18, 3)) split per real frame."""
    counts = arrays["people_per_frame"][arrays["mask"].astype(bool)]
    return np.split(arrays["keypoints"], np.cumsum(counts)[:-1])


def short_plan(config) -> str:
    """The backbones' engines of a preset, e.g. "ov-int8/ov-f32" (scene/pose)."""
    names = {"tensorflow": "tf", "openvino": "ov", "float32": "f32", "bfloat16": "bf16", "int8": "int8"}
    entries = dict(e.split("=") for e in resolve_backends(config).backend.split(","))
    return "/".join("-".join(names[w] for w in entries[b].split("/")) for b in ("scene", "pose"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "vgaf")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", nargs="+", default=["paper", "fast"])
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=PRECISIONS)
    parser.add_argument("--backend", nargs="+", default=["tensorflow", "auto"], choices=BACKENDS)
    parser.add_argument("--only", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    parser.add_argument("--engine", nargs="+", default=["local"], choices=ENGINES)
    args = parser.parse_args()
    use_shared_models()  # before Ray: actors get it
    with contextlib.ExitStack() as stack:
        if "ray" in args.engine:
            started = time.perf_counter()
            stack.enter_context(ray_session(EngineOptions("ray")))
            print(f"Ray started on this machine in {time.perf_counter() - started:.1f} s (not in the figures below)")
        run_all(args)


def run_all(args: argparse.Namespace) -> None:
    """Every preset x engine x worker count x precision, on a fresh cache each; prints a row per run."""
    print(f"source {args.source}, {os.cpu_count()} cores")
    header = (
        f"{'preset':7} {'engine':>6} {'workers':>7} {'precision':>9} {'scene/pose':>14} "
        + " ".join(f"{s:>7}" for s in ("decode", *args.only))
        + f" {'sum':>6} {'steady/s':>8} {'clips/s':>8} {'wall s':>7} {'peak MB':>8} {'failed':>6}"
    )
    print(header)
    notes = []
    throughput: dict[tuple[str, int, str, str, str], float] = {}
    for preset_name in args.preset:
        for engine_name in args.engine:
            for workers in args.workers:
                engine = EngineOptions(
                    engine_name,
                    workers=workers if engine_name == "ray" else None,
                    cpus_per_worker=max(1, (os.cpu_count() or 1) // workers) if engine_name == "ray" else None,
                )
                with tempfile.TemporaryDirectory() as scratch:
                    runs = []
                    for backend, precision in [(b, p) for b in args.backend for p in args.precision]:
                        cache = Path(scratch) / f"{backend}-{precision}"
                        config = preset(preset_name, precision=precision, backend=backend)
                        started = time.perf_counter()
                        summary = run_preprocess(
                            args.source,
                            cache,
                            config,
                            tuple(args.only),
                            workers,
                            progress=False,
                            engine=engine,
                        )
                        wall = time.perf_counter() - started
                        clips = summary.done + summary.failed
                        stages = [
                            float(np.median(summary.stage_seconds.get(s, [np.nan]))) for s in ("decode", *args.only)
                        ]
                        used = summary.precision.split()[0]
                        throughput[preset_name, workers, backend, precision, engine_name] = clips / wall
                        print(
                            f"{preset_name:7} {engine_name:>6} {workers:7d} {used:>9} {short_plan(config):>14} "
                            + " ".join(f"{v:7.2f}" for v in stages)
                            + f" {np.nansum(stages):6.2f} {workers / np.nansum(stages):8.3f} {clips / wall:8.3f}"
                            f" {wall:7.1f} {summary.peak_memory_mb:8.0f} {summary.failed:6d}"
                        )
                        runs.append((cache, summary, clips / wall))
                    notes.extend(compare(preset_name, workers, runs))
    for (preset_name, workers, backend, precision, engine_name), rate in throughput.items():
        local = throughput.get((preset_name, workers, backend, precision, "local"))
        if engine_name == "ray" and local:
            notes.append(
                f"{preset_name} x{workers} {backend}/{precision}: Ray {rate:.3f} clips/s = {rate / local:.2f}x "
                f"local {local:.3f}"
            )
    print(
        "stage columns: median seconds per clip; steady/s = workers / sum, the throughput once models are "
        "loaded; clips/s and wall include process (or actor) start and model loading; peak MB is the largest "
        "worker's (for Ray the actors')"
    )
    for note in notes:
        print(note)


def plan_label(summary: RunSummary) -> str:
    """The backbones' part of a run's precision line: "scene openvino/int8, pose openvino/float32"."""
    words = summary.precision.split("backbones:")[-1].replace(";", " ").split()
    return ", ".join(f"{b} {words[words.index(b) + 1]}" for b in ("scene", "pose") if b in words) or summary.precision


def compare(preset_name: str, workers: int, runs: list[tuple[Path, RunSummary, float]]) -> list[str]:
    """One line per run after the first: its speed-up (clips/s; scene + pose stages) and its agreement."""
    (reference, ref_summary, ref_rate), lines = runs[0], []

    def speed_stages(summary: RunSummary) -> float:
        return sum(float(np.median(summary.stage_seconds.get(s, [np.nan]))) for s in SPEED_STAGES)

    for cache, summary, rate in runs[1:]:
        figures = agreement(reference, cache, ref_summary, summary).figures()
        lines.append(
            f"{preset_name} x{workers}: {plan_label(summary)} against {plan_label(ref_summary)}: clips/s "
            f"{rate / ref_rate:.2f}x, scene + pose stages {speed_stages(ref_summary) / speed_stages(summary):.2f}x "
            f"faster; scene maps cosine min {figures['scene_cosine_min']:.5f} mean {figures['scene_cosine_mean']:.5f} "
            f"over {figures['frames']} frames; keypoints within 2 px {figures['keypoints_within_2px']:.4f} of "
            f"{figures['keypoints']}, people count equal on {figures['people_count_equal']:.4f} of "
            f"{figures['pose_frames']} frames; same top face expression {figures['face_top1_equal']:.3f} of "
            f"{figures['faces']} faces"
        )
    return lines


if __name__ == "__main__":
    main()
