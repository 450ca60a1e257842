"""Classification metrics computed one way for every model and fusion, and the confusion-matrix figure."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from preprocess.labels import CLASS_NAMES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts[true, predicted]."""
    counts = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(counts, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return counts


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, split: str = "") -> dict:
    """Accuracy, macro precision/recall/F1 (a class never predicted has precision 0, as scikit-learn's
    zero_division=0), per-class recall, the confusion matrix, n and the split the numbers come from."""
    counts = confusion_matrix(y_true, y_pred)
    hits = np.diag(counts).astype(float)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    present = (actual > 0) | (predicted > 0)  # macro averages over these classes, as scikit-learn does
    n = int(counts.sum())
    return {
        "split": split,
        "n": n,
        "accuracy": float(hits.sum() / n) if n else 0.0,
        "macro_precision": float(precision[present].mean()) if n else 0.0,
        "macro_recall": float(recall[present].mean()) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if n else 0.0,
        "per_class_recall": {name: float(value) for name, value in zip(CLASS_NAMES, recall)},
        "confusion": counts.tolist(),
    }


def save_confusion_png(counts: np.ndarray | list, path: Path, title: str) -> Path:
    """Confusion matrix with class names and counts (rows: truth, columns: prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    figure, axes = plt.subplots(figsize=(4.2, 3.8))
    axes.imshow(counts, cmap="Blues")
    for (row, column), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        axes.text(column, row, str(value), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(textwrap.fill(title, 48), fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
