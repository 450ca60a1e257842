"""Train one modality's model from the feature cache and write its run folder.

    python -m modalities.train MODALITY --cache CACHE [--runs RUNS] [options]

RUNS/<modality>/ gets model.keras (best checkpoint on the select part), config.json, metrics.json,
history.csv, confusion.png (report part), predictions.csv (every clip) and submission/<clip>.txt
(unlabelled test clips). Training is skipped when that model was already trained from the same cache
fingerprint, options and partition (pass --force to retrain).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gvs.core.command import positive_int, run_module
from gvs.core.errors import CacheError, InputError, StaleModelError
from gvs.core.io import atomic_write_json, atomic_write_text, digest_of, sha256_of, staged_folder
from gvs.core.vocabulary import MODALITIES, PARTS
from gvs.core.workspace import CacheDir, RunFolder, RunsDir

from .architectures import DEFAULT_SIZES, LEARNING_RATES, build_model, compile_model
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
    of that modality are the ones the model was trained on (StaleModelError if not)."""
    if cache is not None:
        check_fingerprint(runs, modality, cache)
    return RunsDir(runs).load_model(modality)


def check_fingerprint(runs: Path, modality: str, cache: Path) -> None:
    """Raise StaleModelError when CACHE's current features of ``modality`` differ from the trained ones."""
    trained = RunsDir(runs).modality(modality).read_config()["fingerprint"]
    current = CacheDir(cache).current_fingerprints().get(modality)
    if current != trained:
        raise StaleModelError(
            f"{Path(runs) / modality}: trained on {modality} features with fingerprint {trained}, but {cache} "
            f"now holds fingerprint {current} (made with other parameters); retrain with "
            f"`gvs train {modality} --cache {cache} --runs {runs}`"
        )


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, n_classes) for features ``x`` (N, per-clip shape)."""
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
    metrics, rows = {}, []
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
        for row, p, pred in zip(indices[part], probabilities, predicted):
            rows.append(
                [
                    features.keys[row],
                    features.splits[row],
                    part,
                    int(features.labels[row]),
                    *(f"{v:.6f}" for v in p),
                    int(pred),
                ]
            )
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
    out.write_predictions(rows, features.class_names)
    shown = "report" if metrics["report"].get("n") else "select"
    scores = metrics[shown]
    title = (
        f"{features.store.modality}, {shown} part: {scores['split']}; "
        f"accuracy {scores['accuracy']:.3f}, macro F1 {scores['macro_f1']:.3f}"
    )
    save_confusion_png(scores["confusion"], out.confusion, title, features.class_names)


EPILOG = """\
examples:
  gvs train pose --cache cache/demo --runs runs/demo
  gvs train scene --cache cache/vgaf --runs runs/vgaf --epochs 100 --patience 15
  gvs train audio --cache cache/vgaf --runs runs/vgaf --force          retrain even if an identical run exists
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs train` (and `python -m modalities.train`)."""
    parser.add_argument("modality", choices=MODALITIES, help="which modality's model to train")
    parser.add_argument("--cache", type=Path, required=True, help="feature cache written by `gvs preprocess`")
    parser.add_argument(
        "--runs",
        "--out",
        type=Path,
        default=Path("runs"),
        help="runs folder; the model goes to RUNS/<modality>, the partition to RUNS/partition.json",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"], help="most epochs (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=TRAIN_DEFAULTS["batch_size"], help="default %(default)s"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TRAIN_DEFAULTS["seed"],
        help="seeds weights, shuffling and the partition; same seed -> same metrics on CPU",
    )
    parser.add_argument(
        "--class-weight",
        choices=("balanced", "none"),
        default=TRAIN_DEFAULTS["class_weight"],
        help="weight training clips inversely to their class frequency (default %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=TRAIN_DEFAULTS["patience"],
        help="stop after this many epochs without improvement on the select part",
    )
    parser.add_argument(
        "--monitor",
        choices=("val_loss", "val_accuracy"),
        default=TRAIN_DEFAULTS["monitor"],
        help="select-part score for early stopping and the best checkpoint (default %(default)s)",
    )
    parser.add_argument(
        "--select-fraction",
        type=float,
        default=TRAIN_DEFAULTS["select_fraction"],
        help="fraction of the train split held out (stratified) for selection; with only one "
        "labelled split the same fraction is also held out for reporting",
    )
    parser.add_argument("--train-split", default=TRAIN_DEFAULTS["train_split"], help="default %(default)s")
    parser.add_argument(
        "--report-split",
        default=TRAIN_DEFAULTS["report_split"],
        help="split the reported numbers come from (never trained or selected on)",
    )
    parser.add_argument(
        "--protocol",
        choices=("ours", "paper"),
        default=TRAIN_DEFAULTS["protocol"],
        help="ours: select on a group-wise hold-out of the train split, report on the report split (default); "
        "paper: train on the whole train split, select and report on the report split (optimistic)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam learning rate (default per modality: "
        + ", ".join(
            f"{m} " + f"{rate:.0e}".replace("e-0", "e-") + (" decayed exponentially" if m == "audio" else "")
            for m, rate in LEARNING_RATES.items()
        )
        + ")",
    )
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=2.0,
        help="hold features in memory up to this size, else read them batch by batch",
    )
    parser.add_argument("--force", action="store_true", help="retrain even if an identical run exists")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    sizes = parser.add_argument_group("model sizes (defaults: the reference paper)")
    for name in dict.fromkeys(n for modality_sizes in DEFAULT_SIZES.values() for n in modality_sizes):
        users = {m: s[name] for m, s in DEFAULT_SIZES.items() if name in s}
        sample = next(iter(users.values()))
        sizes.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(sample[0] if isinstance(sample, tuple) else sample),
            nargs="+" if isinstance(sample, tuple) else None,
            default=None,
            help="default " + ", ".join(f"{m} {v}" for m, v in users.items()) + _SIZE_HELP.get(name, ""),
        )


_SIZE_HELP = {
    "heads": " (parallel ConvLSTM2D heads)",
    "filters": " (filters per ConvLSTM2D head)",
    "reduce_channels": " (1x1 conv channels before the heads; 0 = paper: ConvLSTM2D on all 2048 channels)",
    "kernel": " (convolution kernel size)",
    "l2": " (L2 penalty: scene classifier; pose BiLSTM and classifier)",
    "units": " (LSTM units per direction)",
    "pool": " (max-pool size after each Conv1D block)",
    "dropout": " (dropout after each Conv1D block)",
    "conv_filters": " (filters of each Conv1D block)",
    "lstm_units": " (units of each BiLSTM)",
    "dense": " (units of the hidden Dense layer)",
    "bn_momentum": " (batch-norm moving-average momentum)",
}


def run(args: argparse.Namespace) -> int:
    """Train ``args.modality`` and print its scores per part."""
    values = vars(args)
    options = {name: values[name] for name in TRAIN_DEFAULTS}
    for name in dict.fromkeys(n for s in DEFAULT_SIZES.values() for n in s):
        if values[name] is not None:
            if name not in DEFAULT_SIZES[args.modality]:
                raise InputError(f"--{name.replace('_', '-')} does not apply to {args.modality}")
            options[name] = tuple(values[name]) if isinstance(values[name], list) else values[name]
    out = train_modality(
        args.modality,
        args.cache,
        args.runs,
        force=args.force,
        verbose=0 if args.quiet else 2,
        max_memory_gb=args.max_memory_gb,
        **options,
    )
    metrics = json.loads(RunFolder(out).metrics.read_text())
    for part in ("train", "select", "report"):
        m = metrics[part]
        if m.get("n"):
            print(
                f"{args.modality} {part:6s} ({m['split']}): n={m['n']} accuracy={m['accuracy']:.3f} "
                f"macro_f1={m['macro_f1']:.3f}"
            )
    print(f"outputs: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m modalities.train`: the same as `gvs train`."""
    return run_module("python -m modalities.train", __doc__, EPILOG, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
