"""Hand-built stand-ins for a loaded bundle, so report tests know exactly what each model depends on.

``KnownPredictor`` has the four things an ExplainedWindow uses: ``bundle`` (modalities, ``model(m)``),
``stream`` (``config``, ``extractors``), ``class_names`` and ``present`` / ``score``. Its modality models are small Keras models
(so gradient methods work) built by the tests; its fusion is a fixed weighted mean of the modalities'
probabilities (weights known to the test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from gvs.core.vocabulary import CLASS_NAMES
from gvs.predict.predictor import FUSED, WindowPrediction
from gvs.predict.stream import WindowFeatures, WindowRaw
from gvs.report.window import ExplainedWindow
from preprocess.config import PreprocessConfig


@dataclass
class KnownBundle:
    models: dict[str, keras.Model]
    weights: dict[str, float]

    @property
    def modalities(self) -> list[str]:
        return list(self.models)

    def model(self, modality: str) -> keras.Model:
        return self.models[modality]

    def summary(self) -> dict:
        """What a report's header says of the model (a Bundle's summary, as far as reports read it)."""
        return {"fusion": "known weighted mean", "path": "tests/report_fakes.py"}

    def notes(self) -> list[str]:
        """What a Bundle's outputs say of it (the demo banner, no familiarity data): nothing for these models."""
        return []


@dataclass
class KnownStream:
    config: PreprocessConfig = field(default_factory=PreprocessConfig)
    extractors: dict = field(default_factory=dict)


class KnownPredictor:
    """``models``: {modality: keras.Model (B, steps, ...) -> (B, C) probabilities}, C = len(class_names) (VGAF's
    three by default); fused = weighted mean."""

    def __init__(
        self,
        models: dict[str, keras.Model],
        weights: dict[str, float] | None = None,
        stream=None,
        class_names: tuple[str, ...] = CLASS_NAMES,
    ):
        self.class_names = tuple(class_names)
        weights = weights or {m: 1.0 for m in models}
        total = sum(weights.values())
        self.bundle = KnownBundle(models, {m: w / total for m, w in weights.items()})
        self.stream = stream or KnownStream()

    def present(self, empty: dict[str, str]) -> list[str]:
        return [m for m in self.bundle.modalities if m not in empty] or self.bundle.modalities

    def score(self, features: dict[str, np.ndarray], present: list[str]) -> dict[str, np.ndarray]:
        out = {m: np.asarray(model.predict_on_batch(features[m])) for m, model in self.bundle.models.items()}
        fused = sum(self.bundle.weights[m] * out[m] for m in present) / sum(self.bundle.weights[m] for m in present)
        return out | {FUSED: fused}


def probabilities_from(logit_of_class_0, n_classes: int = 3) -> keras.layers.Layer:
    """A layer turning (B, 1) evidence e into probabilities over ``n_classes`` >= 2 classes, softmax([e, 0, ..., 0,
    -e]) (softmax([e, 0, -e]) for three): e > 0 favours class 0, e < 0 the last class."""
    return keras.layers.Lambda(
        lambda e: keras.ops.softmax(
            keras.ops.concatenate([e, *[keras.ops.zeros_like(e)] * (n_classes - 2), -e], axis=-1)
        ),
        name="probabilities",
    )(logit_of_class_0)


def known_window(
    predictor: KnownPredictor,
    features: dict[str, np.ndarray],
    frames: np.ndarray,
    class_index: int | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    keypoints: list[np.ndarray] | None = None,
    face_boxes: list[np.ndarray] | None = None,
    face_scores: list[np.ndarray] | None = None,
    frame_step_s: float = 0.4,
) -> ExplainedWindow:
    """An ExplainedWindow over ``frames`` (n, H, W, 3) uint8 with the given model inputs (one window, no batch
    axis); the explained class defaults to the fused prediction's."""
    n = len(frames)
    times = np.arange(n) * frame_step_s
    raw = WindowRaw(
        frames,
        times,
        keypoints if keypoints is not None else [np.zeros((0, 18, 3), np.float32)] * n,
        face_boxes if face_boxes is not None else [np.zeros((0, 4), np.int32)] * n,
        face_scores if face_scores is not None else [np.zeros((0, 7), np.float32)] * n,
        audio,
        sample_rate if audio is not None else 0,
        0.0,
    )
    masks = {m: np.ones(len(x), dtype=bool) for m, x in features.items()}
    window = WindowFeatures(
        0,
        0,
        0.0,
        float(times[-1]),
        features,
        masks,
        {},
        [],
        None,
        list(range(n)),
        0.0 if audio is not None else None,
        raw,
    )
    scored = predictor.score({m: x[None] for m, x in features.items()}, predictor.bundle.modalities)
    probabilities = {name: p[0] for name, p in scored.items()}
    prediction = WindowPrediction(
        0, 0.0, float(times[-1]), probabilities, predictor.bundle.modalities, class_names=predictor.class_names
    )
    chosen = int(np.argmax(probabilities[FUSED])) if class_index is None else class_index
    assert 0 <= chosen < len(predictor.class_names)
    return ExplainedWindow(Path("known.mp4"), window, prediction, chosen, predictor)
