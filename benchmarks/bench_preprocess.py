"""Benchmark preprocessing on real clips: seconds per clip per stage, clips/s, peak memory, per worker count.

    .venv/bin/python benchmarks/bench_preprocess.py [--source ../shared/data/vgaf] [--workers 1 2] [--preset paper fast]

Each configuration runs on a fresh cache. Stage figures are medians over clips (the first clip of each worker
also pays model loading and graph tracing, which the wall-clock clips/s includes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gvs.core.vocabulary import MODALITIES  # noqa: E402
from preprocess.config import preset  # noqa: E402
from preprocess.pipeline import run_preprocess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "vgaf")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", nargs="+", default=["paper", "fast"])
    parser.add_argument("--only", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    args = parser.parse_args()
    os.environ.setdefault("GVS_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    print(f"source {args.source}, {os.cpu_count()} cores")
    header = (
        f"{'preset':7} {'workers':>7} "
        + " ".join(f"{s:>7}" for s in ("decode", *args.only))
        + f" {'sum':>6} {'steady/s':>8} {'clips/s':>8} {'wall s':>7} {'peak MB':>8} {'failed':>6}"
    )
    print(header)
    for preset_name in args.preset:
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as cache:
                started = time.perf_counter()
                summary = run_preprocess(
                    args.source, cache, preset(preset_name), tuple(args.only), workers, progress=False
                )
                wall = time.perf_counter() - started
                clips = summary.done + summary.failed
                stages = [float(np.median(summary.stage_seconds.get(s, [np.nan]))) for s in ("decode", *args.only)]
                print(
                    f"{preset_name:7} {workers:7d} "
                    + " ".join(f"{v:7.2f}" for v in stages)
                    + f" {np.nansum(stages):6.2f} {workers / np.nansum(stages):8.3f} {clips / wall:8.3f} {wall:7.1f} {summary.peak_memory_mb:8.0f}"
                    f" {summary.failed:6d}"
                )
    print(
        "stage columns: median seconds per clip; steady/s = workers / sum, the throughput once models are "
        "loaded; clips/s and wall include process start and model loading"
    )


if __name__ == "__main__":
    main()
