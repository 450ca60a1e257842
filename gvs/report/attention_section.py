"""Section "attention" (bundles with the attention fusion): which moments of the other modalities each modality's
steps attended to in the explained window, as heat maps over the window's time grid."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from .sections import Figure, Section, png_bytes
from .window import ExplainedWindow


def attention_weights(window: ExplainedWindow) -> dict[str, np.ndarray] | None:
    """{modality: (T, K)} attention weights of the fusion on the window (None when the fusion has no attention)."""
    predictor = window.predictor
    if not hasattr(predictor.fusion, "attention"):
        return None
    modalities = predictor.bundle.modalities
    features = {m: window.window.features[m][None].astype(np.float32) for m in modalities}
    presence = np.array([[m in window.present for m in modalities]])
    weights = predictor.fusion.attention(predictor.fusion_input(predictor.outputs(features)), presence)
    return {m: w[0] for m, w in weights.items()}


def section(weights: dict[str, np.ndarray], window: ExplainedWindow) -> Section:
    """Section "attention": one heat map per modality, rows its steps, columns the other modalities' steps."""
    from ensemble.report import attention_figure
    from modalities.sequence import TimeGrid

    modalities = sorted(weights)
    grid = TimeGrid.from_params(asdict(window.predictor.stream.config))
    start = window.prediction.start_s
    figure = attention_figure(weights, modalities, f"Attention in the window at {start:.1f} s", start + grid.seconds)
    peaks = []
    for modality in modalities:
        keys = [m for m in modalities if m != modality] or [modality]
        step, column = np.unravel_index(np.argmax(weights[modality]), weights[modality].shape)
        looked = keys[column // grid.n_frames]
        peaks.append(
            f"{modality} at {start + grid.seconds[step]:.1f} s looked most at {looked} at "
            f"{start + grid.seconds[column % grid.n_frames]:.1f} s ({weights[modality][step, column]:.2f})"
        )
    return Section(
        "attention",
        "Which moments the fusion connected",
        "The attention fusion lets each modality's moments look at the moments of the other modalities. Each heat "
        "map has one row per step of a modality (0.4 s apart) and one column per step of the modalities it "
        "looked at; bright cells are where it looked. Strongest: " + "; ".join(peaks) + ".",
        figures=[Figure("attention", png_bytes(figure), "Attention weights, averaged over the fusion's heads")],
        caveat="Attention weights show where the fusion looked, not why its verdict is what it is: a moment can be "
        "looked at and then ignored. The sections above (occlusion, Shapley shares) measure effects.",
        arrays={f"attention_{m}": w for m, w in weights.items()},
    )
