"""What `gvs predict`'s per-video writes cost beside predicting (issue 28): one process, models loaded once.

    .venv/bin/python benchmarks/bench_predict_writes.py [--model BUNDLE] [--preset fast] [--workdir DIR]

Clips: Val/1_1.mp4 and Test/Test_1..10.mp4 of $GVS_SHARED/data/vgaf (default ../shared). Without --model, a bundle
is made as bench_predict.py makes one (the main job on the demo data, in --workdir, reused when there). For each clip:
the seconds to predict it, then the seconds of PredictionRun.add (its record, its timeline, the three tables again
with every clip so far, run.json), and of drawing its timeline alone. Beside them: what the old end-of-run write took
(write_outputs: the tables once and every timeline). The extra cost of writing as it goes: the record, tables and
run.json per clip, less the tables written once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from bench_predict import CLIPS, SHARED, make_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a bundle (default: one made on the demo data)")
    parser.add_argument("--preset", default="fast", help="the preset of the bundle made without --model")
    parser.add_argument("--workdir", type=Path, help="where the bundle and outputs go (default: a temporary folder)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-writes-"))
    model = args.model or make_bundle(args.preset, work / f"bundle-{args.preset}")

    from gvs.core.workspace import PredictionsDir
    from gvs.predict.batch import PredictionRun
    from gvs.predict.outputs import save_timeline, write_outputs, write_tables
    from gvs.predict.predictor import Predictor

    predictor = Predictor(model)
    clips = [SHARED / "data" / "vgaf" / clip for clip in CLIPS]
    predictor.predict_video(clips[0])  # warm-up
    options = {"stride": None, "pool": "mean", "precision": "auto", "backend": "auto"}
    folder = PredictionsDir(work / "as-it-goes")
    with folder.lock():
        run = PredictionRun(folder, predictor.bundle, [(clip, None) for clip in clips], options, force=True)
        run.set_settings(predictor.settings())
        predicted, written, drawn, videos = [], [], [], []
        for index, clip in enumerate(clips):
            started = time.perf_counter()
            video = predictor.predict_video(clip)
            predicted.append(time.perf_counter() - started)
            started = time.perf_counter()
            run.add(index, video)
            written.append(time.perf_counter() - started)
            started = time.perf_counter()
            save_timeline(video, work / "scratch.png")  # what add() spent on the timeline (also written at the end)
            drawn.append(time.perf_counter() - started)
            videos.append(video)
            print(
                f"{clip.name:14s} predict {predicted[-1]:6.2f} s   write as it goes {written[-1] * 1000:6.1f} ms "
                f"(of which the timeline {drawn[-1] * 1000:6.1f} ms)"
            )
    started = time.perf_counter()
    write_outputs(work / "at-the-end", videos, list(predictor.bundle.modalities), predictor.bundle.summary(), {})
    at_end = time.perf_counter() - started
    started = time.perf_counter()
    write_tables(PredictionsDir(work / "tables-once"), videos, list(predictor.bundle.modalities), run.bundle_info, {})
    tables_once = time.perf_counter() - started
    new = [w - d for w, d in zip(written, drawn)]  # the record, the tables again, run.json
    extra = sum(new) - tables_once
    print(
        f"\n{len(clips)} clips: predict {sum(predicted):.2f} s (median {statistics.median(predicted):.2f} s); "
        f"writes as each clip finishes {sum(written):.3f} s (median {statistics.median(written) * 1000:.1f} ms), "
        f"of which record + tables + run.json {sum(new):.3f} s (median {statistics.median(new) * 1000:.1f} ms); "
        f"the old write at the end {at_end:.3f} s, of which the tables {tables_once:.3f} s\n"
        f"extra cost of writing as it goes: {extra:.3f} s = {100 * extra / sum(predicted):.2f} % of the prediction "
        f"time (load average {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
