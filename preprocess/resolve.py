"""Turn 'auto' settings into concrete ones before any work starts, so fingerprints say what was really used."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .config import PreprocessConfig
from .engine import resolve_backends
from .model_files import MODEL_FILES, resolve
from .model_registry import REGISTRY

log = logging.getLogger(__name__)

RESNET50_NOTOP = (REGISTRY["resnet50-imagenet"].filename, REGISTRY["resnet50-imagenet"].url)
MODALITY_MODEL_FILES = {"pose": ("openpose",), "faces": ("fer",)}


def imagenet_weights_available() -> bool:
    """True when Keras has (or can now download into its cache) the ResNet-50 ImageNet weights."""
    import keras

    try:
        keras.utils.get_file(RESNET50_NOTOP[0], RESNET50_NOTOP[1], cache_subdir="models")
        return True
    except Exception as error:  # no network, proxy, disk: all mean "not available"
        log.warning("ResNet-50 ImageNet weights unavailable (%s)", error)
        return False


def resolve_config(config: PreprocessConfig, modalities: tuple[str, ...]) -> PreprocessConfig:
    """Replace scene_weights, audio_backend, precision and backend 'auto' by what will actually be used.

    Parameters
    ----------
    config : PreprocessConfig
    modalities : tuple of str
        The modalities to be extracted; only theirs are resolved.

    Returns
    -------
    config : PreprocessConfig
        A copy with the concrete settings.
    """
    config = resolve_backends(config)
    if "scene" in modalities and config.scene_weights == "auto":
        if imagenet_weights_available():
            config = replace(config, scene_weights="imagenet")
        else:
            log.warning(
                "Scene features will use a frozen, randomly initialised ResNet-50 (seed 0): they carry "
                "little meaning. Put %s in ~/.keras/models/ or pass --scene-weights FILE.",
                RESNET50_NOTOP[0],
            )
            config = replace(config, scene_weights="none")
    elif "scene" in modalities and config.scene_weights == "imagenet" and not imagenet_weights_available():
        from .scene import SceneWeightsError

        raise SceneWeightsError.imagenet_unavailable("no network or no cached copy")
    elif config.scene_weights not in ("imagenet", "none", "auto"):
        config = replace(config, scene_weights=str(Path(config.scene_weights).resolve()))
    if config.audio_backend == "auto":
        from .audio import resolve_backend

        config = replace(config, audio_backend=resolve_backend("auto"))
    return config


def model_file_checksums(modality: str) -> dict[str, str]:
    """sha256 of the model files a modality uses (resolving them now, so a missing file fails before any work).

    Parameters
    ----------
    modality : str

    Returns
    -------
    checksums : dict of str to str
        Model file name -> sha256.
    """
    return {name: MODEL_FILES[name].sha256 for name in MODALITY_MODEL_FILES.get(modality, ()) if resolve(name)}
