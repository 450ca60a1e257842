"""The timeline of one video: the fused probability of each class over time, with thumbnails of a few windows.

Each point sits at its window's centre (the mean of its first and last frames' times). Each thumbnail (the
window's first frame) is labelled with the same centre and marked on the plot by a dotted line there, so the
labels and the x axis agree. The y axis runs a little past 0 and 1, so a line at a saturated probability stays
visible instead of lying on the plot's frame. The time a window flagged unlike the training data covers (from its
start to its end; gvs.predict.familiarity) is shaded grey, with a legend entry naming the scores below the threshold.

With people tracked (``video.people``, gvs.people), a thin row per person seen on at least PERSON_MIN_FRAMES sampled
frames (at most MAX_PERSON_ROWS: those seen most, shown by id) lies under the plot, each of their sightings coloured
by its strongest expression (EXPRESSION_COLOURS, the palette `gvs report` and `gvs serve` use too). A video without
people records gets the figure it always had.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gvs.core.io import atomic_write_bytes

from .predictor import FUSED, VideoPrediction

Y_LIMITS = (-0.05, 1.05)  # probabilities, padded so lines at 0 and 1 are drawn inside the frame
PERSON_MIN_FRAMES = 3  # people seen on fewer sampled frames get no row (too few sightings to show a course)
MAX_PERSON_ROWS = 12
PERSON_ROW_INCHES = 0.22
EXPRESSION_COLOURS: dict[str, str] = {  # one colour per preprocess.faces.EXPRESSIONS name, everywhere
    "angry": "#d62728",
    "disgust": "#6b8e23",
    "fear": "#9467bd",
    "happy": "#f1c40f",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#a0a7ad",
}


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


def timeline_people(video: VideoPrediction) -> list[dict]:
    """The person records that get a row: seen on at least PERSON_MIN_FRAMES sampled frames, the MAX_PERSON_ROWS seen
    on most frames (ties: lower id), in id order (that of first appearance)."""
    seen = [p for p in video.people if p.get("frames_seen", 0) >= PERSON_MIN_FRAMES]
    kept = sorted(seen, key=lambda p: (-p["frames_seen"], p["id"]))[:MAX_PERSON_ROWS]
    return sorted(kept, key=lambda p: p["id"])


def sighting_step(people: list[dict]) -> float:
    """Seconds between sampled frames, as the people's sightings show it (the smallest gap seen; 1/3 s when no
    person was seen twice): the width of one sighting in a strip."""
    gaps = [np.diff(p["strip"]["times"]) for p in people if len(p["strip"]["times"]) > 1]
    gaps = np.concatenate(gaps) if gaps else np.zeros(0)
    gaps = gaps[gaps > 1e-6]
    return float(gaps.min()) if len(gaps) else 1 / 3


def draw_strip(axis, record: dict, y: float, height: float, step: float, alpha: float = 1.0) -> None:
    """One person's expression strip on ``axis``: each sighting of ``record`` (a person record) a bar ``step``
    seconds wide centred on its time, at ``y`` (bottom) and ``height`` tall, coloured by its top expression."""
    times, tops = record["strip"]["times"], record["strip"]["top"]
    for expression in dict.fromkeys(tops):
        spans = [(t - step / 2, step) for t, top in zip(times, tops) if top == expression]
        axis.broken_barh(spans, (y, height), facecolors=EXPRESSION_COLOURS.get(expression, "black"), alpha=alpha)


def expression_handles(names=None) -> list:
    """Legend patches of the expressions ``names`` (default: all seven, in preprocess.faces.EXPRESSIONS order)."""
    from matplotlib.patches import Patch

    return [Patch(color=EXPRESSION_COLOURS[name], label=name) for name in names or EXPRESSION_COLOURS]


def _people_rows(axis, people: list[dict], end: float) -> None:
    """The person rows under the plot: one strip per record, labelled "person N", top row first."""
    step = sighting_step(people)
    for row, record in enumerate(people):
        draw_strip(axis, record, len(people) - row - 1 + 0.15, 0.7, step)
    axis.set_yticks(np.arange(len(people)) + 0.5, [f"person {p['id']}" for p in reversed(people)], fontsize=7)
    axis.set_ylim(0, len(people))
    axis.set_xlim(0, end)
    axis.tick_params(axis="y", length=0)
    axis.set_xlabel(
        "time (s); each person's strongest expression at each sampled frame their face was found", fontsize=8
    )
    shown = [name for name in EXPRESSION_COLOURS if any(name in p["strip"]["top"] for p in people)]
    axis.legend(
        handles=expression_handles(shown), loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=7, frameon=False
    )


def timeline_figure(video: VideoPrediction, thumbnails: int = 6):
    """Matplotlib figure of the timeline (see the module): thumbnails of ``thumbnails`` windows along the top (none
    when 0), then the fused probability of each class over the window centres, then the people's rows (when it has
    people records); its last axes is the plot (the people's rows, drawn under it, are the axes before it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .outputs import class_colours

    colours = class_colours(video.class_names)
    centres = window_centres(video)
    fused = np.stack([w.probabilities[FUSED] for w in video.windows])
    picks = thumbnail_picks(video, thumbnails)
    people = timeline_people(video)
    rows = 2 if len(picks) else 1
    heights = [1, 2.4][-rows:]
    size = 4.6 if rows == 2 else 3.4
    if people:
        extra = PERSON_ROW_INCHES * len(people) + 0.5
        heights.append(extra * 0.85)  # ratio units: about the plot's 2.4 to its 2.8 inches
        size += extra
    figure = Figure(figsize=(10, size))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(len(heights), max(len(picks), 1), height_ratios=heights, hspace=0.35)
    for column, index in enumerate(picks):
        axis = figure.add_subplot(grid[0, column])
        window = video.windows[index]
        if window.thumbnail is not None:
            axis.imshow(window.thumbnail)
        axis.set_title(f"{centres[index]:.1f} s: {window.predicted}", fontsize=8, color=colours[window.predicted])
        axis.axis("off")
    x_end = max(video.duration_s, centres.max() + 0.1)
    if people:
        _people_rows(figure.add_subplot(grid[rows, :]), people, x_end)
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
    axis.set_xlim(0, x_end)
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
