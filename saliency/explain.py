"""Explain trained models on clips: read the feature cache, RUNS/ and the raw media, write figures.

Figures land in ``OUT/<modality>/``: ``<split>_<clip>.png`` for one clip, ``<pick>-<rank>-<split>_<clip>.png``
for the clips picked from a split (pick = confident or wrong), and ``audio/projection-<split>.png``.
Fusion figures go to ``OUT/fusion/`` and explain the fused model of RUNS/fusion/<name>/.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from modalities.train import load_modality_model
from preprocess.cache import CacheError, FeatureCache, current_fingerprints, read_clip_index
from preprocess.decode import ClipDecodeError, read_audio, read_frames

from . import figures, maps

MODALITIES: tuple[str, ...] = ("scene", "pose", "audio", "faces")
SAMPLE_RATE = 16000


class ExplainError(RuntimeError):
    """Something an explanation needs is missing; the message names it and the command that makes it."""


@dataclass
class Clip:
    """One clip's cached arrays of one modality, its label, the video path and the preprocessing parameters."""

    key: str
    label: int
    path: Path | None
    arrays: dict[str, np.ndarray]
    params: dict

    @property
    def file_stem(self) -> str:
        return self.key.replace("/", "_")

    def param(self, name: str, default):
        return self.params.get("params", {}).get(name, default)


def read_predictions(path: Path) -> list[dict]:
    """Rows of a predictions.csv (key, split, part, label, p_Positive, p_Neutral, p_Negative, pred)."""
    if not path.is_file():
        raise ExplainError(f"{path}: no predictions; train the model first (`python -m modalities.train ...` or "
                           f"`python run_ensemble.py ...` write it)")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _probabilities(row: dict) -> np.ndarray:
    """The p_<class> columns of one row as a (3,) array."""
    return np.array([float(value) for name, value in row.items() if name.startswith("p_")])


def pick_clips(rows: list[dict], split: str, top: int) -> list[tuple[str, str]]:
    """(key, pick) for the ``top`` most confident correct clips and the ``top`` most confidently wrong ones.

    ``split`` matches a row's split (Train, Val, Test) or part (train, select, report, test). Unlabelled
    clips have no wrong; their most confident predictions are picked instead.
    """
    chosen = [r for r in rows if split in (r["split"], r["part"])]
    if not chosen:
        known = sorted({r["split"] for r in rows} | {r["part"] for r in rows})
        raise ExplainError(f"no clips of split {split!r} in the predictions; choose from {', '.join(known)}")
    by_confidence = sorted(chosen, key=lambda r: -_probabilities(r).max())
    labelled = [r for r in by_confidence if int(r["label"]) >= 0]
    if not labelled:
        return [(r["key"], "confident") for r in by_confidence[:top]]
    correct = [r for r in labelled if _probabilities(r).argmax() == int(r["label"])]
    wrong = [r for r in labelled if _probabilities(r).argmax() != int(r["label"])]
    return [(r["key"], "confident") for r in correct[:top]] + [(r["key"], "wrong") for r in wrong[:top]]


def read_clip(cache_root: Path, modality: str, key: str) -> Clip:
    """One clip's arrays (features, mask and raw arrays) from the cache's current fingerprint."""
    fingerprint = current_fingerprints(cache_root).get(modality)
    if fingerprint is None:
        raise CacheError(f"{cache_root}: no {modality} features; run `python -m preprocess DATASET --cache "
                         f"{cache_root}` first")
    cache = FeatureCache(cache_root, modality, fingerprint)
    if not cache.has(key):
        raise CacheError(f"{cache.path(key)}: clip {key!r} has no {modality} features (extraction failed or the "
                         f"key is wrong; keys look like Val/1_1)")
    arrays, _ = cache.read(key)
    row = next((r for r in read_clip_index(cache_root) if r["key"] == key), None)
    path = Path(row["path"]) if row and row["path"] else None
    label = int(row["label"]) if row and row["label"] != "" else -1
    return Clip(key, label, path if path and path.is_file() else None, arrays, cache.params())


def read_clip_frames(clip: Clip) -> np.ndarray | None:
    """The kept RGB frames of the clip, decoded as preprocessing did; None when the video is not available."""
    if clip.path is None:
        return None
    try:
        frames, _, _ = read_frames(clip.path, clip.param("frame_step", 10), clip.param("n_frames", 12))
    except ClipDecodeError:
        return None
    return frames


class Explainer:
    """Loads each model once and writes explanation figures for clips, splits and fusions."""

    def __init__(self, cache: str | Path, runs: str | Path, out: str | Path, smooth_samples: int = 16,
                 method: str = "smoothgrad") -> None:
        if method not in ("vanilla", "smoothgrad"):
            raise ValueError(f"unknown saliency method {method!r}; use vanilla or smoothgrad")
        self.cache = Path(cache)
        self.runs = Path(runs)
        self.out = Path(out)
        self.smooth_samples = smooth_samples
        self.method = method
        self._models: dict[str, keras.Model] = {}

    def model(self, modality: str) -> keras.Model:
        if modality not in self._models:
            self._models[modality] = load_modality_model(self.runs, modality)
        return self._models[modality]

    def predictions(self, modality: str) -> list[dict]:
        """Rows like predictions.csv (key, split, part, label, p_*) for every clip of this cache, predicted now.

        Picks come from the clips and features being explained, even when the models were trained on another
        dataset whose clip keys may look the same.
        """
        from modalities.data import open_features

        features = open_features(self.cache, modality)
        parts = {}
        if (self.runs / "partition.json").is_file():
            from modalities.partition import load_partition

            parts = load_partition(self.runs).part_by_key()
        model = self.model(modality)
        rows = []
        for start in range(0, len(features.keys), 32):
            indices = np.arange(start, min(start + 32, len(features.keys)))
            probabilities = np.asarray(model(features.load(indices), training=False))
            for index, p in zip(indices, probabilities):
                key = features.keys[index]
                rows.append({"key": key, "split": features.splits[index], "part": parts.get(key, ""),
                             "label": str(int(features.labels[index])),
                             **{f"p_{name}": str(value) for name, value in zip(figures.CLASS_NAMES, p)}})
        return rows

    def require_training_cache(self) -> None:
        """Fusion picks read the fusion's predictions.csv, which only describes the cache it was trained on."""
        configs = [self.runs / m / "config.json" for m in MODALITIES if (self.runs / m / "config.json").is_file()]
        trained_on = json.loads(configs[0].read_text()).get("cache") if configs else None
        if trained_on and Path(trained_on).resolve() != self.cache.resolve():
            raise ExplainError(f"fusion picks for a split need the cache the fusion was trained on ({trained_on}); "
                               f"got {self.cache}. Use --clip KEY for clips of another cache.")

    def _saliency(self, model: keras.Model, x: np.ndarray, class_index: int) -> np.ndarray:
        if self.method == "vanilla":
            return maps.vanilla_saliency(model, x, class_index)
        return maps.smoothgrad(model, x, class_index, samples=self.smooth_samples)

    def explain_clip(self, modality: str, key: str, name: str | None = None) -> Path:
        """Write the figure of one modality for one clip; returns its path."""
        clip = read_clip(self.cache, modality, key)
        model = self.model(modality)
        x = clip.arrays["features"].astype(np.float32)
        probabilities = maps.predict_probabilities(model, x)
        predicted = int(np.argmax(probabilities))
        title = figures.clip_title(modality, key, clip.label, probabilities)
        path = self.out / modality / f"{name or clip.file_stem}.png"
        draw = {"scene": self._scene, "pose": self._pose, "audio": self._audio, "faces": self._faces}[modality]
        return draw(model, clip, x, predicted, title, path)

    def _scene(self, model, clip, x, predicted, title, path) -> Path:
        real = int(maps.real_steps(x).sum()) or len(x)
        frame_maps = {"vanilla": maps.scene_frame_maps(maps.vanilla_saliency(model, x, predicted))[:real],
                      f"smoothgrad ({self.smooth_samples})":
                          maps.scene_frame_maps(maps.smoothgrad(model, x, predicted, self.smooth_samples))[:real]}
        heads = [layer.name for layer in model.layers if layer.name.startswith("scene_convlstm_")]
        cams = [maps.gradcam(model, x, head, predicted) for head in heads]
        if cams:
            cam = np.sum(cams, axis=0)
            frame_maps["Grad-CAM (clip)" if cam.ndim == 2 else "Grad-CAM"] = cam if cam.ndim == 2 else cam[:real]
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
            waveform = read_audio(clip.path, SAMPLE_RATE, clip.param("audio_seconds", 5.0))
        return figures.audio_figure(waveform, SAMPLE_RATE, steps, clip.param("audio_hop", 0.5), title, path)

    def _faces(self, model, clip, x, predicted, title, path) -> Path:
        saliency = self._saliency(model, x, predicted)
        faces_per_frame = clip.arrays.get("faces_per_frame", x[:, -1])
        return figures.faces_figure(maps.step_saliency(saliency), maps.column_saliency(saliency), faces_per_frame,
                                    title, path)

    def audio_projection(self, split: str, method: str = "pca") -> Path:
        """2-D projection of the audio hidden layer over the clips of ``split``: correct vs wrong, confidences."""
        rows = [r for r in self.predictions("audio") if split in (r["split"], r["part"])]
        if not rows:
            raise ExplainError(f"no audio predictions for split {split!r}")
        clips = [read_clip(self.cache, "audio", r["key"]) for r in rows]
        x = np.stack([c.arrays["features"] for c in clips]).astype(np.float32)
        model = self.model("audio")
        cut = keras.Model(model.input, [model.get_layer("hidden").output, model.output])
        hidden, probabilities = cut.predict(x, batch_size=64, verbose=0)
        labels = np.array([c.label for c in clips])
        points = figures.project_2d(hidden, method)
        known = labels >= 0
        accuracy = (f"accuracy {(probabilities.argmax(1)[known] == labels[known]).mean():.2f} on {known.sum()} labelled"
                    if known.any() else "no labels")
        title = (f"audio hidden layer ({method.upper()}) · {split} · {len(rows)} clips · {accuracy}"
                 f"\nlabels: predicted (true) confidence")
        return figures.projection_figure(points, labels, probabilities, [c.key for c in clips], title,
                                         self.out / "audio" / f"projection-{split}.png")

    def explain_fusion(self, fusion: str, key: str, name: str | None = None, steps: int = 32) -> Path:
        """Share of integrated-gradients attribution per modality for the fused model RUNS/fusion/<fusion>/.

        The baseline is the training mean of each hidden vector (scaler.npz) when saved, else zeros.
        """
        folder = self.runs / "fusion" / fusion
        record_path = folder / "fusion.json"
        if not (folder / "model.keras").is_file() or not record_path.is_file():
            raise ExplainError(f"{folder}: no fused Keras model (fusion.json + model.keras); only fc and vae "
                               f"fusions have one; fit one with `python -m ensemble ...`")
        modalities = json.loads(record_path.read_text())["modalities"]
        fused = self._fused_model(folder)
        inputs, baseline = {}, {}
        scaler = dict(np.load(folder / "scaler.npz")) if (folder / "scaler.npz").is_file() else {}
        label = -1
        for modality in modalities:
            clip = read_clip(self.cache, modality, key)
            label = clip.label
            model = self.model(modality)
            cut = keras.Model(model.input, model.get_layer("hidden").output)
            x = clip.arrays["features"][None].astype(np.float32)
            inputs[f"{modality}_hidden"] = np.asarray(cut(x, training=False))[0]
            baseline[f"{modality}_hidden"] = scaler.get(f"{modality}_mean", np.zeros_like(inputs[f"{modality}_hidden"]))
        probabilities = maps.predict_probabilities(fused, inputs)
        predicted = int(np.argmax(probabilities))
        attributions = maps.integrated_gradients(fused, inputs, predicted, steps=steps, baseline=baseline)
        totals = {name.removesuffix("_hidden"): float(a.sum()) for name, a in attributions.items()}
        title = figures.clip_title(f"fusion {fusion}", key, label, probabilities)
        return figures.fusion_figure(totals, title + "\nintegrated gradients from the training-mean hidden vectors",
                                     self.out / "fusion" / f"{name or key.replace('/', '_')}.png")

    def _fused_model(self, folder: Path) -> keras.Model:
        if str(folder) not in self._models:
            self._models[str(folder)] = keras.models.load_model(folder / "model.keras", compile=False)
        return self._models[str(folder)]


def default_fusion(runs: Path) -> str | None:
    """The fc fusion with the most modalities under RUNS/fusion/, else any fused Keras model; None if none."""
    folders = [f for f in sorted((Path(runs) / "fusion").glob("*")) if (f / "model.keras").is_file()]
    if not folders:
        return None
    return max(folders, key=lambda f: (f.name.startswith("fc-"), f.name.count("+"))).name


def explain(cache: str | Path, runs: str | Path, out: str | Path, modalities: list[str],
            clip: str | None = None, split: str | None = None, top: int = 3, fusion: str | None = None,
            method: str = "smoothgrad", smooth_samples: int = 16, projection: str = "pca") -> list[Path]:
    """Figures for one clip (``clip``) or for the ``top`` most confident and most wrong clips of ``split``.

    ``modalities`` may include "fusion" (the fused model ``fusion``, default :func:`default_fusion`). With a
    split, the audio projection of that split is drawn too.
    """
    if (clip is None) == (split is None):
        raise ValueError("pass exactly one of clip (a key such as Val/1_1) or split (such as Val)")
    explainer = Explainer(cache, runs, out, smooth_samples, method)
    written: list[Path] = []
    for modality in modalities:
        if modality == "fusion":
            fusion = fusion or default_fusion(Path(runs))
            if fusion is None:
                raise ExplainError(f"{runs}/fusion: no fused Keras model; fit one with `python run_ensemble.py --fusion fc`")
            folder = Path(runs) / "fusion" / fusion
            if clip is not None:
                written.append(explainer.explain_fusion(fusion, clip))
                continue
            explainer.require_training_cache()
            for rank, (key, pick) in _ranked(pick_clips(read_predictions(folder / "predictions.csv"), split, top)):
                written.append(explainer.explain_fusion(fusion, key, f"{pick}-{rank}-{key.replace('/', '_')}"))
            continue
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES + ('fusion',))}")
        if clip is not None:
            written.append(explainer.explain_clip(modality, clip))
            continue
        rows = explainer.predictions(modality)
        for rank, (key, pick) in _ranked(pick_clips(rows, split, top)):
            written.append(explainer.explain_clip(modality, key, f"{pick}-{rank}-{key.replace('/', '_')}"))
        if modality == "audio":
            written.append(explainer.audio_projection(split, projection))
    return written


def _ranked(picks: list[tuple[str, str]]) -> list[tuple[int, tuple[str, str]]]:
    """Number the picks 1.. within each kind (confident-1, confident-2, wrong-1, ...)."""
    counts: dict[str, int] = {}
    ranked = []
    for key, pick in picks:
        counts[pick] = counts.get(pick, 0) + 1
        ranked.append((counts[pick], (key, pick)))
    return ranked
