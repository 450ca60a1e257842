"""Evaluation statistics every table uses: bootstrap intervals over clips, paired tests, calibration, mean ± std.

Class indices run 0..n_classes-1 (any number of classes). Bootstrap resamples draw clip indices with
``np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))``, so a plain loop over the same draws
recomputes every value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRICS: tuple[str, ...] = ("accuracy", "macro_f1")


def _check(y: np.ndarray, *others: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=int)
    for other in others:
        if len(other) != len(y):
            raise ValueError(f"lengths differ: {len(y)} labels and {len(other)} predictions")
    return y


def _from_confusions(confusions: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of each confusion matrix in ``confusions`` (R, C, C) (rows: truth): (R,) values.

    macro_f1 averages over the classes present in the truth or the predictions of each matrix (a class never
    predicted has precision 0), as scikit-learn's ``f1_score(labels=union(y, pred), average="macro")``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    n = confusions.sum(axis=(1, 2))
    correct = np.trace(confusions, axis1=1, axis2=2)
    if metric == "accuracy":
        return np.divide(correct, n, out=np.zeros(len(n)), where=n > 0)
    true_positive = np.diagonal(confusions, axis1=1, axis2=2).astype(float)
    truth, predicted = confusions.sum(axis=2), confusions.sum(axis=1)
    denominator = truth + predicted
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    present = denominator > 0
    return np.divide((f1 * present).sum(axis=1), present.sum(axis=1), out=np.zeros(len(n)), where=present.any(1))


def _confusions(y: np.ndarray, pred: np.ndarray, draws: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices (R, C, C) of the resamples ``draws`` (R, n) of clip indices, built with one bincount."""
    cells = y[draws] * n_classes + np.asarray(pred, dtype=int)[draws] + np.arange(len(draws))[:, None] * n_classes**2
    counts = np.bincount(cells.ravel(), minlength=len(draws) * n_classes**2)
    return counts.reshape(len(draws), n_classes, n_classes)


def metric_value(y: np.ndarray, pred: np.ndarray, metric: str, n_classes: int) -> float:
    """Accuracy or macro-F1 of ``pred`` against ``y`` (n,), class indices."""
    y = _check(y, pred)
    return float(_from_confusions(_confusions(y, pred, np.arange(len(y))[None], n_classes), metric)[0])


def bootstrap_values(
    y: np.ndarray, pred: np.ndarray, metric: str, n_classes: int, n_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """``metric`` on ``n_resamples`` resamples of the clips, drawn with replacement: (n_resamples,)."""
    y = _check(y, pred)
    draws = np.random.default_rng(seed).integers(0, len(y), size=(n_resamples, len(y)))
    return _from_confusions(_confusions(y, pred, draws, n_classes), metric)


def bootstrap_interval(
    y: np.ndarray,
    pred: np.ndarray,
    metric: str,
    n_classes: int,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` over clips; (nan, nan) below two clips."""
    if len(y) < 2:
        return float("nan"), float("nan")
    values = bootstrap_values(y, pred, metric, n_classes, n_resamples, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap_pvalue(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric: str,
    n_classes: int,
    n_resamples: int = 2000,
    seed: int = 0,
) -> float:
    """Two-sided paired bootstrap p-value of "a and b score the same" (percentile method): the same resampled
    clips score both, d* = metric(a*) - metric(b*), p = min(1, 2 min(P(d* <= 0), P(d* >= 0)))."""
    y = _check(y, pred_a, pred_b)
    if np.array_equal(pred_a, pred_b) or len(y) == 0:
        return 1.0
    draws = np.random.default_rng(seed).integers(0, len(y), size=(n_resamples, len(y)))
    difference = _from_confusions(_confusions(y, pred_a, draws, n_classes), metric) - _from_confusions(
        _confusions(y, pred_b, draws, n_classes), metric
    )
    return float(min(1.0, 2 * min((difference <= 0).mean(), (difference >= 0).mean())))


def mcnemar_pvalue(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Exact McNemar p-value on the discordant clips (a right and b wrong, or the reverse); 1.0 without any."""
    from scipy.stats import binomtest

    y = _check(y, pred_a, pred_b)
    a_right, b_right = np.asarray(pred_a) == y, np.asarray(pred_b) == y
    only_a, only_b = int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)


def reliability_curve(
    y: np.ndarray, probabilities: np.ndarray, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean confidence, accuracy, count) per equal-width confidence bin on [0, 1], each (n_bins,), NaN where a
    bin is empty; confidence = the highest probability, a confidence of 1.0 falls in the last bin."""
    probabilities = np.asarray(probabilities, dtype=float)
    y = _check(y, probabilities)
    confidence = probabilities.max(axis=1) if len(y) else np.zeros(0)
    correct = probabilities.argmax(axis=1) == y if len(y) else np.zeros(0, bool)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, n_bins) / counts
        accuracy = np.bincount(bins, correct.astype(float), n_bins) / counts
    return mean_confidence, accuracy, counts


def expected_calibration_error(y: np.ndarray, probabilities: np.ndarray, n_bins: int = 15) -> float:
    """Sum over confidence bins of |accuracy - mean confidence| weighted by the bin's share of clips."""
    confidence, accuracy, counts = reliability_curve(y, probabilities, n_bins)
    filled = counts > 0
    return float((np.abs(accuracy[filled] - confidence[filled]) * counts[filled]).sum() / max(counts.sum(), 1))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): (n, C) probabilities, rows sum to 1, argmax unchanged."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-7, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T in [0.05, 20] minimising the mean negative log-likelihood
    of softmax(log(p) / T) on (``probabilities`` (n, C), ``y`` (n,)); 1.0 without clips."""
    from scipy.optimize import minimize_scalar

    y = _check(y, probabilities)
    if not len(y):
        return 1.0

    def loss(log_temperature: float) -> float:
        scaled = apply_temperature(probabilities, float(np.exp(log_temperature)))
        return float(-np.log(np.clip(scaled[np.arange(len(y)), y], 1e-12, None)).mean())

    found = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0.0 for one value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def format_mean_std(values, digits: int = 3) -> str:
    """ "0.812 ± 0.014" ("0.812" for one value)."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if len(values) > 1 else "")


def format_interval(value: float, interval: tuple[float, float], digits: int = 3) -> str:
    """ "0.812 [0.785, 0.840]"."""
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def save_reliability_diagram(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, n_bins: int = 15
) -> Path:
    """One reliability diagram: per model name -> (y, probabilities), accuracy against mean confidence per bin
    with its ECE in the legend, the diagonal, and the confidences' histogram below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gvs.core.io import atomic_write_bytes

    figure, (diagram, histogram) = plt.subplots(
        2, 1, figsize=(5.6, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    diagram.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (y, probabilities) in curves.items():
        confidence, accuracy, counts = reliability_curve(y, probabilities, n_bins)
        filled = counts > 0
        ece = expected_calibration_error(y, probabilities, n_bins)
        (line,) = diagram.plot(
            confidence[filled], accuracy[filled], marker="o", markersize=3, label=f"{name} (ECE {ece:.3f})"
        )
        histogram.hist(np.asarray(probabilities).max(axis=1), bins=edges, histtype="step", color=line.get_color())
    diagram.set_ylabel("accuracy")
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1)
    diagram.legend(fontsize=7, loc="upper left")
    diagram.set_title(title, fontsize=9)
    histogram.set_xlabel("confidence (highest probability)")
    histogram.set_ylabel("clips")
    figure.tight_layout()
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    plt.close(figure)
    return path
