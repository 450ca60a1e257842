"""The last tracebacks and rough messages of issue 28: `gvs predict`'s CSV header, a file named like an option,
a batch where every video fails, a read-only --out, an audio-only file, `gvs run` on unlabelled videos, and
`gvs serve`'s port, full disk and Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gvs.cli import main as gvs_main
from gvs.core.workspace import PredictionsDir
from tests.media import ffmpeg
from tests.test_data_safety import hear_ctrl_c
from tests.test_serve_api import client_for, job_folders, upload

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # small_bundle: the trained demo workspace (minutes, once per run)
def test_a_csv_without_a_video_column_names_the_file_and_the_fix(small_bundle: Path, tmp_path: Path, capsys) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("file,label\nclip.mp4,Positive\n")
    assert gvs_main(["predict", str(listing), "--model", str(small_bundle), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert str(listing) in error and "'video' column" in error and "file,label" in error
    assert "Traceback" not in error


@pytest.mark.slow  # small_bundle: the trained demo workspace (minutes, once per run)
def test_an_out_that_is_a_file_is_refused_with_a_message(
    small_bundle: Path, val_clip: Path, tmp_path: Path, capsys
) -> None:
    taken = tmp_path / "results"
    taken.write_text("not a folder\n")
    assert gvs_main(["predict", str(val_clip), "--model", str(small_bundle), "--out", str(taken)]) == 2
    error = capsys.readouterr().err
    assert f"--out {taken} is a file; give a folder" in error and "Traceback" not in error
    assert taken.read_text() == "not a folder\n"


def test_a_file_named_like_an_option_gets_told_to_put_dashes_before_it(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-x.mp4").write_bytes(b"")
    assert gvs_main(["predict", "-x.mp4"]) == 2
    error = capsys.readouterr().err
    assert "-x.mp4" in error and "gvs predict -- -x.mp4" in error and "required" not in error


@pytest.mark.slow
def test_when_every_video_fails_the_exit_is_1_and_each_reason_names_its_file_once(
    small_bundle: Path, val_clip: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video\n")
    ffmpeg("-i", str(val_clip), "-vn", "-c:a", "copy", str(folder / "audioonly.mp4"))
    out = tmp_path / "out"
    assert gvs_main(["predict", str(folder), "--model", str(small_bundle), "--out", str(out), "--quiet"]) == 1
    printed = capsys.readouterr()
    assert "not one of the 3 videos could be predicted" in printed.err
    record = json.loads(PredictionsDir(out).json.read_text())
    reasons = {Path(v["video"]).name: v["reason"] for v in record["videos"]}
    assert all(v["status"] == "failed" for v in record["videos"])
    for name, reason in reasons.items():
        assert reason.count(name) == 1, reason  # not "PATH: PATH: file is empty"
    assert "file is empty" in reasons["empty.mp4"]
    assert "no video stream" in reasons["audioonly.mp4"], reasons["audioonly.mp4"]


def test_a_stream_that_changes_size_fails_with_a_message_and_a_still_picture_passes(
    test_clips: list[Path], tmp_path: Path
) -> None:
    from preprocess.decode import ClipDecodeError, FrameSampler

    for name, clip, size in (("small", test_clips[0], "320:180"), ("large", test_clips[1], "640:360")):
        encode = ["-c:v", "libx264", "-preset", "ultrafast", "-an"]
        ffmpeg("-i", str(clip), "-t", "1.5", "-vf", f"scale={size}", *encode, str(tmp_path / f"{name}.mp4"))
    (tmp_path / "list.txt").write_text("file 'small.mp4'\nfile 'large.mp4'\n")
    joined = tmp_path / "joined.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(joined))
    with pytest.raises(ClipDecodeError, match=r"picture size changes from 320x180 to 640x360 near \d"):
        list(FrameSampler(joined, 10))
    ffmpeg("-i", str(test_clips[0]), "-frames:v", "1", str(tmp_path / "frame.png"))
    still = tmp_path / "still.mp4"  # every decoded frame the same picture: repeats that are real
    ffmpeg(
        "-loop",
        "1",
        "-i",
        str(tmp_path / "frame.png"),
        "-t",
        "3",
        "-vf",
        "scale=320:180",
        "-pix_fmt",
        "yuv420p",
        str(still),
    )
    assert len(list(FrameSampler(still, 10))) >= 7


@pytest.mark.slow  # small_bundle: the trained demo workspace (minutes, once per run)
def test_a_read_only_out_is_refused_before_predicting_without_blaming_free_space(
    small_bundle: Path, val_clip: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes into read-only folders: refuse as the file system refuses a user
        make_folder = Path.mkdir

        def refuse(self: Path, *args, **kwargs) -> None:
            if locked in self.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            make_folder(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refuse)
    try:
        command = ["predict", str(val_clip), "--model", str(small_bundle), "--out", str(locked / "out")]
        assert gvs_main(command) == 2
    finally:
        locked.chmod(0o700)
    error = capsys.readouterr().err
    assert "cannot write to" in error and "choose a folder you can write to" in error
    assert "free some space" not in error


def test_gvs_run_on_unlabelled_videos_says_so_before_preprocessing(
    test_clips: list[Path], tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(test_clips[0], folder / "a.mp4")
    command = ["run", str(folder), "--cache", str(tmp_path / "cache"), "--runs", str(tmp_path / "runs")]
    started = time.monotonic()
    assert gvs_main(command) == 2
    assert time.monotonic() - started < 5
    error = capsys.readouterr().err
    assert "none of its 1 videos has a label" in error and str(folder) in error
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


def test_gvs_serve_refuses_a_port_over_65535_when_parsing(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        gvs_main(["serve", "--port", "99999"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "a port is 1 to 65535, got 99999" in error and "Traceback" not in error


def test_a_full_disk_gets_507_with_a_message_on_the_api_and_the_page(
    tmp_path: Path, val_clip: Path, monkeypatch
) -> None:
    from gvs.serve import uploads

    def full(self, data: bytes, start: int, end: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(uploads._Receiver, "_data", full)
    with client_for(tmp_path) as client:
        answer = upload(client, val_clip)
        assert answer.status_code == 507
        assert "no room to store this video (no space left on device)" in answer.json()["error"]
        assert str(tmp_path) not in answer.json()["error"]  # no server path in the answer
        page = upload(client, val_clip, url="/jobs")
        assert page.status_code == 507 and "no room to store this video" in page.text
    assert job_folders(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_of_gvs_serve_prints_one_line_exits_130_and_fails_the_unfinished_jobs(
    small_bundle: Path, val_clip: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store, log = tmp_path / "store", tmp_path / "log.txt"
    command = ["serve", "--model", str(small_bundle), "--port", str(port), "--store", str(store)]
    process = subprocess.Popen(
        [sys.executable, "-m", "gvs.cli", *command],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=hear_ctrl_c,
    )
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        ids = []
        for _ in range(2):  # the first runs, the second waits in the queue
            with val_clip.open("rb") as handle:
                answer = httpx.post(f"{base}/api/jobs", files={"file": ("clip.mp4", handle, "video/mp4")}, timeout=60)
            ids.append(answer.json()["id"])
        os.killpg(process.pid, signal.SIGINT)
        stopped = time.monotonic()
        assert process.wait(timeout=30) == 130
        assert time.monotonic() - stopped < 8
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    printed = log.read_text()
    after = printed[printed.index("serving on") :]
    assert sum(line.startswith("interrupted;") for line in after.splitlines()) == 1, after
    assert not re.search(r"Shutting down|Finished server process|Traceback", after), after
    first, queued = (json.loads((store / job_id / "state.json").read_text()) for job_id in ids)
    assert queued["status"] == "failed" and "server was stopped" in queued["error"], queued
    assert first["status"] == "done" or "server was stopped" in first["error"], first  # never left "running"
