"""Ablation and comparison: one fusion over modality subsets, or every fusion over one set, as tables.

Every row's numbers are recomputed from the row's saved predictions.csv (report part), so the tables and
the per-clip predictions can never disagree. Every row is scored on the same clips: each clip that has at least
one of the modalities (a fusion, or a modality alone, fills a clip lacking its modalities with the train part's
class shares). Each accuracy and macro-F1 carries a 95 % bootstrap interval over clips; the comparison table
adds the expected calibration error and, for each fusion, paired tests against the best single modality.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError
from gvs.core.io import read_json
from gvs.core.workspace import RunsDir

from .evaluation import EvaluationSettings, paired_tests, reliability_curves, row_statistics
from .fuse import FusionResult, read_part, run_fusion
from .fusions import FUSIONS
from .outputs import FusionData
from .report import METRIC_COLUMNS, save_confusion_grid, write_table

ABLATION_MODES: tuple[str, ...] = ("loo", "all", "none")
SCORE_COLUMNS: list[str] = ["accuracy (95% CI)", "macro_f1 (95% CI)"]
NUMBER_COLUMNS: list[str] = [
    *(f"{m}{end}" for m in ("accuracy", "macro_f1") for end in ("", "_low", "_high")),
    "macro_precision",
    "macro_recall",
]
ABLATION_COLUMNS: list[str] = ["fusion", "modalities", "dropped", *SCORE_COLUMNS, "n", "split"]
COMPARISON_COLUMNS: list[str] = [
    "model", "modalities", *SCORE_COLUMNS, "ECE", "p vs best single", "fit s", "n", "split"
]  # fmt: skip


def subsets(modalities: list[str], mode: str = "loo") -> list[list[str]]:
    """The full set, then every leave-one-out subset ("loo") or every non-empty subset ("all").

    Parameters
    ----------
    modalities : list of str
    mode : str
        One of ABLATION_MODES ("none": only the full set).

    Returns
    -------
    subsets : list of list of str
        Each sorted.
    """
    modalities = sorted(modalities)
    if mode not in ABLATION_MODES:
        raise InputError(f"unknown ablation {mode!r}; choose from {', '.join(ABLATION_MODES)}")
    if mode == "none":
        return [modalities]
    if mode == "loo":
        smaller = [[m for m in modalities if m != left] for left in modalities] if len(modalities) > 1 else []
        return [modalities] + smaller
    return [list(c) for size in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, size)]


def _row_from(result: FusionResult, all_modalities: list[str], evaluation: EvaluationSettings) -> dict:
    from .report import metrics_of

    saved = read_part(result.run, "report")
    metrics = metrics_of(saved.labels, saved.predicted, saved.split_names(), "report", saved.class_names)
    dropped = sorted(set(all_modalities) - set(result.modalities))
    statistics = row_statistics(result.run, evaluation)
    return {
        "fusion": result.kind,
        "modalities": "+".join(result.modalities),
        "dropped": "+".join(dropped) or "—",
        **{c: metrics[c] for c in METRIC_COLUMNS},
        **statistics,
        "accuracy (95% CI)": statistics["accuracy_ci"],
        "macro_f1 (95% CI)": statistics["macro_f1_ci"],
        "fit s": f"{read_json(result.run.result).get('fit_seconds', float('nan')):.1f}",
        "n": metrics["n"],
        "split": metrics["split"],
        "confusion": metrics["confusion"],
        "class_names": list(saved.class_names),
        "predictions": str(result.run.predictions),
    }


def _note(data: FusionData, rows: list[dict], runs: Path, evaluation: EvaluationSettings) -> str:
    from modalities.partition import load_partition

    partition = load_partition(runs)
    protocol = getattr(partition, "protocol", "ours")
    split = rows[0]["split"] if rows else "?"
    report_rows = data.rows("report")
    lines = [
        f"Protocol **{protocol}**. Select part (early stopping, weight search): {partition.sources['select']}. "
        f"Report part: {partition.sources['report']}.",
        f"Reported on the report part ({split}, n={rows[0]['n'] if rows else 0} labelled clips, every row on the "
        f"same clips); selection used the select part ({len(data.rows('select'))} clips); training used the train "
        f"part ({len(data.rows('train'))} clips). Intervals: 95 % percentile bootstrap over clips "
        f"({evaluation.bootstrap} resamples).",
    ]
    missing = {m: n for m, n in data.missing(report_rows).items() if n}
    if missing:
        counts = ", ".join(f"{m} {n}" for m, n in missing.items())
        lines.append(
            f"Report clips missing a modality: {counts} (of {len(report_rows)}); fusions use the modalities each clip "
            "has, a modality alone falls back to the train part's class shares where it is missing."
        )
    if data.unfused:
        shown = ", ".join(data.unfused[:10]) + (f" and {len(data.unfused) - 10} more" if len(data.unfused) > 10 else "")
        lines.append(f"Left out (none of {'+'.join(data.modalities)}): {len(data.unfused)} clips: {shown}.")
    return "\n".join(lines)


def run_ablation(
    data: FusionData,
    kind: str,
    runs: Path,
    mode: str = "loo",
    options: dict | None = None,
    progress: bool = True,
    evaluation: EvaluationSettings | None = None,
) -> tuple[list[dict], str]:
    """Fit ``kind`` on each subset of ``data``'s modalities; write RUNS/ablation/<kind>.{md,csv,json,png}.

    All subsets are scored on the same clips, so rows are comparable. ``options`` go to
    :func:`~ensemble.fusions.make_fusion`. Returns the rows and the Markdown table.

    Parameters
    ----------
    data : FusionData
    kind : str
        A fusion kind (see fusions.make_fusion).
    runs : Path
    mode : str
        See subsets.
    options : dict or None
    progress : bool
        Show a progress bar.
    evaluation : EvaluationSettings or None
        None for the defaults.

    Returns
    -------
    rows : list of dict
    table : str
        Markdown.
    """
    from tqdm import tqdm

    evaluation = evaluation or EvaluationSettings()
    chosen = subsets(data.modalities, mode)
    rows = []
    for subset in tqdm(chosen, desc=f"ablation {kind}", unit="subset", disable=not progress):
        result = run_fusion(data.without([m for m in data.modalities if m not in subset]), kind, runs, options)
        rows.append(_row_from(result, data.modalities, evaluation))
    stem = RunsDir(runs).ablation_stem(kind)
    markdown = write_table(
        rows,
        ABLATION_COLUMNS,
        stem,
        f"Ablation: {kind} fusion ({mode})",
        _note(data, rows, runs, evaluation),
        ["fusion", "modalities", "dropped", *NUMBER_COLUMNS, "n", "split"],
    )
    save_confusion_grid(
        [np.array(r["confusion"]) for r in rows],
        [f"{r['fusion']}: {r['modalities']}\nacc {r['accuracy']:.3f}  F1 {r['macro_f1']:.3f}" for r in rows],
        stem.with_suffix(".png"),
        data.class_names,
    )
    return rows, markdown


def _p(value: float) -> str:
    """A p-value to three decimals, "<0.001" below that (a bootstrap p of 0 only means below 1/resamples)."""
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def run_comparison(
    data: FusionData,
    kinds: list[str],
    runs: Path,
    options: dict | None = None,
    progress: bool = True,
    evaluation: EvaluationSettings | None = None,
    fusion_data: FusionData | None = None,
) -> tuple[list[dict], str]:
    """Each modality alone, then each fusion over all of ``data``'s modalities; RUNS/fusion/comparison.* and
    RUNS/fusion/reliability.png.

    One ``options`` dict serves every fusion: each takes the keys among its hyperparameters. ``fusion_data``
    (default ``data``) is what the fusions that learn from outputs (fc, vae, attention, lstm) learn from
    (out-of-fold outputs with ``--oof``). "fit s": seconds fitting took (when the fusion was fitted).

    Parameters
    ----------
    data : FusionData
    kinds : list of str
        Fusion kinds.
    runs : Path
    options : dict or None
    progress : bool
    evaluation : EvaluationSettings or None
    fusion_data : FusionData or None

    Returns
    -------
    rows : list of dict
    table : str
        Markdown.
    """
    from tqdm import tqdm

    from .statistics import save_reliability_diagram

    evaluation = evaluation or EvaluationSettings()
    rows, results = [], []
    jobs = [("alone", [m]) for m in data.modalities] + [(kind, data.modalities) for kind in kinds]
    for label, subset in tqdm(jobs, desc="fusions", unit="model", disable=not progress):
        kind = "soft" if label == "alone" else label  # soft vote over one modality = that model's probabilities
        source = fusion_data if fusion_data is not None and FUSIONS[kind].learns_from_outputs else data
        result = run_fusion(source.without([m for m in data.modalities if m not in subset]), kind, runs, options)
        row = _row_from(result, data.modalities, evaluation)
        rows.append({**row, "model": f"{subset[0]} alone" if label == "alone" else f"{label} fusion"})
        results.append(result)
    singles = [i for i, (label, _) in enumerate(jobs) if label == "alone"]
    best = max(singles, key=lambda i: (rows[i]["accuracy"], rows[i]["macro_f1"]))
    reference = read_part(results[best].run, "report")
    for row, result, (label, _) in zip(rows, results, jobs):
        if label == "alone":
            row["p vs best single"] = "—"
            continue
        row |= paired_tests(read_part(result.run, "report"), reference, evaluation)
        row["p vs best single"] = f"{_p(row['p_bootstrap'])} / {_p(row['p_mcnemar'])}"
        row["compared_with"] = rows[best]["model"]
    columns = list(COMPARISON_COLUMNS)
    for row in rows:
        row["ECE"] = f"{row['ece']:.3f}"
        if evaluation.calibrate:
            row["ECE"] += f" → {row['ece_calibrated']:.3f} (T={row['temperature']:.2f})"
    stem = RunsDir(runs).comparison_stem()
    curves = reliability_curves({row["model"]: result.run for row, result in zip(rows, results)})
    save_reliability_diagram(
        curves, stem.with_name("reliability.png"), f"Reliability, report part ({rows[0]['split']})"
    )
    note = _note(data, rows, runs, evaluation) + (
        f"\np vs best single: paired bootstrap / exact McNemar p-values of each fusion's accuracy against "
        f"{rows[best]['model']} (the single modality with the highest report accuracy), on the same clips. "
        "ECE: expected calibration error (15 bins) of the report part"
        + ("; → after temperature scaling fitted on the select part." if evaluation.calibrate else ".")
    )
    markdown = write_table(
        rows,
        columns,
        stem,
        "Comparison: single modalities and fusions",
        note,
        ["model", "modalities", *NUMBER_COLUMNS, "ece", "ece_calibrated", "temperature", "p_bootstrap", "p_mcnemar"]
        + ["n", "split"],
    )
    return rows, markdown
