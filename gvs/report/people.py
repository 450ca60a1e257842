"""Section 5: the people and faces on the key frames, and which of their features the models used.

Each key frame is drawn (faces blurred when asked) with the skeletons the pose model saw, every body keypoint's
dot sized and coloured by the pose model's SmoothGrad saliency for the explained class on that frame, and the
face boxes the faces model saw, labelled with their strongest FER expression. The pose features are per-frame
means over the people (preprocess/pose.py), so every person of a frame gets the same keypoint saliency. Two tables
rank the keypoints and the face statistics (min / max / mean of each expression over a frame's faces, and the
face count) by their share of saliency over the whole window. A model whose p(class) moved by less than
movement.MIN_CHANGE over the window's features and their noisy copies (:func:`noisy_spread`, drawn as SmoothGrad
draws them) has nothing to explain: the section says so in one sentence and gives that model no ranking table and
no saliency colours.
"""

from __future__ import annotations

import numpy as np

from gvs.core.figures import subplots
from gvs.core.vocabulary import COCO_KEYPOINTS, COCO_LIMBS
from preprocess.faces import EXPRESSIONS
from saliency.figures import FACE_STATISTICS
from saliency.maps import POSE_KEYPOINTS, column_saliency, pose_keypoint_saliency, smoothgrad

from .movement import MIN_CHANGE, spread, unmoved_sentence
from .sections import Figure, Section, Table, png_bytes
from .window import ExplainedWindow

KEYPOINT_NAMES: tuple[str, ...] = (*COCO_KEYPOINTS[1 : POSE_KEYPOINTS + 1], "person count")  # pose feature groups
BODY = np.zeros(len(COCO_KEYPOINTS), dtype=bool)
BODY[1 : POSE_KEYPOINTS + 1] = True  # keypoints the pose features keep (neck .. left ankle)
PANEL_INCHES = 5.0
LABEL_ROOM = 0.08  # share of the frame's height a face label needs above its box


def pose_saliency(window: ExplainedWindow, samples: int = 16, seed: int = 0) -> np.ndarray:
    """(steps, 27) SmoothGrad |gradient| of the pose model's log p(class) over the window's pose features."""
    x = window.window.features["pose"].astype(np.float32)
    return smoothgrad(window.predictor.bundle.model("pose"), x, window.class_index, samples, seed=seed)


def keypoint_shares(saliency: np.ndarray) -> np.ndarray:
    """(14,) share of the window's (steps, 27) pose saliency per body keypoint (x and y summed), then the person
    count, in KEYPOINT_NAMES order; zeros when the saliency is all zero."""
    groups = np.append(pose_keypoint_saliency(saliency).sum(axis=0), np.abs(saliency[:, -1]).sum())
    return groups / groups.sum() if groups.sum() > 0 else groups


def statistic_shares(window: ExplainedWindow, samples: int = 16, seed: int = 0) -> np.ndarray:
    """(22,) share of the faces model's SmoothGrad saliency per face statistic column (min x 7, max x 7, mean x 7
    in EXPRESSIONS order, then the face count), summed over the window's frames."""
    x = window.window.features["faces"].astype(np.float32)
    columns = column_saliency(
        smoothgrad(window.predictor.bundle.model("faces"), x, window.class_index, samples, seed=seed)
    )
    return columns / columns.sum() if columns.sum() > 0 else columns


def noisy_spread(
    model, x: np.ndarray, class_index: int, samples: int = 16, noise: float = 0.15, seed: int = 0
) -> float:
    """Largest minus smallest p(class) of ``model`` over one clip ``x`` (steps, ...) and ``samples`` noisy copies
    drawn as SmoothGrad draws them: Gaussian noise of standard deviation ``noise`` x (max - min) of the clip, padded
    (all-zero) steps left zero."""
    x = np.asarray(x, np.float32)
    real = (np.abs(x).reshape(len(x), -1).sum(axis=1) > 0).reshape(-1, *[1] * (x.ndim - 1))
    rng = np.random.default_rng(seed)
    copies = x[None] + rng.normal(0.0, noise * float(x.max() - x.min()), (samples, *x.shape)) * real
    batch = np.concatenate([x[None], copies]).astype(np.float32)
    return spread(np.asarray(model.predict_on_batch(batch))[:, class_index])


def people_section(window: ExplainedWindow, frame_indices: list[int], samples: int = 16) -> Section:
    """Section "people": the key frames (indices into ``window.frames``; the middle frame when none) with
    skeletons, keypoint saliency and labelled face boxes, and tables of the keypoints and face statistics the
    pose and faces models used (SmoothGrad over ``samples`` noisy copies)."""
    frames = list(dict.fromkeys(frame_indices)) or [len(window.frames) // 2]
    raw = window.window.raw
    has_pose, has_faces = "pose" in window.modalities, "faces" in window.modalities
    people_seen = any(len(k) for k in raw.keypoints)
    faces_seen = any(len(b) for b in raw.face_boxes)
    tables, arrays = [], {"key_frames": np.array(frames)}
    unmoved = {}  # {"pose" / "faces": how far its p(class) moved, below MIN_CHANGE}
    for modality, seen in (("pose", has_pose and people_seen), ("faces", has_faces and faces_seen)):
        if seen:
            model, x = window.predictor.bundle.model(modality), window.window.features[modality]
            arrays[f"{modality}_spread"] = np.array(noisy_spread(model, x, window.class_index, samples))
            if arrays[f"{modality}_spread"] < MIN_CHANGE:
                unmoved[modality] = float(arrays[f"{modality}_spread"])
    if has_pose and people_seen and "pose" not in unmoved:
        saliency = pose_saliency(window, samples)
        shares = keypoint_shares(saliency)
        tables.append(_keypoint_table(shares, window.class_name))
        arrays |= {"keypoint_shares": shares, "keypoint_saliency": pose_keypoint_saliency(saliency)}
    if has_faces and faces_seen and "faces" not in unmoved:
        statistics = statistic_shares(window, samples)
        tables.append(_statistics_table(statistics, window.class_name))
        arrays["statistic_shares"] = statistics
    figure = _figure(window, frames, arrays.get("keypoint_saliency"))
    return Section(
        "people",
        "People and faces",
        _text(window, frames, arrays, people_seen, faces_seen, unmoved, samples),
        figures=[Figure("people", png_bytes(figure), "Skeletons, keypoint saliency and faces on the key frames")],
        tables=tables,
        caveat="The skeletons and faces are what the detectors found; a missed person or face was invisible to the "
        "models. The pose model sees each frame's mean keypoint positions over its people, so its saliency cannot "
        "single out one person. Saliency is a local gradient (averaged over noisy copies): it shows what the models' "
        "outputs are sensitive to, not what caused the verdict.",
        arrays=arrays,
    )


def _keypoint_table(shares: np.ndarray, class_name: str) -> Table:
    order = np.argsort(-shares, kind="stable")
    return Table(
        ["keypoint", "share of saliency"],
        [[KEYPOINT_NAMES[i].replace("_", " "), f"{shares[i]:.1%}"] for i in order],
        f"Which keypoints the pose model's p({class_name}) is sensitive to, over the window's frames",
    )


def _statistics_table(shares: np.ndarray, class_name: str) -> Table:
    """Rows: each expression (its min, max, mean over a frame's faces, and the three together), then face count."""
    grid = shares[:-1].reshape(len(FACE_STATISTICS), len(EXPRESSIONS))
    rows = [
        [expression, *[f"{v:.1%}" for v in grid[:, j]], f"{grid[:, j].sum():.1%}"]
        for j, expression in enumerate(EXPRESSIONS)
    ]
    rows.append(["face count", *["-"] * len(FACE_STATISTICS), f"{shares[-1]:.1%}"])
    return Table(
        ["expression", *[f"{s} over faces" for s in FACE_STATISTICS], "all"],
        rows,
        f"Which face statistics the faces model's p({class_name}) is sensitive to (shares of saliency)",
    )


def _text(
    window: ExplainedWindow,
    frames: list[int],
    arrays: dict,
    people_seen: bool,
    faces_seen: bool,
    unmoved: dict[str, float],
    samples: int,
) -> str:
    """What the figure shows and what the tables found; says which modality or detection is missing, and which
    model's probability did not move (``unmoved``)."""
    raw, name = window.window.raw, window.class_name
    counts = ", ".join(
        f"frame {k + 1} ({window.frame_times[k]:.1f} s): {_count(raw.keypoints, k, 'person', 'people')}, "
        f"{_count(raw.face_boxes, k, 'face', 'faces')}"
        for k in frames
    )
    parts = [
        "The key frames are those in the middle of the moments that matter most (Key moments). On each, the "
        "skeletons the pose detector found are drawn; the dots on their body keypoints are larger and brighter where "
        f"the pose model's p({name}) is more sensitive to that keypoint on that frame. Face boxes carry the "
        f"strongest of the face's expression scores. {counts}."
    ]
    if "pose" not in window.modalities:
        parts.append("The model has no pose modality: the skeletons are not explained.")
    elif not people_seen:
        parts.append("No people were found in this window, so the pose model saw only 'nobody here'.")
    elif "pose" in unmoved:
        parts.append(_unmoved("pose", name, unmoved["pose"], samples))
    else:
        shares = arrays["keypoint_shares"]
        top = int(np.argmax(shares))
        parts.append(
            f"Over the window, the pose model is most sensitive to the {KEYPOINT_NAMES[top].replace('_', ' ')} ({shares[top]:.0%} of its saliency)."
        )
    if "faces" not in window.modalities:
        parts.append("The model has no faces modality: the faces are not explained.")
    elif not faces_seen:
        parts.append("No faces were found in this window, so the faces model saw only 'no face here'.")
    elif "faces" in unmoved:
        parts.append(_unmoved("faces", name, unmoved["faces"], samples))
    else:
        shares = arrays["statistic_shares"]
        top = int(np.argmax(shares))
        parts.append(
            f"The faces model is most sensitive to the {_statistic_name(top)} ({shares[top]:.0%} of its saliency)."
        )
    return "\n\n".join(parts)


def _unmoved(modality: str, class_name: str, change: float, samples: int) -> str:
    """The sentence of a model whose p(class) did not move under the saliency's noise."""
    return unmoved_sentence(
        f"Noise on the {modality} features (the window's and {samples} noisy copies, as SmoothGrad draws them)",
        f"the {modality} model's p({class_name})",
        change,
    )


def _count(per_frame: list[np.ndarray], k: int, one: str, many: str) -> str:
    """'1 person' / '3 people' / '0 people' detected on frame ``k`` (none when nothing was detected at all)."""
    n = len(per_frame[k]) if per_frame else 0
    return f"{n} {one if n == 1 else many}"


def _statistic_name(column: int) -> str:
    """'max over faces of happy' for a faces feature column; 'face count' for the last."""
    if column == len(FACE_STATISTICS) * len(EXPRESSIONS):
        return "face count"
    statistic, expression = divmod(column, len(EXPRESSIONS))
    return f"{FACE_STATISTICS[statistic]} over faces of {EXPRESSIONS[expression]}"


def _figure(window: ExplainedWindow, frames: list[int], keypoint_saliency: np.ndarray | None):
    """Matplotlib figure, one panel per key frame: the displayed frame, skeletons with saliency dots (one colour
    scale over the whole window; plain dots without saliency) and labelled face boxes."""
    import matplotlib

    images = window.display_frames
    height, width = images.shape[1:3]
    scale = None
    if keypoint_saliency is not None:
        top = float(keypoint_saliency.max())
        scale = keypoint_saliency / top if top > 0 else np.zeros_like(keypoint_saliency)
    figure, axes = subplots(
        1, len(frames), squeeze=False, figsize=(PANEL_INCHES * len(frames) + 1.0, PANEL_INCHES * height / width + 0.6)
    )
    colours = matplotlib.colormaps["plasma"]
    raw = window.window.raw
    for axis, k in zip(axes[0], frames):
        axis.imshow(images[k])
        axis.set(xlim=(0, width), ylim=(height, 0), xticks=[], yticks=[])
        for person in raw.keypoints[k] if raw.keypoints else []:
            _draw_person(axis, person, None if scale is None else scale[k], colours)
        boxes = raw.face_boxes[k] if raw.face_boxes else np.zeros((0, 4))
        scores = raw.face_scores[k] if raw.face_scores else np.zeros((0, len(EXPRESSIONS)))
        for index, box in enumerate(boxes):
            _draw_face(axis, box, scores[index] if index < len(scores) else None)
        axis.set_title(f"frame {k + 1} ({window.frame_times[k]:.1f} s)", fontsize=9)
    if scale is not None:
        mappable = matplotlib.cm.ScalarMappable(cmap=colours, norm=matplotlib.colors.Normalize(0, 1))
        figure.colorbar(
            mappable, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01, label="keypoint saliency (relative)"
        )
    return figure


def _draw_person(axis, person: np.ndarray, saliency: np.ndarray | None, colours) -> None:
    """One (18, 3) skeleton: limbs between found keypoints (confidence > 0), body keypoints sized and coloured by
    their (13,) relative ``saliency`` (plain white without), the face keypoints small and grey."""
    found = person[:, 2] > 0
    for start, end in COCO_LIMBS:
        if found[start] and found[end]:
            axis.plot(person[[start, end], 0], person[[start, end], 1], color="deepskyblue", linewidth=1.5)
    axis.scatter(person[found & ~BODY, 0], person[found & ~BODY, 1], s=6, color="lightgrey", zorder=3)
    points = np.flatnonzero(found & BODY)
    weights = saliency[points - 1] if saliency is not None else np.zeros(len(points))
    axis.scatter(
        person[points, 0],
        person[points, 1],
        s=10 + 260 * weights,
        c=colours(weights) if saliency is not None else "white",
        edgecolors="black",
        linewidths=0.5,
        zorder=4,
    )


def _draw_face(axis, box: np.ndarray, scores: np.ndarray | None) -> None:
    """A (top, right, bottom, left) face box, labelled 'happy 0.83' with its strongest expression when scored."""
    from matplotlib.patches import Rectangle

    top, right, bottom, left = (float(v) for v in box)
    axis.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, edgecolor="#2ecc71", linewidth=1.8))
    if scores is not None and len(scores):
        best = int(np.argmax(scores))
        above = top > LABEL_ROOM * axis.get_ylim()[0]  # near the frame's top edge the label goes under the box
        axis.text(
            left,
            top - 3 if above else bottom + 3,
            f"{EXPRESSIONS[best]} {scores[best]:.2f}",
            color="black",
            fontsize=8,
            va="bottom" if above else "top",
            bbox={"facecolor": "#2ecc71", "edgecolor": "none", "pad": 1.5, "alpha": 0.85},
        )
