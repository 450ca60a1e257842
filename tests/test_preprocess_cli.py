"""python -m preprocess: help, and errors that name the problem and exit 2 before any work."""
from pathlib import Path

import pytest

from preprocess import model_files
from preprocess.__main__ import main


def test_help_explains_sources_cache_and_every_parameter(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("VGAF root", "fingerprint", "--workers", "--preset", "--scene-weights", "--audio-backend",
                   "--face-detector", "--min-face", "--pose-size", "--frame-step"):
        assert phrase in text


def test_missing_source_exits_2_naming_it(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nowhere"), "--cache", str(tmp_path / "cache"), "--quiet"]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err


def test_missing_model_file_stops_before_any_clip_with_where_to_put_it(tmp_path: Path, val_clip: Path,
                                                                       monkeypatch, capsys) -> None:
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.setattr(model_files, "_download", lambda spec, target: (_ for _ in ()).throw(OSError("offline")))
    source = tmp_path / "Val"
    source.mkdir()
    (source / "1_1.mp4").symlink_to(val_clip)
    assert main([str(source), "--cache", str(tmp_path / "cache"), "--only", "pose", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "openpose_mobilenet_thin_graph_opt.pb" in error and str(tmp_path / "models") in error
    assert not (tmp_path / "cache" / "features").exists() or not list((tmp_path / "cache").rglob("*.npz"))
