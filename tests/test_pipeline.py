"""The preprocessing run: every bad-input case, resuming, parameter changes and interrupted writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gvs.core import workspace as workspace_module
from gvs.core.errors import Interrupted
from gvs.core.vocabulary import MODALITIES
from gvs.core.workspace import CacheDir
from modalities.data import open_features
from preprocess.config import PreprocessConfig
from preprocess.demo import write_clip
from preprocess.pipeline import run_preprocess
from tests.media import common_bad_copies, ffmpeg

pytestmark = pytest.mark.slow  # real models or training (`pytest -m 'not slow'` skips it)


# Small scene frames and random backbone weights keep the test fast; every other setting is the paper's.
SMALL = PreprocessConfig(scene_width=96, scene_height=64, scene_weights="none")


def cached(cache: Path, modality: str, fingerprint: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Every clip's cached arrays of one modality (the last run's fingerprint unless given), by clip key."""
    features = open_features(cache, modality, fingerprint)
    return {key: features.store.read(key)[0] for key in features.keys}


@pytest.fixture(scope="module")
def bad_clips(tmp_path_factory, val_clip: Path) -> Path:
    """A folder of one good clip and every kind of bad one, all derived from the real Val clip."""
    folder = tmp_path_factory.mktemp("bad") / "Mixed"
    folder.mkdir()
    common_bad_copies(folder, val_clip)
    ffmpeg("-i", str(val_clip), "-t", "1", str(folder / "short.mp4"))
    flat = (np.full((432, 768, 3), 128, np.uint8) for _ in range(125))
    write_clip(folder / "blank.mp4", flat, None)  # no people, no faces, no audio
    return folder


@pytest.fixture(scope="module")
def bad_run(bad_clips: Path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return run_preprocess(bad_clips, cache, SMALL, MODALITIES, workers=1, progress=False), cache


def test_broken_files_fail_with_their_name_and_never_stop_the_run(bad_run, bad_clips: Path) -> None:
    summary, _ = bad_run
    assert summary.done + summary.failed + summary.skipped == 7
    for name in ("empty", "text"):
        reasons = summary.failures[f"Mixed/{name}"]
        assert set(reasons) == set(MODALITIES)
        assert all(str(bad_clips / f"{name}.mp4") in reason for reason in reasons.values())
    assert "empty (0 bytes)" in summary.failures["Mixed/empty"]["scene"]
    assert "Mixed/good" not in summary.failures


def test_clips_without_audio_people_or_faces_are_flagged_not_failed(bad_run) -> None:
    summary, cache = bad_run
    for key in ("Mixed/noaudio", "Mixed/blank", "Mixed/short"):
        assert key not in summary.failures
    assert "no audio track" in summary.flags["Mixed/noaudio"]
    assert {"no audio track", "no people", "no faces"} <= set(summary.flags["Mixed/blank"])
    silent = cached(cache, "audio")["Mixed/noaudio"]
    assert np.isfinite(silent["features"]).all() and silent["mask"].all()


def test_short_clip_is_padded_and_masked(bad_run) -> None:
    summary, cache = bad_run
    assert any(flag.startswith("short: 3 of 12") for flag in summary.flags["Mixed/short"])
    for modality in MODALITIES:
        short = cached(cache, modality)["Mixed/short"]
        if modality == "audio":  # 1 s of audio: steps centred at 0, 0.5 and 1.0 s
            assert short["mask"].sum() == 3
        else:
            assert short["mask"].tolist() == [True] * 3 + [False] * 9
            assert not short["features"][3:].any()


def test_good_real_clip_has_features_of_every_modality_with_paper_shapes(bad_run) -> None:
    _, cache = bad_run
    expected = {"pose": (12, 27), "faces": (12, 22), "audio": (11,)}
    for modality in MODALITIES:
        x = cached(cache, modality)["Mixed/good"]["features"]
        assert x.shape[: len(expected.get(modality, (12,)))] == expected.get(modality, (12,))
        assert np.isfinite(x).all()
    assert cached(cache, "scene")["Mixed/good"]["features"].shape == (12, 2, 3, 2048)  # 96x64 frames -> 3x2 maps


def audio_only(source: Path, cache: Path, config: PreprocessConfig = PreprocessConfig()):
    return run_preprocess(source, cache, config, ("audio",), workers=1, progress=False)


def test_rerun_skips_finished_clips_and_parameter_change_uses_a_new_folder(tmp_path: Path, test_clips) -> None:
    source = tmp_path / "Test"
    source.mkdir()
    for clip in test_clips[:2]:
        shutil.copy(clip, source / clip.name)
    first = audio_only(source, tmp_path / "cache")
    assert (first.done, first.skipped) == (2, 0)
    again = audio_only(source, tmp_path / "cache")
    assert (again.done, again.skipped) == (0, 2)
    changed = audio_only(source, tmp_path / "cache", PreprocessConfig(audio_hop=1.0))
    assert changed.done == 2 and changed.fingerprints["audio"] != first.fingerprints["audio"]
    assert CacheDir(tmp_path / "cache").current_fingerprints()["audio"] == changed.fingerprints["audio"]
    assert {a["features"].shape[0] for a in cached(tmp_path / "cache", "audio").values()} == {6}  # 0..5 s, 1-s hops
    old = cached(tmp_path / "cache", "audio", fingerprint=first.fingerprints["audio"])
    assert {a["features"].shape[0] for a in old.values()} == {
        11
    }  # the earlier features are intact, in their own folder
    params = json.loads((tmp_path / "cache/features/audio" / changed.fingerprints["audio"] / "params.json").read_text())
    assert params["params"]["audio_hop"] == 1.0 and "numpy" in params["versions"]


def test_interrupted_write_leaves_nothing_that_reads_as_valid(tmp_path: Path, test_clips, monkeypatch) -> None:
    source = tmp_path / "Test"
    source.mkdir()
    shutil.copy(test_clips[0], source / test_clips[0].name)
    real_savez = np.savez_compressed

    def interrupted(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(workspace_module.np, "savez_compressed", interrupted)
    with pytest.raises(Interrupted, match="interrupted; 0 of 1 clips finished"):
        audio_only(source, tmp_path / "cache")
    folder = next((tmp_path / "cache/features/audio").iterdir())
    assert not list(folder.rglob("*.npz")) and not list(folder.rglob("*.tmp"))
    (folder / "Test" / ".Test_1.npz.killed.tmp").write_bytes(b"left by a killed process")
    monkeypatch.setattr(workspace_module.np, "savez_compressed", real_savez)
    resumed = audio_only(source, tmp_path / "cache")
    assert resumed.done == 1 and not list(folder.rglob("*.tmp"))
    assert CacheDir(tmp_path / "cache").store("audio", folder.name).read("Test/Test_1")[0]["features"].shape == (
        11,
        132,
    )
