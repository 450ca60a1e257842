"""Predict the sentiment of whole videos: windows -> each modality's model -> the fusion -> one verdict per video.

A window where a modality has nothing (no faces, no people, no audio track) is fused from the modalities that have
something: the bundle's fusion takes a presence mask (the window says which modalities it was fused from).
Each window and video also gets a familiarity, how much it looks like the training clips, and a flag below the
bundle's threshold (gvs.predict.familiarity; none for bundles exported before it). With a faces model and people
tracking on, each video also gets its people (gvs.people): who was there, their expressions, and how far the
verdict's probability falls without each one's faces; each window its group figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from gvs.core.errors import GVSError, InputError
from gvs.core.vocabulary import CLASS_NAMES
from preprocess.engine import describe, resolve_backends
from preprocess.precision import resolve_precision

from .familiarity import lowest, unfamiliar_flag, video_scores

POOLS: tuple[str, ...] = ("mean", "max")
FUSED = "fused"


@dataclass
class WindowPrediction:
    """One window's class probabilities per modality and fused.

    probabilities : {modality or "fused": ndarray of shape (n_classes,)}
    familiarity : the lowest of ``familiarity_scores`` ({modality or "fused": share of training clips further
        away}); None when the bundle has no familiarity data. ``unfamiliar``: the scores below the threshold
    """

    index: int
    start_s: float
    end_s: float
    probabilities: dict[str, np.ndarray]
    fused_from: list[str]
    flags: list[str] = field(default_factory=list)
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    class_names: tuple[str, ...] = CLASS_NAMES
    familiarity: float | None = None
    familiarity_scores: dict[str, float] = field(default_factory=dict)
    unfamiliar: list[str] = field(default_factory=list)
    people: int | None = None  # distinct people whose faces the window shows (None: people not tracked)
    dominant: str | None = None  # the people's most common top expression, and the share of them showing it
    agreement: float | None = None

    @property
    def predicted(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities[FUSED]))]


@dataclass
class VideoPrediction:
    """The verdict on one video and the windows it comes from.

    probabilities : ndarray of shape (n_classes,), the windows' fused probabilities pooled (mean or max); None if
        failed
    class_shares : {class name: share of windows whose fused prediction is that class}
    status : "done", "flagged" (done, with notes in ``flags``) or "failed" (``reason`` says why)
    familiarity : the lowest, over scores, of the median over windows (``familiarity_scores``); None without
        familiarity data. ``unfamiliar``: the scores below the threshold (then a flag says so)
    people : one record per person (gvs.people.summary.person_record), by id; empty when people are not tracked
    thumbnails : {person id: (h, w, 3) uint8 RGB crop of their largest face}, not written to the JSON records
    """

    path: Path
    status: str
    windows: list[WindowPrediction] = field(default_factory=list)
    probabilities: np.ndarray | None = None
    class_shares: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    reason: str = ""
    duration_s: float = 0.0
    label: int | None = None
    seconds: float = 0.0
    class_names: tuple[str, ...] = CLASS_NAMES
    familiarity: float | None = None
    familiarity_scores: dict[str, float] = field(default_factory=dict)
    unfamiliar: list[str] = field(default_factory=list)
    people: list[dict] = field(default_factory=list)
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str | None:
        return None if self.probabilities is None else self.class_names[int(np.argmax(self.probabilities))]


def pool_probabilities(fused: np.ndarray, pool: str = "mean") -> np.ndarray:
    """(n_windows, C) fused probabilities -> (C,): their mean, or each class's maximum renormalised to sum 1."""
    if pool not in POOLS:
        raise InputError(f"--pool {pool!r}: choose {' or '.join(POOLS)}")
    pooled = fused.mean(axis=0) if pool == "mean" else fused.max(axis=0)
    return pooled / pooled.sum()


def class_shares(fused: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, float]:
    """Share of windows whose fused prediction is each class; ``fused`` (n_windows, n_classes)."""
    counts = np.bincount(fused.argmax(axis=1), minlength=len(class_names))
    return {name: float(count / len(fused)) for name, count in zip(class_names, counts)}


class TracedModel:
    """A Keras model called through one tf.function whose input signature leaves the batch length open: traced once
    per model whatever a video's last batch holds. Keras' own predict functions retrace per batch length, and
    TensorFlow counts the traces of every model's predict function together, which printed "N out of the last N
    calls ... triggered tf.function retracing" in gvs predict, report and serve."""

    def __init__(self, model) -> None:
        import tensorflow as tf

        self.model = model
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict_on_batch(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs (each (len(x), ...)) for ``x`` (n, ...) float32."""
        outputs = self._call(np.asarray(x, dtype=np.float32))
        return [np.asarray(o) for o in (outputs if isinstance(outputs, list | tuple) else [outputs])]


class Predictor:
    """Loads a bundle's models once and predicts video after video.

    Parameters
    ----------
    model : a Bundle, or the path of a bundle folder, its .zip, or a RUNS folder
    stride : sampled frames between window starts (default: half a window)
    pool : how window probabilities make the video's ("mean" or "max")
    batch_windows : windows per model call
    precision : the backbones' arithmetic, auto | float32 | bfloat16 | int8 (see preprocess.precision and
        preprocess.engine); it may differ from the precision the bundle's training features were made in: the two
        agree to the figures tests/test_precision.py and tests/test_backend.py check
    backend : the backbones' engine, auto | tensorflow | openvino (see preprocess.engine)
    keep_raw : keep each window's frames, keypoints, faces and audio samples (``WindowFeatures.raw``) for the
        ``on_window`` callback of ``predict_video`` (explanations); off for plain prediction
    ood_threshold : familiarity below which a window or video is flagged unlike the training data (default: the
        bundle's, chosen at export; gvs.predict.familiarity)
    people : track the people whose faces the video shows (gvs.people; how much each carried the verdict needs a
        faces model in the bundle)
    """

    def __init__(
        self,
        model,
        stride: int | None = None,
        pool: str = "mean",
        batch_windows: int = 8,
        precision: str = "auto",
        keep_raw: bool = False,
        backend: str = "auto",
        ood_threshold: float | None = None,
        people: bool = True,
    ) -> None:
        from modalities.architectures import cut_at_hidden
        from modalities.sequence import TimeGrid, sequence_model

        from .bundle import Bundle, load_bundle
        from .stream import WindowStream

        self.bundle = model if isinstance(model, Bundle) else load_bundle(model)
        self.class_names: tuple[str, ...] = tuple(self.bundle.class_names)
        pool_probabilities(np.ones((1, len(self.class_names))), pool)  # checks the name before any work
        self.pool = pool
        self.batch_windows = batch_windows
        if ood_threshold is not None and not 0.0 <= ood_threshold <= 1.0:
            raise InputError(f"--ood-threshold {ood_threshold}: a familiarity threshold is between 0 and 1")
        known = self.bundle.familiarity
        self.familiarity = None if known is None else known.with_threshold(ood_threshold)
        used, why = resolve_precision(precision)
        requested = replace(self.bundle.config, precision=precision, backend=backend)
        backbones = tuple(m for m in ("scene", "pose") if m in self.bundle.modalities)
        self.precision = f"{used} ({why})" + (f"; backbones: {describe(requested, backbones)}" if backbones else "")
        config = resolve_backends(requested, backbones)
        self.stream = WindowStream(config, tuple(self.bundle.modalities), stride, keep_raw=keep_raw, people=people)
        self._kept: list[_KeptWindow] = []  # with people tracking: what each window of the video needs again
        self.fusion = self.bundle.fusion()
        self.reads_sequences = self.fusion.reads_sequences  # per-step outputs only for the fusions that read them
        cut = sequence_model if self.reads_sequences else (lambda model, _: cut_at_hidden(model))
        self.cuts = {m: TracedModel(cut(self.bundle.model(m), m)) for m in self.bundle.modalities}
        self.grid = TimeGrid.from_params(asdict(config))

    def settings(self) -> dict:
        """How this predictor predicts: the pooling, the stride in sampled frames and the backbones' engine and
        precision."""
        threshold = None if self.familiarity is None else self.familiarity.threshold
        return {
            "pool": self.pool,
            "stride_frames": self.stream.stride,
            "precision": self.precision,
            "ood_threshold": threshold,
            "people": self.stream.people,
        }

    def predict_video(
        self, path: str | Path, label: int | None = None, progress=None, on_window=None
    ) -> VideoPrediction:
        """The prediction for one video; a video that cannot be read gives status "failed", never an exception.

        ``on_window(features, prediction)`` is called with each window's WindowFeatures and WindowPrediction as
        they come (nothing of them is kept otherwise).
        """
        started = time.perf_counter()
        path = Path(path)
        self._kept = []
        try:
            windows = list(self._windows(path, progress, on_window))
        except (GVSError, OSError, ValueError) as error:  # one bad video never stops a batch
            return VideoPrediction(
                path,
                "failed",
                reason=f"{path}: {error}",
                label=label,
                seconds=time.perf_counter() - started,
                class_names=self.class_names,
            )
        info = self.stream.info
        fused = np.stack([w.probabilities[FUSED] for w in windows])
        flags = list(info.flags) if info is not None else []
        partial = [w for w in windows if len(w.fused_from) < len(self.bundle.modalities)]
        if partial:
            flags.append(f"{len(partial)} of {len(windows)} windows fused without some modality")
        scores = video_scores([w.familiarity_scores for w in windows]) if self.familiarity is not None else {}
        unfamiliar = self.familiarity.unfamiliar(scores) if self.familiarity is not None else []
        if unfamiliar:
            flags.append(unfamiliar_flag(unfamiliar, lowest(scores), self.familiarity.threshold))
        pooled = pool_probabilities(fused, self.pool)
        people, thumbnails = self._people(windows, info, int(np.argmax(pooled))) if self._kept else ([], {})
        self._kept = []
        return VideoPrediction(
            path,
            "flagged" if flags else "done",
            windows,
            pooled,
            class_shares(fused, self.class_names),
            flags,
            duration_s=info.duration if info is not None else windows[-1].end_s,
            label=label,
            seconds=time.perf_counter() - started,
            class_names=self.class_names,
            familiarity=lowest(scores),
            familiarity_scores=scores,
            unfamiliar=unfamiliar,
            people=people,
            thumbnails=thumbnails,
        )

    def predict(
        self, paths: Iterable[str | Path], labels: Iterable[int | None] | None = None
    ) -> Iterator[VideoPrediction]:
        """One VideoPrediction per path, in order; the models are loaded once for all of them."""
        labels = list(labels) if labels is not None else None
        for index, path in enumerate(paths):
            yield self.predict_video(path, labels[index] if labels is not None else None)

    def _windows(self, path: Path, progress, on_window) -> Iterator[WindowPrediction]:
        batch = []
        for window in self.stream.windows(path):
            batch.append(window)
            if len(batch) == self.batch_windows:
                yield from self._predict_batch(batch, on_window)
                if progress is not None:
                    progress.update(len(batch))
                batch = []
        if batch:
            yield from self._predict_batch(batch, on_window)
            if progress is not None:
                progress.update(len(batch))

    def present(self, empty: dict[str, str]) -> list[str]:
        """The bundle's modalities a window is fused from: those with something in it (all when none has)."""
        return [m for m in self.bundle.modalities if m not in empty] or list(self.bundle.modalities)

    def score(self, features: dict[str, np.ndarray], present: list[str]) -> dict[str, np.ndarray]:
        """Probabilities of a batch of windows: {modality or "fused": (B, n_classes)}.

        ``features``: {modality: (B, steps, ...) model input}. The fused row is the bundle's fusion of the
        ``present`` modalities (the others are masked out, as ``predict_video`` does for windows lacking them).
        """
        presence = np.array([[m in present for m in self.bundle.modalities]] * len(next(iter(features.values()))))
        return self._score(features, presence)

    def outputs(self, features: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray | None]]:
        """Each modality model's outputs on a batch of windows ``features`` ({modality: (B, steps, ...) input}).

        Returns
        -------
        outputs : {modality: {"hidden": (B, d), "probabilities": (B, C), "sequence": (B, T, F) and "steps": (B, T)
            bool on the time grid for a fusion that reads them (else None)}}
        """
        return {m: self._modality_outputs(m, features[m]) for m in self.bundle.modalities}

    def _modality_outputs(self, modality: str, x: np.ndarray) -> dict[str, np.ndarray | None]:
        """One modality's outputs (see :meth:`outputs`) of a batch ``x`` (B, steps, ...)."""
        from modalities.sequence import sequence_outputs

        x = np.asarray(x, dtype=np.float32)
        if self.reads_sequences:
            hidden, probabilities, sequence, steps = sequence_outputs(self.cuts[modality], modality, x, self.grid)
        else:
            hidden, probabilities = (np.asarray(a) for a in self.cuts[modality].predict_on_batch(x))
            hidden, sequence, steps = hidden.reshape(len(x), -1), None, None
        return {"hidden": hidden, "probabilities": probabilities, "sequence": sequence, "steps": steps}

    def fusion_input(self, outputs: dict[str, dict[str, np.ndarray | None]]) -> dict[str, np.ndarray]:
        """The arrays the bundle's fusion reads (ensemble.fusions: ``X``) from :meth:`outputs`."""
        from ensemble.fusions import fusion_arrays

        return fusion_arrays(self.fusion.reads, outputs)

    def _score(self, features: dict[str, np.ndarray], presence: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`score` with ``presence`` (B, n_modalities) bool per window, in the bundle's modality order."""
        return self._probabilities(self.outputs(features), presence)

    def _probabilities(self, outputs: dict, presence: np.ndarray) -> dict[str, np.ndarray]:
        """{modality or "fused": (B, n_classes)} from :meth:`outputs` and ``presence`` (B, n_modalities) bool."""
        fused = np.asarray(self.fusion.predict_proba(self.fusion_input(outputs), presence), dtype=np.float32)
        return {m: o["probabilities"] for m, o in outputs.items()} | {FUSED: fused}

    def _familiarity(self, outputs: dict, presence: np.ndarray, features: dict) -> list[dict[str, float]]:
        """Each window's familiarity scores from :meth:`outputs` and the models' inputs ``features`` (empty without
        familiarity data)."""
        if self.familiarity is None:
            return [{} for _ in range(len(presence))]
        return self.familiarity.scores({m: o["hidden"] for m, o in outputs.items()}, presence, features)

    def _predict_batch(self, windows: list, on_window=None) -> list[WindowPrediction]:
        """Each modality's model once over the batch, then the fusion, each window masked to the modalities it has
        something of."""
        modalities = self.bundle.modalities
        features = {m: np.stack([w.features[m] for w in windows]) for m in modalities}
        present = [self.present(w.empty) for w in windows]
        presence = np.array([[m in p for m in modalities] for p in present])
        outputs = self.outputs(features)
        scored, familiarity = self._probabilities(outputs, presence), self._familiarity(outputs, presence, features)
        predictions = []
        for i, window in enumerate(windows):
            if window.face_rows is not None:
                self._kept.append(_KeptWindow(window.face_rows, _row(outputs, i), presence[i]))
            flags = list(window.flags)
            probabilities = {name: p[i] for name, p in scored.items()}
            if len(present[i]) < len(modalities):
                missing = ", ".join(f"{window.empty[m]}" for m in modalities if m in window.empty)
                flags.append(f"fused from {'+'.join(present[i])} ({missing})")
            unfamiliar = self.familiarity.unfamiliar(familiarity[i]) if self.familiarity is not None else []
            if unfamiliar:
                flags.append(unfamiliar_flag(unfamiliar, lowest(familiarity[i]), self.familiarity.threshold))
            predictions.append(
                WindowPrediction(
                    window.index,
                    window.start_s,
                    window.end_s,
                    probabilities,
                    present[i],
                    flags,
                    window.thumbnail,
                    self.class_names,
                    lowest(familiarity[i]),
                    familiarity[i],
                    unfamiliar,
                )
            )
            if on_window is not None:
                on_window(window, predictions[-1])
        return predictions

    def _people(self, windows: list[WindowPrediction], info, verdict: int) -> tuple[list[dict], dict]:
        """The video's person records and thumbnails (gvs.people.summary), and each window's group figures (set on
        ``windows``)."""
        from gvs.people.summary import carried, person_record, window_group

        rows = [[(scores, info.tracker.person_ids(tracks)) for scores, tracks in kept.face_rows] for kept in self._kept]
        for window, window_rows in zip(windows, rows):
            group = window_group(window_rows)
            window.people, window.dominant, window.agreement = group.people, group.dominant, group.agreement
        drops = {}
        if "faces" in self.bundle.modalities:
            drops = carried(
                rows,
                np.stack([w.probabilities[FUSED] for w in windows]),
                np.stack([w.probabilities["faces"] for w in windows]),
                verdict,
                self.stream.config.n_frames,
                self._score_faces_input,
                lambda fused: pool_probabilities(fused, self.pool),
            )
        people = info.people or []
        records = [person_record(p, *drops.get(p.id, (None, None))) for p in people]
        return records, {p.id: p.thumbnail.image for p in people}

    def _score_faces_input(self, x: np.ndarray, faces_left: np.ndarray, windows: np.ndarray) -> dict[str, np.ndarray]:
        """{"faces", "fused": (P, C)} of the video's windows ``windows`` (P,) with their faces input replaced by
        ``x`` (P, n_frames, 22); the other modalities' outputs are those the windows had."""
        kept = [self._kept[w] for w in windows]
        outputs = {m: _stacked([k.outputs[m] for k in kept]) for m in self.bundle.modalities if m != "faces"}
        outputs["faces"] = self._modality_outputs("faces", x)
        presence = np.stack([k.presence for k in kept])
        presence[:, list(self.bundle.modalities).index("faces")] = faces_left
        scored = self._probabilities(outputs, presence)
        return {"faces": scored["faces"], FUSED: scored[FUSED]}


@dataclass
class _KeptWindow:
    """What a window needs again once the video's people are known: its face rows (scores and track indices per
    real frame), its modalities' outputs (:meth:`Predictor.outputs`, one row each) and its presence row
    (n_modalities,) bool."""

    face_rows: list[tuple[np.ndarray, np.ndarray]]
    outputs: dict[str, dict[str, np.ndarray | None]]
    presence: np.ndarray


def _row(outputs: dict[str, dict[str, np.ndarray | None]], i: int) -> dict[str, dict[str, np.ndarray | None]]:
    """Window ``i``'s outputs (:meth:`Predictor.outputs`, one row each)."""
    return {m: {kind: None if a is None else a[i : i + 1] for kind, a in o.items()} for m, o in outputs.items()}


def _stacked(parts: list[dict[str, np.ndarray | None]]) -> dict[str, np.ndarray | None]:
    """One modality's outputs (:meth:`Predictor.outputs`) of many windows, from their one-row outputs in order."""
    return {kind: None if parts[0][kind] is None else np.concatenate([p[kind] for p in parts]) for kind in parts[0]}


def predict_video(path: str | Path, model, stride: int | None = None, pool: str = "mean") -> VideoPrediction:
    """Predict one video with ``model`` (a Bundle or a bundle/RUNS path); loads the models for this call only —
    use :class:`Predictor` for many videos."""
    return Predictor(model, stride, pool).predict_video(path)
