"""Train one modality's model from the feature cache and write its run folder.

    python -m modalities.train MODALITY --cache CACHE [--runs RUNS] [options]

RUNS/<modality>/ gets model.keras (best checkpoint on the select part), config.json, metrics.json,
history.csv, confusion.png (report part), predictions.csv (every clip) and submission/<clip>.txt
(unlabelled test clips). Training is skipped when that model was already trained from the same cache
fingerprint, options and partition (pass --force to retrain).
"""

# The redirect of `python -m modalities.train` to its command stands before the imports, so that the command sets
# up the process before TensorFlow loads:
# ruff: noqa: E402
from __future__ import annotations

if __name__ == "__main__":  # `python -m modalities.train`: the command is modalities.cli
    import sys

    from gvs.core.command import set_up_process

    set_up_process()
    from modalities.cli import main as _command

    sys.exit(_command())

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gvs.core.errors import CacheError, InputError, StaleModelError
from gvs.core.io import atomic_write_json, atomic_write_text, digest_of, sha256_of, staged_folder
from gvs.core.predictions import Predictions
from gvs.core.vocabulary import MODALITIES, PARTS
from gvs.core.workspace import CacheDir, RunFolder, RunsDir

from .architectures import DEFAULT_SIZES, build_model, compile_model
from .data import ClipBatches, ModalityFeatures, open_features
from .metrics import classification_metrics, save_confusion_png
from .partition import Partition, ensure_partition

# Options that change the trained model (they key the skip check); sizes come from DEFAULT_SIZES.
TRAIN_DEFAULTS: dict = {
    "epochs": 60,
    "batch_size": 32,
    "seed": 0,
    "class_weight": "balanced",
    "patience": 10,
    "select_fraction": 0.2,
    "learning_rate": None,
    "monitor": "val_loss",
    "train_split": "Train",
    "report_split": "Val",
    "protocol": "ours",
}
MIN_TRAIN_CLIPS = 6


def train_modality(
    modality: str,
    cache: Path,
    runs: Path = Path("runs"),
    *,
    force: bool = False,
    verbose: int = 2,
    max_memory_gb: float = 2.0,
    **options,
) -> Path:
    """Train ``modality`` on the cache's features and write RUNS/<modality>; returns that folder.

    ``options``: any of TRAIN_DEFAULTS and the modality's DEFAULT_SIZES. Skips training when
    RUNS/<modality>/model.keras was trained from the same fingerprint, options and partition, unless
    ``force``. Features larger than ``max_memory_gb`` are read from the cache batch by batch.

    Parameters
    ----------
    modality : str
    cache : Path
    runs : Path
    force : bool
        Retrain even when the run is up to date.
    verbose : int
        Keras' verbosity.
    max_memory_gb : float
        Hold the features in memory when they take less than this.
    **options
        TRAIN_DEFAULTS and DEFAULT_SIZES[modality] overrides.

    Returns
    -------
    folder : Path
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")
    unknown = set(options) - set(TRAIN_DEFAULTS) - set(DEFAULT_SIZES[modality])
    if unknown:
        raise InputError(
            f"{modality}: unknown option(s) {sorted(unknown)}; valid: "
            f"{', '.join(list(TRAIN_DEFAULTS) + list(DEFAULT_SIZES[modality]))}"
        )
    cache, runs = Path(cache), Path(runs)
    settings = TRAIN_DEFAULTS | {k: v for k, v in options.items() if k in TRAIN_DEFAULTS}
    for name in ("epochs", "batch_size"):
        if int(settings[name]) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be 1 or more, got {settings[name]}")
    sizes = _jsonable(DEFAULT_SIZES[modality] | {k: v for k, v in options.items() if k in DEFAULT_SIZES[modality]})
    runs_dir = RunsDir(runs)
    features = open_features(cache, modality)
    runs_dir.claim_cache(CacheDir(cache))
    partition = ensure_partition(
        runs,
        cache,
        settings["seed"],
        settings["select_fraction"],
        settings["train_split"],
        settings["report_split"],
        protocol=settings["protocol"],
    )
    part_of = partition.part_by_key()
    run = runs_dir.modality(modality)
    config = {
        "modality": modality,
        "cache": str(cache.resolve()),
        "fingerprint": features.fingerprint,
        "input_shape": list(features.shape),
        "classes": list(features.class_names),
        "options": _jsonable(settings),
        "sizes": sizes,
        "partition": {"sources": partition.sources, "digest": digest_of(partition.parts)},
        # relabelled clips (or clips moved between parts) must retrain: hash key + label + part
        "labels_digest": digest_of([[k, int(y), part_of.get(k, "")] for k, y in zip(features.keys, features.labels)]),
        "feature_params": features.params,
    }
    if not force and _already_trained(run, config):
        print(f"{modality}: already trained from fingerprint {features.fingerprint} with these options: {run.folder}")
        return run.folder
    indices = _part_indices(features, partition)
    _check_enough(modality, cache, features, indices)
    if features.nbytes() <= max_memory_gb * 2**30:
        features.hold_in_memory()
    with staged_folder(run.folder) as staging:  # the previous run stays intact until this one succeeds
        out = RunFolder(staging)
        history = _fit(modality, features, indices, settings, sizes, out, verbose)
        model = keras.models.load_model(out.model)
        _write_outputs(model, features, partition, indices, out, history, settings["monitor"])
        atomic_write_json(out.config, config | {"model_sha256": sha256_of(out.model)})  # last: marks it complete
    return run.folder


def load_modality_model(runs: Path, modality: str, cache: Path | None = None) -> keras.Model:
    """The best checkpoint of RUNS/<modality>; with ``cache``, first checks that the cache's current features
    of that modality are the ones the model was trained on (StaleModelError if not).

    Parameters
    ----------
    runs : Path
    modality : str
    cache : Path or None

    Returns
    -------
    model : keras.Model
    """
    if cache is not None:
        check_fingerprint(runs, modality, cache)
    return RunsDir(runs).load_model(modality)


def check_fingerprint(runs: Path, modality: str, cache: Path) -> None:
    """Raise StaleModelError when CACHE's current features of ``modality`` differ from the trained ones.

    Parameters
    ----------
    runs, cache : Path
    modality : str
    """
    trained = RunsDir(runs).modality(modality).read_config()["fingerprint"]
    current = CacheDir(cache).current_fingerprints().get(modality)
    if current != trained:
        raise StaleModelError(
            f"{Path(runs) / modality}: trained on {modality} features with fingerprint {trained}, but {cache} "
            f"now holds fingerprint {current} (made with other parameters); retrain with "
            f"`gvs train {modality} --cache {cache} --runs {runs}`"
        )


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, n_classes) for features ``x`` (N, per-clip shape).

    Parameters
    ----------
    model : keras.Model
    x : ndarray of shape (N, ...)
    batch_size : int

    Returns
    -------
    probabilities : ndarray of shape (N, n_classes), float32
    """
    return model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)


def _jsonable(value):
    return json.loads(json.dumps(value))


def _already_trained(run: RunFolder, config: dict) -> bool:
    """True when ``run`` finished with exactly ``config`` and its model file is the one it wrote."""
    if not (run.model.is_file() and run.config.is_file()):
        return False
    saved = json.loads(run.config.read_text())
    return {k: v for k, v in saved.items() if k != "model_sha256"} == config and saved.get("model_sha256") == sha256_of(
        run.model
    )


def _part_indices(features: ModalityFeatures, partition: Partition) -> dict[str, np.ndarray]:
    """Rows of ``features`` per part; train and select keep only labelled clips."""
    row_of = {key: row for row, key in enumerate(features.keys)}
    indices = {}
    for part in PARTS:
        rows = np.array([row_of[k] for k in partition.parts[part] if k in row_of], dtype=int)
        indices[part] = rows[features.labels[rows] >= 0] if part in ("train", "select") else rows
    return indices


def _check_enough(modality: str, cache: Path, features: ModalityFeatures, indices: dict[str, np.ndarray]) -> None:
    train_labels = features.labels[indices["train"]]
    counts = {name: int((train_labels == c).sum()) for c, name in enumerate(features.class_names)}
    if len(train_labels) < MIN_TRAIN_CLIPS or np.count_nonzero(list(counts.values())) < 2 or not len(indices["select"]):
        raise CacheError(
            f"{cache}: too few labelled {modality} clips to train: {len(train_labels)} in the train part "
            f"({counts}) and {len(indices['select'])} in the select part; need at least {MIN_TRAIN_CLIPS} "
            f"training clips of two classes or more and one selection clip. Preprocess a labelled split "
            f"(e.g. Train) into this cache first"
        )


def _class_weights(labels: np.ndarray, mode: str, n_classes: int) -> np.ndarray:
    if mode == "none":
        return np.ones(n_classes, np.float32)
    if mode != "balanced":
        raise InputError(f"class_weight must be 'balanced' or 'none', got {mode!r}")
    counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
    return np.divide(len(labels), n_classes * counts, out=np.zeros_like(counts), where=counts > 0)


def _fit(
    modality: str,
    features: ModalityFeatures,
    indices: dict[str, np.ndarray],
    settings: dict,
    sizes: dict,
    out: RunFolder,
    verbose: int,
) -> dict[str, list[float]]:
    """Seeded, deterministic training; the model of the best epoch on the select part goes to ``out.model``."""
    keras.utils.set_random_seed(settings["seed"])
    tf.config.experimental.enable_op_determinism()
    n_classes = len(features.class_names)
    model = compile_model(
        build_model(modality, features.shape, n_classes, **sizes), modality, settings["learning_rate"]
    )
    weights = _class_weights(features.labels[indices["train"]], settings["class_weight"], n_classes)
    train = ClipBatches(features, indices["train"], settings["batch_size"], weights, seed=settings["seed"])
    select = ClipBatches(features, indices["select"], settings["batch_size"], np.ones(n_classes, np.float32))
    monitor = settings["monitor"]
    callbacks = [
        keras.callbacks.EarlyStopping(monitor, patience=settings["patience"], restore_best_weights=True),
        keras.callbacks.CSVLogger(str(out.history)),
    ]
    fitted = model.fit(train, validation_data=select, epochs=settings["epochs"], callbacks=callbacks, verbose=verbose)
    model.save(out.model)  # the weights of the best epoch, restored by EarlyStopping
    return fitted.history


def _write_outputs(
    model: keras.Model,
    features: ModalityFeatures,
    partition: Partition,
    indices: dict[str, np.ndarray],
    out: RunFolder,
    history: dict,
    monitor: str,
) -> None:
    metrics, scored = {}, {}  # scored: part -> (probabilities, predicted) of its clips
    for part in PARTS:
        if not len(indices[part]):
            if part != "test":
                metrics[part] = {"split": partition.sources[part], "n": 0}
            continue
        probabilities = model.predict(ClipBatches(features, indices[part], 64), verbose=0)
        predicted = probabilities.argmax(axis=1)
        labels = features.labels[indices[part]]
        known = labels >= 0
        if known.any():
            metrics[part] = classification_metrics(
                labels[known], predicted[known], partition.sources[part], features.class_names
            )
        scored[part] = probabilities, predicted
        for row, pred in zip(indices[part], predicted):
            if part == "test" and features.labels[row] < 0:
                name = features.keys[row].split("/", 1)[1]
                atomic_write_text(out.submission / f"{name}.txt", features.class_names[pred] + "\n")
    monitored = history[monitor]
    best = int(np.argmin(monitored) if "loss" in monitor else np.argmax(monitored))
    metrics["checkpoint"] = {
        "epochs_run": len(monitored),
        "best_epoch": best + 1,
        "monitor": monitor,
        "best_score": float(monitored[best]),
    }
    atomic_write_json(out.metrics, metrics)
    rows = np.concatenate([indices[part] for part in scored])  # the train part is never empty (_check_enough)
    out.write_predictions(
        Predictions(
            [features.keys[row] for row in rows],
            features.labels[rows],
            np.concatenate([probabilities for probabilities, _ in scored.values()]),
            [part for part in scored for _ in indices[part]],
            features.class_names,
            np.concatenate([predicted for _, predicted in scored.values()]),
            [features.splits[row] for row in rows],
        )
    )
    shown = "report" if metrics["report"].get("n") else "select"
    scores = metrics[shown]
    title = (
        f"{features.store.modality}, {shown} part: {scores['split']}; "
        f"accuracy {scores['accuracy']:.3f}, macro F1 {scores['macro_f1']:.3f}"
    )
    save_confusion_png(scores["confusion"], out.confusion, title, features.class_names)


def main(argv: list[str] | None = None) -> int:
    """The same as `gvs train` (the command lives in modalities.cli; kept here for ``modalities.train.main``).

    Parameters
    ----------
    argv : list of str or None
        The arguments; None for sys.argv[1:].

    Returns
    -------
    status : int
        The exit status.
    """
    from .cli import main as command

    return command(argv)
