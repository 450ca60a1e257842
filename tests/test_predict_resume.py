"""`gvs predict` as a batch tool: each video written as it finishes, the run manifest, resume, one run per output
folder, unique output names, and what survives kill -9 and Ctrl-C (in subprocesses, signalled as a terminal does)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gvs.cli import main as gvs_main
from gvs.core.workspace import PredictionsDir
from gvs.predict.manifest import RunManifest, output_names
from tests.media import ffmpeg
from tests.test_data_safety import hear_ctrl_c, hold_lock

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 240.0
# gvs predict with the windows so far written after every batch of windows (CHECKPOINT_S is a minute otherwise)
PREDICT_WITH_CHECKPOINTS = (
    "import sys\nimport gvs.predict.batch as batch\nbatch.CHECKPOINT_S = 0.0\n"
    "from gvs.cli import main\nsys.exit(main(sys.argv[1:]))"
)


def rows(out: Path) -> list[dict[str, str]]:
    with PredictionsDir(out).videos_csv.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def states(out: Path) -> dict[str, str]:
    """{output name: state} of the run manifest; {} before it is written."""
    path = PredictionsDir(out).manifest
    try:
        return {name: entry["state"] for name, entry in json.loads(path.read_text())["videos"].items()}
    except (OSError, ValueError):
        return {}


def test_output_names_are_unique_per_input(tmp_path: Path) -> None:
    paths = [tmp_path / "d1" / "clip.mp4", tmp_path / "d2" / "clip.mp4", tmp_path / "d2" / "clip.mkv"]
    paths += [tmp_path / "d1" / "Other.mp4", tmp_path / "a" / "x" / "take.mp4", tmp_path / "b" / "x" / "TAKE.mp4"]
    names = output_names(paths)
    assert names[paths[0]] == "d1/clip" and names[paths[3]] == "Other"
    assert {names[paths[1]], names[paths[2]]} == {"d2/clip.mp4", "d2/clip.mkv"}
    assert names[paths[4]] == "a/x/take" and names[paths[5]] == "b/x/TAKE"
    assert len({n.casefold() for n in names.values()}) == len(paths)


@pytest.mark.slow
def test_each_video_is_written_whole_and_a_rerun_keeps_what_matches(
    small_bundle: Path, test_clips: list[Path], tmp_path: Path, capsys
) -> None:
    for folder, clip in (("d1", test_clips[0]), ("d2", test_clips[1])):  # 2 s of each: one window
        (tmp_path / folder).mkdir()
        ffmpeg("-i", str(clip), "-t", "2", "-c", "copy", str(tmp_path / folder / "clip.mp4"))
    inputs = [str(tmp_path / "d1" / "clip.mp4"), str(tmp_path / "d2" / "clip.mp4")]
    out = tmp_path / "out"
    command = ["predict", *inputs, "--model", str(small_bundle), "--out", str(out), "--quiet"]
    assert gvs_main(command) == 0
    folder = PredictionsDir(out)
    assert states(out) == {"d1/clip": "complete", "d2/clip": "complete"}  # one name per input, not one clip.png
    for name in ("d1/clip", "d2/clip"):
        assert folder.timeline(name).stat().st_size > 10_000
        assert json.loads(folder.record(name).read_text())["windows"]
    assert [r["video"] for r in rows(out)] == inputs
    table = folder.videos_csv.read_bytes()
    written = {name: folder.record(name).stat().st_mtime_ns for name in ("d1/clip", "d2/clip")}
    capsys.readouterr()

    assert gvs_main(command) == 0  # the same bundle, options and files: nothing is predicted again
    assert "kept   2 videos" in capsys.readouterr().out
    assert folder.videos_csv.read_bytes() == table
    assert {name: folder.record(name).stat().st_mtime_ns for name in written} == written

    assert gvs_main(["predict", inputs[0], "--model", str(small_bundle), "--out", str(out), "--quiet", "--force"]) == 0
    printed = capsys.readouterr().out
    assert "kept" not in printed and "removed the outputs of 2 videos" in printed
    assert states(out) == {"clip": "complete"}  # alone, it is named by its file name
    assert folder.record("clip").is_file() and [r["video"] for r in rows(out)] == inputs[:1]
    for name in ("d1/clip", "d2/clip"):  # one run per folder: nothing of the earlier run is left beside it
        assert not folder.record(name).exists() and not folder.timeline(name).exists()


def test_a_rerun_with_other_options_or_a_changed_video_predicts_again(tmp_path: Path) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"0" * 100)
    folder = PredictionsDir(tmp_path / "out")
    options = {"stride": None, "pool": "mean", "precision": "auto", "backend": "auto"}
    first = RunManifest(folder, "bundle-sha", options)
    first.mark("a", video, "complete")
    folder.record("a").parent.mkdir()
    folder.record("a").write_text(json.dumps({"video": str(video), "windows": []}))
    assert RunManifest(folder, "bundle-sha", options).reusable("a", video) is not None
    assert RunManifest(folder, "bundle-sha", options | {"pool": "max"}).reusable("a", video) is None
    assert RunManifest(folder, "other-bundle", options).reusable("a", video) is None
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert RunManifest(folder, "bundle-sha", options).reusable("a", video) is None
    first.mark("a", video, "complete")  # the changed file, predicted again
    assert RunManifest(folder, "bundle-sha", options).reusable("a", video) is not None
    first.mark("a", video, "partial")  # the windows before an interruption: predicted again
    assert RunManifest(folder, "bundle-sha", options).reusable("a", video) is None


@pytest.mark.slow  # small_bundle: the trained demo workspace (minutes, once per run)
def test_a_second_run_into_a_busy_folder_is_refused_naming_the_pid(
    small_bundle: Path, val_clip: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    holder = hold_lock("PredictionsDir", out)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert gvs_main(["predict", str(val_clip), "--model", str(small_bundle), "--out", str(out)]) == 2
    finally:
        holder.communicate(timeout=30)
    error = capsys.readouterr().err
    assert f"pid {holder.pid}" in error and "--out" in error and "Traceback" not in error
    assert not PredictionsDir(out).videos_csv.exists()


@pytest.fixture(scope="module")
def long_video(tmp_path_factory, test_clips: list[Path]) -> Path:
    """15 s: a test clip looped (stream copy, so made at once)."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg("-stream_loop", "2", "-i", str(test_clips[2]), "-c", "copy", str(path))
    return path


def start_predict(arguments: list[str], log: Path, checkpoints: bool = False) -> subprocess.Popen:
    """gvs predict in its own process group (as a terminal runs it); ``checkpoints``: the windows so far written
    after every batch of windows."""
    program = ["-c", PREDICT_WITH_CHECKPOINTS] if checkpoints else ["-m", "gvs.cli"]
    return subprocess.Popen(
        [sys.executable, *program, "predict", *arguments, "--quiet"],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=hear_ctrl_c,
    )


def wait_for_states(process: subprocess.Popen, out: Path, wanted: dict[str, str], log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while states(out) != wanted:
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"never reached {wanted} (got {states(out)}): {log.read_text()[-3000:]}")
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_after_the_second_video_keeps_two_and_a_rerun_does_only_the_third(
    small_bundle: Path, test_clips: list[Path], tmp_path: Path, capsys
) -> None:
    out, log = tmp_path / "out", tmp_path / "log.txt"
    arguments = [*map(str, test_clips[:3]), "--model", str(small_bundle), "--out", str(out)]
    process = start_predict(arguments, log)
    first, second, third = (clip.stem for clip in test_clips[:3])
    try:
        wait_for_states(process, out, {first: "complete", second: "complete"}, log)
        os.killpg(process.pid, signal.SIGKILL)  # while it predicts the third
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    folder = PredictionsDir(out)
    assert states(out) == {first: "complete", second: "complete"}
    assert [Path(r["video"]).stem for r in rows(out)] == [first, second]  # the tables hold what is complete
    kept = {name: folder.record(name).stat().st_mtime_ns for name in (first, second)}
    assert all(folder.timeline(name).is_file() for name in kept) and not folder.record(third).exists()

    assert gvs_main(["predict", *arguments, "--quiet"]) == 0
    assert "kept   2 videos" in capsys.readouterr().out
    assert {name: folder.record(name).stat().st_mtime_ns for name in kept} == kept  # only the third is predicted
    assert states(out) == {first: "complete", second: "complete", third: "complete"}
    assert folder.timeline(third).is_file() and len(rows(out)) == 3
    assert not list(out.rglob(".*.tmp"))  # what the killed run was writing is cleaned up by the next one


@pytest.mark.slow
def test_ctrl_c_keeps_the_windows_so_far_and_exits_130_with_one_line(
    small_bundle: Path, long_video: Path, tmp_path: Path
) -> None:
    out, log = tmp_path / "out", tmp_path / "log.txt"
    arguments = [str(long_video), "--model", str(small_bundle), "--out", str(out), "--stride", "1"]  # 26 windows
    process = start_predict(arguments, log, checkpoints=True)
    try:
        wait_for_states(process, out, {"long": "partial"}, log)  # the first 8 windows are written
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    printed = log.read_text()
    lines = [line.strip() for line in re.split(r"[\r\n]", printed)]
    assert sum(line.startswith("interrupted;") for line in lines) == 1, printed[-3000:]
    assert "0 of 1 videos finished" in printed and "the windows of long predicted so far kept" in printed
    assert "Traceback" not in printed, printed[-3000:]
    folder = PredictionsDir(out)
    partial = json.loads(folder.record("long").read_text())
    assert partial["windows"] and re.search(r"interrupted at \d+\.\d s", "; ".join(partial["flags"])), partial
    assert rows(out)[0]["status"] == "flagged" and "interrupted at" in rows(out)[0]["flags"]
    assert not folder.timeline("long").exists()
