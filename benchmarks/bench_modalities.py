"""Benchmark the modality models on CPU: training seconds per epoch per 1,000 clips and prediction clips/s.

    .venv/bin/python benchmarks/bench_modalities.py [--clips 64] [--scene-clips 16] [--batch-size 32]

Random features of the real per-clip shapes (scene: ResNet-50 maps at the paper's 480x320 and the fast
preset's 240x160 frames, with and without the 1x1 channel reduction; audio: OpenL3 and log-mel sizes),
default sizes of modalities/architectures.py. One warm-up epoch (graph tracing) is not timed; data are
in memory, so reading the cache is not included.
"""

from __future__ import annotations

import argparse
import os
import time

import _common  # noqa: F401  the repository on sys.path, the process set up
import keras  # noqa: E402
import numpy as np
import tensorflow as tf  # noqa: E402

from modalities.architectures import build_model, compile_model  # noqa: E402
from preprocess.audio import LOGMEL_DIM  # noqa: E402

CASES = [  # (label, modality, per-clip shape, size overrides)
    ("scene paper 10x15, reduce 64", "scene", (12, 10, 15, 2048), {}),
    ("scene paper 10x15, no reduce", "scene", (12, 10, 15, 2048), {"reduce_channels": 0}),
    ("scene fast 5x8, reduce 64", "scene", (12, 5, 8, 2048), {}),
    ("scene fast 5x8, no reduce", "scene", (12, 5, 8, 2048), {"reduce_channels": 0}),
    ("pose", "pose", (12, 27), {}),
    ("audio openl3 6144", "audio", (11, 6144), {}),
    (f"audio logmel {LOGMEL_DIM}", "audio", (11, LOGMEL_DIM), {}),
    ("faces", "faces", (12, 22), {}),
]


def measure(modality: str, shape: tuple[int, ...], sizes: dict, clips: int, batch_size: int) -> tuple[float, float]:
    """(training seconds per epoch per 1,000 clips, prediction clips per second)."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((clips, *shape), dtype=np.float32)
    y = np.arange(clips) % 3
    model = compile_model(build_model(modality, shape, **sizes), modality)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    train_seconds = time.perf_counter() - start
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    return train_seconds / clips * 1000, clips / (time.perf_counter() - start)


def main() -> None:
    tf.get_logger().setLevel("ERROR")  # retracing notes for the differently shaped warm-up batches
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1024, help="clips per measurement (not scene)")
    parser.add_argument("--scene-clips", type=int, default=32, help="clips per scene measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--only", nargs="+", help="run only cases whose label starts with one of these")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores, batch size {args.batch_size}")
    print(f"| {'model':32} | {'params':>9} | {'train s/epoch/1000 clips':>24} | {'predict clips/s':>15} |")
    print(f"|{'-' * 34}|{'-' * 11}:|{'-' * 25}:|{'-' * 16}:|")
    for label, modality, shape, sizes in CASES:
        if args.only and not any(label.startswith(prefix) for prefix in args.only):
            continue
        clips = args.scene_clips if modality == "scene" else args.clips
        params = build_model(modality, shape, **sizes).count_params()
        train, predict = measure(modality, shape, sizes, clips, args.batch_size)
        print(f"| {label:32} | {params:9,d} | {train:24.1f} | {predict:15.1f} |", flush=True)


if __name__ == "__main__":
    main()
