"""The workspace: every path under CACHE/ and RUNS/, spelled here and nowhere else, and the readers.

CACHE/ (written by preprocessing)::

    source.json                                       the dataset this cache belongs to (one source per cache)
    clips.csv                                         the source's clips: key, split, name, label, path, group
    classes.json                                      the class names the labels index (default VGAF's three)
    current.json                                      fingerprint of the last run, per modality
    .lock                                             held by the run that is writing
    logs/<time>.json                                  summary of each run
    features/<modality>/<fingerprint>/params.json     what made these features
    features/<modality>/<fingerprint>/features.json   shape and dtype every clip's features must have
    features/<modality>/<fingerprint>/<key>.npz       one clip's features (key = <split>/<name>)
    features/<modality>/<fingerprint>/<key>.failed.json  why extraction failed

RUNS/ (written by training and fusion)::

    workspace.json                                    the cache these runs were trained from
    partition.json                                    train / select / report / test clip keys
    <modality>/                                       a RunFolder: model.keras, config.json, metrics.json, ...
    fusion/<fusion>-<modalities>/                     a RunFolder of a fusion: fusion.json, model.keras, ...
    fusion/outputs/<modality>.npz                     each frozen modality model's outputs on every clip
    fusion/comparison.{md,csv,json}  ablation/<fusion>.{md,csv,json,png}
    fusion/reliability.png                            reliability diagram of every compared model
    config.toml                                       the resolved experiment (`gvs run --config` re-runs it)
    oof/k<K>/fold-<k>/                                cross-fitting runs (--oof K): their own partition and models
    seed-<seed>/  seeds.{md,csv,json}                 one runs folder per seed (--seeds) and the mean ± std table
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CacheBusyError, CacheError, CorruptFileError, DiskError, FolderBusyError, RunError
from .io import (
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    clean_temporary,
    disk_errors,
    read_csv,
    read_json,
)
from .predictions import Predictions
from .vocabulary import CLASS_NAMES

# Scene maps barely compress (7.4 -> 5.8 MB a clip) but decompressing them makes each read 3.5x slower
# (44 vs 12.5 ms), and training reads every clip every epoch; the small modalities stay compressed.
UNCOMPRESSED_MODALITIES = frozenset({"scene"})
CLIP_COLUMNS: list[str] = ["key", "split", "name", "label", "path", "group"]


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset: its name (unique within its split), split, video path, class index (None if unknown)
    and group (clips cut from one source video share one; "" means the clip is its own group)."""

    name: str
    split: str
    path: Path
    label: int | None = None
    group: str = ""

    @property
    def key(self) -> str:
        """Unique key of the clip in its source, ``<split>/<name>``; also its file name in the cache."""
        return f"{self.split}/{self.name}"


def check_key(key: str) -> str:
    """``key`` if it is a safe relative path (no empty, '.' or '..' parts, not absolute); else CacheError."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise CacheError(f"clip key {key!r} is not a safe relative name (<split>/<clip>); rename the clip or split")
    return key


class FeatureStore:
    """One modality's features for one fingerprint: ``<key>.npz`` files, validated on every read."""

    def __init__(self, cache: CacheDir, modality: str, fingerprint: str) -> None:
        self.cache = cache
        self.modality = modality
        self.fingerprint = fingerprint
        self.folder = cache.root / "features" / modality / fingerprint

    def path(self, key: str) -> Path:
        """The feature file of clip ``key``; never outside this store's folder."""
        return self.folder / f"{check_key(key)}.npz"

    def failure_path(self, key: str) -> Path:
        return self.folder / f"{check_key(key)}.failed.json"

    @property
    def params_path(self) -> Path:
        return self.folder / "params.json"

    @property
    def layout_path(self) -> Path:
        return self.folder / "features.json"

    def write_params(self, params: dict) -> None:
        if not self.params_path.is_file():
            atomic_write_json(self.params_path, params)

    def params(self) -> dict:
        return read_json(self.params_path) if self.params_path.is_file() else {}

    def layout(self) -> dict | None:
        """{"shape": per-clip feature shape, "dtype": ...}, fixed by the first clip written; None before."""
        return read_json(self.layout_path) if self.layout_path.is_file() else None

    def write(self, key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Write one clip's arrays plus a JSON ``meta`` record atomically; clears an earlier failure record."""
        features = arrays["features"]
        expected = self.layout()
        if expected is None:
            atomic_write_json(self.layout_path, {"shape": list(features.shape), "dtype": str(features.dtype)})
        elif list(features.shape) != expected["shape"]:
            raise CacheError(
                f"{self.path(key)}: features of shape {tuple(features.shape)}, but this store holds "
                f"{tuple(expected['shape'])}"
            )
        payload = dict(arrays, meta=np.array(json.dumps(dict(meta, fingerprint=self.fingerprint))))
        save = np.savez if self.modality in UNCOMPRESSED_MODALITIES else np.savez_compressed
        atomic_write_bytes(self.path(key), lambda handle: save(handle, **payload))
        self.failure_path(key).unlink(missing_ok=True)

    def write_failure(self, key: str, reason: str) -> None:
        atomic_write_json(self.failure_path(key), {"clip": key, "reason": reason})

    def read(self, key: str) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and meta of one clip, checked: a readable archive, ``features`` and ``mask`` present, the
        store's shape, its fingerprint. Raises CorruptFileError naming the file (never loads pickles)."""
        path = self.path(key)
        if not path.is_file():
            raise CacheError(
                f"{path}: clip {key!r} has no {self.modality} features (extraction failed or the key "
                "is wrong; keys look like Val/1_1)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files if name != "meta"}
                meta = json.loads(str(data["meta"])) if "meta" in data.files else None
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError) as error:  # bit rot: zlib
            raise CorruptFileError(
                f"corrupt feature file {path} ({type(error).__name__}); it is treated as "
                "missing: re-run preprocessing to recompute it"
            ) from error
        if not isinstance(meta, dict) or "features" not in arrays or "mask" not in arrays:
            raise CorruptFileError(
                f"corrupt feature file {path}: lacks features, mask or meta; re-run preprocessing to recompute it"
            )
        expected = self.layout()
        shape = tuple(arrays["features"].shape)
        if expected is not None and shape != tuple(expected["shape"]):
            raise CorruptFileError(
                f"{path} holds {shape} features, {self.modality} expects {tuple(expected['shape'])}"
                "; it is treated as missing: delete it or re-run preprocessing"
            )
        if meta.get("fingerprint", self.fingerprint) != self.fingerprint:
            raise CorruptFileError(
                f"{path} was made with fingerprint {meta['fingerprint']}, not {self.fingerprint}"
                "; it is treated as missing: delete it or re-run preprocessing"
            )
        return arrays, meta

    def has(self, key: str) -> bool:
        """True when clip ``key`` has a readable, valid feature file (a corrupt one counts as missing)."""
        try:
            self.read(key)
        except CacheError:
            return False
        return True

    def keys(self) -> list[str]:
        """Keys of every feature file present (valid or not), sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.folder).as_posix()[: -len(".npz")]
            for p in self.folder.rglob("*.npz")
            if not p.name.startswith(".")
        )

    def clean_temporary(self) -> int:
        """Remove temporary files left by interrupted writes (call only while holding the cache lock)."""
        return clean_temporary(self.folder)


class CacheDir:
    """CACHE/: the features of one source, its clip list, the current fingerprints, the lock and run logs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"CacheDir({str(self.root)!r})"

    clips_path = property(lambda self: self.root / "clips.csv")
    current_path = property(lambda self: self.root / "current.json")
    classes_path = property(lambda self: self.root / "classes.json")
    source_path = property(lambda self: self.root / "source.json")
    lock_path = property(lambda self: self.root / ".lock")
    logs = property(lambda self: self.root / "logs")

    def store(self, modality: str, fingerprint: str) -> FeatureStore:
        return FeatureStore(self, modality, fingerprint)

    def current_fingerprints(self) -> dict[str, str]:
        return read_json(self.current_path) if self.current_path.is_file() else {}

    def set_current_fingerprints(self, fingerprints: dict[str, str]) -> None:
        merged = self.current_fingerprints() | fingerprints
        if merged != self.current_fingerprints():
            atomic_write_json(self.current_path, merged)

    def current(self, modality: str) -> FeatureStore:
        """The store of ``modality`` written by the last preprocessing run; CacheError when there is none."""
        fingerprint = self.current_fingerprints().get(modality)
        if fingerprint is None:
            raise CacheError(
                f"{self.root}: the cache holds no {modality} features; run "
                f"`gvs preprocess DATASET --cache {self.root}` with {modality} enabled first"
            )
        return self.store(modality, fingerprint)

    def write_clips(self, clips: list[ClipRecord], class_names: tuple[str, ...] = CLASS_NAMES) -> None:
        """CACHE/clips.csv := exactly ``clips`` (the current source's clips) and CACHE/classes.json := the names
        their labels index; each written only when it changes."""
        if self.class_names() != tuple(class_names) or not self.classes_path.is_file():
            atomic_write_json(self.classes_path, {"classes": list(class_names)})
        rows = [[c.key, c.split, c.name, "" if c.label is None else c.label, str(c.path), c.group] for c in clips]
        current = [[r.get(c, "") for c in CLIP_COLUMNS] for r in self.clip_rows()]
        if current != [[str(v) for v in row] for row in rows]:
            atomic_write_csv(self.clips_path, CLIP_COLUMNS, rows)

    def clip_rows(self) -> list[dict[str, str]]:
        """Rows of clips.csv (key, split, name, label, path, group), [] when there is none; caches written before
        groups existed get group "" (each clip its own group)."""
        rows = read_csv(self.clips_path) if self.clips_path.is_file() else []
        return [{"group": ""} | row for row in rows]

    def class_names(self) -> tuple[str, ...]:
        """The class names the labels of clips.csv index (VGAF's three for caches written before classes.json)."""
        return tuple(read_json(self.classes_path)["classes"]) if self.classes_path.is_file() else CLASS_NAMES

    def clips(self) -> list[ClipRecord]:
        return [
            ClipRecord(
                r["name"], r["split"], Path(r["path"]), int(r["label"]) if r["label"] != "" else None, r["group"]
            )
            for r in self.clip_rows()
        ]

    def labels(self) -> dict[str, int]:
        """Clip key -> class index (-1 when unlabelled)."""
        return {r["key"]: int(r["label"]) if r["label"] != "" else -1 for r in self.clip_rows()}

    def claim_source(self, source: dict) -> None:
        """Record that this cache belongs to ``source`` ({"path": ..., "kind": ...}); CacheError when it already
        belongs to another one, so two datasets never share (and mix) one cache."""
        if self.source_path.is_file():
            owner = read_json(self.source_path)
            if owner.get("path") != source["path"]:
                raise CacheError(
                    f"{self.root} holds the features of {owner.get('path')}, not of {source['path']}; pass another "
                    f"--cache for this dataset (one cache per dataset, so clips of two datasets are never mixed)"
                )
            if owner == source:
                return
        atomic_write_json(self.source_path, source)

    def source(self) -> dict:
        return read_json(self.source_path) if self.source_path.is_file() else {}

    def lock(self) -> contextlib.AbstractContextManager[bool]:
        """Hold CACHE/.lock while writing (see :func:`folder_lock`); CacheBusyError when another run holds it."""
        return folder_lock(self.root, "--cache", CacheBusyError)

    def log_path(self) -> Path:
        return self.logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"


@contextlib.contextmanager
def folder_lock(
    root: Path, option: str, busy: type[FolderBusyError] = FolderBusyError, read_only_ok: bool = True
) -> Iterator[bool]:
    """Hold ROOT/.lock (an exclusive flock holding "pid N, started TIME") while a run writes into ``root``.

    Raises ``busy`` naming the holder when another process holds it (``option`` is how to pick another folder).
    On a folder that cannot be written, yields False (no lock: readers may go on, writers will raise DiskError),
    or raises that DiskError now when not ``read_only_ok``."""
    with disk_errors(root):
        root.mkdir(parents=True, exist_ok=True)
    try:
        with disk_errors(root):
            handle = (root / ".lock").open("a+")
    except (OSError, DiskError):  # a read-only folder
        if not read_only_ok:
            raise
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise busy(f"{root} is in use by {holder}; wait for that run to finish or use another {option}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RunFolder:
    """The files of one trained model or fusion (RUNS/<modality>/ or RUNS/fusion/<name>/)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    model = property(lambda self: self.folder / "model.keras")
    config = property(lambda self: self.folder / "config.json")
    metrics = property(lambda self: self.folder / "metrics.json")
    history = property(lambda self: self.folder / "history.csv")
    confusion = property(lambda self: self.folder / "confusion.png")
    predictions = property(lambda self: self.folder / "predictions.csv")
    submission = property(lambda self: self.folder / "submission")
    fusion = property(lambda self: self.folder / "fusion.json")
    scaler = property(lambda self: self.folder / "scaler.npz")
    decoder = property(lambda self: self.folder / "decoder.keras")
    result = property(lambda self: self.folder / "result.json")
    latents = property(lambda self: self.folder / "latents.png")
    attention = property(lambda self: self.folder / "attention.png")

    def write_predictions(self, predictions: Predictions) -> None:
        """predictions.csv: one row per clip (the format of :class:`~gvs.core.predictions.Predictions`)."""
        predictions.write(self.predictions)

    def read_predictions(self) -> Predictions:
        """The predictions in predictions.csv (every clip, every part); RunError when there are none."""
        if not self.predictions.is_file():
            raise RunError(f"{self.predictions}: no predictions; train the model first (`gvs train` or `gvs run`)")
        return Predictions.read(self.predictions)

    def read_config(self) -> dict:
        if not self.config.is_file():
            raise RunError(f"{self.config}: missing; the run in {self.folder} did not finish, train it again")
        return read_json(self.config)


def load_keras_model(path: Path):
    """A saved Keras model (safe mode: no code from the file runs); a corrupt file raises CorruptFileError.

    Models with the toolkit's own layers need them registered first: import ``modalities.architectures``
    (``modalities.train.load_modality_model`` does; the core imports no stage)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such model file; train it first (`gvs train` or `gvs run`)")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(f"corrupt model file {path}: not a Keras archive; delete its folder and train again")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise CorruptFileError(
            f"corrupt model file {path} ({type(error).__name__}: {error}); delete its folder and train again"
        ) from error


class RunsDir:
    """RUNS/: one folder per modality model and per fusion, the shared partition, tables and figures."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunsDir({str(self.root)!r})"

    partition_path = property(lambda self: self.root / "partition.json")
    config_path = property(lambda self: self.root / "config.toml")  # the resolved experiment of the last `gvs run`
    workspace_path = property(lambda self: self.root / "workspace.json")
    fusion_root = property(lambda self: self.root / "fusion")
    outputs_root = property(lambda self: self.root / "fusion" / "outputs")

    def modality(self, modality: str) -> RunFolder:
        return RunFolder(self.root / modality)

    def fusion(self, name: str) -> RunFolder:
        return RunFolder(self.fusion_root / name)

    def fusion_names(self) -> list[str]:
        """Names of the fitted fusions (folders under RUNS/fusion/ with a fusion.json), sorted."""
        if not self.fusion_root.is_dir():
            return []
        return sorted(
            p.name for p in self.fusion_root.iterdir() if not p.name.startswith(".") and RunFolder(p).fusion.is_file()
        )  # not staging folders

    def outputs_path(self, modality: str) -> Path:
        return self.outputs_root / f"{modality}.npz"

    def oof_fold(self, folds: int, fold: int) -> RunsDir:
        """The runs folder of one cross-fitting fold: models trained on the train part without fold ``fold`` of
        ``folds`` (RUNS/oof/k<folds>/fold-<fold>/, with its own partition.json)."""
        return RunsDir(self.root / "oof" / f"k{folds}" / f"fold-{fold}")

    def seed_runs(self, seed: int) -> RunsDir:
        """The runs folder of one seed of a multi-seed run (RUNS/seed-<seed>/)."""
        return RunsDir(self.root / f"seed-{seed}")

    def seeds_stem(self) -> Path:
        """RUNS/seeds.{md,csv,json}: the mean ± std over seeds of every table row."""
        return self.root / "seeds"

    @property
    def bundle_path(self) -> Path:
        """Where the whole chain exports its model bundle (RUNS/bundle/ and RUNS/bundle.zip)."""
        return self.root / "bundle"

    def comparison_stem(self) -> Path:
        return self.fusion_root / "comparison"

    def ablation_stem(self, kind: str) -> Path:
        return self.root / "ablation" / kind

    def claim_cache(self, cache: CacheDir) -> None:
        """Record the cache these runs come from; RunError when they were made from another cache."""
        record = {"cache": str(cache.root.resolve()), "source": cache.source().get("path")}
        if self.workspace_path.is_file():
            owner = read_json(self.workspace_path)
            if owner.get("cache") != record["cache"] or owner.get("source") != record["source"]:
                raise RunError(
                    f"{self.root} holds models trained from {owner.get('cache')} (dataset "
                    f"{owner.get('source')}), not from {record['cache']} (dataset {record['source']}); "
                    "pass another --runs folder"
                )
            return
        atomic_write_json(self.workspace_path, record)

    def load_model(self, modality: str):
        """The trained model of ``modality`` (RUNS/<modality>/model.keras)."""
        path = self.modality(modality).model
        if not path.is_file():
            raise RunError(
                f"{path}: no trained {modality} model; run `gvs train {modality} --cache CACHE --runs {self.root}`"
            )
        return load_keras_model(path)


class BundleDir:
    """BUNDLE/: a model bundle written by `gvs export`, everything `gvs predict` needs and nothing else.

    BUNDLE/ (and BUNDLE.zip, the same files under one folder BUNDLE/)::

        bundle.json                 what the bundle holds: format, classes, modalities, fusion, preprocessing
                                    parameters, feature fingerprints, training data, report metrics, version
        manifest.json               {relative path: sha256} of every other file
        <modality>/model.keras      each fused modality's model (the RUNS file, byte for byte)
        fusion/                     the fusion's RunFolder as the ensemble saves it: fusion.json (+ model.keras,
                                    scaler.npz, and decoder.keras for vae)
    """

    FORMAT = 2  # bump when the layout or bundle.json changes so older readers cannot follow (2: presence masks)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BundleDir({str(self.root)!r})"

    info_path = property(lambda self: self.root / "bundle.json")
    manifest_path = property(lambda self: self.root / "manifest.json")
    fusion = property(lambda self: RunFolder(self.root / "fusion"))
    zip_path = property(lambda self: self.root.with_name(f"{self.root.name}.zip"))

    def modality(self, modality: str) -> RunFolder:
        return RunFolder(self.root / modality)

    def is_bundle(self) -> bool:
        """True when the folder has a bundle.json or a manifest.json (a bundle, maybe a damaged one)."""
        return self.info_path.is_file() or self.manifest_path.is_file()

    def files(self) -> list[str]:
        """Relative POSIX paths of every file in the bundle except manifest.json, sorted."""
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file() and p != self.manifest_path
        )


def gvs_home() -> Path:
    """The user's folder of the toolkit: $GVS_HOME, else ~/.cache/group-video-sentiment."""
    return Path(os.environ.get("GVS_HOME") or Path.home() / ".cache" / "group-video-sentiment")


def last_bundle_pointer() -> Path:
    """The file that remembers the last exported bundle (``gvs predict`` uses it when no --model is given)."""
    return gvs_home() / "last-bundle.json"


def unpacked_bundle_dir(zip_sha256: str) -> Path:
    """Where a bundle .zip is unpacked, keyed by the zip's sha256 (so one zip is unpacked once)."""
    return gvs_home() / "bundles" / zip_sha256[:32]


class PredictionsDir:
    """The output folder of `gvs predict`: one row per video, one per window, everything as JSON, timelines and
    EmotiW submission files; each video's record and timeline are written the moment it finishes, and
    run.json (the run manifest) says which videos are complete, with which bundle and options.

    A video's ``name`` is unique per input of a run (its file name without the extension, or its path from the
    inputs' common folder where two inputs share one: ``d1/clip``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    videos_csv = property(lambda self: self.root / "predictions.csv")
    windows_csv = property(lambda self: self.root / "windows.csv")
    json = property(lambda self: self.root / "predictions.json")
    manifest = property(lambda self: self.root / "run.json")
    records = property(lambda self: self.root / "videos")
    timelines = property(lambda self: self.root / "timelines")
    emotiw = property(lambda self: self.root / "emotiw")
    emotiw_zip = property(lambda self: self.root / "emotiw.zip")
    people = property(lambda self: self.root / "people")

    def timeline(self, name: str) -> Path:
        return self.timelines / f"{check_key(name)}.png"

    def people_csv(self, name: str) -> Path:
        """people/<name>.csv: one row per person of one video."""
        return self.people / f"{check_key(name)}.csv"

    def person_thumbnail(self, name: str, person: int) -> Path:
        """people/<name>/person-<id>.jpg: one person's largest face (blurred under --blur-faces)."""
        return self.people / check_key(name) / f"person-{int(person)}.jpg"

    def record(self, name: str) -> Path:
        """videos/<name>.json: one video's predictions.json record, written when it finishes."""
        return self.records / f"{check_key(name)}.json"

    def lock(self) -> contextlib.AbstractContextManager[bool]:
        """Hold OUT/.lock while a run writes here (see :func:`folder_lock`); FolderBusyError naming the other run
        when one holds it, DiskError now when the folder cannot be written."""
        return folder_lock(self.root, "--out", read_only_ok=False)
