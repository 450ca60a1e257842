"""Faces: detect faces (yuface by default; MTCNN, face_recognition HOG or CNN), score each with FER2013 mini-Xception.

Detection. ``yuface`` (libfacedetection's CNN compiled into the ``yuface`` wheel, frames downscaled to 320 px wide,
score > YUFACE_THRESHOLD); ``mtcnn`` (the ``mtcnn`` 1.0.0 package: PNet/RNet/ONet, weights inside the wheel, runs on
TensorFlow; its pyramid is rebuilt here, see _pyramid; the three networks run as traced graphs, RNet and ONet on
fixed-size batches of proposals so that memory stays flat over a long video, see _compiled and _in_batches);
``hog`` (upsampled ``face_upsample`` times) and ``cnn``, face_recognition's detectors. yuface's faces get their
eyes from dlib (see _detect_yuface), as hog's and cnn's do; MTCNN's come with its own landmarks.

Size rule. ``min_face`` counts source-frame pixels (the decoded frame the FER crop is cut from, whatever its
resolution; not the 480-px-wide scene frame, where it would drop faces 2.7x larger on 1280-px clips): a face is
kept when its box is at least ``min_face`` pixels tall. It is the minimum size for detecting, counting and
scoring a face: MTCNN searches down to that size and nothing smaller is returned.

Scoring. Each face is aligned before FER: the frame is turned so the eyes are level (MTCNN's eye landmarks, or
dlib's 5-point landmarks for yuface, hog and cnn boxes), a square of the box size plus ``CROP_MARGIN`` of it on
every side is cut around a centre set by the eyes (``EYES_TO_CENTRE`` below their midpoint), then made 64x64 gray.
Anchoring on the eyes rather than the box centre is what steadies FER.

Features. Per frame the 7 expression scores of its faces are reduced to their min, max and mean, plus the face
count: 22 values ``[min_angry..min_neutral, max_angry..max_neutral, mean_angry..mean_neutral, count]``. A real
frame without faces is ``NO_FACE`` (-1) in the 21 expression statistics with count 0 (as pose encodes "nobody"),
so it differs from padding, which stays all zeros (mask False). Detection and scoring have no random step, so the
same clip always gives the same features.

Measurements (recall, false positives, time per frame, crop stability): docs/preprocessing.md#faces-measurements
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from gvs.core.errors import InputError

from .config import PreprocessConfig
from .decode import DecodedClip
from .extractor import ModalityResult
from .face_detector_names import FACE_DETECTORS
from .face_detector_names import detect_width as resolved_width
from .model_files import MODEL_FILES, resolve

EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DETECTORS = FACE_DETECTORS  # one list (preprocess/face_detector_names.py), read by the cli without OpenCV
FER_SIZE = 64  # the mini-Xception takes 64x64 gray faces
FEATURES_PER_FRAME = 3 * len(EXPRESSIONS) + 1
NO_FACE = -1.0  # expression statistics of a real frame without faces (padding stays 0)
CROP_MARGIN = 0.2  # added on each side of the face box before FER, as a share of the box size
EYES_TO_CENTRE = 0.15  # face centre below the eye midpoint, share of the face size (MTCNN boxes' median here)
MAX_TILT = 45.0  # degrees: eye lines steeper than this are taken as landmark errors and not followed
PNET_CELL = 12  # px: MTCNN's PNet looks at 12x12 windows, so no pyramid level may be smaller
PNET_SCALE_FACTOR = 0.709  # MTCNN's pyramid step (the paper's and the package's default)
ONET_THRESHOLD = 0.8  # final face score (the package's default)
RNET_THRESHOLD = 0.7  # refined proposal score (the package's default)
RNET_BATCH = 256  # RNet and ONet run on fixed-size batches of proposals (see _in_batches)
ONET_BATCH = 32
PNET_THRESHOLD = 0.7  # PNet score for a proposal (package: 0.6): 0.7 halves the proposals for RNet, recall ~same
DLIB_EYES = ("yuface", "hog", "cnn")  # detectors whose faces get their eyes from dlib's 5-point landmarks
YUFACE_THRESHOLD = 0.6  # yuface score to keep a face (package: 0.5: 0.918 recall, 13 false positives at width
# 320 against 0.893 and 9 at 0.6, 0.680 and 4 at 0.7; bench_faces.py)
_DEFAULTS = PreprocessConfig()  # find_faces and detect_faces default to the preprocessing defaults


@dataclass
class FrameFaces:
    """The faces of one frame: ``boxes`` (F, 4) int32 ``(top, right, bottom, left)`` in source-frame pixels,
    ``eyes`` (F, 2, 2) float32 ``(x, y)`` of the eye on the image's left then right (NaN where unknown)."""

    boxes: np.ndarray
    eyes: np.ndarray


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


@cache
def _mtcnn_stages() -> tuple:
    """MTCNN's three networks with their packaged weights (PNet, RNet, ONet), loaded once per process."""
    try:
        from mtcnn.stages import StageONet, StagePNet, StageRNet
    except ImportError as error:
        raise InputError(
            f"the mtcnn face detector is not installed ({error}): `pip install -r requirements.txt`, "
            "or choose --face-detector hog"
        ) from error
    return StagePNet(), StageRNet(), StageONet()


PATCH_SIDE = {"rnet": 24, "onet": 48}  # px: the square patches RNet and ONet take


@cache
def _compiled(network: str, batch: int | None = None):
    """The forward pass of ``network`` ("pnet", "rnet", "onet") as a TensorFlow graph, traced once per process.

    PNet takes images of any size (one graph for every pyramid level); RNet and ONet take exactly ``batch`` patches
    (see _in_batches). Graphs rather than eager calls: PNet ~1.8x, RNet and ONet ~1.3x faster here, same outputs.
    """
    import tensorflow as tf

    model = dict(zip(("pnet", "rnet", "onet"), _mtcnn_stages()))[network].model
    side = PATCH_SIDE.get(network)
    shape = (None, None, None, 3) if side is None else (batch, side, side, 3)
    return tf.function(lambda images: model(images, training=False), input_signature=[tf.TensorSpec(shape, tf.float32)])


def _pyramid(shape: tuple[int, int], min_face: float) -> np.ndarray:
    """PNet scales: the smallest wanted face becomes 12 px, then steps of 0.709 while the image stays >= 12 px.

    (mtcnn 1.0.0's own pyramid ignores the first scale when counting levels and can go below 12 px, which makes
    TensorFlow fail and the package report no faces for the whole batch.)
    """
    first = PNET_CELL / max(min_face, 1.0)
    steps = math.floor(math.log(PNET_CELL / (min(shape) * first)) / math.log(PNET_SCALE_FACTOR)) + 1
    return first * PNET_SCALE_FACTOR ** np.arange(max(steps, 0))


def _normalized(images: np.ndarray) -> np.ndarray:
    """MTCNN's input scaling of uint8 RGB images: (x - 127.5) / 128, float32."""
    return (images.astype(np.float32) - 127.5) / 128.0


def _pnet_proposals(images: np.ndarray, min_face: float) -> np.ndarray:
    """PNet over the pyramid of a (n, H, W, 3) uint8 batch: (P, 6) ``[image, x1, y1, x2, y2, score]``.

    Levels are area-resized with OpenCV, each from the one before (the package resizes every level from full
    resolution with TensorFlow, 10x slower).
    """
    from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes, upscale_bboxes

    height, width = images.shape[1:3]
    found, level = [], images
    for scale in _pyramid((height, width), min_face):
        size = (max(PNET_CELL, round(width * scale)), max(PNET_CELL, round(height * scale)))
        level = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in level])
        regression, classes = _compiled("pnet")(_normalized(level))
        boxes = upscale_bboxes(generate_bounding_box(regression, classes, PNET_THRESHOLD), np.full(len(images), scale))
        found.append(smart_nms_from_bboxes(boxes, threshold=0.5, method="union", initial_sort=False))
    boxes = np.concatenate(found) if found else np.zeros((0, 6))
    return resize_to_square(smart_nms_from_bboxes(boxes, threshold=0.7, method="union", initial_sort=True))


def _in_batches(network: str, patches, size: int) -> list[np.ndarray]:
    """``network``'s outputs for (P, h, w, 3) ``patches``, run ``size`` at a time, the last batch zero-padded.

    Memory: TensorFlow's oneDNN kernels draw their tensors from a pool that keeps its high-water mark and
    fragments when sizes vary, so one call on all of a chunk's proposals (up to 2000 RNet patches for 6 frames of
    a group scene, ~100 MB per activation) made a long video's RSS climb with each new count; in fixed batches
    every chunk reuses the same blocks (faces alone over the 60-s benchmark video: peak RSS 1.48 -> 1.02 GB).
    """
    run, outputs = _compiled(network, size), []
    for start in range(0, len(patches), size):
        batch = np.asarray(patches[start : start + size], np.float32)
        if len(batch) < size:
            batch = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), np.float32)])
        outputs.append([np.asarray(output) for output in run(batch)])
    return [np.concatenate(parts)[: len(patches)] for parts in zip(*outputs)]


def _rnet(normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """mtcnn's RNet stage (StageRNet, its defaults) with the network run in fixed batches (see _in_batches)."""
    from mtcnn.utils.bboxes import (
        adjust_bboxes,
        pick_matches,
        replace_confidence,
        resize_to_square,
        smart_nms_from_bboxes,
    )
    from mtcnn.utils.images import extract_patches

    offsets, scores = _in_batches("rnet", extract_patches(normalized, boxes, expected_size=(24, 24)), RNET_BATCH)
    boxes = adjust_bboxes(replace_confidence(boxes, scores), offsets)
    boxes = pick_matches(boxes, score_threshold=RNET_THRESHOLD)
    return resize_to_square(smart_nms_from_bboxes(boxes, threshold=0.7, method="union", initial_sort=True))


def _onet(normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """mtcnn's ONet stage (StageONet, threshold ONET_THRESHOLD) with the network run in fixed batches."""
    import tensorflow as tf
    from mtcnn.utils.bboxes import adjust_bboxes, pick_matches, replace_confidence, smart_nms_from_bboxes
    from mtcnn.utils.images import extract_patches
    from mtcnn.utils.landmarks import adjust_landmarks

    patches = extract_patches(normalized, boxes, expected_size=(48, 48))
    offsets, landmarks, scores = _in_batches("onet", patches, ONET_BATCH)
    landmarks = adjust_landmarks(tf.constant(landmarks), boxes)
    boxes = np.concatenate([adjust_bboxes(replace_confidence(boxes, scores), offsets), landmarks], axis=-1)
    boxes = pick_matches(boxes, scores_column=5, score_threshold=ONET_THRESHOLD)
    return smart_nms_from_bboxes(boxes, threshold=0.7, method="min", initial_sort=True)


def _mtcnn(images: np.ndarray, min_face: float) -> np.ndarray:
    """MTCNN on a (n, H, W, 3) uint8 RGB batch: (D, 16) rows ``[image, x1, y1, x2, y2, score, 5 x, 5 y]``
    (landmarks: eye on the image's left, other eye, nose, mouth corners)."""
    boxes = _pnet_proposals(images, min_face)
    if len(boxes):
        normalized = _normalized(images)
        boxes = _rnet(normalized, boxes)
        if len(boxes):
            boxes = _onet(normalized, boxes)
    return boxes if len(boxes) else np.zeros((0, 16))


def _detect_mtcnn(images: np.ndarray, min_face: float) -> list[FrameFaces]:
    """Faces per image of a same-sized batch, boxes as (top, right, bottom, left) floats in the batch's pixels."""
    rows = _mtcnn(images, min_face)
    faces = []
    for index in range(len(images)):
        mine = rows[rows[:, 0] == index]
        boxes = mine[:, [2, 3, 4, 1]]
        eyes = np.stack([mine[:, 6:8], mine[:, 11:13]], axis=2)  # (F, 2 eyes, x/y)
        faces.append(FrameFaces(boxes, _left_to_right(eyes)))
    return faces


def eye_landmarks(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(F, 2, 2) eye centres ``(x, y)`` (image-left eye first) from dlib's 5-point landmarks, one per box.

    Parameters
    ----------
    frame : ndarray of shape (H, W, 3), uint8 RGB
    boxes : ndarray of shape (F, 4)
        ``(top, right, bottom, left)`` in the frame's pixels.

    Returns
    -------
    eyes : ndarray of shape (F, 2, 2), float32
        ``(x, y)`` of the eye on the image's left, then the other, in the frame's pixels.
    """
    if not len(boxes):
        return np.zeros((0, 2, 2), np.float32)
    face_recognition = _face_recognition()
    locations = [tuple(int(v) for v in box) for box in boxes]
    marks = face_recognition.face_landmarks(frame, face_locations=locations, model="small")
    eyes = np.array([[np.mean(m["left_eye"], axis=0), np.mean(m["right_eye"], axis=0)] for m in marks])
    return _left_to_right(eyes.reshape(-1, 2, 2))


ENCODING_SIZE = 128  # face_recognition's (dlib's ResNet) face descriptor


def face_encodings(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """face_recognition's 128-d encodings (dlib's ResNet) of faces: near for one person, far for two.

    About 0.11 s a face on 2 cores here, ten times detecting a frame: encode only the faces that must be
    (gvs.people.tracks encodes one per track, and only when needed).

    Parameters
    ----------
    frame : ndarray of shape (H, W, 3), uint8 RGB
    boxes : ndarray of shape (F, 4)
        ``(top, right, bottom, left)`` in the frame's pixels.

    Returns
    -------
    encodings : ndarray of shape (F, 128), float64
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, ENCODING_SIZE))
    locations = [tuple(int(v) for v in box) for box in boxes]
    encodings = _face_recognition().face_encodings(np.ascontiguousarray(frame), locations, model="small")
    return np.asarray(encodings, dtype=np.float64).reshape(-1, ENCODING_SIZE)


def _left_to_right(eyes: np.ndarray) -> np.ndarray:
    """(F, 2, 2) eye pairs ordered by x: the eye on the image's left first (float32)."""
    eyes = np.asarray(eyes, np.float32).reshape(-1, 2, 2)
    swapped = eyes[:, 0, 0] > eyes[:, 1, 0]
    return np.where(swapped[:, None, None], eyes[:, ::-1], eyes)


@cache
def _yuface():
    """The yuface module (libfacedetection's CNN compiled into the wheel), imported once per process.

    Its OpenMP threads wait passively (OMP_WAIT_POLICY, read when its bundled libgomp loads, so set before the
    import unless the user set it): spinning threads on cores shared with TensorFlow ran it 3-8x slower here.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import yuface
    except ImportError as error:
        raise InputError(
            f"the yuface face detector is not installed ({error}): `pip install -r requirements.txt` "
            "(or `pip install yuface`); it has wheels for Linux x86_64 and Windows on Python 3.11 only, "
            "elsewhere choose --face-detector mtcnn"
        ) from error
    return yuface


def _detect_yuface(images: np.ndarray, threshold: float) -> list[FrameFaces]:
    """yuface boxes per image of a (n, H, W, 3) uint8 RGB batch, in the batch's pixels (NaN eyes: see find_faces).

    The package returns (D, 16) int16 rows ``[score x100, x, y, w, h, 5 (x, y) landmarks, unused]`` for a BGR
    image; rows scoring at most ``threshold`` are dropped. Its landmarks are not used: its eyes stay level on a
    turned face (the astronaut turned 20 degrees: eye heights 1 px apart, MTCNN's and dlib's 12-13 px), so a crop
    aligned on them is not turned upright (correlation with the upright crop 0.37; on dlib's eyes 0.92).
    """
    detect, faces = _yuface().c_detect, []
    for image in images:
        rows = np.asarray(detect(np.ascontiguousarray(image[..., ::-1])), np.float64).reshape(-1, 16)
        x, y, w, h = rows[rows[:, 0] > threshold * 100, 1:5].T
        boxes = np.stack([y, x + w, y + h, x], axis=1)  # (top, right, bottom, left)
        faces.append(FrameFaces(boxes, np.full((len(boxes), 2, 2), np.nan, np.float32)))
    return faces


def _detect_dlib(images: np.ndarray, detector: str, upsample: int) -> list[FrameFaces]:
    """face_recognition HOG/CNN boxes per image (no landmarks yet: NaN eyes)."""
    face_recognition = _face_recognition()
    faces = []
    for image in images:
        found = face_recognition.face_locations(image, number_of_times_to_upsample=upsample, model=detector)
        boxes = np.array(found, dtype=np.float64).reshape(-1, 4)
        faces.append(FrameFaces(boxes, np.full((len(boxes), 2, 2), np.nan, np.float32)))
    return faces


def _to_source(faces: FrameFaces, scale: float, frame_shape: tuple[int, int], min_size: int) -> FrameFaces:
    """Boxes and eyes mapped from the detection image back to source pixels, clipped, then at least
    ``min_size`` px tall (and 1 px wide)."""
    height, width = frame_shape
    boxes = np.round(np.asarray(faces.boxes, np.float64).reshape(-1, 4) / scale).astype(np.int32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, height)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, width)
    kept = (boxes[:, 2] - boxes[:, 0] >= max(min_size, 1)) & (boxes[:, 1] > boxes[:, 3])
    return FrameFaces(boxes[kept], (np.asarray(faces.eyes, np.float32) / scale)[kept])


def find_faces(
    frames: np.ndarray,
    detector: str = _DEFAULTS.face_detector,
    min_size: int = _DEFAULTS.min_face,
    detect_width: int = _DEFAULTS.face_detect_width,
    upsample: int = _DEFAULTS.face_upsample,
    every: int = _DEFAULTS.face_every,
) -> list[FrameFaces]:
    """Faces per frame with eye landmarks, in source-frame pixels.

    Frames wider than ``detect_width`` are downscaled for detection and the boxes mapped back. Faces shorter than
    ``min_size`` source pixels are dropped (MTCNN does not search below that size). With ``every`` > 1 faces are
    detected on frames 0, every, 2 * every, ... only; each frame in between gets the faces of the last detected
    frame (same boxes and eyes).

    Parameters
    ----------
    frames : ndarray of shape (n, H, W, 3), uint8 RGB
    detector : str
        One of DETECTORS ("yuface", "mtcnn", "hog", "cnn").
    min_size : int
        Smallest face box height kept, in source-frame pixels.
    detect_width : int
        Widest detection image in pixels; 0: the detector's own (face_detector_names.DETECT_WIDTHS).
    upsample : int
        face_recognition's upsampling (hog and cnn only).
    every : int
        Detect on every ``every``-th frame (1: every frame).

    Returns
    -------
    faces : list of n FrameFaces
        Per frame, boxes (F, 4) int32 ``(top, right, bottom, left)`` and eyes (F, 2, 2) float32.

    Raises
    ------
    InputError
        An unknown ``detector`` or ``every`` below 1.
    """
    if detector not in DETECTORS:
        raise InputError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if every < 1:
        raise InputError(f"face detection every {every} frames: it must be 1 (every frame) or more")
    if not len(frames):
        return []
    detect_width = resolved_width(detector, detect_width)
    if every > 1:
        detected = find_faces(frames[::every], detector, min_size, detect_width, upsample)
        return [detected[index // every] for index in range(len(frames))]
    height, width = frames.shape[1:3]
    scale = min(1.0, detect_width / width)
    size = (round(width * scale), round(height * scale))
    images = frames if scale == 1.0 else np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    if detector == "mtcnn":
        found = _detect_mtcnn(images, max(min_size, 1) * scale)
    elif detector == "yuface":
        found = _detect_yuface(images, YUFACE_THRESHOLD)
    else:
        found = _detect_dlib(images, detector, upsample)
    faces = [_to_source(f, scale, (height, width), min_size) for f in found]
    if detector in DLIB_EYES:
        faces = [FrameFaces(f.boxes, eye_landmarks(frame, f.boxes)) for frame, f in zip(frames, faces)]
    return faces


def detect_faces(
    frames: np.ndarray,
    detector: str = _DEFAULTS.face_detector,
    min_size: int = _DEFAULTS.min_face,
    detect_width: int = _DEFAULTS.face_detect_width,
    upsample: int = _DEFAULTS.face_upsample,
    every: int = _DEFAULTS.face_every,
) -> list[np.ndarray]:
    """Face boxes per frame in source-frame pixels: find_faces without the eyes.

    Parameters
    ----------
    frames : ndarray of shape (n, H, W, 3), uint8 RGB
    detector, min_size, detect_width, upsample, every
        See find_faces.

    Returns
    -------
    boxes_per_frame : list of n ndarrays of shape (F, 4), int32
        ``(top, right, bottom, left)``.
    """
    return [faces.boxes for faces in find_faces(frames, detector, min_size, detect_width, upsample, every)]


def _tilt(eyes: np.ndarray) -> float:
    """Degrees the eye line is turned from level (0 when the eyes are unknown or the line is implausibly steep)."""
    (x_left, y_left), (x_right, y_right) = eyes
    angle = math.degrees(math.atan2(y_right - y_left, x_right - x_left))
    return angle if np.isfinite(angle) and abs(angle) <= MAX_TILT else 0.0


def _face_centre(box: np.ndarray, eyes: np.ndarray, angle: float) -> tuple[float, float]:
    """``EYES_TO_CENTRE`` of the face size below the eye midpoint (along the turned face); the box centre
    when the eyes are unknown or their midpoint lies outside the box (a landmark error)."""
    top, right, bottom, left = (float(v) for v in box)
    x_mid, y_mid = np.asarray(eyes, np.float64).mean(axis=0)
    if not (left <= x_mid <= right and top <= y_mid <= bottom):  # also False for NaN eyes
        return (left + right) / 2, (top + bottom) / 2
    size = ((right - left) + (bottom - top)) / 2
    radians = math.radians(angle)
    return x_mid - EYES_TO_CENTRE * size * math.sin(radians), y_mid + EYES_TO_CENTRE * size * math.cos(radians)


def aligned_crop(gray: np.ndarray, box: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """The face of ``box`` in the ``gray`` frame, turned so ``eyes`` are level and centred on them (see
    _face_centre), a square of the box size plus ``CROP_MARGIN`` of it on every side (borders replicated).

    Parameters
    ----------
    gray : ndarray of shape (H, W), uint8
    box : ndarray of shape (4,)
        ``(top, right, bottom, left)`` in the frame's pixels.
    eyes : ndarray of shape (2, 2)
        ``(x, y)`` of the eye on the image's left, then the other; NaN where unknown (the box centre is used).

    Returns
    -------
    crop : ndarray of shape (64, 64), uint8
    """
    top, right, bottom, left = (float(v) for v in box)
    angle = _tilt(eyes)
    centre = _face_centre(box, eyes, angle)
    side = (1 + 2 * CROP_MARGIN) * ((right - left) + (bottom - top)) / 2
    shrink = side / (2 * FER_SIZE)  # area-resize big faces to twice the crop first: warpAffine alone aliases
    if shrink > 1.0:
        x0, y0 = max(0, int(centre[0] - side)), max(0, int(centre[1] - side))  # covers the turned square
        patch = gray[y0 : int(centre[1] + side) + 1, x0 : int(centre[0] + side) + 1]
        gray = cv2.resize(patch, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA)
        centre, side = ((centre[0] - x0) / shrink, (centre[1] - y0) / shrink), side / shrink
    matrix = cv2.getRotationMatrix2D(centre, angle, FER_SIZE / side)
    matrix[:, 2] += (FER_SIZE / 2 - centre[0], FER_SIZE / 2 - centre[1])
    return cv2.warpAffine(gray, matrix, (FER_SIZE, FER_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def face_crops(
    frames: np.ndarray, boxes_per_frame: list[np.ndarray], eyes_per_frame: list[np.ndarray] | None = None
) -> np.ndarray:
    """FER input: each face aligned (see aligned_crop), gray, scaled to [-1, 1].

    Parameters
    ----------
    frames : ndarray of shape (n, H, W, 3), uint8 RGB
    boxes_per_frame : list of n ndarrays of shape (F, 4)
        ``(top, right, bottom, left)`` in source-frame pixels.
    eyes_per_frame : list of n ndarrays of shape (F, 2, 2), optional
        Eye centres per box; None: found with dlib's 5-point landmarks.

    Returns
    -------
    crops : ndarray of shape (F_total, 64, 64, 1), float32
        The faces of all frames in order, F_total the sum of the F.
    """
    crops = []
    for index, (frame, boxes) in enumerate(zip(frames, boxes_per_frame)):
        if not len(boxes):
            continue
        eyes = eyes_per_frame[index] if eyes_per_frame is not None else eye_landmarks(frame, boxes)
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        crops.extend(aligned_crop(gray, box, pair) for box, pair in zip(boxes, eyes))
    if not crops:
        return np.zeros((0, FER_SIZE, FER_SIZE, 1), dtype=np.float32)
    return ((np.stack(crops).astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def score_faces(
    fer_model, frames: np.ndarray, boxes_per_frame: list[np.ndarray], eyes_per_frame: list[np.ndarray] | None = None
) -> list[np.ndarray]:
    """FER scores per frame; all faces of all frames go in one model call.

    Parameters
    ----------
    fer_model : keras.Model
        The FER2013 mini-Xception (see load_fer_model): (m, 64, 64, 1) -> (m, 7).
    frames, boxes_per_frame, eyes_per_frame
        See face_crops.

    Returns
    -------
    scores_per_frame : list of n ndarrays of shape (F, 7), float32
        In EXPRESSIONS order.
    """
    crops = face_crops(frames, boxes_per_frame, eyes_per_frame)
    if len(crops):
        # A direct call: keras predict() costs ~0.1 s of setup per call, more than scoring a clip's faces.
        scores = np.asarray(fer_model([crops], training=False), dtype=np.float32)
    else:
        scores = np.zeros((0, len(EXPRESSIONS)), dtype=np.float32)
    ends = np.cumsum([len(boxes) for boxes in boxes_per_frame])
    return np.split(scores, ends[:-1]) if len(ends) else []


def face_features(scores_per_frame: list[np.ndarray], n_frames: int) -> np.ndarray:
    """Min, max, mean of each expression over a frame's faces, then the face count.

    A real frame without faces is NO_FACE in the 21 statistics with count 0; positions past
    ``len(scores_per_frame)`` (padding) stay zero.

    Parameters
    ----------
    scores_per_frame : list of ndarrays of shape (F, 7)
        One entry per real frame, EXPRESSIONS order (see score_faces).
    n_frames : int
        Rows of the result, padding included.

    Returns
    -------
    features : ndarray of shape (n_frames, 22), float32
    """
    features = np.zeros((n_frames, FEATURES_PER_FRAME), dtype=np.float32)
    for index, scores in enumerate(scores_per_frame[:n_frames]):
        if len(scores):
            features[index] = np.concatenate([scores.min(0), scores.max(0), scores.mean(0), [len(scores)]])
        else:
            features[index, :-1] = NO_FACE
    return features


def load_fer_model():
    """The FER2013 mini-Xception (64x64x1 -> 7 softmax scores), resolved and sha256-checked by model_files, in
    float32 (bfloat16 kept the top expression of only 0.956 of yuface's faces; the limit is 0.98)."""
    import keras

    return keras.models.load_model(resolve("fer"), compile=False)


class FaceExtractor:
    """Faces modality: per kept frame, 22 pooled FER features of the faces found in it."""

    modality = "faces"

    def __init__(self, config: PreprocessConfig) -> None:
        if config.face_detector not in DETECTORS:
            raise InputError(f"face_detector {config.face_detector!r} is unknown; use one of {', '.join(DETECTORS)}")
        self.config = config
        self.fer_model = load_fer_model()  # float32 whatever --precision says (see load_fer_model)
        if config.face_detector == "mtcnn":
            _mtcnn_stages()  # load (or fail) now, not on the first clip
        elif config.face_detector == "yuface":
            _yuface()
        self.resolved = {
            "fer_sha256": MODEL_FILES["fer"].sha256,
            "detector": config.face_detector,  # its package's version is in the fingerprint (config.py)
            "upsample": config.face_upsample,
            "detect_width": resolved_width(config.face_detector, config.face_detect_width),
            **({"yuface_threshold": YUFACE_THRESHOLD} if config.face_detector == "yuface" else {}),
            "precision": "float32",
            "crop": f"eye-aligned, margin {CROP_MARGIN}",
        }

    def extract(self, clip: DecodedClip) -> ModalityResult:
        """Faces features of one decoded clip (or of the next chunk of a streamed video), with this extractor's
        detector and settings.

        Parameters
        ----------
        clip : DecodedClip
            Its kept ``frames`` (n_kept, H, W, 3) uint8 RGB are searched; ``n_frames`` sets the padded length.

        Returns
        -------
        result : ModalityResult
            Arrays ``features`` (n_frames, 22) float32 (see face_features), ``mask`` (n_frames,) bool, ``boxes``
            (F_total, 4) int32, ``scores`` (F_total, 7) float32, ``faces_per_frame`` (n_frames,) int32; the flag
            "no faces" when no frame has one.
        """
        config = self.config
        faces = find_faces(
            clip.frames,
            config.face_detector,
            config.min_face,
            config.face_detect_width,
            config.face_upsample,
            config.face_every,
        )
        boxes = [f.boxes for f in faces]
        scores = score_faces(self.fer_model, clip.frames, boxes, [f.eyes for f in faces])
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
