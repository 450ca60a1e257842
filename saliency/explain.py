"""Explain trained models on clips: read the feature cache, RUNS/ and the raw media, write figures.

Figures land in ``OUT/<modality>/``: ``<split>_<clip>.png`` for one clip, ``<pick>-<rank>-<split>_<clip>.png``
for the clips picked from a split (pick = confident or wrong), and ``audio/projection-<split>.png``.
Fusion figures go to ``OUT/fusion/`` and explain the fused Keras model of a fusion in RUNS/fusion/.
Features, clips, models, predictions and fusions are read through the workspace (gvs.core.workspace).

Class names are the models' own (RUNS/<modality>/config.json "classes"; VGAF's three for runs written before),
and a predictions row's ``p_<class>`` columns; a clip's label is translated by name from the cache's classes into
the models' (a class the models do not know makes the clip unlabelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from gvs.core.errors import InputError, RunError
from gvs.core.io import read_json
from gvs.core.predictions import Predictions
from gvs.core.vocabulary import (
    AUDIO_HOP,
    AUDIO_SECONDS,
    CLASS_NAMES,
    FRAME_STEP,
    MODALITIES,
    N_FRAMES,
    canonical_modality,
)
from gvs.core.workspace import CacheDir, ClipRecord, RunsDir
from modalities import architectures  # noqa: F401  registers the custom layers the saved models hold
from preprocess.decode import ClipDecodeError, read_audio, read_frames

from . import figures, maps

if TYPE_CHECKING:
    from ensemble.fusions import Fusion

SAMPLE_RATE = 16000
METHODS: tuple[str, ...] = ("smoothgrad", "vanilla")
FUSION = "fusion"  # the name that asks for the fused model among the modalities to explain


class ExplainError(RunError):
    """Something an explanation needs is missing; the message names it and the command that makes it."""


@dataclass
class Clip:
    """One clip's cached arrays of one modality, its label (an index into the model's classes, -1 unknown), the
    video path and the preprocessing parameters of the features."""

    key: str
    label: int
    path: Path | None
    arrays: dict[str, np.ndarray]
    params: dict

    @property
    def file_stem(self) -> str:
        return self.key.replace("/", "_")

    def param(self, name: str, default):
        """A preprocessing parameter of the clip's features (its store's ``params``).

        Parameters
        ----------
        name : str
            A PreprocessConfig field.
        default : object
            Returned when the store does not record it.

        Returns
        -------
        value : object
        """
        return self.params.get("params", {}).get(name, default)


def pick_clips(predictions: Predictions, split: str, top: int) -> list[tuple[str, str]]:
    """(key, pick) for the ``top`` most confident correct clips and the ``top`` most confidently wrong ones.

    ``split`` matches a clip's split (Train, Val, Test) or part (train, select, report, test); correct means the
    most probable class is the label. Unlabelled clips have no wrong; their most confident predictions are picked
    instead.

    Parameters
    ----------
    predictions : Predictions
    split : str
    top : int
        Clips per kind.

    Returns
    -------
    picks : list of tuple of (str, str)
    """
    chosen = predictions.of_split(split)
    if not len(chosen):
        known = sorted(set(predictions.splits.tolist()) | set(predictions.parts.tolist()) - {""})
        raise ExplainError(f"no clips of split {split!r} in the predictions; choose from {', '.join(known)}")
    confidence = chosen.probabilities.max(axis=1)
    by_confidence = chosen.take(sorted(range(len(chosen)), key=lambda i: -confidence[i]))
    keys, labels = by_confidence.keys.tolist(), by_confidence.labels
    labelled = np.flatnonzero(labels >= 0)
    if not len(labelled):
        return [(key, "confident") for key in keys[:top]]
    right = by_confidence.probabilities.argmax(axis=1) == labels
    correct = [keys[i] for i in labelled if right[i]]
    wrong = [keys[i] for i in labelled if not right[i]]
    return [(key, "confident") for key in correct[:top]] + [(key, "wrong") for key in wrong[:top]]


def read_clip_frames(clip: Clip) -> np.ndarray | None:
    """(T, height, width, 3) RGB frames kept as preprocessing kept them; None when the video is not available.

    Parameters
    ----------
    clip : Clip

    Returns
    -------
    frames : ndarray of shape (T, height, width, 3), uint8 RGB, or None
    """
    if clip.path is None:
        return None
    try:
        frames, _, _ = read_frames(clip.path, clip.param("frame_step", FRAME_STEP), clip.param("n_frames", N_FRAMES))
    except ClipDecodeError:
        return None
    return frames


def default_fusion(runs: RunsDir) -> str | None:
    """The fusion to explain when none is named: among RUNS/fusion/'s fusions with a fused Keras model (fc, vae),
    an fc one before others, then the one with the most modalities; None when there is none.

    Parameters
    ----------
    runs : RunsDir

    Returns
    -------
    name : str or None
    """
    fitted = [name for name in runs.fusion_names() if runs.fusion(name).model.is_file()]
    if not fitted:
        return None

    def rank(name: str) -> tuple[bool, int]:
        record = read_json(runs.fusion(name).fusion)
        return record.get("kind") == "fc", len(record.get("modalities", []))

    return max(fitted, key=rank)


class Explainer:
    """Loads each model once and writes explanation figures for clips, splits and fusions."""

    def __init__(
        self, cache: str | Path, runs: str | Path, out: str | Path, smooth_samples: int = 16, method: str = "smoothgrad"
    ) -> None:
        if method not in METHODS:
            raise InputError(f"unknown saliency method {method!r}; use {' or '.join(METHODS)}")
        self.cache = CacheDir(cache)
        self.runs = RunsDir(runs)
        self.out = Path(out)
        self.smooth_samples = smooth_samples
        self.method = method
        self._models: dict[str, keras.Model] = {}
        self._fusions: dict[str, Fusion] = {}
        self._clips: dict[str, ClipRecord] | None = None
        self._classes: dict[str, tuple[str, ...]] = {}

    def class_names(self, modality: str) -> tuple[str, ...]:
        """The classes the model of ``modality`` predicts, in its output order: its config.json "classes" (VGAF's
        three for runs without, as before class sets were recorded).

        Parameters
        ----------
        modality : str

        Returns
        -------
        class_names : tuple of str
        """
        if modality not in self._classes:
            run = self.runs.modality(modality)
            found = run.read_config().get("classes", CLASS_NAMES) if run.config.is_file() else CLASS_NAMES
            self._classes[modality] = tuple(found)
        return self._classes[modality]

    def model_label(self, label: int | None, class_names: tuple[str, ...]) -> int:
        """A cached label (an index into the cache's classes, None or -1 unknown) as an index into
        ``class_names`` (a model's), by name ignoring case; -1 when unknown or not one of them.

        Parameters
        ----------
        label : int or None
        class_names : tuple of str

        Returns
        -------
        index : int
        """
        if label is None or label < 0:
            return -1
        name = self.cache.class_names()[label].lower()
        return next((i for i, c in enumerate(class_names) if c.lower() == name), -1)

    def model(self, modality: str) -> keras.Model:
        """The trained model RUNS/<modality>/, loaded once.

        Parameters
        ----------
        modality : str

        Returns
        -------
        model : keras.Model
        """
        if modality not in self._models:
            self._models[modality] = self.runs.load_model(modality)
        return self._models[modality]

    def read_clip(self, modality: str, key: str) -> Clip:
        """One clip's arrays (features, mask and raw arrays) of the cache's current ``modality`` features, its
        label as an index into the classes of the ``modality`` model.

        Parameters
        ----------
        modality : str
        key : str
            The clip's cache key.

        Returns
        -------
        clip : Clip
        """
        store = self.cache.current(modality)
        arrays, _ = store.read(key)
        if self._clips is None:
            self._clips = {record.key: record for record in self.cache.clips()}
        record = self._clips.get(key)
        label = self.model_label(record.label if record is not None else None, self.class_names(modality))
        path = record.path if record is not None and record.path.is_file() else None
        return Clip(key, label, path, arrays, store.params())

    def predictions(self, modality: str) -> Predictions:
        """The predictions of ``modality``'s model on every clip of this cache, predicted now, so picks come from
        the clips being explained even when the models were trained on another dataset whose clip keys may look
        the same (labels in the model's classes; parts from RUNS' partition, "" for clips it does not hold).

        Parameters
        ----------
        modality : str

        Returns
        -------
        predictions : Predictions
        """
        from modalities.data import open_features

        features = open_features(self.cache.root, modality)
        parts: dict[str, str] = {}
        if self.runs.partition_path.is_file():
            from modalities.partition import load_partition

            parts = load_partition(self.runs.root).part_by_key()
        model = self.model(modality)
        class_names = self.class_names(modality)
        batches = [
            np.asarray(model(features.load(np.arange(start, min(start + 32, len(features.keys)))), training=False))
            for start in range(0, len(features.keys), 32)
        ]
        return Predictions(
            features.keys,
            [self.model_label(int(label), class_names) for label in features.labels],
            np.concatenate(batches) if batches else np.zeros((0, len(class_names))),
            [parts.get(key, "") for key in features.keys],
            class_names,
            splits=features.splits,
        )

    def require_training_cache(self) -> None:
        """Fusion picks read the fusion's predictions, which only describe the cache it was trained on."""
        folders = [self.runs.modality(m) for m in MODALITIES]
        trained_on = next((f.read_config().get("cache") for f in folders if f.config.is_file()), None)
        if trained_on and Path(trained_on).resolve() != self.cache.root.resolve():
            raise ExplainError(
                f"fusion picks for a split need the cache the fusion was trained on ({trained_on}); "
                f"got {self.cache.root}. Use `gvs explain --clip KEY` for clips of another cache."
            )

    def _method_name(self, modality: str) -> str:
        """What a figure of ``modality`` shows, for its title."""
        if modality == "scene":
            return "vanilla saliency, SmoothGrad and Grad-CAM of log p(predicted), by tf-keras-vis"
        if self.method == "vanilla":
            return "vanilla saliency |d log p(predicted) / d input|, by tf-keras-vis"
        return f"SmoothGrad of log p(predicted), {self.smooth_samples} noisy copies, by tf-keras-vis"

    def _saliency(self, model: keras.Model, x: np.ndarray, class_index: int) -> np.ndarray:
        if self.method == "vanilla":
            return maps.vanilla_saliency(model, x, class_index)
        return maps.smoothgrad(model, x, class_index, samples=self.smooth_samples)

    def explain_clip(self, modality: str, key: str, name: str | None = None) -> Path:
        """Write the figure of one modality for one clip; returns its path.

        Parameters
        ----------
        modality : str
        key : str
            The clip's cache key.
        name : str or None
            The file's stem; None for the key's.

        Returns
        -------
        path : Path
            The PNG written.
        """
        clip = self.read_clip(modality, key)
        model = self.model(modality)
        x = clip.arrays["features"].astype(np.float32)
        probabilities = maps.predict_probabilities(model, x)
        predicted = int(np.argmax(probabilities))
        title = figures.clip_title(modality, key, clip.label, probabilities, self.class_names(modality))
        title = f"{title}\n{self._method_name(modality)}"
        path = self.out / modality / f"{name or clip.file_stem}.png"
        draw = {"scene": self._scene, "pose": self._pose, "audio": self._audio, "faces": self._faces}[modality]
        return draw(model, clip, x, predicted, title, path)

    def _scene(self, model, clip, x, predicted, title, path) -> Path:
        real = int(maps.real_steps(x).sum()) or len(x)
        frame_maps = {
            "vanilla": maps.vanilla_saliency(model, x, predicted, keepdims=False)[:real],
            f"smoothgrad ({self.smooth_samples})": maps.smoothgrad(
                model, x, predicted, self.smooth_samples, keepdims=False
            )[:real],
        }
        heads = [layer.name for layer in model.layers if isinstance(layer, keras.layers.ConvLSTM2D)]
        if heads:  # one (h, w) map per clip: the heads return their last state
            frame_maps["Grad-CAM (clip)"] = np.sum([maps.gradcam(model, x, head, predicted) for head in heads], axis=0)
        frames = read_clip_frames(clip)
        return figures.scene_figure(frames[:real] if frames is not None else None, frame_maps, title, path)

    def _pose(self, model, clip, x, predicted, title, path) -> Path:
        keypoint_saliency = maps.pose_keypoint_saliency(self._saliency(model, x, predicted))
        real = int(clip.arrays["mask"].sum()) or len(x)
        people = figures.people_by_frame(clip.arrays["keypoints"], clip.arrays["people_per_frame"])
        frames = read_clip_frames(clip)
        return figures.pose_figure(frames, people[:real], keypoint_saliency[:real], title, path)

    def _audio(self, model, clip, x, predicted, title, path) -> Path:
        steps = maps.step_saliency(self._saliency(model, x, predicted))
        waveform = None
        if clip.path is not None:
            waveform = read_audio(clip.path, SAMPLE_RATE, clip.param("audio_seconds", AUDIO_SECONDS))
        return figures.audio_figure(waveform, SAMPLE_RATE, steps, clip.param("audio_hop", AUDIO_HOP), title, path)

    def _faces(self, model, clip, x, predicted, title, path) -> Path:
        saliency = self._saliency(model, x, predicted)
        faces_per_frame = clip.arrays.get("faces_per_frame", x[:, -1])
        return figures.faces_figure(
            maps.step_saliency(saliency), maps.column_saliency(saliency), faces_per_frame, title, path
        )

    def audio_projection(self, split: str, method: str = "pca") -> Path:
        """2-D projection of the audio hidden layer over the clips of ``split``: correct vs wrong, confidences.

        Parameters
        ----------
        split : str
            A split or part name (see pick_clips).
        method : str
            "pca" or "tsne".

        Returns
        -------
        path : Path
            The PNG written.
        """
        chosen = self.predictions("audio").of_split(split)
        if not len(chosen):
            raise ExplainError(f"no audio predictions for split {split!r}")
        clips = [self.read_clip("audio", key) for key in chosen.keys.tolist()]
        x = np.stack([c.arrays["features"] for c in clips])
        hidden, probabilities = maps.hidden_and_probabilities(self.model("audio"), x)
        labels = np.array([c.label for c in clips])
        points = figures.project_2d(hidden, method)
        known = labels >= 0
        accuracy = (
            f"accuracy {(probabilities.argmax(1)[known] == labels[known]).mean():.2f} on {known.sum()} labelled"
            if known.any()
            else "no labels"
        )
        title = (
            f"audio hidden layer ({method.upper()}) · {split} · {len(chosen)} clips · {accuracy}"
            f"\nlabels: predicted (true) confidence"
        )
        return figures.projection_figure(
            points,
            labels,
            probabilities,
            [c.key for c in clips],
            title,
            self.out / "audio" / f"projection-{split}.png",
            self.class_names("audio"),
        )

    def fusion(self, name: str) -> Fusion:
        """The fitted fusion RUNS/fusion/<name>/ with its fused Keras model (ensemble.fusions), loaded once.

        Parameters
        ----------
        name : str
            A fusion run name (e.g. fc-audio+faces+pose+scene).

        Returns
        -------
        fusion : Fusion
        """
        if name not in self._fusions:
            from ensemble.fusions import load_fusion

            folder = self.runs.fusion(name)
            if not folder.fusion.is_file():
                known = ", ".join(self.runs.fusion_names()) or "none"
                raise ExplainError(
                    f"{folder.folder}: no fitted fusion {name!r} (fitted: {known}); fit one with "
                    f"`gvs fuse --fusion fc --runs {self.runs.root}`"
                )
            fusion = load_fusion(folder)
            if fusion.reads_sequences:
                raise ExplainError(
                    f"{folder.folder}: the {fusion.kind} fusion reads per-step outputs, and these figures attribute "
                    f"hidden vectors (fc and vae fusions); `gvs report` pages of an attention bundle show where its "
                    f"modalities looked"
                )
            if getattr(fusion, "model_", None) is None:
                raise ExplainError(
                    f"{folder.folder}: the {fusion.kind} fusion has no fused Keras model to explain; "
                    f"only fc and vae fusions have one (`gvs fuse --fusion fc --runs {self.runs.root}`)"
                )
            self._fusions[name] = fusion
        return self._fusions[name]

    def explain_fusion(self, fusion: str, key: str, name: str | None = None, steps: int = 32) -> Path:
        """Share of integrated-gradients attribution per modality for the fused model of RUNS/fusion/<fusion>/.

        The baseline is the training mean of each hidden vector (the fusion's scaler).

        Parameters
        ----------
        fusion : str
            A fusion run name.
        key : str
            The clip's cache key.
        name : str or None
            The file's stem; None for the key's.
        steps : int
            Integrated-gradients steps.

        Returns
        -------
        path : Path
            The PNG written.
        """
        fitted = self.fusion(fusion)
        hidden, means, label = {}, {}, -1
        for modality in fitted.modalities_:
            clip = self.read_clip(modality, key)
            label = clip.label
            hidden[modality] = maps.hidden_and_probabilities(self.model(modality), clip.arrays["features"][None])[0][0]
            means[modality] = fitted.scaler_[f"{modality}_mean"]
        class_names = self.class_names(fitted.modalities_[0])  # a fusion's modalities share one class set
        inputs, baseline = _fused_inputs(fitted, hidden), _fused_inputs(fitted, means)
        probabilities = maps.predict_probabilities(fitted.model_, inputs)
        predicted = int(np.argmax(probabilities))
        attributions = maps.integrated_gradients(fitted.model_, inputs, predicted, steps=steps, baseline=baseline)
        input_of = dict(zip(fitted.modalities_, inputs))  # modality -> its input of the fused model
        totals = {modality: float(attributions[input_of[modality]].sum()) for modality in fitted.modalities_}
        title = figures.clip_title(f"fusion {fusion}", key, label, probabilities, class_names)
        return figures.fusion_figure(
            totals,
            title + "\nintegrated gradients from the training-mean hidden vectors",
            self.out / "fusion" / f"{name or key.replace('/', '_')}.png",
        )


def _fused_inputs(fusion: Fusion, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{input name of the fused model: (H,) vector}, in the fusion's modality order, named by ensemble.fusions;
    ``vectors``: {modality: (H,) hidden vector}, every modality present."""
    from ensemble.fusions import hidden_inputs

    X = {m: np.asarray(v)[None] for m, v in vectors.items()}
    return {name: batch[0] for name, batch in hidden_inputs(X, None, fusion.modalities_).items()}


def _wanted(modalities: list[str]) -> list[str]:
    """Canonical modality names (and "fusion"), in the order given; InputError naming unknown ones."""
    names = [FUSION if m.strip().lower() == FUSION else canonical_modality(m) for m in modalities]
    unknown = [m for m, name in zip(modalities, names) if name not in (*MODALITIES, FUSION)]
    if unknown:
        raise InputError(
            f"unknown modality {', '.join(unknown)}; choose from {', '.join((*MODALITIES, FUSION))} "
            "('fer' also names faces)"
        )
    return names


def explain(
    cache: str | Path,
    runs: str | Path,
    out: str | Path,
    modalities: list[str],
    clip: str | None = None,
    split: str | None = None,
    top: int = 3,
    fusion: str | None = None,
    method: str = "smoothgrad",
    smooth_samples: int = 16,
    projection: str = "pca",
) -> list[Path]:
    """Figures for one clip (``clip``) or for the ``top`` most confident and most wrong clips of ``split``.

    Parameters
    ----------
    cache, runs, out
        The feature cache, the runs folder with the trained models, the folder for the figures.
    modalities
        Models to explain: any of MODALITIES, and "fusion" for the fused model ``fusion`` (default
        :func:`default_fusion`).
    clip, split
        Exactly one: a clip key (``Val/1_1``) or a split or part whose picks are explained; with a split, the
        audio projection of that split is drawn too.

    Returns
    -------
    list[Path]
        The figures written, in the order of ``modalities``.
    """
    if (clip is None) == (split is None):
        raise InputError("pass exactly one of clip (a key such as Val/1_1) or split (such as Val)")
    wanted = _wanted(modalities)
    explainer = Explainer(cache, runs, out, smooth_samples, method)
    written: list[Path] = []
    for modality in wanted:
        if modality == FUSION:
            fusion = fusion or default_fusion(explainer.runs)
            if fusion is None:
                raise ExplainError(
                    f"{explainer.runs.fusion_root}: no fused Keras model; fit one with "
                    f"`gvs fuse --fusion fc --runs {explainer.runs.root}`"
                )
            if clip is not None:
                written.append(explainer.explain_fusion(fusion, clip))
                continue
            explainer.require_training_cache()
            for rank, (key, pick) in number_picks(
                pick_clips(explainer.runs.fusion(fusion).read_predictions(), split, top)
            ):
                written.append(explainer.explain_fusion(fusion, key, f"{pick}-{rank}-{key.replace('/', '_')}"))
            continue
        if clip is not None:
            written.append(explainer.explain_clip(modality, clip))
            continue
        for rank, (key, pick) in number_picks(pick_clips(explainer.predictions(modality), split, top)):
            written.append(explainer.explain_clip(modality, key, f"{pick}-{rank}-{key.replace('/', '_')}"))
        if modality == "audio":
            written.append(explainer.audio_projection(split, projection))
    return written


def number_picks(picks: list[tuple[str, str]]) -> list[tuple[int, tuple[str, str]]]:
    """Number the picks 1.. within each kind (confident-1, confident-2, wrong-1, ...).

    Parameters
    ----------
    picks : list of tuple of (str, str)
        (key, kind) as pick_clips gives them.

    Returns
    -------
    numbered : list of tuple of (int, (str, str))
    """
    counts: dict[str, int] = {}
    ranked = []
    for key, pick in picks:
        counts[pick] = counts.get(pick, 0) + 1
        ranked.append((counts[pick], (key, pick)))
    return ranked
