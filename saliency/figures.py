"""Explanation figures: arrays + a title -> one PNG each (matplotlib, Agg backend).

Frames may be None (features without the clip, e.g. a synthetic cache): the maps are then drawn on a grey
canvas. Scales are shared across the frames of a figure, so frames can be compared with each other.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from gvs.core.errors import InputError
from gvs.core.figures import subplots
from gvs.core.vocabulary import COCO_LIMBS

FER_EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_STATISTICS: tuple[str, ...] = ("min", "max", "mean")
_CANVAS = (320, 480)  # height, width of the grey canvas drawn when frames are not available
_DPI = 100


def clip_title(
    modality: str, key: str, label: int, probabilities: np.ndarray, class_names: tuple[str, ...] | list[str]
) -> str:
    """'<modality> · <clip> · true <class> · predicted <class> (p)'; 'true unknown' when label is -1. ``label``
    and ``probabilities`` index ``class_names`` (the model's classes).

    Parameters
    ----------
    modality : str
    key : str
        The clip's cache key.
    label : int
        True class index; -1 when unknown.
    probabilities : ndarray of shape (n_classes,)
    class_names : tuple or list of str

    Returns
    -------
    title : str
    """
    predicted = int(np.argmax(probabilities))
    truth = class_names[label] if label >= 0 else "unknown"
    return f"{modality} · {key} · true {truth} · predicted {class_names[predicted]} ({probabilities[predicted]:.2f})"


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI)
    return path


def _background(frames: np.ndarray | None, index: int, size: tuple[int, int] = _CANVAS) -> np.ndarray:
    if frames is not None and index < len(frames):
        return frames[index]
    return np.full(size + (3,), 200, np.uint8)


def _normalised(values: np.ndarray) -> np.ndarray:
    top = float(np.max(values)) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def scene_figure(frames: np.ndarray | None, frame_maps: dict[str, np.ndarray], title: str, path: str | Path) -> Path:
    """One strip per clip: a row per method (vanilla, smoothgrad, gradcam, ...), a column per frame.

    ``frame_maps[method]`` is (T, h, w) (or (h, w) for one map of the whole clip); each map is upsampled to
    the frame and overlaid. Each row is scaled by its largest value; above each panel is the frame's share of
    the row's total saliency.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8 RGB, or None
        None draws on a grey background.
    frame_maps : dict of str to ndarray of shape (T, h, w) or (h, w)
        Method name -> saliency maps.
    title : str
    path : str or Path
        The PNG to write.

    Returns
    -------
    path : Path
    """
    n_frames = max(m.shape[0] for m in frame_maps.values() if m.ndim == 3)
    height, width = _background(frames, 0).shape[:2]
    panel = 2.1
    colours = matplotlib.colormaps["jet"]
    figure, axes = subplots(
        len(frame_maps),
        n_frames,
        squeeze=False,
        constrained_layout=True,
        figsize=(panel * n_frames + 1.0, panel * height / width * len(frame_maps) + 0.8),
    )
    for row, (method, maps) in enumerate(frame_maps.items()):
        whole_clip = maps.ndim == 2
        maps = np.repeat(maps[None], n_frames, axis=0) if whole_clip else maps
        scaled = _normalised(maps)
        totals = maps.reshape(len(maps), -1).sum(axis=1)
        shares = totals / totals.sum() if totals.sum() > 0 else totals
        notes = ["whole clip"] * n_frames if whole_clip else [f"{share:.0%}" for share in shares]
        for column in range(n_frames):
            axis = axes[row, column]
            image = _background(frames, column, (height, width))
            overlay = cv2.resize(
                scaled[column].astype(np.float32), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC
            )
            heat = colours(np.clip(overlay, 0, 1))
            heat[..., 3] = 0.1 + 0.6 * np.clip(overlay, 0, 1)  # low saliency leaves the frame visible
            axis.imshow(image)
            axis.imshow(heat)
            axis.set_xticks([])
            axis.set_yticks([])
            header = f"frame {column + 1}" if row == 0 else ""
            axis.set_title(f"{header}\n{notes[column]}" if header else notes[column], fontsize=8)
            if column == 0:
                axis.set_ylabel(method, fontsize=9)
        figure.colorbar(
            ScalarMappable(cmap=colours, norm=Normalize(0, 1)),
            ax=axes[row, :].tolist(),
            fraction=0.01,
            pad=0.01,
            label="relative",
        )
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def people_by_frame(keypoints: np.ndarray, people_per_frame: np.ndarray) -> list[np.ndarray]:
    """Split the cache's (P_total, 18, 3) keypoints into one (P, 18, 3) array per frame.

    Parameters
    ----------
    keypoints : ndarray of shape (P_total, 18, 3)
    people_per_frame : ndarray of shape (T,), int

    Returns
    -------
    people : list of T ndarrays of shape (P, 18, 3)
    """
    edges = np.concatenate([[0], np.cumsum(people_per_frame)]).astype(int)
    return [keypoints[start:end] for start, end in zip(edges[:-1], edges[1:])]


def pose_figure(
    frames: np.ndarray | None,
    people: list[np.ndarray],
    keypoint_saliency: np.ndarray,
    title: str,
    path: str | Path,
    columns: int = 6,
) -> Path:
    """Skeletons of every person on each frame; body keypoints 1..13 drawn with dot size = saliency.

    ``people[t]`` is (P, 18, 3) pixel x, y, confidence (x, y = -1 where missing); ``keypoint_saliency`` is (T, 13) where
    column j is COCO keypoint j + 1. Dot size and colour share one scale over all frames.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8 RGB, or None
    people : list of T ndarrays of shape (P, 18, 3)
    keypoint_saliency : ndarray of shape (T, 13)
    title : str
    path : str or Path
        The PNG to write.
    columns : int
        Frames per row.

    Returns
    -------
    path : Path
    """
    n_frames = len(keypoint_saliency)
    rows = int(np.ceil(n_frames / columns))
    scaled = _normalised(keypoint_saliency)
    height, width = _background(frames, 0).shape[:2]
    panel = 2.6
    figure, axes = subplots(
        rows,
        columns,
        squeeze=False,
        constrained_layout=True,
        figsize=(panel * columns + 1.0, panel * height / width * rows + 0.8),
    )
    colours = matplotlib.colormaps["plasma"]
    for frame, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if frame >= n_frames:
            axis.axis("off")
            continue
        axis.imshow(_background(frames, frame, (height, width)), alpha=0.55)
        frame_people = people[frame] if frame < len(people) else np.zeros((0, 18, 3))
        for person in frame_people:
            seen = person[:, 0] >= 0  # missing keypoints are (-1, -1, confidence)
            for start, end in COCO_LIMBS:
                if seen[start] and seen[end]:
                    axis.plot(person[[start, end], 0], person[[start, end], 1], color="deepskyblue", linewidth=1.3)
            body = np.zeros(18, bool)
            body[1:14] = True
            axis.scatter(person[seen & ~body, 0], person[seen & ~body, 1], s=4, color="lightgrey")
            points = np.flatnonzero(seen & body)
            weights = scaled[frame, points - 1]
            axis.scatter(
                person[points, 0],
                person[points, 1],
                s=8 + 220 * weights,
                c=colours(weights),
                edgecolors="black",
                linewidths=0.4,
                zorder=3,
            )
        axis.set_xlim(0, width)
        axis.set_ylim(height, 0)
        axis.set_title(f"frame {frame + 1}: {len(frame_people)} people", fontsize=8)
    mappable = ScalarMappable(cmap=colours, norm=Normalize(0, 1))
    figure.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01, label="keypoint saliency (relative)")
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def audio_figure(
    waveform: np.ndarray | None, sample_rate: int, step_saliency: np.ndarray, hop: float, title: str, path: str | Path
) -> Path:
    """Waveform and spectrogram of the clip with the saliency of each embedding step underneath.

    Step i is centred at i x ``hop`` seconds. Without audio (None) only the saliency row is drawn.

    Parameters
    ----------
    waveform : ndarray of shape (n_samples,), float, or None
    sample_rate : int
    step_saliency : ndarray of shape (steps,)
    hop : float
        Seconds between step centres.
    title : str
    path : str or Path
        The PNG to write.

    Returns
    -------
    path : Path
    """
    from scipy.signal import spectrogram

    steps = len(step_saliency)
    end = max(hop * (steps - 1) + hop / 2, len(waveform) / sample_rate if waveform is not None else 0)
    rows = 3 if waveform is not None else 1
    figure, axes = subplots(
        rows,
        1,
        sharex=True,
        squeeze=False,
        constrained_layout=True,
        figsize=(10, 1.9 * rows + 0.6),
        gridspec_kw={"height_ratios": [1, 1.3, 1][-rows:]},
    )
    axes = axes[:, 0]
    if waveform is not None:
        times = np.arange(len(waveform)) / sample_rate
        axes[0].plot(times, waveform, linewidth=0.4, color="steelblue")
        axes[0].set_ylabel("waveform")
        frequencies, segment_times, power = spectrogram(waveform, fs=sample_rate, nperseg=512, noverlap=384)
        image = axes[1].pcolormesh(
            segment_times, frequencies, 10 * np.log10(power + 1e-10), shading="auto", cmap="magma"
        )
        axes[1].set_ylabel("Hz")
        figure.colorbar(image, ax=axes[1], pad=0.01, label="dB")
    shares = step_saliency / step_saliency.sum() if step_saliency.sum() > 0 else step_saliency
    centres = np.arange(steps) * hop
    axes[-1].bar(centres, shares, width=hop * 0.9, color=matplotlib.colormaps["viridis"](_normalised(shares)))
    axes[-1].set_ylabel("share of saliency")
    axes[-1].set_xlabel("time (s); bar i = embedding step i")
    axes[-1].set_xlim(-hop / 2, end)
    if waveform is None:
        axes[-1].text(
            0.5,
            0.9,
            "no audio to draw (clip not available or without audio track)",
            transform=axes[-1].transAxes,
            ha="center",
            fontsize=8,
        )
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def project_2d(hidden: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with PCA or t-SNE (t-SNE needs at least 5 rows; its perplexity adapts to N).

    Parameters
    ----------
    hidden : ndarray of shape (N, D)
    method : str
        "pca" or "tsne".
    seed : int

    Returns
    -------
    points : ndarray of shape (N, 2)
    """
    if method == "pca":
        from sklearn.decomposition import PCA

        components = min(2, *hidden.shape)
        projected = PCA(n_components=components, random_state=seed).fit_transform(hidden)
        return np.pad(projected, ((0, 0), (0, 2 - components)))
    if method == "tsne":
        from sklearn.manifold import TSNE

        if len(hidden) < 5:
            raise InputError(f"t-SNE needs at least 5 clips, got {len(hidden)}; use the PCA projection")
        perplexity = min(30.0, (len(hidden) - 1) / 3)
        return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(hidden)
    raise InputError(f"unknown projection {method!r}; use 'pca' or 'tsne'")


def projection_figure(
    points: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    names: list[str],
    title: str,
    path: str | Path,
    class_names: tuple[str, ...] | list[str],
    annotate: int = 12,
) -> Path:
    """Error analysis of a hidden layer: 2-D points, blue correct / red wrong / grey unlabelled.

    Dot size grows with the confidence of the prediction; the ``annotate`` most confident wrong clips (then
    the most confident others) are labelled 'predicted (true) p'. ``labels`` (-1 unknown) and the columns of
    ``probabilities`` index ``class_names`` (the model's classes).

    Parameters
    ----------
    points : ndarray of shape (N, 2)
    labels : ndarray of shape (N,), int
    probabilities : ndarray of shape (N, n_classes)
    names : list of str
        One per point, for the labels drawn.
    title : str
    path : str or Path
        The PNG to write.
    class_names : tuple or list of str
    annotate : int
        How many points are labelled.

    Returns
    -------
    path : Path
    """
    predictions = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    status = np.where(labels < 0, "unlabelled", np.where(predictions == labels, "correct", "wrong"))
    colours = {"correct": "tab:blue", "wrong": "tab:red", "unlabelled": "tab:grey"}
    figure, axis = subplots(figsize=(8, 6.5), constrained_layout=True)
    for kind, colour in colours.items():
        chosen = status == kind
        if chosen.any():
            axis.scatter(
                points[chosen, 0],
                points[chosen, 1],
                s=15 + 120 * confidence[chosen],
                color=colour,
                alpha=0.7,
                edgecolors="black",
                linewidths=0.3,
                label=f"{kind} ({chosen.sum()})",
            )
    order = np.lexsort((-confidence, status != "wrong"))[:annotate]
    for index in order:
        truth = class_names[labels[index]] if labels[index] >= 0 else "?"
        axis.annotate(
            f"{names[index]}: {class_names[predictions[index]]} ({truth}) {confidence[index]:.2f}",
            points[index],
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    for size in (0.4, 0.7, 1.0):
        axis.scatter([], [], s=15 + 120 * size, color="white", edgecolors="black", label=f"confidence {size:.1f}")
    axis.legend(fontsize=8, loc="best")
    axis.set_xlabel("component 1")
    axis.set_ylabel("component 2")
    axis.set_title(title, fontsize=11)
    return _save(figure, path)


def faces_figure(
    frame_saliency: np.ndarray,
    statistic_saliency: np.ndarray,
    faces_per_frame: np.ndarray,
    title: str,
    path: str | Path,
) -> Path:
    """Which frames and which statistics drive a faces prediction.

    ``frame_saliency`` (T,) per frame; ``statistic_saliency`` (22,) over the feature columns min x 7, max x 7,
    mean x 7 (FER expressions), face count. Both are shown as shares of the total.

    Parameters
    ----------
    frame_saliency : ndarray of shape (T,)
    statistic_saliency : ndarray of shape (22,)
    faces_per_frame : ndarray of shape (T,), int
    title : str
    path : str or Path
        The PNG to write.

    Returns
    -------
    path : Path
    """
    frame_shares = frame_saliency / frame_saliency.sum() if frame_saliency.sum() > 0 else frame_saliency
    column_total = statistic_saliency.sum()
    column_shares = statistic_saliency / column_total if column_total > 0 else statistic_saliency
    figure, (frames_axis, grid_axis) = subplots(
        1, 2, figsize=(13, 4), constrained_layout=True, gridspec_kw={"width_ratios": [1, 1.3]}
    )
    positions = np.arange(1, len(frame_shares) + 1)
    bars = frames_axis.bar(positions, frame_shares, color="tab:orange")
    for bar, count in zip(bars, faces_per_frame):
        frames_axis.annotate(
            f"{int(count)}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            xytext=(0, 2),
            textcoords="offset points",
            fontsize=7,
        )
    frames_axis.set_xticks(positions)
    frames_axis.set_xlabel("frame (number above bar = faces found)")
    frames_axis.set_ylabel("share of saliency")
    frames_axis.set_title("which frames", fontsize=10)
    grid = np.concatenate([column_shares[:21].reshape(3, 7), np.full((3, 1), np.nan)], axis=1)
    grid[1, 7] = column_shares[21]
    image = grid_axis.imshow(grid, cmap="viridis", vmin=0)
    for (row, column), value in np.ndenumerate(grid):
        if not np.isnan(value):
            grid_axis.text(
                column,
                row,
                f"{value:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value < 0.6 * np.nanmax(grid) else "black",
            )
    grid_axis.set_xticks(range(8), list(FER_EXPRESSIONS) + ["face count"], rotation=30, fontsize=8)
    grid_axis.set_yticks(range(3), [f"{s} over faces" for s in FACE_STATISTICS], fontsize=8)
    grid_axis.set_title("which statistics (share of saliency)", fontsize=10)
    figure.colorbar(image, ax=grid_axis, fraction=0.03, pad=0.02, label="share")
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def fusion_figure(attributions: dict[str, float], title: str, path: str | Path) -> Path:
    """Share of the attribution per modality; bars are green where the modality supports the prediction.

    Parameters
    ----------
    attributions : dict of str to float
        Modality -> summed attribution.
    title : str
    path : str or Path
        The PNG to write.

    Returns
    -------
    path : Path
    """
    names = list(attributions)
    values = np.array([attributions[name] for name in names])
    total = np.abs(values).sum()
    shares = np.abs(values) / total if total > 0 else np.zeros_like(values)
    figure, axis = subplots(figsize=(7, 0.6 * len(names) + 1.6), constrained_layout=True)
    colours = ["tab:green" if value >= 0 else "tab:red" for value in values]
    axis.barh(names, shares, color=colours)
    for position, (share, value) in enumerate(zip(shares, values)):
        axis.text(share, position, f" {share:.0%} ({value:+.2f})", va="center", fontsize=9)
    axis.set_xlim(0, max(1.0, shares.max() * 1.3) if len(shares) else 1.0)
    axis.invert_yaxis()
    axis.set_xlabel("share of |attribution| (signed total in brackets; green supports the prediction, red opposes)")
    axis.set_title(title, fontsize=10)
    return _save(figure, path)
