"""Per-modality model outputs (hidden vectors and probabilities per clip), computed once and cached.

Every fusion works on these: the modality models are frozen, so running each one once over all clips and
fusing its outputs is equivalent to training a fused network with frozen bases, and far cheaper.

Cached as RUNS/fusion/outputs/<modality>.npz, stamped with the model file's hash and the cache fingerprint;
a retrained model or re-extracted features make it compute again.

Clips lacking a modality's features (extraction failed) cannot be fused with it: :func:`align` keeps the
clips that every fused modality has, and records the left-out clip keys per modality.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError, RunError
from gvs.core.io import atomic_write_bytes, sha256_of
from gvs.core.workspace import CacheDir, RunsDir


@dataclass
class ModalityOutputs:
    """One frozen modality model's outputs, row i = clip ``keys[i]``.

    hidden : ndarray of shape (n_clips, hidden_size)
    probabilities : ndarray of shape (n_clips, 3)
    stamp : the model file's hash and the features' fingerprint they come from
    """

    modality: str
    keys: list[str]
    hidden: np.ndarray
    probabilities: np.ndarray
    stamp: str = ""

    def take(self, rows: np.ndarray) -> ModalityOutputs:
        """The outputs of the clips at ``rows``, in that order."""
        return ModalityOutputs(
            self.modality, [self.keys[i] for i in rows], self.hidden[rows], self.probabilities[rows], self.stamp
        )


def _stored_outputs(path: Path, modality: str, stamp: str) -> ModalityOutputs | None:
    """The outputs cached at ``path`` if they carry ``stamp``; None when absent, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["stamp"]) != stamp:
                return None
            return ModalityOutputs(modality, data["keys"].tolist(), data["hidden"], data["probabilities"], stamp)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError):
        return None  # a corrupt cache file is computed again


def compute_outputs(
    runs: Path, cache: Path, modality: str, batch_size: int = 16, progress: bool = True
) -> ModalityOutputs:
    """Run the trained model of ``modality``, cut at "hidden" and "probabilities", over every cached clip.

    ``batch_size`` clips are read and predicted at a time, so big scene maps never all sit in memory.
    Reuses the outputs cached under RUNS/fusion/outputs/ when the model file and the cache fingerprint are
    unchanged.
    """
    workspace = RunsDir(runs)
    store = CacheDir(cache).current(modality)  # CacheError when the cache holds no such features
    model_path = workspace.modality(modality).model
    if not model_path.is_file():
        raise RunError(
            f"{model_path}: no trained {modality} model; train it with "
            f"`gvs train {modality} --cache {cache} --runs {runs}`"
        )
    stamp = f"{sha256_of(model_path)[:16]}-{store.fingerprint}"
    stored = workspace.outputs_path(modality)
    outputs = _stored_outputs(stored, modality, stamp)
    if outputs is not None:
        return outputs

    from tqdm import tqdm

    from modalities.architectures import cut_at_hidden
    from modalities.data import open_features
    from modalities.train import load_modality_model

    model = load_modality_model(runs, modality, cache)  # raises when the cache holds other features
    cut = cut_at_hidden(model)
    features = open_features(cache, modality, store.fingerprint)
    keys = features.keys
    hidden, probabilities = [], []
    batches = range(0, len(keys), batch_size)
    for start in tqdm(batches, desc=f"{modality} outputs", unit="batch", disable=not progress):
        x = features.load(range(start, min(start + batch_size, len(keys))))
        batch_hidden, batch_probabilities = cut.predict_on_batch(x)
        hidden.append(np.asarray(batch_hidden).reshape(len(x), -1))
        probabilities.append(np.asarray(batch_probabilities))
    outputs = ModalityOutputs(
        modality,
        keys,
        np.concatenate(hidden).astype(np.float32),
        np.concatenate(probabilities).astype(np.float32),
        stamp,
    )
    atomic_write_bytes(
        stored,
        lambda handle: np.savez(
            handle,
            keys=np.array(keys),
            hidden=outputs.hidden,
            probabilities=outputs.probabilities,
            stamp=np.array(stamp),
        ),
    )
    return outputs


def read_partition(runs: Path) -> dict[str, str]:
    """Clip key -> part (train/select/report/test) from RUNS/partition.json, shared by every model."""
    from modalities.partition import load_partition

    return load_partition(runs).part_by_key()


@dataclass
class FusionData:
    """Aligned outputs of several modalities over the same clips, with their labels and parts."""

    keys: list[str]
    y: np.ndarray  # (n_clips,) class index, -1 unlabelled
    parts: np.ndarray  # (n_clips,) train / select / report / test
    outputs: dict[str, ModalityOutputs]
    left_out: dict[str, list[str]]  # modality -> clip keys dropped because it lacks them

    @property
    def modalities(self) -> list[str]:
        return sorted(self.outputs)

    def without(self, drop: list[str]) -> FusionData:
        """The same clips with the named modalities removed."""
        kept = {m: o for m, o in self.outputs.items() if m not in drop}
        if not kept:
            raise InputError(f"dropping {sorted(drop)} leaves no modality to fuse; keep at least one")
        return FusionData(self.keys, self.y, self.parts, kept, self.left_out)

    def rows(self, part: str, labelled: bool = True) -> np.ndarray:
        picked = self.parts == part
        return np.flatnonzero(picked & (self.y >= 0) if labelled else picked)

    def part(self, part: str, labelled: bool = True) -> tuple[dict[str, ModalityOutputs], np.ndarray]:
        """Outputs and labels of the rows in one part."""
        rows = self.rows(part, labelled)
        return {m: o.take(rows) for m, o in self.outputs.items()}, self.y[rows]


def align(outputs: dict[str, ModalityOutputs], partition: dict[str, str], labels: dict[str, int]) -> FusionData:
    """Keep the clips that every modality has and the partition places; rows in partition order."""
    common = set.intersection(*(set(o.keys) for o in outputs.values()))
    keys = [key for key in partition if key in common]
    left_out = {m: sorted(set(partition) - set(o.keys)) for m, o in outputs.items()}
    aligned = {}
    for modality, modality_outputs in outputs.items():
        index = {key: i for i, key in enumerate(modality_outputs.keys)}
        aligned[modality] = modality_outputs.take(np.array([index[key] for key in keys], dtype=int))
    return FusionData(
        keys,
        np.array([labels.get(key, -1) for key in keys]),
        np.array([partition[key] for key in keys]),
        aligned,
        {m: keys_ for m, keys_ in left_out.items() if keys_},
    )


def load_fusion_data(runs: Path, cache: Path, modalities: list[str], progress: bool = True) -> FusionData:
    """Compute (or reuse) every modality's outputs and align them on the shared partition."""
    outputs = {m: compute_outputs(runs, cache, m, progress=progress) for m in modalities}
    return align(outputs, read_partition(runs), CacheDir(cache).labels())
