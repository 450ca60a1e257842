"""``gvs report --cache CACHE --split S --top N``: the clips of a split worth a report, picked from cached features.

The bundle's models score every cached clip of the split (features made with the bundle's own fingerprints, so
they are what the models were trained on); the ``top`` most confident correct and ``top`` most confidently
wrong clips (by the fused prediction) get a report made from their video files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gvs.core.errors import CacheError, InputError
from gvs.core.predictions import Predictions
from gvs.core.workspace import CacheDir
from gvs.predict.predictor import FUSED, Predictor
from saliency.explain import number_picks, pick_clips

BATCH = 32


def cache_picks(cache: str | Path, predictor: Predictor, split: str, top: int) -> list[tuple[Path, int | None, str]]:
    """(video path, label or None, "confident-1" / "wrong-2" ...) of the picked clips of ``split``."""
    from modalities.data import open_features

    bundle = predictor.bundle
    index_of = {name.lower(): i for i, name in enumerate(predictor.class_names)}
    cache_classes = CacheDir(cache).class_names()

    def label(cached: int) -> int:
        """A cached label (an index into the cache's classes) as an index into the bundle's, -1 when unknown
        to the bundle (the clip then counts as unlabelled)."""
        return index_of.get(cache_classes[cached].lower(), -1) if cached >= 0 else -1

    features = {}
    for modality in bundle.modalities:
        fingerprint = bundle.info["models"][modality]["fingerprint"]
        try:
            features[modality] = open_features(cache, modality, fingerprint)
        except CacheError as error:
            raise InputError(
                f"{cache}: no {modality} features made with the bundle's preprocessing (fingerprint {fingerprint}); "
                f"preprocess the dataset with the bundle's parameters first ({error})"
            ) from error
    keys = sorted(set.intersection(*(set(f.keys) for f in features.values())))
    rows_of = {m: {k: i for i, k in enumerate(f.keys)} for m, f in features.items()}
    fused = []
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        loaded = {m: features[m].load([rows_of[m][k] for k in batch]) for m in bundle.modalities}
        fused.append(np.asarray(predictor.score(loaded, list(bundle.modalities))[FUSED]))
    first, first_row = features[bundle.modalities[0]], rows_of[bundle.modalities[0]]
    predictions = Predictions(
        keys,
        [label(int(first.labels[first_row[key]])) for key in keys],
        np.concatenate(fused) if fused else np.zeros((0, len(predictor.class_names))),
        [""] * len(keys),
        tuple(predictor.class_names),
        splits=[first.splits[first_row[key]] for key in keys],
    )
    clips = {record.key: record for record in CacheDir(cache).clips()}
    return [
        (clips[key].path, clips[key].label, f"{pick}-{rank}")
        for rank, (key, pick) in number_picks(pick_clips(predictions, split, top))
    ]
