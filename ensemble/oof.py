"""Out-of-fold outputs (K-fold cross-fitting) for the fusions that learn from modality outputs.

A modality model's outputs on its own training clips are memorised: fusions trained on them (fc, vae, attention,
lstm: hidden vectors and per-step sequences alike) learn how
confident each model is on clips it has seen. With ``--oof K`` the train part is cut into K folds by whole groups
(stratified); for each fold a model of the same modality and options is trained on the other folds and predicts
that fold. The fusions then learn from these out-of-fold outputs; select, report and test clips keep the main
model's outputs. Fold models live in RUNS/oof/k<K>/fold-<k>/, each with its own partition.json (train = train
minus the fold, select = the main select part, report = the fold), so a re-run reuses them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError
from gvs.core.io import atomic_write_text, digest_of, read_json
from gvs.core.workspace import CacheDir, RunsDir

from .outputs import FusionData, ModalityOutputs


def fold_assignment(labels: np.ndarray, groups: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold index (n,) of each training clip: stratified by ``labels`` (n,), a group never in two folds.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
    groups : list of str
        One per clip.
    folds : int
    seed : int

    Returns
    -------
    folds : ndarray of shape (n,), int
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if len(set(groups)) < folds:
        raise InputError(
            f"--oof {folds}: the train part has only {len(set(groups))} groups (source videos), fewer than {folds} "
            "folds; give a smaller --oof"
        )
    largest = int(np.bincount(np.asarray(labels, dtype=int)).max()) if len(labels) else 0
    if largest < folds:
        raise InputError(f"--oof {folds}: the train part has at most {largest} clips of a class; give a smaller --oof")
    assignment = np.empty(len(labels), dtype=int)
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        assignment[held] = fold
    return assignment


def out_of_fold_outputs(
    runs: Path, cache: Path, modality: str, folds: int, train_options: dict | None = None, progress: bool = True
) -> ModalityOutputs:
    """Outputs of ``modality`` on the labelled train-part clips that have it, each from the fold model that did not
    train on it; ``train_options`` must be the main model's (seed, epochs, sizes...).

    Parameters
    ----------
    runs, cache : Path
    modality : str
    folds : int
    train_options : dict or None
    progress : bool

    Returns
    -------
    outputs : ModalityOutputs
    """
    from tqdm import tqdm

    from modalities.data import open_features
    from modalities.partition import groups_of, load_partition
    from modalities.train import train_modality

    from .outputs import compute_outputs

    partition = load_partition(runs)
    rows = {row["key"]: row for row in CacheDir(cache).clip_rows()}
    having = set(open_features(cache, modality).keys)
    keys = [k for k in partition.parts["train"] if k in having and rows[k]["label"] != ""]
    labels = np.array([int(rows[k]["label"]) for k in keys])
    assignment = fold_assignment(labels, groups_of([rows[k] for k in keys]), folds, partition.seed)
    hidden, probabilities, sequence, steps, stamps = {}, {}, {}, {}, []
    for fold in tqdm(range(folds), desc=f"{modality} out-of-fold", unit="fold", disable=not progress):
        held = [k for k, f in zip(keys, assignment) if f == fold]
        fold_runs = RunsDir(runs).oof_fold(folds, fold)
        _write_fold_partition(fold_runs, partition, held)
        train_modality(modality, cache, fold_runs.root, verbose=0, **(train_options or {}))
        outputs = compute_outputs(fold_runs.root, cache, modality, progress=False)
        index = {key: i for i, key in enumerate(outputs.keys)}
        for key in held:
            row = index[key]
            hidden[key], probabilities[key] = outputs.hidden[row], outputs.probabilities[row]
            sequence[key], steps[key] = outputs.sequence[row], outputs.steps[row]
        stamps.append(outputs.stamp)
    return ModalityOutputs(
        modality,
        keys,
        np.stack([hidden[k] for k in keys]),
        np.stack([probabilities[k] for k in keys]),
        f"oof{folds}-{digest_of(stamps, 16)}",
        sequence=np.stack([sequence[k] for k in keys]),
        steps=np.stack([steps[k] for k in keys]),
    )


def _write_fold_partition(fold_runs: RunsDir, partition, held: list[str]) -> None:
    """fold_runs/partition.json: the main partition with ``held`` moved from train to report (the rest of the
    main report part to test), written only when absent or different."""
    held_set = set(held)
    parts = {
        "train": [k for k in partition.parts["train"] if k not in held_set],
        "select": list(partition.parts["select"]),
        "report": list(held),
        "test": [*partition.parts["report"], *partition.parts["test"]],
    }
    sources = dict(partition.sources, train="train part minus this fold", report="this fold of the train part")
    fold = asdict(replace(partition, parts=parts, sources=sources))
    path = fold_runs.partition_path
    if not path.is_file() or read_json(path) != json.loads(json.dumps(fold)):
        atomic_write_text(path, json.dumps(fold, indent=1))


def with_out_of_fold(data: FusionData, oof: dict[str, ModalityOutputs]) -> FusionData:
    """``data`` with each modality's train-part rows taken from ``oof`` where it has them (other rows unchanged,
    stamps combined so fusions fitted on the in-sample outputs are fitted again).

    Parameters
    ----------
    data : FusionData
    oof : dict of str to ModalityOutputs
        From out_of_fold_outputs, by modality.

    Returns
    -------
    data : FusionData
    """
    outputs = {}
    for modality, current in data.outputs.items():
        extra = oof.get(modality)
        if extra is None:
            outputs[modality] = current
            continue
        index = {key: i for i, key in enumerate(extra.keys)}
        hidden, probabilities = current.hidden.copy(), current.probabilities.copy()
        has_steps = current.sequence is not None and extra.sequence is not None
        sequence, steps = (current.sequence.copy(), current.steps.copy()) if has_steps else (None, None)
        for row in data.rows("train"):
            key = data.keys[row]
            if key in index and current.presence[row]:
                hidden[row], probabilities[row] = extra.hidden[index[key]], extra.probabilities[index[key]]
                if has_steps:
                    sequence[row], steps[row] = extra.sequence[index[key]], extra.steps[index[key]]
        outputs[modality] = replace(
            current,
            hidden=hidden,
            probabilities=probabilities,
            sequence=sequence,
            steps=steps,
            stamp=f"{current.stamp}+{extra.stamp}",
        )
    return replace(data, outputs=outputs)
