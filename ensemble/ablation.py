"""Ablation and comparison: one fusion over modality subsets, or every fusion over one set, as tables.

Every row's numbers are recomputed from the row's saved predictions.csv (report part), so the tables and
the per-clip predictions can never disagree. Selection (early stopping, weight search) used only the
select part; the tables report the report part and name its split.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError
from gvs.core.workspace import RunsDir

from .fuse import FusionResult, metrics_from_predictions, run_fusion
from .outputs import FusionData
from .report import METRIC_COLUMNS, save_confusion_grid, write_table

ABLATION_MODES: tuple[str, ...] = ("loo", "all", "none")
ABLATION_COLUMNS: list[str] = ["fusion", "modalities", "dropped", *METRIC_COLUMNS, "n", "split"]
COMPARISON_COLUMNS: list[str] = ["model", "modalities", *METRIC_COLUMNS, "n", "split"]


def subsets(modalities: list[str], mode: str = "loo") -> list[list[str]]:
    """The full set, then every leave-one-out subset ("loo") or every non-empty subset ("all")."""
    modalities = sorted(modalities)
    if mode not in ABLATION_MODES:
        raise InputError(f"unknown ablation {mode!r}; choose from {', '.join(ABLATION_MODES)}")
    if mode == "none":
        return [modalities]
    if mode == "loo":
        smaller = [[m for m in modalities if m != left] for left in modalities] if len(modalities) > 1 else []
        return [modalities] + smaller
    return [list(c) for size in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, size)]


def _row_from(result: FusionResult, all_modalities: list[str]) -> dict:
    metrics = metrics_from_predictions(result.run, "report")
    dropped = sorted(set(all_modalities) - set(result.modalities))
    return {
        "fusion": result.kind,
        "modalities": "+".join(result.modalities),
        "dropped": "+".join(dropped) or "—",
        **{c: metrics[c] for c in METRIC_COLUMNS},
        "n": metrics["n"],
        "split": metrics["split"],
        "confusion": metrics["confusion"],
        "predictions": str(result.run.predictions),
    }


def _note(data: FusionData, rows: list[dict]) -> str:
    split = rows[0]["split"] if rows else "?"
    lines = [
        f"Reported on the report part ({split}, n={rows[0]['n'] if rows else 0} labelled clips), which "
        "model selection never saw; selection (early stopping, weight search) used the select part "
        f"({len(data.rows('select'))} clips); training used the train part ({len(data.rows('train'))} clips)."
    ]
    for modality, keys in sorted(data.left_out.items()):
        shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        lines.append(f"Left out (no {modality} features): {len(keys)} clips: {shown}.")
    return "\n".join(lines)


def run_ablation(
    data: FusionData, kind: str, runs: Path, mode: str = "loo", options: dict | None = None, progress: bool = True
) -> tuple[list[dict], str]:
    """Fit ``kind`` on each subset of ``data``'s modalities; write RUNS/ablation/<kind>.{md,csv,json,png}.

    All subsets use the same clips (those every modality of ``data`` has), so rows are comparable. ``options``
    go to :func:`~ensemble.fusions.make_fusion`. Returns the rows and the Markdown table.
    """
    from tqdm import tqdm

    chosen = subsets(data.modalities, mode)
    rows = []
    for subset in tqdm(chosen, desc=f"ablation {kind}", unit="subset", disable=not progress):
        result = run_fusion(data.without([m for m in data.modalities if m not in subset]), kind, runs, options)
        rows.append(_row_from(result, data.modalities))
    stem = RunsDir(runs).ablation_stem(kind)
    markdown = write_table(rows, ABLATION_COLUMNS, stem, f"Ablation: {kind} fusion ({mode})", _note(data, rows))
    save_confusion_grid(
        [np.array(r["confusion"]) for r in rows],
        [f"{r['fusion']}: {r['modalities']}\nacc {r['accuracy']:.3f}  F1 {r['macro_f1']:.3f}" for r in rows],
        stem.with_suffix(".png"),
    )
    return rows, markdown


def run_comparison(
    data: FusionData, kinds: list[str], runs: Path, options: dict | None = None, progress: bool = True
) -> tuple[list[dict], str]:
    """Each modality alone, then each fusion over all of ``data``'s modalities; RUNS/fusion/comparison.*.

    One ``options`` dict serves every fusion: each takes the keys among its hyperparameters."""
    from tqdm import tqdm

    rows = []
    jobs = [("alone", [m]) for m in data.modalities] + [(kind, data.modalities) for kind in kinds]
    for label, subset in tqdm(jobs, desc="fusions", unit="model", disable=not progress):
        kind = "soft" if label == "alone" else label  # soft vote over one modality = that model's probabilities
        result = run_fusion(data.without([m for m in data.modalities if m not in subset]), kind, runs, options)
        row = _row_from(result, data.modalities)
        rows.append({**row, "model": f"{subset[0]} alone" if label == "alone" else f"{label} fusion"})
    stem = RunsDir(runs).comparison_stem()
    markdown = write_table(
        rows, COMPARISON_COLUMNS, stem, "Comparison: single modalities and fusions", _note(data, rows)
    )
    return rows, markdown
