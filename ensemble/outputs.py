"""Per-modality model outputs (hidden vectors and probabilities per clip), computed once and cached.

Every fusion works on these: the modality models are frozen, so running each one once over all clips and
fusing its outputs is equivalent to training a fused network with frozen bases, and far cheaper.

Cached as RUNS/fusion/outputs/<modality>.npz, stamped with the model file's hash and the cache fingerprint;
a retrained model or re-extracted features make it compute again.

A clip lacking a modality's features (no audio track, extraction failed) is still fused from the modalities it
has: :func:`align` keeps every clip that has at least one fused modality, marks each modality's missing rows
(``ModalityOutputs.present``), and lists the clips that have none (``FusionData.unfused``).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError, RunError
from gvs.core.io import atomic_write_bytes, sha256_of
from gvs.core.vocabulary import CLASS_NAMES
from gvs.core.workspace import CacheDir, RunsDir

log = logging.getLogger(__name__)


@dataclass
class ModalityOutputs:
    """One frozen modality model's outputs, row i = clip ``keys[i]``.

    hidden : ndarray of shape (n_clips, hidden_size)
    probabilities : ndarray of shape (n_clips, n_classes)
    stamp : the model file's hash and the features' fingerprint they come from
    present : ndarray of shape (n_clips,), bool: False where the clip lacks this modality (its hidden row is zeros
        and its probabilities row is uniform; fusions leave it out); None means every clip has it
    sequence : ndarray of shape (n_clips, n_steps, F), the per-step outputs on the visual time grid
        (modalities.sequence; zeros at padded steps and for a missing clip), or None when not computed
    steps : ndarray of shape (n_clips, n_steps), bool: the real steps of ``sequence`` (None with it)
    """

    modality: str
    keys: list[str]
    hidden: np.ndarray
    probabilities: np.ndarray
    stamp: str = ""
    present: np.ndarray | None = None
    sequence: np.ndarray | None = None
    steps: np.ndarray | None = None

    @property
    def presence(self) -> np.ndarray:
        """present : ndarray of shape (n_clips,), bool (all True when ``present`` is None)."""
        return np.ones(len(self.keys), bool) if self.present is None else np.asarray(self.present, bool)

    def take(self, rows: np.ndarray) -> ModalityOutputs:
        """The outputs of the clips at ``rows``, in that order.

        Parameters
        ----------
        rows : ndarray of shape (k,), int

        Returns
        -------
        outputs : ModalityOutputs
            k clips.
        """
        rows = np.asarray(rows, dtype=int)
        return ModalityOutputs(
            self.modality,
            [self.keys[i] for i in rows],
            self.hidden[rows],
            self.probabilities[rows],
            self.stamp,
            None if self.present is None else self.presence[rows],
            None if self.sequence is None else self.sequence[rows],
            None if self.steps is None else self.steps[rows],
        )


def _stored_outputs(path: Path, modality: str, stamp: str) -> ModalityOutputs | None:
    """The outputs cached at ``path`` if they carry ``stamp``; None when absent, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["stamp"]) != stamp:
                return None
            return ModalityOutputs(
                modality,
                data["keys"].tolist(),
                data["hidden"],
                data["probabilities"],
                stamp,
                sequence=data["sequence"],
                steps=data["steps"],
            )
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        log.warning("%s: corrupt cached %s outputs (%s); computing them again", path, modality, error)
        return None


def compute_outputs(
    runs: Path, cache: Path, modality: str, batch_size: int = 16, progress: bool = True
) -> ModalityOutputs:
    """Run the trained model of ``modality``, cut at "hidden", "probabilities" and its per-step "sequence"
    (modalities.sequence, on the visual time grid of the features' parameters), over every cached clip.

    ``batch_size`` clips are read and predicted at a time, so big scene maps never all sit in memory.
    Reuses the outputs cached under RUNS/fusion/outputs/ when the model file and the cache fingerprint are
    unchanged.

    Parameters
    ----------
    runs, cache : Path
    modality : str
    batch_size : int
    progress : bool
        Show a progress bar.

    Returns
    -------
    outputs : ModalityOutputs
        One row per cached clip.
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

    from modalities.data import open_features
    from modalities.sequence import TimeGrid, sequence_model, sequence_outputs
    from modalities.train import load_modality_model

    model = load_modality_model(runs, modality, cache)  # raises when the cache holds other features
    cut = sequence_model(model, modality)
    grid = TimeGrid.from_params(store.params())
    features = open_features(cache, modality, store.fingerprint)
    keys = features.keys
    batches = []
    for start in tqdm(range(0, len(keys), batch_size), desc=f"{modality} outputs", unit="batch", disable=not progress):
        x = features.load(range(start, min(start + batch_size, len(keys))))
        batches.append(sequence_outputs(cut, modality, x, grid))
    hidden, probabilities, sequence, steps = (np.concatenate(parts) for parts in zip(*batches))
    outputs = ModalityOutputs(
        modality,
        keys,
        hidden.astype(np.float32),
        probabilities.astype(np.float32),
        stamp,
        sequence=sequence,
        steps=steps,
    )
    atomic_write_bytes(
        stored,
        lambda handle: np.savez(
            handle,
            keys=np.array(keys),
            hidden=outputs.hidden,
            probabilities=outputs.probabilities,
            sequence=sequence,
            steps=steps,
            stamp=np.array(stamp),
        ),
    )
    return outputs


def read_partition(runs: Path) -> dict[str, str]:
    """Clip key -> part (train/select/report/test) from RUNS/partition.json, shared by every model.

    Parameters
    ----------
    runs : Path

    Returns
    -------
    parts : dict of str to str
    """
    from modalities.partition import load_partition

    return load_partition(runs).part_by_key()


@dataclass
class FusionData:
    """Outputs of several modalities over the same clips (rows aligned), with their labels, parts and classes.

    Every clip the partition places that has at least one of the modalities is a row; each modality's ``present``
    marks the rows it has. ``unfused`` lists the partition's clips that have none of them.
    """

    keys: list[str]
    y: np.ndarray  # (n_clips,) class index, -1 unlabelled
    parts: np.ndarray  # (n_clips,) train / select / report / test
    outputs: dict[str, ModalityOutputs]
    class_names: tuple[str, ...] = CLASS_NAMES
    unfused: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> list[str]:
        return sorted(self.outputs)

    def missing(self, rows: np.ndarray | None = None) -> dict[str, int]:
        """modality -> how many of ``rows`` (default every row) lack it.

        Parameters
        ----------
        rows : ndarray of shape (k,), int, or None

        Returns
        -------
        missing : dict of str to int
        """
        picked = slice(None) if rows is None else np.asarray(rows, dtype=int)
        return {m: int((~o.presence[picked]).sum()) for m, o in sorted(self.outputs.items())}

    def without(self, drop: list[str]) -> FusionData:
        """The same clips with the named modalities removed (a clip left with none is fused from the prior).

        Parameters
        ----------
        drop : list of str
            Modalities.

        Returns
        -------
        data : FusionData
        """
        kept = {m: o for m, o in self.outputs.items() if m not in drop}
        if not kept:
            raise InputError(f"dropping {sorted(drop)} leaves no modality to fuse; keep at least one")
        return replace(self, outputs=kept)

    def rows(self, part: str, labelled: bool = True) -> np.ndarray:
        """The row indices of one part.

        Parameters
        ----------
        part : str
            One of PARTS.
        labelled : bool
            Only the rows with a label (y >= 0).

        Returns
        -------
        rows : ndarray of shape (k,), int
        """
        picked = self.parts == part
        return np.flatnonzero(picked & (self.y >= 0) if labelled else picked)

    def part(self, part: str, labelled: bool = True) -> tuple[dict[str, ModalityOutputs], np.ndarray]:
        """Outputs and labels of the rows in one part.

        Parameters
        ----------
        part : str
            One of PARTS.
        labelled : bool
            Only the rows with a label.

        Returns
        -------
        outputs : dict of str to ModalityOutputs
            k rows each.
        y : ndarray of shape (k,), int
        """
        rows = self.rows(part, labelled)
        return {m: o.take(rows) for m, o in self.outputs.items()}, self.y[rows]

    def inputs(self, reads: str, rows: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """A fusion's arrays of ``rows`` (default every row): see :func:`fusion_inputs`.

        Parameters
        ----------
        reads : str
            The fusion's ``reads``.
        rows : ndarray of shape (k,), int, or None

        Returns
        -------
        X : dict of str to ndarray
            k rows each.
        present : ndarray of shape (k, n_modalities), bool
            Columns in sorted modality order.
        """
        outputs = self.outputs if rows is None else {m: o.take(rows) for m, o in self.outputs.items()}
        return fusion_inputs(outputs, reads)


def fusion_inputs(outputs: Mapping[str, ModalityOutputs], reads: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The arrays a fusion reads, from the modality outputs records: the one place records become fusion input.

    Parameters
    ----------
    outputs : mapping of str to ModalityOutputs
        Modality -> outputs of the same n_clips clips (rows aligned).
    reads : str
        The fusion's ``reads`` (ensemble.fusions.READS): "probabilities", "hidden" or "sequence".

    Returns
    -------
    X : dict of str to ndarray
        Modality -> its ``reads`` array (and, for "sequence", ``steps_key(modality)`` -> its real steps), see
        ensemble.fusions.
    present : ndarray of shape (n_clips, n_modalities), bool
        Columns in sorted modality order (the fusions' order).
    """
    from .fusions import fusion_arrays

    modalities = sorted(outputs)
    arrays = {
        m: {kind: getattr(outputs[m], kind) for kind in ("probabilities", "hidden", "sequence", "steps")}
        for m in modalities
    }
    present = np.stack([outputs[m].presence for m in modalities], axis=1)
    return fusion_arrays(reads, arrays), present


def align(
    outputs: dict[str, ModalityOutputs],
    partition: dict[str, str],
    labels: dict[str, int],
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> FusionData:
    """Every clip the partition places that has at least one modality, in partition order; a modality's missing
    rows get zero hidden vectors and sequences, uniform probabilities, ``present`` False and no real step.

    Parameters
    ----------
    outputs : dict of str to ModalityOutputs
    partition : dict of str to str
        Clip key -> part (read_partition).
    labels : dict of str to int
        Clip key -> class index; clips without one get -1.
    class_names : tuple of str

    Returns
    -------
    data : FusionData
    """
    having = set().union(*(o.keys for o in outputs.values()))
    keys = [key for key in partition if key in having]
    aligned = {}
    for modality, modality_outputs in outputs.items():
        index = {key: i for i, key in enumerate(modality_outputs.keys)}
        present = np.array([key in index for key in keys], dtype=bool)
        rows = np.array([index.get(key, 0) for key in keys], dtype=int)
        n_classes = modality_outputs.probabilities.shape[1]
        hidden = np.where(present[:, None], modality_outputs.hidden[rows], 0).astype(np.float32)
        probabilities = np.where(present[:, None], modality_outputs.probabilities[rows], 1 / n_classes)
        sequence = steps = None
        if modality_outputs.sequence is not None:
            sequence = np.where(present[:, None, None], modality_outputs.sequence[rows], 0).astype(np.float32)
            steps = present[:, None] & modality_outputs.steps[rows]
        aligned[modality] = ModalityOutputs(
            modality, keys, hidden, probabilities.astype(np.float32), modality_outputs.stamp, present, sequence, steps
        )
    return FusionData(
        keys,
        np.array([labels.get(key, -1) for key in keys], dtype=int),
        np.array([partition[key] for key in keys]),
        aligned,
        tuple(class_names),
        [key for key in partition if key not in having],
    )


def load_fusion_data(runs: Path, cache: Path, modalities: list[str], progress: bool = True) -> FusionData:
    """Compute (or reuse) every modality's outputs and align them on the shared partition.

    Parameters
    ----------
    runs, cache : Path
    modalities : list of str
    progress : bool

    Returns
    -------
    data : FusionData
    """
    outputs = {m: compute_outputs(runs, cache, m, progress=progress) for m in modalities}
    cache_dir = CacheDir(cache)
    return align(outputs, read_partition(runs), cache_dir.labels(), cache_dir.class_names())
