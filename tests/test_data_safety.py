"""Issue 9, "never mix, lose or misfile a user's data": one regression test per way it used to happen.

Cache tests preprocess only the audio modality (no TensorFlow model, about 0.3 s a clip); training tests use a
tiny synthetic cache and one epoch; the Ctrl-C and kill tests run the command line in a subprocess (slow).
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gvs.core import io as io_module
from gvs.core import workspace as workspace_module
from gvs.core.errors import CacheBusyError, CacheError, CorruptFileError, DiskError, InputError, LabelFileError
from gvs.core.workspace import CacheDir, RunFolder, RunsDir, check_key, load_keras_model
from preprocess.config import PreprocessConfig
from preprocess.labels import discover, read_csv_labels, read_vgaf_labels
from preprocess.pipeline import run_preprocess

REPO = Path(__file__).resolve().parents[1]


def hold_lock(folder_class: str, folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (``folder_class`` of gvs.core.workspace) until its stdin closes;
    it prints "locked" once it holds it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys\nfrom gvs.core.workspace import {folder_class}\n"
            f"with {folder_class}(sys.argv[1]).lock():\n    print('locked', flush=True)\n    sys.stdin.read()",
            str(folder),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def hear_ctrl_c() -> None:
    """In the child: SIGINT back to its default, as in a terminal (a shell's background job, such as this test run
    started with &, ignores it, and Python keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def audio_only(source, cache: Path, **options):
    return run_preprocess(source, cache, PreprocessConfig(), ("audio",), workers=1, progress=False, **options)


def link(clip: Path, target: Path) -> Path:
    """``target`` -> the real clip (a symlink: as good as a copy to discovery and decoding, and free)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(clip)
    return target


def video_folder(folder: Path, clips: list[Path]) -> Path:
    for clip in clips:
        link(clip, folder / clip.name)
    return folder


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


# 1. Source "." -------------------------------------------------------------------------------------------------


def test_dot_source_writes_under_the_cache_and_nowhere_else(tmp_path: Path, test_clips, monkeypatch) -> None:
    videos = video_folder(tmp_path / "party_videos", test_clips[:1])
    clip = f"dotsource_{uuid.uuid4().hex[:8]}"
    (videos / test_clips[0].name).rename(videos / f"{clip}.mp4")
    cache = tmp_path / "cache"
    before = files_under(tmp_path)
    monkeypatch.chdir(videos)
    summary = audio_only(".", cache)
    assert (summary.done, summary.failed) == (1, 0)
    store = CacheDir(cache).current("audio")
    assert store.folder == cache / "features" / "audio" / summary.fingerprints["audio"]
    assert (store.folder / "party_videos" / f"{clip}.npz").is_file()
    assert all(p.parts[0] == "cache" for p in files_under(tmp_path) - before)  # nothing beside the videos
    assert not Path(f"/{clip}.npz").exists()  # the old code resolved "." to "" and wrote /<clip>.npz
    assert [r["key"] for r in CacheDir(cache).clip_rows()] == [f"party_videos/{clip}"]
    assert CacheDir(cache).source()["path"] == str(videos.resolve())


@pytest.mark.parametrize("key", ["../x", "Val/../../x", "/etc/passwd", "Val/./x", "Val//x", "", "..", "a\\..\\b"])
def test_feature_store_refuses_keys_that_leave_its_folder(tmp_path: Path, key: str) -> None:
    store = CacheDir(tmp_path / "cache").store("audio", "0123456789ab")
    for path_of in (store.path, store.failure_path, check_key):
        with pytest.raises(CacheError, match="not a safe relative name"):
            path_of(key)


def test_csv_video_outside_its_folder_gets_a_key_inside_the_cache(tmp_path: Path, test_clips) -> None:
    link(test_clips[0], tmp_path / "clips" / "a.mp4")
    listing = tmp_path / "lists" / "mine.csv"
    listing.parent.mkdir()
    listing.write_text("video,label\n../clips/a.mp4,Positive\n")
    summary = audio_only(listing, tmp_path / "cache")
    assert (summary.done, summary.failed) == (1, 0)
    (row,) = CacheDir(tmp_path / "cache").clip_rows()
    assert ".." not in row["key"].split("/") and check_key(row["key"])
    assert row["path"] == str(tmp_path.resolve() / "clips" / "a.mp4")
    store = CacheDir(tmp_path / "cache").current("audio")
    assert store.has(row["key"]) and store.path(row["key"]).is_relative_to(store.folder)


# 2. Clip-key collisions ------------------------------------------------------------------------------------------


def test_csv_clips_with_one_file_name_in_two_folders_stay_apart(tmp_path: Path, test_clips) -> None:
    root = tmp_path / "set"
    link(test_clips[0], root / "v" / "v2.mp4")
    link(test_clips[1], root / "w" / "v2.mp4")
    (root / "labels.csv").write_text("video,label\nv/v2.mp4,Positive\nw/v2.mp4,Negative\n")
    cache = tmp_path / "cache"
    assert audio_only(root / "labels.csv", cache).done == 2
    rows = {r["key"]: r for r in CacheDir(cache).clip_rows()}
    assert set(rows) == {"all/v/v2", "all/w/v2"}
    assert (rows["all/v/v2"]["label"], rows["all/w/v2"]["label"]) == ("0", "2")
    store = CacheDir(cache).current("audio")
    (v, v_meta), (w, w_meta) = store.read("all/v/v2"), store.read("all/w/v2")
    assert (v_meta["label"], w_meta["label"]) == (0, 2)
    assert v_meta["path"] == str(root.resolve() / "v" / "v2.mp4")
    assert w_meta["path"] == str(root.resolve() / "w" / "v2.mp4")
    assert not np.array_equal(v["features"], w["features"])  # two clips, two feature files


@pytest.mark.parametrize("layout", ["folder", "vgaf"])
def test_two_videos_with_one_name_are_an_error_listing_both(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "data"
    folder = root / ("Val" if layout == "vgaf" else "")
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "vgaf":
        (root / "Val_labels.txt").write_text("Vid_name Label\nclip 1\n")
    for name in ("clip.mp4", "clip.mkv", "other.mp4"):
        (folder / name).write_bytes(b"")
    with pytest.raises(InputError) as error:
        audio_only(root, tmp_path / "cache")
    assert str(folder.resolve() / "clip.mp4") in str(error.value)
    assert str(folder.resolve() / "clip.mkv") in str(error.value)
    assert not (tmp_path / "cache").exists()


# 3. One source per cache, clips.csv exactly the source's clips --------------------------------------------------


def test_a_cache_holds_one_source_and_exactly_its_clips(tmp_path: Path, test_clips) -> None:
    first = video_folder(tmp_path / "a" / "demo", test_clips[:2])
    second = video_folder(tmp_path / "b" / "demo", test_clips[2:3])
    cache = tmp_path / "cache"
    audio_only(first, cache)
    listed = CacheDir(cache).clips_path.read_bytes()
    with pytest.raises(CacheError) as error:
        audio_only(second, cache)
    assert str(first.resolve()) in str(error.value) and str(second.resolve()) in str(error.value)
    assert CacheDir(cache).clips_path.read_bytes() == listed
    assert CacheDir(cache).current("audio").keys() == ["demo/Test_1", "demo/Test_10"]
    (first / "Test_10.mp4").unlink()
    again = audio_only(first, cache)
    assert (again.done, again.skipped) == (0, 1)
    assert [r["key"] for r in CacheDir(cache).clip_rows()] == ["demo/Test_1"]


# 4, 5, 10. Training: relabelled clips, failed retrains, corrupt models -------------------------------------------

TINY = {"epochs": 1, "batch_size": 12, "verbose": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny synthetic cache and a faces model trained on it once (1 epoch); tests train on copies of the runs."""
    from modalities.train import train_modality
    from tests.synthetic import make_synthetic_cache

    root = tmp_path_factory.mktemp("trained")
    cache = make_synthetic_cache(
        root / "cache", n_per_class=3, scene_shape=(12, 3, 4, 8), audio_dim=16, splits=("Train", "Val")
    )
    train_modality("faces", cache, root / "runs", **TINY)
    return cache, root / "runs"


@pytest.fixture
def runs(trained, tmp_path: Path) -> Path:
    """A copy of the trained runs folder (same cache, so training it again is "already trained")."""
    shutil.copytree(trained[1], tmp_path / "runs")
    return tmp_path / "runs"


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow  # the four tests on a trained model: training it (and retraining) takes tens of seconds
def test_relabelled_clip_retrains(trained, runs: Path, capsys) -> None:
    from modalities.train import train_modality

    cache_root, run = trained[0], RunFolder(runs / "faces")
    before = json.loads(run.config.read_text()), run.model.read_bytes()
    train_modality("faces", cache_root, runs, **TINY)
    assert "already trained" in capsys.readouterr().out  # the copy is the trained run
    cache = CacheDir(cache_root)
    listed = cache.clips_path.read_bytes()
    try:
        clip = next(c for c in cache.clips() if c.split == "Train")
        cache.write_clips([replace(c, label=(c.label + 1) % 3) if c.key == clip.key else c for c in cache.clips()])
        assert cache.labels()[clip.key] == (clip.label + 1) % 3
        train_modality("faces", cache_root, runs, **TINY)
    finally:
        cache.clips_path.write_bytes(listed)
    assert "already trained" not in capsys.readouterr().out
    after = json.loads(run.config.read_text()), run.model.read_bytes()
    assert after[0]["labels_digest"] != before[0]["labels_digest"]
    assert after[1] != before[1] and after[0]["model_sha256"] != before[0]["model_sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_failed_retrain_keeps_the_good_model(trained, runs: Path, monkeypatch, failure) -> None:
    from modalities import train as train_module

    good = files_of(runs / "faces")
    run = RunFolder(runs / "faces")
    assert {run.model.name, run.config.name} <= set(good)

    def failing_fit(modality, features, indices, settings, sizes, out, verbose):
        out.model.write_bytes(b"PK\x03\x04 half a model")  # the failure strikes mid-way
        raise failure("injected failure during fit")

    monkeypatch.setattr(train_module, "_fit", failing_fit)
    with pytest.raises(failure, match="injected"):
        train_module.train_modality("faces", trained[0], runs, force=True, **TINY)
    assert files_of(runs / "faces") == good  # model.keras, config.json and the rest byte-identical
    layout = RunsDir(runs)
    expected = sorted(["faces", layout.partition_path.name, layout.workspace_path.name])
    assert sorted(p.name for p in runs.iterdir()) == expected  # no staging folder left
    train_module.load_modality_model(runs, "faces", trained[0])


@pytest.mark.slow
def test_zero_epochs_is_refused_before_touching_anything(trained, runs: Path, tmp_path: Path) -> None:
    from modalities.train import train_modality

    good, cache_files = files_of(runs), files_of(trained[0])
    with pytest.raises(InputError, match="epochs"):
        train_modality("faces", trained[0], runs, force=True, **(TINY | {"epochs": 0}))
    assert files_of(runs) == good and files_of(trained[0]) == cache_files
    with pytest.raises(InputError, match="epochs"):
        train_modality("faces", trained[0], tmp_path / "fresh", **(TINY | {"epochs": 0}))
    assert not (tmp_path / "fresh").exists()


@pytest.mark.slow
def test_corrupt_model_file_is_named_and_retrained(trained, runs: Path, capsys) -> None:
    from modalities.train import train_modality

    run = RunFolder(runs / "faces")
    config, intact = run.config.read_bytes(), run.model.read_bytes()
    for damaged in (intact[: len(intact) // 2], b"not a keras archive\n" * 50):
        run.model.write_bytes(damaged)
        for load in (lambda: load_keras_model(run.model), lambda: RunsDir(runs).load_model("faces")):
            with pytest.raises(CorruptFileError, match=f"^corrupt model file {re.escape(str(run.model))}"):
                load()
    assert run.config.read_bytes() == config  # the config alone still says "trained with these options"
    capsys.readouterr()
    train_modality("faces", trained[0], runs, **TINY)
    assert "already trained" not in capsys.readouterr().out
    assert load_keras_model(run.model) is not None
    assert json.loads(run.config.read_text())["model_sha256"] == io_module.sha256_of(run.model)


# 6. Duplicate labels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vgaf", "csv"])
def test_conflicting_duplicate_labels_name_the_file_and_both_lines(tmp_path: Path, kind: str, caplog) -> None:
    if kind == "vgaf":
        path, read = tmp_path / "Val_labels.txt", read_vgaf_labels
        path.write_text("Vid_name Label\n1_1 1\n2_1 2\n1_1.mp4 3\n")
    else:
        path, read = tmp_path / "labels.csv", read_csv_labels
        path.write_text("video,label\n1_1.mp4,Positive\n2_1.mp4,Neutral\n1_1.mp4,Negative\n")
    with pytest.raises(LabelFileError) as error:
        read(path)
    message = str(error.value)
    assert f"{path}:2" in message and "line 4" in message and "Positive" in message and "Negative" in message
    path.write_text(path.read_text().replace(" 3\n", " 1\n").replace(",Negative\n", ",Positive\n"))
    with caplog.at_level(logging.WARNING, logger="preprocess.labels"):
        labels = read(path)
    labels = labels if isinstance(labels, dict) else labels.labels
    assert len(labels) == 2 and 0 in labels.values()
    assert any("listed again" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


# 7. Videos not taken are reported --------------------------------------------------------------------------------


def test_folder_with_top_level_videos_and_a_subfolder_takes_them_all(tmp_path: Path) -> None:
    root = tmp_path / "party"
    (root / "extra").mkdir(parents=True)
    for path in (root / "a.mp4", root / "b.mp4", root / "extra" / "c.mp4"):
        path.write_bytes(b"")
    dataset = discover(root)
    assert sorted((c.split, c.name) for c in dataset.clips) == [("extra", "c"), ("party", "a"), ("party", "b")]
    assert dataset.not_taken == {}


def test_stray_and_broken_videos_are_reported_not_dropped(tmp_path: Path) -> None:
    root = tmp_path.resolve() / "vgaf"
    (root / "Val").mkdir(parents=True)
    (root / "Val_labels.txt").write_text("Vid_name Label\n1_1 1\n")
    (root / "Val" / "1_1.mp4").write_bytes(b"")
    (root / "stray.mp4").write_bytes(b"")
    (root / "Val" / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    dataset = discover(root)
    assert [c.key for c in dataset.clips] == ["Val/1_1"]
    assert "VGAF" in dataset.not_taken[str(root / "stray.mp4")]
    assert "missing" in dataset.not_taken[str(root / "Val" / "gone.mp4")]
    folder = tmp_path.resolve() / "plain"
    folder.mkdir()
    (folder / "ok.mp4").write_bytes(b"")
    (folder / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    plain = discover(folder)
    assert [c.key for c in plain.clips] == ["plain/ok"]
    assert "missing" in plain.not_taken[str(folder / "gone.mp4")]


# 8. Commas and accents -------------------------------------------------------------------------------------------


def test_comma_and_accent_in_a_clip_name_survive_clips_csv(tmp_path: Path, test_clips) -> None:
    name = "party, 2019 é"
    folder = tmp_path / "Fête"
    video = link(test_clips[0], folder / f"{name}.mp4")
    cache = tmp_path / "cache"
    assert audio_only(folder, cache).done == 1
    with CacheDir(cache).clips_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [
        {
            "key": f"Fête/{name}",
            "split": "Fête",
            "name": name,
            "label": "",
            "path": str(folder.resolve() / video.name),
            "group": "",
        }
    ]
    store = CacheDir(cache).current("audio")
    assert store.path(f"Fête/{name}").is_file() and store.has(f"Fête/{name}")
    assert audio_only(folder, cache).skipped == 1


# 9. Corrupt cache files ------------------------------------------------------------------------------------------


def test_corrupt_feature_files_are_named_treated_as_missing_and_recomputed(tmp_path: Path, test_clips) -> None:
    source, cache = video_folder(tmp_path / "clips", test_clips[:4]), tmp_path / "cache"
    assert audio_only(source, cache).done == 4
    store = CacheDir(cache).current("audio")
    keys = store.keys()
    good = store.path(keys[0]).read_bytes()
    flipped = bytearray(good)
    flipped[100:150] = bytes(b ^ 0xFF for b in flipped[100:150])  # bit rot inside the compressed features
    damaged = {
        keys[0]: b"",
        keys[1]: good[: len(good) // 2],
        keys[2]: np.random.default_rng(0).bytes(3000),
        keys[3]: bytes(flipped),
    }
    for key, content in damaged.items():
        store.path(key).write_bytes(content)
        with pytest.raises(CorruptFileError) as error:
            store.read(key)
        assert str(store.path(key)) in str(error.value) and "pickle" not in str(error.value)
        assert not store.has(key)
    again = audio_only(source, cache)
    assert (again.done, again.skipped, again.failed) == (4, 0, 0)
    assert all(store.has(key) for key in keys)


def test_features_of_another_modality_are_refused_with_both_shapes(tmp_path: Path, test_clips) -> None:
    source, cache = video_folder(tmp_path / "clips", test_clips[:1]), tmp_path / "cache"
    audio_only(source, cache)
    store = CacheDir(cache).current("audio")
    (key,) = store.keys()
    faces = CacheDir(tmp_path / "other").store("faces", "0123456789ab")
    faces.write("x/y", {"features": np.zeros((12, 22), np.float32), "mask": np.ones(12, bool)}, {})
    store.path(key).write_bytes(faces.path("x/y").read_bytes())
    with pytest.raises(CorruptFileError) as error:
        store.read(key)
    expected = tuple(store.layout()["shape"])
    assert expected == (11, 132)
    assert f"{store.path(key)} holds (12, 22) features, audio expects {expected}" in str(error.value)
    assert not store.has(key)
    assert audio_only(source, cache).done == 1 and store.read(key)[0]["features"].shape == expected


# 11. Read-only cache, full disk ----------------------------------------------------------------------------------


def make_read_only(cache: Path, monkeypatch) -> str:
    """``chmod -R a-w`` the cache; where that does not stop writes (root), simulate a read-only file system:
    no temporary file (every cache write starts with one), no file opened for writing, no folder made."""
    subprocess.run(["chmod", "-R", "a-w", str(cache)], check=True)
    try:
        (cache / ".probe").write_bytes(b"")
    except OSError:
        return "chmod"
    (cache / ".probe").unlink()
    subprocess.run(["chmod", "-R", "u+w", str(cache)], check=True)

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(io_module, "_create_temporary", refuse)
    monkeypatch.setattr(io_module, "tempfile", SimpleNamespace(mkdtemp=refuse))
    real_open = Path.open

    def open_read_only(self, mode="r", *args, **kwargs):
        if set(mode) & set("wax+") and self.resolve().is_relative_to(cache.resolve()):
            refuse()
        return real_open(self, mode, *args, **kwargs)

    real_mkdir = Path.mkdir

    def mkdir_read_only(self, *args, **kwargs):
        if not self.exists() and self.resolve().is_relative_to(cache.resolve()):
            refuse()
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_read_only)
    monkeypatch.setattr(Path, "mkdir", mkdir_read_only)
    return "simulated"


def make_full(cache: Path, monkeypatch) -> None:
    """A full disk: no new file can be written (the lock file, already there, still opens)."""

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io_module, "_create_temporary", refuse)
    monkeypatch.setattr(io_module, "tempfile", SimpleNamespace(mkdtemp=refuse))


@pytest.mark.parametrize("trouble", ["read-only", "full"])
def test_unwritable_cache_serves_cached_runs_and_names_itself_when_written(
    tmp_path: Path, test_clips, monkeypatch, trouble: str
) -> None:
    source, cache = tmp_path / "clips", tmp_path / "cache"
    video_folder(source / "A", test_clips[:2])
    video_folder(source / "B", test_clips[2:3])
    assert audio_only(source, cache, splits=("A",)).done == 2
    store = CacheDir(cache).current("audio")
    before = {p for p in files_under(cache) if (cache / p).is_file()}
    try:
        make_read_only(cache, monkeypatch) if trouble == "read-only" else make_full(cache, monkeypatch)
        cached = audio_only(source, cache, splits=("A",))  # needs nothing written: succeeds
        assert (cached.done, cached.skipped, cached.failed) == (0, 2, 0)
        with pytest.raises(DiskError) as error:
            audio_only(source, cache)  # B/Test_2 needs computing
        message = str(error.value)
        assert f"cannot write to {store.folder}" in message
        assert (
            ("read-only" in message or "permission denied" in message)
            if trouble == "read-only"
            else "the disk is full" in message
        )
        assert re.search(r"\d+\.\d GiB free|free space unknown", message)
    finally:
        monkeypatch.undo()
        subprocess.run(["chmod", "-R", "u+w", str(cache)], check=True)
    assert {p for p in files_under(cache) if (cache / p).is_file()} == before  # nothing written or half-written


def test_full_disk_stops_the_run_and_leaves_no_partial_file(tmp_path: Path, test_clips, monkeypatch) -> None:
    source, cache = video_folder(tmp_path / "clips", test_clips[:3]), tmp_path / "cache"
    writes = []

    def disk_full(handle, **arrays):
        writes.append(handle)
        handle.write(b"PK\x03\x04 the first blocks of the archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(workspace_module.np, "savez_compressed", disk_full)
    with pytest.raises(DiskError) as error:
        audio_only(source, cache)
    monkeypatch.undo()
    assert len(writes) == 1  # the first write stops the run: not one failure per clip
    store = CacheDir(cache).current("audio")
    assert f"cannot write to {store.folder}" in str(error.value) and "full" in str(error.value)
    assert not [p for p in store.folder.rglob("*") if p.name.endswith((".npz", ".tmp", ".failed.json"))]
    assert audio_only(source, cache).done == 3


# 12. Concurrent runs ---------------------------------------------------------------------------------------------


def test_a_locked_cache_is_refused_and_its_temporary_files_are_left_alone(tmp_path: Path, test_clips) -> None:
    source, cache = video_folder(tmp_path / "clips", test_clips[:1]), tmp_path / "cache"
    audio_only(source, cache)
    store = CacheDir(cache).current("audio")
    in_flight = store.folder / "clips" / ".Test_2.npz.x1y2z3.tmp"  # the other run is writing it
    in_flight.write_bytes(b"PK\x03\x04 being written")
    holder = hold_lock("CacheDir", cache)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CacheBusyError, match=f"pid {holder.pid}"):
            audio_only(source, cache)
        assert in_flight.is_file()
    finally:
        holder.communicate(timeout=30)
    assert audio_only(source, cache).skipped == 1
    assert not in_flight.exists()  # cleaned, but only by a run holding the lock


# 13. Ctrl-C and kill (the command line, in a subprocess) ---------------------------------------------------------


def tagged_processes(tag: str) -> list[int]:
    """Live processes (zombies excluded) whose environment carries GVS_TEST_TAG=tag: the run and its workers."""
    marker = f"GVS_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def start_run(tmp_path: Path, test_clips, tag: str):
    source, cache = video_folder(tmp_path / "clips", test_clips[:8]), tmp_path / f"cache-{tag}"
    log = (tmp_path / "stdout.txt").open("wb"), (tmp_path / "stderr.txt").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "preprocess",
            str(source),
            "--cache",
            str(cache),
            "--workers",
            "2",
            "--only",
            "audio",
            "pose",
        ],
        cwd=REPO,
        env=dict(os.environ, GVS_TEST_TAG=tag),
        stdout=log[0],
        stderr=log[1],
        start_new_session=True,
        preexec_fn=hear_ctrl_c,
    )
    deadline = time.monotonic() + 300
    while not list(cache.glob("features/pose/*/*/*.npz")):  # the first clip is done (pose is written last)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no clip finished (exit {process.poll()}): {(tmp_path / 'stderr.txt').read_text()[-3000:]}")
        time.sleep(0.2)
    workers = [pid for pid in tagged_processes(tag) if pid != process.pid]
    assert len(workers) >= 2, "expected the run's worker processes to be running"
    return process, cache


def wait_until_gone(tag: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    return tagged_processes(tag)


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")


@pytest.mark.slow
@needs_proc
def test_ctrl_c_stops_every_worker_and_exits_130_with_one_line(tmp_path: Path, test_clips) -> None:
    tag = uuid.uuid4().hex
    process, cache = start_run(tmp_path, test_clips, tag)
    try:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stderr = (tmp_path / "stderr.txt").read_text()
    lines = [line.strip() for line in re.split(r"[\r\n]", stderr)]
    assert sum(line.startswith("interrupted;") for line in lines) == 1, stderr[-3000:]
    assert re.search(r"^interrupted; [1-7] of 8 clips finished", stderr, re.MULTILINE), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert wait_until_gone(tag, 30) == []
    for modality in ("audio", "pose"):  # what was written reads as valid
        store = CacheDir(cache).current(modality)
        assert all(store.has(key) for key in store.keys())


@pytest.mark.slow
@needs_proc
def test_kill_9_of_the_run_ends_its_workers(tmp_path: Path, test_clips) -> None:
    tag = uuid.uuid4().hex
    process, _ = start_run(tmp_path, test_clips, tag)
    try:
        os.kill(process.pid, signal.SIGKILL)  # the parent only
        process.wait(timeout=30)
        assert wait_until_gone(tag, 30) == []
    finally:
        for pid in tagged_processes(tag):
            os.kill(pid, signal.SIGKILL)
