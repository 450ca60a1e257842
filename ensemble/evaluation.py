"""The numbers of one table row, recomputed from a saved predictions.csv: point values with 95 % bootstrap
intervals over clips, calibration (ECE, optionally after temperature scaling fitted on the select part) and a
paired test against a reference model on the same clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gvs.core.predictions import Predictions
from gvs.core.workspace import RunFolder

from . import statistics
from .fuse import read_part


@dataclass
class EvaluationSettings:
    """How rows are evaluated: bootstrap resamples and seed, and whether to temperature-scale on select."""

    bootstrap: int = 2000
    seed: int = 0
    calibrate: bool = False


def row_statistics(run: RunFolder, settings: EvaluationSettings) -> dict:
    """Report-part accuracy and macro-F1 with their 95 % bootstrap intervals, ECE (and, with ``calibrate``, the
    temperature fitted on the select part and the ECE after it) of the model whose predictions ``run`` holds.

    Parameters
    ----------
    run : RunFolder
    settings : EvaluationSettings

    Returns
    -------
    row : dict
        Metric name -> value, with ``_low``, ``_high`` and ``_ci`` entries.
    """
    report = read_part(run, "report")
    n_classes = len(report.class_names)
    row: dict = {}
    for metric in statistics.METRICS:
        value = statistics.metric_value(report.labels, report.predicted, metric, n_classes) if len(report) else 0.0
        low, high = statistics.bootstrap_interval(
            report.labels, report.predicted, metric, n_classes, settings.bootstrap, seed=settings.seed
        )
        row |= {metric: value, f"{metric}_low": low, f"{metric}_high": high}
        row[f"{metric}_ci"] = statistics.format_interval(value, (low, high))
    row["ece"] = statistics.expected_calibration_error(report.labels, report.probabilities) if len(report) else 0.0
    if settings.calibrate:
        select = read_part(run, "select")
        temperature = statistics.fit_temperature(select.probabilities, select.labels)
        calibrated = statistics.apply_temperature(report.probabilities, temperature)
        row["temperature"] = temperature
        row["ece_calibrated"] = statistics.expected_calibration_error(report.labels, calibrated) if len(report) else 0.0
    return row


def paired_tests(model: Predictions, reference: Predictions, settings: EvaluationSettings) -> dict:
    """p-values of "``model`` and ``reference`` are equally accurate" on the clips both predicted: the paired
    bootstrap of the accuracy difference and the exact McNemar test.

    Parameters
    ----------
    model, reference : Predictions
        Labelled clips of one part.
    settings : EvaluationSettings

    Returns
    -------
    p_values : dict
        ``p_bootstrap`` and ``p_mcnemar``.
    """
    index = {key: i for i, key in enumerate(reference.keys)}
    shared = [i for i, key in enumerate(model.keys) if key in index]
    other = [index[model.keys[i]] for i in shared]
    y, a, b = model.labels[shared], model.predicted[shared], reference.predicted[other]
    n_classes = len(model.class_names)
    return {
        "p_bootstrap": statistics.paired_bootstrap_pvalue(
            y, a, b, "accuracy", n_classes, settings.bootstrap, seed=settings.seed
        ),
        "p_mcnemar": statistics.mcnemar_pvalue(y, a, b),
    }


def reliability_curves(runs: dict[str, RunFolder]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{row name: (labels, probabilities)} of the report part, for the reliability diagram.

    Parameters
    ----------
    runs : dict of str to RunFolder
        Row name -> run.

    Returns
    -------
    curves : dict of str to (ndarray of shape (n,), ndarray of shape (n, n_classes))
        Only the runs whose report part has labelled clips.
    """
    parts = {name: read_part(run, "report") for name, run in runs.items()}
    return {name: (part.labels, part.probabilities) for name, part in parts.items() if len(part)}
