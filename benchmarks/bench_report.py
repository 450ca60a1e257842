"""Benchmark `gvs report` on one 5-s clip against issue 12's targets: full report <= 60 s, --quick <= 15 s (models
loaded, 2 cores).

    .venv/bin/python benchmarks/bench_report.py --model BUNDLE [--clip Val/1_1.mp4] [--lime-samples 200]
                                                [--repeat 1]

The bundle's models are loaded once (cold start printed separately), one report of each kind warms every input
shape (a first report in a process also traces the pixel-gradient function, ~4 s), then the full and the quick
report are timed (median of --repeat) with each section's seconds ("predict" is
the whole-video pass that makes the timeline and keeps the explained window). "load average" above ~2 means
other jobs shared the 2 cores while it ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import SHARED, use_shared_models

use_shared_models()
TARGETS = {"full": 60.0, "quick": 15.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="bundle folder or .zip, or a RUNS folder")
    parser.add_argument("--clip", default="Val/1_1.mp4", help="clip under $GVS_SHARED/data/vgaf (default Val/1_1)")
    parser.add_argument("--lime-samples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    clip = SHARED / "data" / "vgaf" / args.clip

    from gvs.report.explain import ReportMaker, ReportOptions

    started = time.perf_counter()
    maker = ReportMaker(args.model)
    cold = time.perf_counter() - started
    kinds = {"full": ReportOptions(lime_samples=args.lime_samples), "quick": ReportOptions(quick=True)}
    for options in kinds.values():  # warm-up: every input shape built (and traced) once
        maker.explain(clip, options=options)
    print(f"clip: {clip.name}; cold start (imports + models): {cold:.1f} s; load average {os.getloadavg()[0]:.2f}")
    for name, options in kinds.items():
        runs = []
        for _ in range(args.repeat):
            runs.append(maker.explain(clip, options=options).seconds)
        totals = [sum(r.values()) for r in runs]
        total = statistics.median(totals)
        stages = ", ".join(f"{k} {statistics.median(r[k] for r in runs):.1f}" for k in runs[0])
        verdict = "meets" if total <= TARGETS[name] else "MISSES"
        print(f"{name:5s} report: {total:5.1f} s ({verdict} <= {TARGETS[name]:.0f} s) = {stages}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
