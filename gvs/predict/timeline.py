"""The timeline of one video: the fused probability of each class over time, with thumbnails of a few windows.

Each point sits at its window's centre (the mean of its first and last frames' times). Each thumbnail (the
window's first frame) is labelled with the same centre and marked on the plot by a dotted line there, so the
labels and the x axis agree. The y axis runs a little past 0 and 1, so a line at a saturated probability stays
visible instead of lying on the plot's frame. The time a window flagged unlike the training data covers (from its
start to its end; gvs.predict.familiarity) is shaded grey, with a legend entry naming the scores below the threshold.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gvs.core.io import atomic_write_bytes

from .predictor import FUSED, VideoPrediction

Y_LIMITS = (-0.05, 1.05)  # probabilities, padded so lines at 0 and 1 are drawn inside the frame


def window_centres(video: VideoPrediction) -> np.ndarray:
    """(n_windows,) seconds of each window's centre: the timeline's x positions."""
    return np.array([(w.start_s + w.end_s) / 2 for w in video.windows])


def unfamiliar_spans(video: VideoPrediction) -> list[tuple[float, float]]:
    """[(start, end)] seconds covered by windows flagged unlike the training data, overlapping windows merged."""
    spans: list[list[float]] = []
    for window in sorted((w for w in video.windows if w.unfamiliar), key=lambda w: w.start_s):
        if spans and window.start_s <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], window.end_s)
        else:
            spans.append([window.start_s, window.end_s])
    return [(start, end) for start, end in spans]


def thumbnail_picks(video: VideoPrediction, thumbnails: int) -> np.ndarray:
    """Indices of up to ``thumbnails`` windows spread evenly over the video (first and last included)."""
    count = min(thumbnails, len(video.windows))
    return np.unique(np.linspace(0, len(video.windows) - 1, count).round().astype(int)) if count else np.array([], int)


def timeline_figure(video: VideoPrediction, thumbnails: int = 6):
    """Matplotlib figure of the timeline (see the module): thumbnails of ``thumbnails`` windows along the top (none
    when 0), then the fused probability of each class over the window centres; its last axes is the plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .outputs import class_colours

    colours = class_colours(video.class_names)
    centres = window_centres(video)
    fused = np.stack([w.probabilities[FUSED] for w in video.windows])
    picks = thumbnail_picks(video, thumbnails)
    rows = 2 if len(picks) else 1
    figure = Figure(figsize=(10, 4.6 if rows == 2 else 3.4))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(rows, max(len(picks), 1), height_ratios=[1, 2.4][-rows:], hspace=0.35)
    for column, index in enumerate(picks):
        axis = figure.add_subplot(grid[0, column])
        window = video.windows[index]
        if window.thumbnail is not None:
            axis.imshow(window.thumbnail)
        axis.set_title(f"{centres[index]:.1f} s: {window.predicted}", fontsize=8, color=colours[window.predicted])
        axis.axis("off")
    axis = figure.add_subplot(grid[rows - 1, :])
    for index in picks:
        axis.axvline(centres[index], color="#bdc3c7", linestyle=":", linewidth=1, zorder=0)
    names = sorted({name for w in video.windows for name in w.unfamiliar})
    for number, (start, end) in enumerate(unfamiliar_spans(video)):
        label = f"unlike the training data ({', '.join(names)})" if number == 0 else None
        axis.axvspan(start, end, color="#7f8c8d", alpha=0.18, linewidth=0, zorder=0, label=label)
    for index, name in enumerate(video.class_names):
        axis.plot(centres, fused[:, index], marker="o", markersize=3, color=colours[name], label=name)
    axis.set_ylim(*Y_LIMITS)
    axis.set_yticks([0, 0.25, 0.5, 0.75, 1])
    axis.set_xlim(0, max(video.duration_s, centres.max() + 0.1))
    axis.set_xlabel("time (s), window centres" + ("; dotted: the thumbnails' windows" if len(picks) else ""))
    axis.set_ylabel("fused probability")
    axis.legend(loc="upper right", fontsize=8, ncol=min(len(video.class_names), 4))
    shares = ", ".join(f"{c} {s:.0%}" for c, s in video.class_shares.items())
    figure.suptitle(
        f"{video.path.name}: {video.verdict} ({video.probabilities.max():.2f}); windows: {shares}", fontsize=10
    )
    return figure


def timeline_png(video: VideoPrediction, thumbnails: int = 6) -> bytes:
    """PNG bytes of :func:`timeline_figure`."""
    figure = timeline_figure(video, thumbnails)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def save_timeline(video: VideoPrediction, path: Path, thumbnails: int = 6) -> Path:
    """Write :func:`timeline_png` to ``path`` (atomically)."""
    png = timeline_png(video, thumbnails)
    atomic_write_bytes(path, lambda handle: handle.write(png))
    return path
