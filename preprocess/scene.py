"""Scene features: a frozen ResNet-50 applied to each kept frame, feature maps cached for the ConvLSTM heads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gvs.core.errors import InputError

from .config import PreprocessConfig
from .decode import DecodedClip
from .engine import plan_of
from .extractor import ModalityResult
from .precision import building_in

RANDOM_WEIGHTS_SEED = 0
FLOAT16_MAX = float(np.finfo(np.float16).max)
# Frames whose aspect ratio differs more than this from the input's are flagged as squashed: 16:9 into the paper's
# 3:2 (18.5 %) is the paper's own setting and passes; square (33 %) and portrait frames are flagged.
ASPECT_TOLERANCE = 0.25


class SceneWeightsError(InputError):
    """ResNet-50 weights could not be loaded; the message says how to provide them."""

    @classmethod
    def imagenet_unavailable(cls, reason: object) -> SceneWeightsError:
        """The error for ImageNet weights that could not be downloaded, saying what to do instead.

        Parameters
        ----------
        reason : object
            What went wrong, as printed.

        Returns
        -------
        error : SceneWeightsError
        """
        return cls(
            f"ResNet-50 ImageNet weights could not be downloaded ({reason}). Put "
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/, pass "
            "--scene-weights FILE, or --scene-weights none (or auto) for random weights."
        )


def build_backbone(weights: str, width: int, height: int, precision: str = "float32"):
    """Frozen ResNet-50 without its top for ``height x width`` frames, and a description of the weights used.

    ``weights``: "imagenet" (Keras downloads and caches them), "none" (seeded random initialisation),
    "auto" (imagenet when available, else none; see resolve.py) or the path of a weights file.
    ``precision``: float32 or bfloat16 (see precision.py; the weights stay float32).

    Parameters
    ----------
    weights : str
    width, height : int
        The frames' size in pixels.
    precision : str

    Returns
    -------
    model : keras.Model
        (n, height, width, 3) float32 -> (n, height/32, width/32, 2048).
    used : str
        The weights used: imagenet, random(seed=N) or file:NAME.
    """
    with building_in(precision):
        return _build_backbone(weights, width, height)


def resolve_weights(weights: str) -> str:
    """``auto`` -> imagenet when available, else none; other values unchanged. The pipeline resolves this before
    any worker starts; direct callers get the same rule.

    Parameters
    ----------
    weights : str
        "auto", "imagenet", "none" or a file path.

    Returns
    -------
    weights : str
    """
    if weights != "auto":
        return weights
    from .resolve import imagenet_weights_available

    return "imagenet" if imagenet_weights_available() else "none"


def weights_identity(weights: str) -> str:
    """What the backbone's weights are, for the OpenVINO model cache's key: random(seed) with the Keras version
    that drew them, imagenet, or a weights file's sha256.

    Parameters
    ----------
    weights : str
        "auto", "imagenet", "none" or a file path.

    Returns
    -------
    identity : str
    """
    import keras

    weights = resolve_weights(weights)
    if weights == "none":
        return f"random(seed={RANDOM_WEIGHTS_SEED}, keras {keras.__version__})"
    if weights == "imagenet":
        return "imagenet"
    from gvs.core.io import sha256_of

    path = Path(weights)
    if not path.is_file():
        raise SceneWeightsError(f"--scene-weights {weights}: no such file; use imagenet, none, auto or a file")
    return f"sha256:{sha256_of(path)}"


def _build_backbone(weights: str, width: int, height: int):
    import keras

    def random_backbone():
        keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)  # every worker builds identical weights
        return keras.applications.ResNet50(include_top=False, weights=None, input_shape=(height, width, 3))

    weights = resolve_weights(weights)
    if weights == "none":
        model, used = random_backbone(), f"random(seed={RANDOM_WEIGHTS_SEED})"
    elif weights == "imagenet":
        try:
            model, used = (
                keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=(height, width, 3)),
                "imagenet",
            )
        except Exception as error:  # Keras raises URL, OS or value errors when the download fails
            raise SceneWeightsError.imagenet_unavailable(error) from error
    else:
        path = Path(weights)
        if not path.is_file():
            raise SceneWeightsError(f"--scene-weights {weights}: no such file; use imagenet, none, auto or a file")
        model, used = (
            keras.applications.ResNet50(include_top=False, weights=str(path), input_shape=(height, width, 3)),
            f"file:{path.name}",
        )
    model.trainable = False
    return model, used


def squash_flag(frame_width: int, frame_height: int, width: int, height: int) -> str | None:
    """A note when resizing ``frame_width x frame_height`` frames to ``width x height`` distorts them by more than
    ASPECT_TOLERANCE (relative difference of width / height), else None.

    Parameters
    ----------
    frame_width, frame_height : int
        The frames' size.
    width, height : int
        The size they are resized to.

    Returns
    -------
    flag : str or None
    """
    source, target = frame_width / frame_height, width / height
    if abs(source - target) <= ASPECT_TOLERANCE * target:
        return None
    return f"frames {frame_width}x{frame_height} squashed to {width}x{height} (aspect {source:.2f} -> {target:.2f})"


def prepare_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize RGB frames to ``width x height`` and apply ResNet-50's ImageNet preprocessing -> float32 batch.

    Parameters
    ----------
    frames : ndarray of shape (n, H, W, 3), uint8 RGB
    width, height : int

    Returns
    -------
    batch : ndarray of shape (n, height, width, 3), float32
    """
    from keras.applications.resnet50 import preprocess_input

    resized = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])
    return preprocess_input(resized.astype(np.float32))


def weights_description(weights: str) -> str:
    """How the resolved record names ``weights`` (as build_backbone reports them).

    Parameters
    ----------
    weights : str
        "auto", "imagenet", "none" or a file path.

    Returns
    -------
    description : str
    """
    weights = resolve_weights(weights)
    if weights == "none":
        return f"random(seed={RANDOM_WEIGHTS_SEED})"
    return weights if weights == "imagenet" else f"file:{Path(weights).name}"


class SceneExtractor:
    """Frozen ResNet-50 feature maps of the kept frames: (n_frames, h, w, 2048), zeros on padded frames.

    Runs on the engine ``config``'s backend plan names (preprocess/engine.py): TensorFlow (float32 or bfloat16)
    or OpenVINO (float32, bfloat16 or int8).
    """

    modality = "scene"

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        plan = plan_of(config, "scene")
        width, height = config.scene_width, config.scene_height
        if plan.backend == "openvino":
            from .openvino_backbones import scene_network

            self._model = None  # built on first use of .model (gradients of gvs report's pixel saliency)
            self.forward = scene_network(resolve_weights(config.scene_weights), width, height, plan.precision)
            weights_used = weights_description(config.scene_weights)
            feature_shape = list(self.forward.output_shape(height, width)[1:])
        else:
            import tensorflow as tf

            self._model, weights_used = build_backbone(config.scene_weights, width, height, plan.precision)
            # One traced function of a fixed signature: any batch length, no retracing.
            forward = tf.function(
                lambda x: tf.cast(self._model(x, training=False), tf.float32),
                input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)],
            )
            self.forward = lambda batch: forward(batch).numpy()
            feature_shape = list(self._model.output_shape[1:])
        self.resolved = {
            "weights": weights_used,
            "feature_shape": feature_shape,
            "precision": plan.precision,
            "backend": plan.backend,
        }

    @property
    def model(self):
        """The Keras backbone (what gradients flow through); on OpenVINO built in float32 on first use."""
        if self._model is None:
            config = self.config
            self._model, _ = build_backbone(config.scene_weights, config.scene_width, config.scene_height)
        return self._model

    def extract(self, clip: DecodedClip) -> ModalityResult:
        """ResNet-50 feature maps of the clip's frames.

        Parameters
        ----------
        clip : DecodedClip

        Returns
        -------
        result : ModalityResult
            ``features`` (n_frames, scene_height/32, scene_width/32, 2048) float16 (float32 if out of float16's range,
            zeros for padding) and ``mask`` (n_frames,) bool; a flag when the frames were squashed.
        """
        batch = prepare_frames(clip.frames, self.config.scene_width, self.config.scene_height)
        maps = self.forward(batch)
        features = np.zeros((clip.n_frames, *maps.shape[1:]), dtype=np.float32)
        features[: len(maps)] = maps
        # float16 halves the cache; ReLU outputs of ResNet-50 stay far below its range (checked, not assumed).
        dtype = np.float16 if np.abs(features).max() < FLOAT16_MAX else np.float32
        frame_height, frame_width = clip.frames.shape[1:3]
        flag = squash_flag(frame_width, frame_height, self.config.scene_width, self.config.scene_height)
        return ModalityResult({"features": features.astype(dtype), "mask": clip.mask}, [flag] if flag else [])
