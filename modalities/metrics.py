"""Classification metrics computed one way for every model and fusion, and the confusion-matrix figure."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, recall_score

from gvs.core.io import atomic_write_bytes
from gvs.core.vocabulary import CLASS_NAMES


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, split: str = "", class_names: tuple[str, ...] = CLASS_NAMES
) -> dict:
    """Accuracy, macro precision/recall/F1 (averaged over the classes present in either array, a class never
    predicted has precision 0), per-class recall, the confusion matrix (rows: truth), n and the split the numbers
    come from, by scikit-learn. ``y_true`` and ``y_pred`` : ndarray of shape (n_clips,), class indices.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_clips,), int
    split : str
        Recorded with the numbers as ``"split"``: where the clips come from. A modality run passes its part's
        description (``Partition.sources``, prose such as "Val (ours protocol: ...)"), a fusion the clips' split
        names joined by "+" ("Val"); the name stays for the metrics.json, result.json and tables already written.
    class_names : tuple of str

    Returns
    -------
    metrics : dict
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    labels = np.arange(len(class_names))
    if len(y_true):
        counts = confusion_matrix(y_true, y_pred, labels=labels)
        accuracy = accuracy_score(y_true, y_pred)
        macro = precision_recall_fscore_support(
            y_true, y_pred, labels=np.union1d(y_true, y_pred), average="macro", zero_division=0
        )[:3]
        recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    else:
        counts, recall = np.zeros((len(labels), len(labels)), dtype=int), np.zeros(len(labels))
        accuracy, macro = 0.0, (0.0, 0.0, 0.0)
    return {
        "split": split,
        "n": len(y_true),
        "accuracy": float(accuracy),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "per_class_recall": {name: float(value) for name, value in zip(class_names, recall)},
        "confusion": counts.tolist(),
    }


def save_confusion_png(
    counts: np.ndarray | list, path: Path, title: str, class_names: tuple[str, ...] = CLASS_NAMES
) -> Path:
    """Confusion matrix with class names and counts (rows: truth, columns: prediction).

    Parameters
    ----------
    counts : ndarray of shape (n_classes, n_classes)
    path : Path
        The PNG to write.
    title : str
    class_names : tuple of str

    Returns
    -------
    path : Path
    """
    from gvs.core.figures import subplots

    counts = np.asarray(counts)
    side = max(3.8, 0.55 * len(class_names) + 2.2)
    figure, axes = subplots(figsize=(side + 0.4, side))
    axes.imshow(counts, cmap="Blues")
    for (row, column), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        axes.text(column, row, str(value), ha="center", va="center", color=colour)
    tilted = {"rotation": 45, "ha": "right"} if len(class_names) > 3 else {}
    axes.set_xticks(range(len(class_names)), class_names, **tilted)
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(textwrap.fill(title, 48), fontsize=9)
    figure.tight_layout()
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    return path
