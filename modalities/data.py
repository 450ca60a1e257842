"""One modality's cached features, read per batch (or held in memory when they are small)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from gvs.core.errors import CacheError, CorruptFileError
from gvs.core.workspace import CacheDir, FeatureStore

log = logging.getLogger(__name__)


@dataclass
class ModalityFeatures:
    """The clips that have features of one modality under the cache's current fingerprint."""

    store: FeatureStore
    keys: list[str]
    splits: list[str]
    labels: np.ndarray  # (N,) int, -1 where unlabelled
    shape: tuple[int, ...]  # per clip
    params: dict
    class_names: tuple[str, ...]  # what the labels index (CACHE/classes.json)
    _memory: np.ndarray | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return self.store.fingerprint

    def nbytes(self) -> int:
        return len(self.keys) * math.prod(self.shape) * 4

    def hold_in_memory(self) -> None:
        """Read every clip once and keep the stacked float32 array."""
        if self._memory is None:
            self._memory = self._read(range(len(self.keys)))

    def load(self, indices) -> np.ndarray:
        """float32 features of the clips at ``indices`` (rows of ``keys``).

        Parameters
        ----------
        indices : array-like of int

        Returns
        -------
        features : ndarray of shape (len(indices), *shape), float32
        """
        indices = np.asarray(indices, dtype=int)
        return self._memory[indices] if self._memory is not None else self._read(indices)

    def _read(self, indices) -> np.ndarray:
        batch = np.empty((len(indices),) + self.shape, np.float32)
        for row, index in enumerate(indices):
            arrays, _ = self.store.read(self.keys[index])
            batch[row] = arrays["features"]
        return batch


def open_features(cache_root: str | Path, modality: str, fingerprint: str | None = None) -> ModalityFeatures:
    """Index the clips of CACHE/clips.csv that have valid ``modality`` features of the cache's last run (or
    ``fingerprint``), reading each file once to check it; corrupt or foreign files are reported and left out
    (the next preprocessing run recomputes them).

    Parameters
    ----------
    cache_root : str or Path
    modality : str
    fingerprint : str or None
        A feature store's fingerprint; None for the cache's current one.

    Returns
    -------
    features : ModalityFeatures
    """
    cache = CacheDir(cache_root)
    store = cache.current(modality) if fingerprint is None else cache.store(modality, fingerprint)
    rows, shape, corrupt = [], None, []
    for row in cache.clip_rows():
        if not store.path(row["key"]).is_file():
            continue
        try:
            arrays, _ = store.read(row["key"])
        except CorruptFileError as error:
            corrupt.append(str(error))
            continue
        rows.append(row)
        shape = shape or tuple(arrays["features"].shape)
    for message in corrupt:
        log.warning("%s", message)
    if not rows:
        raise CacheError(
            f"{store.folder}: no valid {modality} clips with fingerprint {store.fingerprint}; "
            f"run `gvs preprocess DATASET --cache {cache.root}` first"
        )
    labels = np.array([int(r["label"]) if r["label"] != "" else -1 for r in rows])
    return ModalityFeatures(
        store, [r["key"] for r in rows], [r["split"] for r in rows], labels, shape, store.params(), cache.class_names()
    )


class ClipBatches(keras.utils.PyDataset):
    """Batches of features only, or (features, labels, weights) when ``class_weights`` (one weight per class)
    are given; in the order of ``indices``, or reshuffled each epoch from ``seed``."""

    def __init__(
        self,
        features: ModalityFeatures,
        indices: np.ndarray,
        batch_size: int,
        class_weights: np.ndarray | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.indices = np.asarray(indices, dtype=int)
        self.batch_size = batch_size
        self.class_weights = class_weights
        self.seed = seed
        self.epoch = 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if self.seed is None:
            return self.indices
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.indices)

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, batch: int):
        rows = self.order[batch * self.batch_size : (batch + 1) * self.batch_size]
        x = self.features.load(rows)
        if self.class_weights is None:
            return x
        y = self.features.labels[rows]
        return x, y, self.class_weights[y].astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
