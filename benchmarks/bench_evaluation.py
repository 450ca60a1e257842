"""The evaluation tables on a synthetic cache, with and without out-of-fold hidden vectors for fc/vae.

    python benchmarks/bench_evaluation.py [--out /tmp/gvs-eval] [--oof 5] [--seeds 0 1 2] [--noisy 0.5 | --events]

The cache (tests/synthetic.py) has 40 clips per class and split, clips cut 4 by 4 from one "source video", each
modality seeing a different part of the class signal (scene tells Positive from the rest, pose Neutral, audio
Negative, faces weakly everything) and 20 % of the clips without audio. ``--noisy S`` makes another set: every
modality sees every class, but only in a share S of the clips (the others show a random class), so the modality
models overfit their training clips, which is where out-of-fold fusion inputs matter. It prints the comparison tables (95 %
bootstrap intervals, ECE, paired tests) of the default fusions and of fc/vae trained on K-fold out-of-fold hidden
vectors, then the mean ± std over seeds of both, and the seconds each took. ``--events`` uses the set where
only the order of a scene flash and an audio burst carries the class (tests/synthetic.py), for the time-aware
fusions (120 clips per class and split, scene and audio).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gvs.chain import ChainSettings, run_chain  # noqa: E402
from tests.synthetic import make_synthetic_cache  # noqa: E402

TRAIN = {"epochs": 30, "patience": 8}
FUSION: dict = {}  # every fusion's defaults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gvs-eval"))
    parser.add_argument("--oof", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--noisy", type=float, help="every modality shows the class in this share of clips")
    parser.add_argument("--events", action="store_true", help="the order-carrying set (scene and audio only)")
    args = parser.parse_args()
    drop = []
    if args.events:
        cache = make_synthetic_cache(args.out / "cache", 120, seed=5, groups=4, events=True)
        drop = ["pose", "faces"]
    else:
        if args.noisy is None:
            signal, separates = {"faces": 0.3}, {"scene": 0, "pose": 1, "audio": 2}
        else:
            signal, separates = dict.fromkeys(("scene", "pose", "audio", "faces"), args.noisy), {}
        cache = make_synthetic_cache(
            args.out / "cache", 40, signal=signal, seed=11, separates=separates, groups=4, missing={"audio": 0.2}
        )
    for oof in sorted({0, args.oof}):
        started = time.perf_counter()
        run_chain(
            ChainSettings(
                cache=cache,
                runs=args.out / f"runs-oof{oof}",
                seeds=args.seeds,
                drop=drop,
                ablation="none",
                calibrate=True,
                oof=oof,
                train_options=TRAIN,
                fusion_options=FUSION,
            )
        )
        print(f"\n== oof {oof}: {time.perf_counter() - started:.0f} s ==\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
