"""`gvs predict` with demo-trained models: whole videos, window timelines, every kind of bad input, the outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gvs.cli import main as gvs_main
from gvs.core.workspace import PredictionsDir
from gvs.predict.predictor import FUSED, Predictor
from tests.media import common_bad_copies, ffmpeg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictor(small_bundle: Path) -> Predictor:
    return Predictor(small_bundle)


def test_a_positive_then_negative_video_changes_class_across_the_join(
    demo: Path, predictor: Predictor, tmp_path: Path
) -> None:
    joined = tmp_path / "positive then negative.mp4"
    ffmpeg(
        "-i",
        str(demo / "Val" / "1_1.mp4"),
        "-i",
        str(demo / "Val" / "1_3.mp4"),
        "-filter_complex",
        "[0:v][0:a][1:v][1:a]concat=n=2:v=1:a=1[v][a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
        str(joined),
    )
    video = predictor.predict_video(joined)
    assert video.status in ("done", "flagged"), video.reason
    predicted = [w.predicted for w in video.windows]
    first = [w for w in video.windows if w.end_s < 4.5]
    last = [w for w in video.windows if w.start_s >= 5.0]  # the negative clip starts at 5 s
    assert first and last, [(w.start_s, w.end_s) for w in video.windows]
    assert all(w.predicted == "Positive" for w in first), predicted
    assert all(w.predicted == "Negative" for w in last), predicted


def test_windows_cover_the_whole_of_a_30_second_video(val_clip: Path, predictor: Predictor, tmp_path: Path) -> None:
    looped = tmp_path / "looped.mp4"
    ffmpeg("-stream_loop", "5", "-i", str(val_clip), "-c", "copy", str(looped))
    video = predictor.predict_video(looped)
    assert video.duration_s == pytest.approx(30, abs=0.5)
    starts = [w.start_s for w in video.windows]
    assert starts[0] == 0 and starts == sorted(starts) and len(video.windows) >= 12
    assert video.windows[-1].end_s >= video.duration_s - 0.5  # windows reach the end, not the first 4.4 s
    fused = np.stack([w.probabilities[FUSED] for w in video.windows])
    np.testing.assert_allclose(fused.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(video.probabilities, fused.mean(axis=0) / fused.mean(axis=0).sum(), atol=1e-6)


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory, val_clip: Path) -> Path:
    """One folder of good and bad videos, all derived from the real Val clip."""
    folder = tmp_path_factory.mktemp("mixed") / "Mixed"
    folder.mkdir()
    common_bad_copies(folder, val_clip)
    (folder / "gone.mp4").symlink_to(folder / "nowhere.mp4")
    ffmpeg("-i", str(val_clip), "-vn", "-c:a", "copy", str(folder / "audioonly.mp4"))
    ffmpeg("-i", str(val_clip), "-t", "0.3", str(folder / "tiny.mp4"))
    ffmpeg("-i", str(val_clip), "-t", "2", "-vf", "transpose=1", str(folder / "portrait.mp4"))
    ffmpeg("-i", str(val_clip), "-t", "2", "-vf", "scale=3840:2160", str(folder / "4k.mp4"))
    ffmpeg("-i", str(val_clip), "-vf", "select='gt(t,2.5)+not(mod(n,3))'", "-fps_mode", "vfr", str(folder / "vfr.mp4"))
    ffmpeg("-i", str(val_clip), "-t", "3", "-c:v", "mpeg4", "-c:a", "mp3", str(folder / "old.avi"))
    ffmpeg("-i", str(val_clip), "-t", "3", "-c:v", "libvpx", "-c:a", "libvorbis", str(folder / "clip.webm"))
    ffmpeg("-i", str(val_clip), "-t", "3", "-c", "copy", str(folder / "party, 2019 é.mkv"))
    ffmpeg(
        "-i",
        str(val_clip),
        "-i",
        str(val_clip),
        "-t",
        "3",
        "-map",
        "0:v",
        "-map",
        "0:a",
        "-map",
        "1:a",
        "-c",
        "copy",
        str(folder / "two audio streams.mp4"),
    )
    return folder


def test_every_bad_video_gets_its_own_outcome_and_the_batch_goes_on(
    bad_videos: Path, small_bundle: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert (
        gvs_main(["predict", str(bad_videos), "--model", str(small_bundle), "--out", str(out), "--quiet", "--emotiw"])
        == 0
    )
    printed = capsys.readouterr().out
    with PredictionsDir(out).videos_csv.open(newline="", encoding="utf-8") as handle:
        rows = {Path(r["video"]).name: r for r in csv.DictReader(handle)}
    for name in ("empty.mp4", "text.mp4", "truncated.mp4", "audioonly.mp4"):
        assert rows[name]["status"] == "failed" and name in rows[name]["reason"], rows[name]
    for name in (
        "good.mp4",
        "noaudio.mp4",
        "tiny.mp4",
        "portrait.mp4",
        "clip.webm",
        "party, 2019 é.mkv",
        "two audio streams.mp4",
    ):
        assert rows[name]["status"] in ("done", "flagged") and rows[name]["verdict"], rows[name]
    assert "no audio track" in rows["noaudio.mp4"]["flags"] or "fused from" in printed
    assert "short video" in rows["tiny.mp4"]["flags"]
    assert "gone.mp4" in printed and "symlink to a missing file" in printed
    folder = PredictionsDir(out)
    record = json.loads(folder.json.read_text())
    assert record["bundle"]["manifest_sha256"] and record["package_version"]
    assert folder.timeline("good").stat().st_size > 10_000
    assert (folder.emotiw / "good.txt").read_text().strip() in ("Positive", "Neutral", "Negative")
    with folder.windows_csv.open(newline="", encoding="utf-8") as handle:
        windows = list(csv.DictReader(handle))
    assert {"start_s", "end_s", "pose_Positive", "audio_Negative", "fused_Neutral"} <= set(windows[0])


def test_predict_without_model_uses_the_last_export_and_says_so(
    val_clip: Path, small_bundle: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from gvs.predict.bundle import last_bundle

    if last_bundle() is None:
        pytest.skip("no bundle exported in this GVS_HOME")
    assert gvs_main(["predict", str(val_clip), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "using the last exported bundle" in capsys.readouterr().out


def test_predict_without_any_bundle_says_what_to_run(val_clip: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GVS_HOME", str(tmp_path / "home"))
    assert gvs_main(["predict", str(val_clip), "--out", str(tmp_path / "out")]) == 2
    assert "gvs export" in capsys.readouterr().err


def _sharpness(path: Path) -> float:
    """Variance of the Laplacian of an image file: how much fine detail (a face's edges) it keeps."""
    import cv2

    return float(cv2.Laplacian(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.CV_64F).var())


def test_people_files_blurred_thumbnails_and_no_people(val_clip: Path, small_bundle: Path, tmp_path: Path) -> None:
    """The real clip's people: people/<name>.csv (one row per person, per-video ids from 1), a thumbnail each, the
    same records in predictions.json and windows.csv's group columns; --blur-faces blurs the thumbnails and
    --no-people writes none of it."""
    runs = {}
    for name, extra in (("plain", []), ("blurred", ["--blur-faces"]), ("none", ["--no-people"])):
        out = tmp_path / name
        arguments = ["predict", str(val_clip), "--model", str(small_bundle), "--out", str(out), "--quiet", *extra]
        assert gvs_main(arguments) == 0
        runs[name] = PredictionsDir(out)
    plain = runs["plain"]
    with plain.people_csv("1_1").open(newline="", encoding="utf-8") as handle:
        people = list(csv.DictReader(handle))
    assert len(people) >= 2 and [int(p["person"]) for p in people] == list(range(1, len(people) + 1))
    written = json.loads(plain.json.read_text())
    faces_model = "faces" in written["bundle"]["modalities"]  # without one, nobody's drop is known
    assert all((p["drop_fused"] != "") == faces_model and int(p["frames_seen"]) >= 1 for p in people)
    record = written["videos"][0]
    assert [p["id"] for p in record["people"]] == [int(p["person"]) for p in people]
    with plain.windows_csv.open(newline="", encoding="utf-8") as handle:
        assert all(int(w["people"]) >= 1 for w in csv.DictReader(handle))
    for person in people:
        blurred = runs["blurred"].root / person["thumbnail"]
        assert _sharpness(blurred) < 0.5 * _sharpness(plain.root / person["thumbnail"])
    none = runs["none"]
    assert not none.people.exists()
    assert json.loads(none.json.read_text())["videos"][0]["people"] == []
