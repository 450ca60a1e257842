"""Metrics, tables (Markdown, CSV, JSON) and figures for fusion results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gvs.core.io import atomic_write_bytes, atomic_write_csv, atomic_write_json, atomic_write_text
from gvs.core.vocabulary import CLASS_NAMES

METRIC_COLUMNS: tuple[str, ...] = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


def metrics_of(
    y: np.ndarray,
    predicted: np.ndarray,
    split: str = "",
    part: str = "",
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> dict:
    """Accuracy, macro precision/recall/F1, per-class recall and confusion, plus where they come from.

    Parameters
    ----------
    y, predicted : ndarray of shape (n_clips,), int
        True and predicted class indices.
    split, part : str
        Recorded with the numbers.
    class_names : tuple of str

    Returns
    -------
    metrics : dict
    """
    from modalities.metrics import classification_metrics

    metrics = classification_metrics(np.asarray(y, dtype=int), np.asarray(predicted, dtype=int), split, class_names)
    return {**metrics, "part": part}


def _cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub Markdown table of ``columns`` (floats to 3 decimals).

    Parameters
    ----------
    rows : list of dict
    columns : list of str
        Keys of the rows, in order.

    Returns
    -------
    table : str
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_table(
    rows: list[dict], columns: list[str], stem: Path, title: str, note: str, csv_columns: list[str] | None = None
) -> str:
    """Write ``stem``.md (``columns``) / .csv (``csv_columns``, default the same) / .json (every field), each
    atomically; returns the Markdown (title, table, note).

    Parameters
    ----------
    rows : list of dict
    columns : list of str
        The Markdown's columns.
    stem : Path
        The files' path without suffix.
    title, note : str
        Above and below the Markdown table.
    csv_columns : list of str or None

    Returns
    -------
    markdown : str
    """
    markdown = f"### {title}\n\n{markdown_table(rows, columns)}\n\n{note}\n"
    atomic_write_text(stem.with_suffix(".md"), markdown)
    csv_columns = csv_columns or columns
    atomic_write_csv(stem.with_suffix(".csv"), csv_columns, ([row.get(c, "") for c in csv_columns] for row in rows))
    atomic_write_json(stem.with_suffix(".json"), {"title": title, "note": note, "rows": rows})
    return markdown


def _draw_confusion(axis, confusion: np.ndarray, title: str, class_names: tuple[str, ...]) -> None:
    axis.imshow(confusion, cmap="Blues")
    for (row, column), count in np.ndenumerate(confusion):
        axis.text(
            column,
            row,
            str(int(count)),
            ha="center",
            va="center",
            color="white" if count > confusion.max() / 2 else "black",
        )
    tilted = {"rotation": 45, "ha": "right"} if len(class_names) > 3 else {}
    axis.set_xticks(range(len(class_names)), class_names, **tilted)
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)


def save_confusion_grid(
    confusions: list[np.ndarray], titles: list[str], path: Path, class_names: tuple[str, ...] = CLASS_NAMES
) -> None:
    """One confusion matrix per table row, side by side (wrapping at four per line).

    Parameters
    ----------
    confusions : list of ndarray of shape (n_classes, n_classes)
    titles : list of str
        One per matrix.
    path : Path
        The PNG to write.
    class_names : tuple of str
    """
    from gvs.core.figures import subplots

    columns = min(4, len(confusions))
    lines = int(np.ceil(len(confusions) / columns))
    figure, axes = subplots(lines, columns, figsize=(3.6 * columns, 3.6 * lines), squeeze=False)
    for axis in axes.flat[len(confusions) :]:
        axis.axis("off")
    for axis, confusion, title in zip(axes.flat, confusions, titles):
        _draw_confusion(axis, np.asarray(confusion), title, class_names)
    figure.tight_layout()
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=110))


def save_latent_picture(
    latents: np.ndarray, y: np.ndarray, path: Path, title: str, class_names: tuple[str, ...] = CLASS_NAMES
) -> str:
    """2-D t-SNE (PCA below 10 clips) of ``latents`` (n_clips, latent_dim) coloured by class ``y`` (n_clips,);
    returns the method used.

    Parameters
    ----------
    latents : ndarray of shape (n_clips, latent_dim)
    y : ndarray of shape (n_clips,), int
    path : Path
        The PNG to write.
    title : str
    class_names : tuple of str

    Returns
    -------
    method : str
    """
    from gvs.core.figures import subplots

    if len(latents) >= 10:
        from sklearn.manifold import TSNE

        points = TSNE(2, perplexity=min(30.0, (len(latents) - 1) / 3), random_state=0, init="pca").fit_transform(
            latents
        )
        method = "t-SNE"
    else:
        from sklearn.decomposition import PCA

        dimensions = min(2, *latents.shape)
        points = np.pad(PCA(dimensions).fit_transform(latents), ((0, 0), (0, 2 - dimensions)))
        method = "PCA"
    figure, axis = subplots(figsize=(5, 4.5))
    for index, name in enumerate(class_names):
        chosen = y == index
        axis.scatter(points[chosen, 0], points[chosen, 1], s=12, label=f"{name} ({chosen.sum()})")
    axis.legend()
    axis.set_title(f"{title} ({method})", fontsize=9)
    figure.tight_layout()
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    return method


def attention_figure(weights: dict[str, np.ndarray], modalities: list[str], title: str, seconds=None):
    """A matplotlib figure, one heat map per modality: its steps (rows) against the steps of the modalities it
    attended to (columns, in ``modalities`` order), ``weights[m]`` (T, K) for one clip or (n_clips, T, K)
    averaged over clips; ``seconds`` (T,) labels the steps with their times.

    Parameters
    ----------
    weights : dict of str to ndarray of shape (T, K) or (n_clips, T, K)
    modalities : list of str
    title : str
    seconds : array-like of shape (T,) or None

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    from gvs.core.figures import subplots

    figure, axes = subplots(1, len(modalities), figsize=(4.2 * len(modalities), 3.6), squeeze=False)
    for axis, modality in zip(axes[0], modalities):
        values = np.asarray(weights[modality])
        mean = values.mean(axis=0) if values.ndim == 3 else values  # (T, K)
        keys = [m for m in modalities if m != modality] or [modality]
        steps = mean.shape[0]
        image = axis.imshow(mean, aspect="auto", cmap="magma", vmin=0)
        axis.set_xticks([steps * i + steps / 2 - 0.5 for i in range(len(keys))], keys, fontsize=8)
        for boundary in range(1, len(keys)):
            axis.axvline(steps * boundary - 0.5, color="white", linewidth=1)
        if seconds is not None:
            shown = np.arange(0, steps, max(1, steps // 6))
            axis.set_yticks(shown, [f"{seconds[i]:.1f} s" for i in shown], fontsize=7)
        axis.set_ylabel(f"{modality} step", fontsize=8)
        axis.set_title(f"{modality} attends to", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def save_attention_picture(weights: dict[str, np.ndarray], modalities: list[str], path: Path, title: str) -> None:
    """:func:`attention_figure` of ``weights`` (n_clips, T, K) per modality, averaged over clips, as a PNG.

    Parameters
    ----------
    weights : dict of str to ndarray of shape (n_clips, T, K)
    modalities : list of str
    path : Path
        The PNG to write.
    title : str
    """
    figure = attention_figure(weights, modalities, title)
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
