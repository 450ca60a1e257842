"""Section 1: the verdict, each modality's and the fused probabilities, the timeline, how familiar the video is to
the models, and what the bundle says of itself (the demo banner)."""

from __future__ import annotations

import numpy as np

from gvs.predict.familiarity import familiarity_text
from gvs.predict.outputs import timeline_png
from gvs.predict.predictor import FUSED, VideoPrediction

from .sections import Figure, Section, Table
from .window import ExplainedWindow


def verdict_section(video: VideoPrediction, window: ExplainedWindow) -> Section:
    """The video's verdict (pooled over its windows), the explained window's probabilities per modality and
    fused, the timeline of ``gvs predict`` (without thumbnails when faces are to be blurred), the video's
    familiarity, and the bundle's notes (the demo banner) first."""
    explained = window.prediction
    rows = [
        ["video (pooled over windows)", *[f"{p:.2f}" for p in video.probabilities], video.verdict],
        *[
            [
                f"{name} (explained window)",
                *[f"{p:.2f}" for p in explained.probabilities[name]],
                window.class_names[int(np.argmax(explained.probabilities[name]))],
            ]
            for name in [FUSED, *window.modalities]
        ],
    ]
    notes = window.predictor.bundle.notes()
    text = "".join(f"{note}\n\n" for note in notes) + (
        f"The video is {video.verdict}: the mean (or max, with --pool max) of the fused probabilities of its "
        f"{len(video.windows)} window(s). The rest of this page explains why the model says {window.class_name} "
        f"in the window from {explained.start_s:.1f} s to {explained.end_s:.1f} s, the one where the fused "
        f"probability of {window.class_name} is highest ({explained.probabilities[FUSED][window.class_index]:.2f}).\n\n"
        "The timeline shows the fused probability of each class for every window (window centres on the x axis)."
    )
    if len(window.present) < len(window.modalities):
        missing = ", ".join(f"{m}: {why}" for m, why in window.window.empty.items())
        text += f"\n\nIn the explained window the fusion fused only {', '.join(window.present)} ({missing})."
    if video.familiarity is not None:
        text += "\n\n" + familiarity_text(video.familiarity, video.unfamiliar)
    caveat = ""
    if video.flags:
        caveat = "Notes on this video: " + "; ".join(video.flags) + "."
    return Section(
        "verdict",
        "Verdict",
        text,
        figures=[Figure("timeline", timeline_png(video, 0 if window.blur_faces else 6), "Fused probability over time")],
        tables=[Table(["", *window.class_names, "says"], rows, "Probabilities per class")],
        caveat=caveat,
        arrays={
            "video_probabilities": video.probabilities,
            **{f"window_{name}": p for name, p in explained.probabilities.items()},
        },
    )
