"""The window a report explains, and how to re-score changed copies of it.

A video's report explains one window (about 4.4 s; a VGAF clip is one window): the one where the fused
probability of the explained class is highest, found in the same single pass that makes the timeline. The
window keeps what its features were computed from (frames, keypoints, face boxes and scores, audio samples),
and ``score`` re-runs the bundle's modality models and fusion on changed copies of its features, in batches.

Removing frames or audio steps means setting their feature rows to zero: the models mask all-zero steps as
padding, exactly as they ignore the padding of a short clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from gvs.core.privacy import blur_faces
from gvs.predict.predictor import FUSED, Predictor, VideoPrediction, WindowPrediction
from gvs.predict.stream import WindowFeatures


@dataclass
class ExplainedWindow:
    """One window of a video with everything its explanation needs.

    window : the stream's WindowFeatures (``features`` {modality: (steps, ...)}, ``masks``, ``empty``, and
        ``raw``: frames (n_real, H, W, 3), keypoints, face boxes/scores, audio samples)
    prediction : its probabilities per modality and fused
    class_index : the class explained, an index into ``class_names`` (the video's verdict unless the user asked
        for another)
    predictor : the loaded bundle (models, backbones in ``predictor.stream.extractors``)
    blur_faces : every image made for people to see (``display_frames``) has its faces blurred; the models
        always see the real frames
    """

    video: Path
    window: WindowFeatures
    prediction: WindowPrediction
    class_index: int
    predictor: Predictor
    blur_faces: bool = False

    @property
    def class_names(self) -> tuple[str, ...]:
        """The bundle's classes, in the order of every probability vector."""
        return tuple(self.prediction.class_names)

    @property
    def class_name(self) -> str:
        return self.class_names[self.class_index]

    @property
    def modalities(self) -> list[str]:
        return list(self.predictor.bundle.modalities)

    @property
    def scene_weights(self) -> str:
        """The scene backbone's weights as preprocessing records them ("imagenet", "random(seed=0)", a file); ""
        when the bundle has no scene model."""
        extractor = self.predictor.stream.extractors.get("scene")
        return getattr(extractor, "resolved", {}).get("weights", "")

    @property
    def present(self) -> list[str]:
        """Modalities the fused prediction is made from (those with something in this window)."""
        return self.predictor.present(self.window.empty)

    @property
    def frames(self) -> np.ndarray:
        """(n_real, H, W, 3) uint8 RGB sampled frames of the window."""
        return self.window.raw.frames

    @cached_property
    def display_frames(self) -> np.ndarray:
        """The frames to draw on: ``frames``, with every detected face blurred when ``blur_faces`` is on (faces
        found for the faces model, or found now with the bundle's face detector when it has no faces model)."""
        if not self.blur_faces:
            return self.frames
        boxes = self.window.raw.face_boxes
        if not boxes:
            from preprocess.faces import find_faces

            config = self.predictor.stream.config
            found = find_faces(self.frames, config.face_detector, config.min_face, config.face_detect_width)
            boxes = [np.round(f.boxes).astype(int) for f in found]
        return np.stack([blur_faces(frame, b) for frame, b in zip(self.frames, boxes)])

    @property
    def frame_times(self) -> np.ndarray:
        """(n_real,) seconds of each sampled frame from the start of the video."""
        return self.window.raw.times

    def audio_step_times(self) -> np.ndarray:
        """(audio_steps,) seconds of each audio step's centre from the start of the video (NaN without audio)."""
        config = self.predictor.stream.config
        start = self.window.audio_start_s
        if start is None:
            return np.full(config.audio_steps, np.nan)
        return start + config.audio_hop * np.arange(config.audio_steps)

    def tiled(self, n: int) -> dict[str, np.ndarray]:
        """``n`` copies of the window's features: {modality: (n, steps, ...) float32}, ready to be changed."""
        return {m: np.repeat(self.window.features[m][None].astype(np.float32), n, axis=0) for m in self.modalities}

    def score(self, features: dict[str, np.ndarray], batch: int = 32) -> dict[str, np.ndarray]:
        """Probabilities of changed copies of the window: {modality or "fused": (B, C)}, in batches of ``batch``.

        ``features``: {modality: (B, steps, ...)}; a modality left out keeps the window's own features.
        The fused row follows the prediction's rule (the fusion of the modalities that have something here, the
        others masked).
        """
        size = len(next(iter(features.values())))
        parts = []
        for begin in range(0, size, batch):
            end = min(begin + batch, size)
            full = {m: np.asarray(x[begin:end], dtype=np.float32) for m, x in features.items()}
            full |= {
                m: np.repeat(self.window.features[m][None].astype(np.float32), end - begin, axis=0)
                for m in self.modalities
                if m not in features
            }
            parts.append(self.predictor.score(full, self.present))
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def class_probability(self, features: dict[str, np.ndarray], source: str = FUSED) -> np.ndarray:
        """(B,) probability of the explained class from ``source`` ("fused" or a modality) for changed copies."""
        return self.score(features)[source][:, self.class_index]


class KeyWindows:
    """Collects, while a video streams, the window with the highest fused probability of each class.

    Pass ``collect`` as ``Predictor.predict_video(..., on_window=collect)``; at most one window per class (with
    its raw frames) is held, whatever the video's length.
    """

    def __init__(self) -> None:
        self.best: dict[int, tuple[float, WindowFeatures, WindowPrediction]] = {}

    def __call__(self, features: WindowFeatures, prediction: WindowPrediction) -> None:
        for index, probability in enumerate(prediction.probabilities[FUSED]):
            if index not in self.best or probability > self.best[index][0]:
                self.best[index] = (float(probability), features, prediction)

    def window_for(self, class_index: int) -> tuple[WindowFeatures, WindowPrediction]:
        _, features, prediction = self.best[class_index]
        return features, prediction


def explained_window(
    predictor: Predictor, path: str | Path, explain_class: str | None = None, blur_faces: bool = False
) -> tuple[VideoPrediction, ExplainedWindow | None]:
    """Predict the whole video once (the timeline) and keep the window that best shows the explained class.

    ``explain_class``: a class name of the predictor's classes; default the video's verdict. Returns
    (prediction, None) when the video failed (its ``reason`` says why).
    """
    keys = KeyWindows()
    video = predictor.predict_video(path, on_window=keys)
    if video.status == "failed":
        return video, None
    class_index = video.class_names.index(explain_class) if explain_class else int(np.argmax(video.probabilities))
    features, prediction = keys.window_for(class_index)
    return video, ExplainedWindow(Path(path), features, prediction, class_index, predictor, blur_faces)
