"""Section 2: the key moments of the explained window, found by occlusion (leave one section out).

The window's sampled frames are cut into 3-6 sections of similar frames (SSIM between consecutive frames, as the
LIME video explanations do). Each section is removed on its own and the probability of the explained class is
read again, fused and per modality: a section whose removal lowers it supported the class. Removing a section sets
to zero its frames' rows of the frame modalities (scene, pose, faces) and the audio steps centred in its time span;
the models mask all-zero steps as padding. The sections ranked by their fused drop give the deletion curve the
faithfulness check compares with random orders. When no removal moves the fused probability by
movement.MIN_CHANGE, the section says so and ranks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gvs.core.figures import subplots
from gvs.predict.predictor import FUSED
from gvs.predict.stream import FRAME_MODALITIES

from .faithfulness import DeletionCurve, deletion_curve
from .movement import MIN_CHANGE, moved, spread, unmoved_sentence
from .sections import Figure, Section, Table, png_bytes
from .window import ExplainedWindow

SSIM_WIDTH = 160  # consecutive frames are compared in grey, downscaled to this width
THUMBNAIL_WIDTH = 240  # width of each section's picture in the strip
SCORE_BATCH = 32  # keep-masks turned into features at a time (a scene copy of a window is ~15 MB)
UNMOVED_COLOUR = "#95a5a6"  # a drop below movement.MIN_CHANGE: grey, neither for nor against


@dataclass
class Occlusion:
    """What leaving each section out does to the probability of the explained class.

    sections : [start, end) sampled-frame indices of each section, in time order, covering every real frame
    spans : (n_sections, 2) seconds each section covers within the explained window: its first frame's time .. the
        next section's first frame time (the last one: the window's end, its last frame's time)
    base : {"fused" or modality: (n_classes,) probabilities of the unchanged window}
    drops : {"fused" or modality: (n_sections,) base - occluded probability of the explained class when that
        section alone is removed; > 0: the section supported the class}
    ranking : (n_sections,) section indices by fused drop, largest first
    curve : the fused deletion curve of ``ranking`` against random orders
    """

    sections: list[tuple[int, int]]
    spans: np.ndarray
    base: dict[str, np.ndarray]
    drops: dict[str, np.ndarray]
    ranking: np.ndarray
    curve: DeletionCurve

    def moved_by(self, source: str = FUSED) -> float:
        """How far removing any one section moved ``source``'s probability of the class (largest minus smallest of
        the unchanged and the n occluded values)."""
        return spread(np.append(self.drops[source], 0.0))

    def moved(self, source: str = FUSED) -> bool:
        """Whether removing some section moved ``source``'s probability by at least MIN_CHANGE."""
        return self.moved_by(source) >= MIN_CHANGE

    @property
    def ranked(self) -> bool:
        """Whether the sections are ranked: some removal moved the fused probability by at least MIN_CHANGE."""
        return self.moved(FUSED)


def video_sections(
    frames: np.ndarray, min_sections: int = 3, max_sections: int = 6, threshold: float = 0.6
) -> list[tuple[int, int]]:
    """[start, end) index pairs cutting (n, H, W, 3) uint8 frames into sections of similar consecutive frames.

    A section starts after each pair of consecutive frames whose SSIM is below ``threshold``; their number is
    clamped to [min_sections, max_sections] (and to n) by cutting at the lowest-SSIM boundaries only.
    """
    if not len(frames):
        raise ValueError("no frames to cut into sections")
    similarity = consecutive_ssim(frames)
    wanted = min(len(frames), int(np.clip(np.sum(similarity < threshold) + 1, min_sections, max_sections)))
    cuts = np.sort(np.argsort(similarity, kind="stable")[: wanted - 1] + 1)
    edges = [0, *cuts.tolist(), len(frames)]
    return list(zip(edges[:-1], edges[1:]))


def consecutive_ssim(frames: np.ndarray) -> np.ndarray:
    """(n - 1,) SSIM between each of the (n, H, W, 3) uint8 frames and the next, in grey at SSIM_WIDTH px wide."""
    from skimage.metrics import structural_similarity

    grey = [_small_grey(frame) for frame in frames]
    return np.array([structural_similarity(a, b, data_range=255) for a, b in zip(grey[:-1], grey[1:])])


def _small_grey(frame: np.ndarray) -> np.ndarray:
    """(H', SSIM_WIDTH) uint8 grey copy of an (H, W, 3) RGB frame, aspect kept (at least 7 rows for SSIM)."""
    import cv2

    height = max(7, round(frame.shape[0] * SSIM_WIDTH / frame.shape[1]))
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (SSIM_WIDTH, height), interpolation=cv2.INTER_AREA)


def section_spans(window: ExplainedWindow, sections: list[tuple[int, int]]) -> np.ndarray:
    """(n_sections, 2) start and end seconds of each section (see ``Occlusion.spans``), inside the explained window
    (``window.prediction`` start_s .. end_s, its first and last frames' times). NaN where the video gives no time."""
    times = window.frame_times
    starts = times[[start for start, _ in sections]]
    ends = np.append(starts[1:], window.prediction.end_s)
    return np.clip(np.stack([starts, ends], axis=1), window.prediction.start_s, window.prediction.end_s)


def section_rows(window: ExplainedWindow, sections: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """{modality: (n_sections, steps) bool}, the feature rows each section owns.

    Frame modalities: the rows of its frames. Audio: the steps whose centre (audio steps are centred on their
    time) lies in the section's span (the last span includes its end), so the section covers most of each such
    step when it lasts at least one hop; steps centred past the window's last frame belong to no section, and
    none do without audio (NaN times).
    """
    rows = {}
    for modality in window.modalities:
        owned = np.zeros((len(sections), len(window.window.features[modality])), dtype=bool)
        if modality in FRAME_MODALITIES:
            for index, (start, end) in enumerate(sections):
                owned[index, start:end] = True
        elif modality == "audio":
            centres = window.audio_step_times()[None]
            spans = section_spans(window, sections)
            owned = (centres >= spans[:, :1]) & (centres < spans[:, 1:])
            owned[-1] |= centres[0] == spans[-1, 1]
        rows[modality] = owned
    return rows


def removed(window: ExplainedWindow, keep: np.ndarray, sections: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Copies of the window's features with sections removed: {modality: (B, steps, ...) float32}.

    ``keep``: (B, n_sections) bool; in copy b the rows owned by every section whose keep[b] is False are zero.
    """
    keep = np.asarray(keep, dtype=bool)
    features = window.tiled(len(keep))
    for modality, owned in section_rows(window, sections).items():
        gone = (~keep).astype(np.int32) @ owned.astype(np.int32) > 0  # (B, steps)
        features[modality][gone] = 0.0
    return features


def _scores(window: ExplainedWindow, keep: np.ndarray, sections: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """{modality or "fused": (B, n_classes)} probabilities with the sections of each (B, n_sections) keep-mask removed.

    Repeated masks are scored once; the features are built SCORE_BATCH masks at a time (``window.score``'s own
    batch), so memory stays bounded while the models see the same batches as one call would give them.
    """
    unique, inverse = np.unique(np.asarray(keep, dtype=bool), axis=0, return_inverse=True)
    parts = [
        window.score(removed(window, unique[begin : begin + SCORE_BATCH], sections), SCORE_BATCH)
        for begin in range(0, len(unique), SCORE_BATCH)
    ]
    return {name: np.concatenate([p[name] for p in parts])[inverse.reshape(-1)] for name in parts[0]}


def occlusion(
    window: ExplainedWindow, sections: list[tuple[int, int]] | None = None, orders: int = 10, seed: int = 0
) -> Occlusion:
    """Leave each section out (default sections: ``video_sections`` of the window's frames) and read the drop in
    the explained class's probability, fused and per modality; then the fused deletion curve of the ranking
    against ``orders`` random orders (``seed``)."""
    sections = sections or video_sections(window.frames)
    n, c = len(sections), window.class_index
    keep = np.vstack([np.ones((1, n), dtype=bool), ~np.eye(n, dtype=bool)])  # row 0: unchanged; 1 + i: i removed
    scores = _scores(window, keep, sections)
    drops = {name: p[0, c] - p[1:, c] for name, p in scores.items()}
    ranking = np.argsort(-drops[FUSED], kind="stable")
    order_moved = moved(np.append(drops[FUSED], 0.0))  # else the ranking is arbitrary: Occlusion.ranked is False
    curve = deletion_curve(
        lambda masks: _scores(window, masks, sections)[FUSED][:, c], ranking, n, orders, seed, order_moved
    )
    base = {name: p[0] for name, p in scores.items()}
    return Occlusion(sections, section_spans(window, sections), base, drops, ranking, curve)


def section(result: Occlusion, window: ExplainedWindow) -> Section:
    """Section 2, "Key moments": a picture of each section with its fused drop, the drops per modality, and a table
    ranking the sections; when no removal moved the fused probability, a sentence says so and nothing is ranked."""
    sources = [FUSED, *window.modalities]
    spans = [_span_text(start, end) for start, end in result.spans]
    rank = np.empty(len(result.sections), dtype=int)
    rank[result.ranking] = np.arange(1, len(rank) + 1)
    rows = [
        [
            str(i + 1),
            spans[i],
            f"{start + 1}-{end}" if end > start + 1 else str(end),
            *[f"{result.drops[s][i]:+.3f}" for s in sources],
            *([str(rank[i])] if result.ranked else []),
        ]
        for i, (start, end) in enumerate(result.sections)
    ]
    not_fused = [m for m in window.modalities if m not in window.present]
    columns = [
        "section",
        "time (s)",
        "frames",
        *[f"{s} drop (not fused)" if s in not_fused else f"{s} drop" for s in sources],
        *(["rank"] if result.ranked else []),
    ]
    figures = [
        Figure(
            "sections-strip",
            png_bytes(_strip_figure(result, window, spans, rank if result.ranked else None)),
            "Each section and its drop",
        )
    ]
    if any(result.moved(s) for s in sources):
        figures.append(Figure("sections-drops", png_bytes(_drops_figure(result, window, spans)), "Drops per modality"))
    return Section(
        "sections",
        "Key moments",
        _text(result, window, spans, not_fused),
        figures=figures,
        tables=[
            Table(
                columns,
                rows,
                f"Drop in p({window.class_name}) when each section alone is removed (frames numbered from 1)",
            )
        ],
        caveat="Occlusion shows which moments the model uses, not what is in the video: a moment with a drop near "
        "zero may still show the class to a person, and the effect of a section can depend on the others. Removing a "
        "section replaces it by padding, which the models saw in training only at the end of short clips, so a gap "
        "in the middle of the window is an input they never met.",
        arrays={
            **{f"drops_{s}": result.drops[s] for s in sources},
            "sections": np.array(result.sections, dtype=int).reshape(-1, 2),
            "section_times": result.spans,
            "deletion_ranked": result.curve.ranked,
            "deletion_random": result.curve.random,
        },
    )


def _span_text(start: float, end: float) -> str:
    """'1.2-2.4' seconds; 'at 4.4' for a section of the window's last instant; '?' without times."""
    if not np.isfinite(start):
        return "?"
    return f"{start:.1f}-{end:.1f}" if end > start else f"at {start:.1f}"


def _text(result: Occlusion, window: ExplainedWindow, spans: list[str], not_fused: list[str]) -> str:
    """The section's explanation, naming the moment whose removal lowers the fused probability most."""
    name, top = window.class_name, int(result.ranking[0])
    before = result.base[FUSED][window.class_index]
    text = (
        f"The window's {len(window.frames)} sampled frames are cut into {len(result.sections)} sections of "
        "similar-looking frames (a new section where consecutive frames differ most). Each section is removed on its "
        "own, its frames and the audio under them replaced by the padding the models ignore, and the probability of "
        f"{name} is read again. A bar above zero means the model leaned on that moment for {name}: without it the "
        "probability drops. A bar below zero means the moment argued against it.\n\n"
    )
    if not result.ranked:
        text += unmoved_sentence(
            f"Removing any one of the {len(result.sections)} sections",
            f"the fused p({name}) from {before:.2f}",
            result.moved_by(FUSED),
        )
        moved = [m for m in window.modalities if result.moved(m)]
        if moved:
            text += (
                f" The figure of the drops per modality shows what moved the models' own p({name}): {', '.join(moved)}."
            )
    else:
        text += (
            f"Removing section {top + 1} ({spans[top]} s) lowers the fused p({name}) most, from {before:.2f} to "
            f"{before - result.drops[FUSED][top]:.2f}. The second figure splits the drops by modality: a modality "
            "with bars near zero everywhere does not depend on any one moment."
        )
    if not_fused:
        text += f" ({', '.join(not_fused)}: nothing in this window, not part of the fused probability.)"
    return text


def _strip_figure(result: Occlusion, window: ExplainedWindow, spans: list[str], rank: np.ndarray | None):
    """Matplotlib figure: the middle frame of each section (faces blurred when asked, its rank in the title unless
    ``rank`` is None), its fused drop under it (grey below MIN_CHANGE either way)."""
    import cv2

    frames, drops, n = window.display_frames, result.drops[FUSED], len(result.sections)
    limit = 1.15 * max(float(np.abs(drops).max()), 0.01)
    figure, axes = subplots(
        2, n, figsize=(2.3 * n, 3.3), sharey="row", squeeze=False, gridspec_kw={"height_ratios": [3, 1.5]}
    )
    for i, (start, end) in enumerate(result.sections):
        frame = frames[(start + end - 1) // 2]
        height = round(frame.shape[0] * THUMBNAIL_WIDTH / frame.shape[1])
        axes[0, i].imshow(cv2.resize(frame, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA))
        ranked = "" if rank is None else f" (rank {rank[i]})"
        axes[0, i].set_title(f"{i + 1}: {spans[i]} s{ranked}", fontsize=9)
        axes[0, i].axis("off")
        axes[1, i].bar([0], [drops[i]], width=0.6, color=_drop_colour(drops[i]))
        axes[1, i].axhline(0, color="black", linewidth=0.6)
        axes[1, i].set(xlim=(-1, 1), ylim=(-limit, limit), xticks=[], xlabel=f"{drops[i]:+.3f}")
    axes[1, 0].set_ylabel(f"drop in\np({window.class_name})", fontsize=8)
    figure.tight_layout()
    return figure


def _drop_colour(drop: float) -> str:
    """Red for a drop (the moment supported the class), blue for a rise, grey for a change below MIN_CHANGE."""
    if abs(drop) < MIN_CHANGE:
        return UNMOVED_COLOUR
    return "#c0392b" if drop > 0 else "#2980b9"


def _drops_figure(result: Occlusion, window: ExplainedWindow, spans: list[str]):
    """Matplotlib figure: grouped bars, the drop of each section for the fused probability and each modality's."""
    sources = [FUSED, *window.modalities]
    x, width = np.arange(len(result.sections)), 0.8 / len(sources)
    figure, axis = subplots(figsize=(max(5.0, 1.3 * len(x)), 3.2))
    for j, source in enumerate(sources):
        colour = "#34495e" if source == FUSED else f"C{j}"
        axis.bar(x + (j - (len(sources) - 1) / 2) * width, result.drops[source], width, label=source, color=colour)
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_xticks(x, [f"{i + 1}: {span} s" for i, span in enumerate(spans)], fontsize=8)
    axis.set_ylabel(f"drop in p({window.class_name})")
    axis.legend(fontsize=8, ncol=len(sources))
    figure.tight_layout()
    return figure
