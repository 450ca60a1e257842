"""The `gvs` command: subcommands with examples, errors that name the problem and exit 2, no tracebacks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gvs.cli import build_parser, main
from preprocess import model_files

SUBCOMMANDS = ("run", "demo", "preprocess", "train", "fuse", "explain", "export", "predict")


def test_help_lists_every_subcommand_and_each_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in listed
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_preprocess_help_explains_sources_cache_and_every_parameter(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    text = capsys.readouterr().out
    for phrase in (
        "VGAF root",
        "fingerprint",
        "--workers",
        "--preset",
        "--scene-weights",
        "--audio-backend",
        "--face-detector",
        "--min-face",
        "--pose-size",
        "--frame-step",
        "--debug",
    ):
        assert phrase in text


@pytest.mark.parametrize(
    "arguments",
    [
        ["preprocess", "x", "--workers", "0"],
        ["preprocess", "x", "--frames", "0"],
        ["preprocess", "x", "--frame-step", "-1"],
        ["train", "pose", "--cache", "c", "--epochs", "0"],
        ["run", "--train-epochs", "0"],
        ["run", "--workers", "-1"],
    ],
)
def test_impossible_numbers_are_refused_when_parsed(arguments: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(arguments)
    assert exit_info.value.code == 2 and "must be 1 or more" in capsys.readouterr().err


def test_missing_source_exits_2_naming_it(tmp_path: Path, capsys) -> None:
    assert main(["preprocess", str(tmp_path / "nowhere"), "--cache", str(tmp_path / "cache"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(tmp_path / "nowhere") in error and "Traceback" not in error


def test_missing_model_for_explain_says_which_command_trains_it(tmp_path: Path, capsys) -> None:
    from tests.synthetic import make_synthetic_cache

    cache = make_synthetic_cache(tmp_path / "cache", n_per_class=2)
    assert (
        main(
            [
                "explain",
                "--cache",
                str(cache),
                "--runs",
                str(tmp_path / "runs"),
                "--clip",
                "Val/1_1",
                "--modality",
                "audio",
                "--out",
                str(tmp_path / "figures"),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "no trained audio model" in error and "gvs train audio" in error


def test_missing_model_file_stops_before_any_clip_with_one_line_and_no_traceback(
    tmp_path: Path, val_clip: Path
) -> None:
    """Offline, without the pose model file: one line naming the file, the folder and the source; exit 2."""
    source = tmp_path / "Val"
    source.mkdir()
    (source / "1_1.mp4").symlink_to(val_clip)
    environment = dict(  # every folder of the model-file lookup rule empty
        os.environ,
        GVS_MODEL_DIR=str(tmp_path / "models"),
        GVS_HOME=str(tmp_path / "home"),
        GVS_SHARED=str(tmp_path / "shared"),
    )
    spec = model_files.MODEL_FILES["openpose"]
    code = (
        "import sys; from preprocess import model_files as m; s = m.MODEL_FILES['openpose']; "
        "m.MODEL_FILES['openpose'] = m.ModelFile(s.filename, s.sha256, 'http://127.0.0.1:9/graph.pb', s.about); "
        "from gvs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "preprocess",
            str(source),
            "--cache",
            str(tmp_path / "cache"),
            "--only",
            "pose",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert spec.filename in lines[0] and str(tmp_path / "models") in lines[0]
    assert not list((tmp_path / "cache").rglob("*.npz"))
