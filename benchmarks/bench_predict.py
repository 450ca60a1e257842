"""Benchmark `gvs predict` end to end (decode -> four modalities -> fusion) against issue 25's speed targets.

    .venv/bin/python benchmarks/bench_predict.py [--model BUNDLE] [--fast-model BUNDLE] [--preset paper fast]
                                                 [--backend tensorflow auto] [--precision auto] [--long-minutes 10]
                                                 [--skip-long] [--workdir DIR]

Clips: Val/1_1.mp4 and Test/Test_1..10.mp4 of $GVS_SHARED/data/vgaf (default ../shared). Long videos: the clips
re-encoded to 1280x720 at 25 fps and joined (repeating them) into a 60-s video, then that looped into a
--long-minutes one. A preset without a bundle gets one made by the main job on the demo data (`gvs run --preset P
--fusion soft --ablation none --train-epochs 5 --epochs 20`; the scene backbone is random without ImageNet
weights, which changes no timing). Bundles and videos go to --workdir (reused when there) or a temporary folder.

Each preset is measured in ONE fresh process (models loaded once): cold start (process start + imports + Predictor
construction; the median with --cold-starts - 1 more fresh processes), one warm-up clip, then every clip (median),
the 60-s video, the long video (peak RSS: ru_maxrss, and VmRSS sampled every 0.2 s). Stage seconds come from the
stream's VideoInfo.seconds; model+fusion is the time in Predictor._predict_batch; other = the rest (windows,
thumbnails). "load average" above ~2 means other jobs shared the 2 cores while it ran. Each preset is measured
once per --backend and --precision (columns "paper/tensorflow/auto", "paper/auto/auto", ...; by default the
TensorFlow path and the new default, side by side in one run). Beside the speed figures, each column after a
preset's first gives its agreement with that first column: the largest difference of a window's fused class
probabilities and the share of windows with the same top class, over the clips and the 60-s video.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import CLIPS, REPO, SHARED, use_shared_models

from preprocess.engine import BACKENDS  # noqa: E402
from preprocess.precision import PRECISIONS  # noqa: E402

use_shared_models()
# preset: (clip s, 60-s video s, cold start s); issue 25: 60-s video <= 22 s paper, <= 10 s fast, clip <= 2.5 s
TARGETS = {"paper": (2.5, 22.0, 15.0), "fast": (2.0, 10.0, 15.0)}
PEAK_GB, LINEAR = 2.5, 1.15  # 10-min peak RSS; its s per video-minute at most this times the 60-s video's
STAGES = ("decode", "audio decode", "audio", "scene", "pose", "faces", "model+fusion", "other")


def sample_rss(samples: list[float], done: threading.Event) -> None:
    """Append this process's VmRSS (MB) every 0.2 s until ``done``."""
    while not done.wait(0.2):
        with open("/proc/self/status") as status:
            samples.append(next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024)


def worker(model: str, backend: str, precision: str, videos: list[str], out: Path, started: float) -> None:
    """Runs in the fresh process: load once, then time every video; writes the figures to ``out`` (JSON)."""
    from gvs.predict.predictor import FUSED, Predictor

    predictor = Predictor(model, precision=precision, backend=backend)
    result = {"cold_s": time.time() - started, "precision": predictor.precision}
    in_model, predict_batch = [0.0], predictor._predict_batch

    def timed_batch(windows, *args, **kwargs):
        begun = time.perf_counter()
        try:
            return predict_batch(windows, *args, **kwargs)
        finally:
            in_model[0] += time.perf_counter() - begun

    predictor._predict_batch = timed_batch

    def run(path: str) -> dict:
        in_model[0] = 0.0
        video = predictor.predict_video(path)
        if video.status == "failed":
            raise SystemExit(video.reason)
        info = predictor.stream.info
        stages = dict(info.seconds, **{"model+fusion": in_model[0]})
        stages["other"] = video.seconds - sum(stages.values())
        counts = {k: getattr(info, k) for k in ("frames_decoded", "frames_sampled", "frames_extracted", "windows")}
        result["load"] = max(result.get("load", 0.0), os.getloadavg()[0])  # above ~2: others share the 2 cores
        fused = [w.probabilities[FUSED].tolist() for w in video.windows]  # for the agreement between columns
        return {
            "s": video.seconds,
            "duration": video.duration_s,
            "stages": stages,
            "flags": info.flags,
            "fused": fused,
            **counts,
        }

    if not videos:  # a cold start only
        return out.write_text(json.dumps(result))
    clips, long60, long_n = videos[: len(CLIPS)], videos[len(CLIPS)], videos[len(CLIPS) + 1 :]
    result["warmup"] = run(clips[0])
    result["clips"] = [run(c) for c in clips]
    result["60s"] = run(long60)
    if long_n:
        samples, done = [], threading.Event()
        thread = threading.Thread(target=sample_rss, args=(samples, done), daemon=True)
        thread.start()
        result["long"] = run(long_n[0])
        done.set()
        thread.join()
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the whole process's peak
        result["long"] |= {"vmrss_max_mb": max(samples, default=0.0), "maxrss_mb": maxrss_mb}
    out.write_text(json.dumps(result))


def run_logged(command: list[str], log_path: Path, what: str, **options) -> None:
    """Run ``command`` with its output (TensorFlow's warnings, Keras' epochs) in ``log_path``; exit if it fails."""
    with open(log_path, "w+") as log:
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, **options).returncode:
            log.seek(0)
            raise SystemExit(f"{what} failed ({log_path}):\n{log.read()[-3000:]}")


def make_bundle(preset: str, folder: Path) -> Path:
    bundle = folder / "runs" / "bundle"
    if not (bundle / "bundle.json").is_file():
        print(f"making the {preset} bundle in {folder} (log: {folder / 'chain.log'}) ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        from preprocess.demo import make_demo

        demo = make_demo(folder / "demo")  # `gvs run` with --cache and no dataset would only train from the cache
        command = [str(Path(sys.executable).with_name("gvs")), "run", str(demo), "--preset", preset, "--fusion", "soft"]
        command += ["--ablation", "none", "--train-epochs", "5", "--epochs", "20"]
        command += ["--cache", str(folder / "cache"), "--runs", str(folder / "runs")]
        env = dict(os.environ, GVS_HOME=str(folder / "home"))  # leaves the user's last-bundle pointer alone
        run_logged(command, folder / "chain.log", f"making the {preset} bundle", cwd=REPO, env=env)
    return bundle


def make_long_videos(clips: list[Path], folder: Path, minutes: float | None) -> list[Path]:
    """A 60-s join of the clips (1280x720, 25 fps, stereo 44.1 kHz) and, with ``minutes``, that looped."""
    import imageio_ffmpeg

    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error"]
    long60 = folder / "long-60s.mp4"
    if not long60.is_file():
        inputs = [clips[i % len(clips)] for i in range(math.ceil(60 / 5))]  # the clips last 5 s each
        parts = [
            f"[{i}:v]scale=1280:720,setsar=1,fps=25,format=yuv420p[v{i}];"
            f"[{i}:a]aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo[a{i}];"
            for i in range(len(inputs))
        ]
        joined = "".join(parts) + "".join(f"[v{i}][a{i}]" for i in range(len(inputs)))
        command = ffmpeg + [a for clip in inputs for a in ("-i", str(clip))]
        command += ["-filter_complex", f"{joined}concat=n={len(inputs)}:v=1:a=1[v][a]", "-map", "[v]", "-map", "[a]"]
        command += ["-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(long60)]
        subprocess.run(command, check=True)
    if minutes is None:
        return [long60]
    looped = folder / f"long-{minutes:g}min.mp4"
    if not looped.is_file():
        listing = folder / "loop.txt"
        listing.write_text(f"file '{long60}'\n" * math.ceil(minutes))
        command = ffmpeg + ["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy"]
        subprocess.run(command + ["-t", f"{minutes * 60:g}", str(looped)], check=True)
    return [long60, looped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="paper-preset bundle (default: made on the demo data)")
    parser.add_argument("--fast-model", help="fast-preset bundle (default: made on the demo data)")
    parser.add_argument("--preset", nargs="+", default=["paper", "fast"], choices=list(TARGETS))
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=PRECISIONS, help="backbone precisions")
    parser.add_argument(
        "--backend", nargs="+", default=["tensorflow", "auto"], choices=BACKENDS, help="backbone engines, side by side"
    )
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long video (default 10)")
    parser.add_argument("--skip-long", action="store_true", help="no long video")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh processes timed to ready (median)")
    parser.add_argument("--workdir", type=Path, help="keep bundles and videos here (default: a temporary folder)")
    # OUT MODEL BACKEND PRECISION VIDEO...: the measured process
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        out, model, backend, precision, *videos = args.worker
        return worker(model, backend, precision, videos, Path(out), float(os.environ["GVS_BENCH_T0"]))
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.workdir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        clips = [SHARED / "data" / "vgaf" / c for c in CLIPS]
        videos = make_long_videos(clips, work, None if args.skip_long else args.long_minutes)
        given = {"paper": args.model, "fast": args.fast_model}
        results = {}
        for preset in args.preset:
            bundle = given[preset] or make_bundle(preset, work / preset)
            for backend, precision in [(b, p) for b in args.backend for p in args.precision]:
                name = f"{preset}/{backend}/{precision}"
                out = work / f"result-{preset}-{backend}-{precision}.json"
                print(f"measuring {name} with {bundle} ...", flush=True)
                command = [sys.executable, __file__, "--worker", str(out), str(bundle), backend, precision]
                log = work / f"worker-{preset}-{backend}-{precision}.log"
                for videos_given in [[]] * max(0, args.cold_starts - 1) + [list(map(str, clips + videos))]:
                    env = dict(os.environ, GVS_BENCH_T0=repr(time.time()))  # the worker's cold start counts from here
                    run_logged(command + videos_given, log, f"measuring {name}", env=env)
                    result = json.loads(out.read_text())
                    result["colds"] = results.get(name, {}).get("colds", []) + [result["cold_s"]]
                    results[name] = result
    report(results, args.long_minutes)
    print(f"\nwhole benchmark: {time.perf_counter() - begun:.0f} s wall, {os.cpu_count()} cores")


def targets(name: str) -> tuple[float, float, float]:
    """The targets of a column named "paper" or "paper/openvino/int8"."""
    return TARGETS[name.split("/")[0]]


def check(value: float, target: float, unit: str = "") -> str:
    return f"{value:.2f}{unit} {'PASS' if value <= target else 'MISS'} (<={target:.2f}{unit})"


def per_minute(video: dict) -> float:
    return video["s"] / (video["duration"] / 60)


SUMMARY = (
    "Each frame is decoded once and each sampled frame goes through each backbone once (the counts above: every "
    "10th frame sampled, windows overlapping by half); the audio track is decoded and embedded once per video; "
    "the four small models and the fusion run once per batch of 8 windows."
)


def report(results: dict, minutes: float) -> None:
    def line(label: str, cell) -> None:
        cells = []
        for name, result in results.items():
            try:
                cells.append(cell(name, result))
            except KeyError:  # a figure this preset did not measure (--skip-long)
                cells.append("-")
        print(f"{label:34}" + "".join(f"{c:>26}" for c in cells))

    print()
    line("measurement", lambda n, r: n)
    line("TensorFlow precision", lambda n, r: r["precision"].split()[0])
    line("scene backbone", lambda n, r: backbone(r["precision"], "scene"))
    line("pose backbone", lambda n, r: backbone(r["precision"], "pose"))
    line("cold start s, median (process+models)", lambda n, r: check(statistics.median(r["colds"]), targets(n)[2]))
    line("  each cold start s", lambda n, r: " ".join(f"{c:.1f}" for c in r["colds"]))
    line("warm-up clip s (graph tracing)", lambda n, r: f"{r['warmup']['s']:.2f}")
    line(
        f"clip s, median of {len(CLIPS)} 5-s clips",
        lambda n, r: check(statistics.median([c["s"] for c in r["clips"]]), targets(n)[0]),
    )
    line("60-s video s", lambda n, r: check(r["60s"]["s"], targets(n)[1]))
    line("60-s video s / video s", lambda n, r: check(r["60s"]["s"] / r["60s"]["duration"], targets(n)[1] / 60, "x"))
    counts = ("frames_decoded", "frames_sampled", "frames_extracted", "windows")
    line("60-s decoded/sampled/run/windows", lambda n, r: "/".join(str(r["60s"][k]) for k in counts))
    line(f"{minutes:g}-min video s", lambda n, r: f"{r['long']['s']:.1f}")
    line("  s per video-minute (60-s video)", lambda n, r: f"{per_minute(r['long']):.2f} ({per_minute(r['60s']):.2f})")
    line("  ratio of the two (linear time)", lambda n, r: check(per_minute(r["long"]) / per_minute(r["60s"]), LINEAR))
    line("  peak RSS GB (ru_maxrss)", lambda n, r: check(r["long"]["maxrss_mb"] * 1.048576e-3, PEAK_GB))
    line("  peak VmRSS GB (sampled in run)", lambda n, r: check(r["long"]["vmrss_max_mb"] * 1.048576e-3, PEAK_GB))
    line("load average 1 min, max (own ~2)", lambda n, r: f"{r['load']:.2f}")
    first = {}  # preset -> its first column's result, the reference of the agreement lines
    for name, result in results.items():
        first.setdefault(name.split("/")[0], result)
    line("speed-up 60-s video (vs 1st col)", lambda n, r: f"{first[n.split('/')[0]]['60s']['s'] / r['60s']['s']:.2f}x")
    line("max |p - p(1st col)| (fused)", lambda n, r: f"{agreement(first[n.split('/')[0]], r)[0]:.4f}")
    line("same top class as 1st col", lambda n, r: f"{agreement(first[n.split('/')[0]], r)[1]:.4f}")
    columns = [(n, k) for n in results for k in ("clips", "60s", "long") if k in results[n]]
    print("\nstage seconds (clips: median)" + "".join(f"{n + ' ' + k:>14}" for n, k in columns))
    for stage in STAGES:
        values = [
            statistics.median([c["stages"].get(stage, 0.0) for c in results[n]["clips"]])
            if k == "clips"
            else results[n][k]["stages"].get(stage, 0.0)
            for n, k in columns
        ]
        print(f"{stage:29}" + "".join(f"{v:14.2f}" for v in values))
    print("\nwhere the time goes:", " ".join(where_time_goes(n, r["60s"]) for n, r in results.items()), SUMMARY)
    for name, result in results.items():
        for key in ("60s", "long"):
            if result.get(key, {}).get("flags"):
                print(f"flags ({name} {key}): {'; '.join(result[key]['flags'])}")


def backbone(precision: str, name: str) -> str:
    """``openvino/int8`` from the predictor's precision line ("float32 (...); backbones: scene openvino/int8 ...")."""
    words = precision.split("backbones:")[-1].replace(";", " ").split()
    return words[words.index(name) + 1] if name in words else "tensorflow"


def agreement(reference: dict, other: dict) -> tuple[float, float]:
    """(largest |difference| of a window's fused probabilities, share of windows with the same top class) over
    the clips and the 60-s video of two columns."""
    videos = [*zip(reference["clips"], other["clips"]), (reference["60s"], other["60s"])]
    a = np.concatenate([np.array(r["fused"]) for r, _ in videos])
    b = np.concatenate([np.array(o["fused"]) for _, o in videos])
    return float(np.abs(a - b).max()), float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


def where_time_goes(name: str, video: dict) -> str:
    stages = sorted(video["stages"].items(), key=lambda kv: -kv[1])
    backbones = sum(video["stages"].get(s, 0.0) for s in ("scene", "pose", "faces")) / video["s"]
    shares = ", ".join(f"{stage} {seconds / video['s']:.0%}" for stage, seconds in stages)
    frame = ", ".join(f"{s} {video['stages'][s] / video['frames_extracted']:.3f}" for s in ("scene", "pose", "faces"))
    return (
        f"{name}, 60-s video ({video['s']:.1f} s): {shares}; the three per-frame backbones {backbones:.0%} "
        f"(s per sampled frame: {frame})."
    )


if __name__ == "__main__":
    main()
