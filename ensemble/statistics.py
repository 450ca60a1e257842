"""Evaluation statistics every table uses: bootstrap intervals over clips, paired tests, calibration, mean ± std.

Class indices run 0..n_classes-1 (any number of classes). Every bootstrap draws its clip indices with
``np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))`` (row r = resample r), so a plain loop
over the same draws recomputes every value; a paired test scores both models on the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

METRICS: tuple[str, ...] = ("accuracy", "macro_f1")


def _labels(y: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """``y`` as an int array after checking that each of ``others`` has one entry (row) per label."""
    y = np.asarray(y, dtype=int)
    for other in others:
        if len(other) != len(y):
            raise ValueError(f"lengths differ: {len(y)} labels but {len(other)} predictions / probability rows")
    return y


def _codes(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Each clip's confusion-matrix cell ``y * n_classes + pred`` (n,), after checking the class indices."""
    pred = np.asarray(pred, dtype=int)
    for name, values in (("labels", y), ("predictions", pred)):
        if len(values) and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} must be class indices 0..{n_classes - 1}, got {values.min()}..{values.max()}")
    return y * n_classes + pred


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


def _resampled_confusions(codes: np.ndarray, draws: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices (R, C, C) (rows: truth) of the resamples ``draws`` (R, n) of clip indices, one bincount."""
    cells = codes[draws] + np.arange(len(draws))[:, None] * n_classes**2
    counts = np.bincount(cells.ravel(), minlength=len(draws) * n_classes**2)
    return counts.reshape(len(draws), n_classes, n_classes)


def _from_confusions(confusions: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of each confusion matrix in ``confusions`` (R, C, C) (rows: truth): (R,), 0.0 for an empty one.

    macro_f1 averages F1 = 2 TP / (true + predicted) over the classes present in the truth or the predictions of
    each matrix, as scikit-learn's ``precision_recall_fscore_support(labels=union(y, pred), average="macro",
    zero_division=0)``."""
    _check_metric(metric)
    diagonal = np.diagonal(confusions, axis1=1, axis2=2).astype(float)
    if metric == "accuracy":
        n = confusions.sum(axis=(1, 2))
        return np.divide(diagonal.sum(axis=1), n, out=np.zeros(len(n)), where=n > 0)
    support = confusions.sum(axis=2) + confusions.sum(axis=1)
    present = support > 0
    f1 = np.divide(2 * diagonal, support, out=np.zeros_like(diagonal), where=present)
    n_present = present.sum(axis=1)
    return np.divide(f1.sum(axis=1), n_present, out=np.zeros(len(n_present)), where=n_present > 0)


def _bootstrap_draws(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Clip indices of each resample (n_resamples, n), drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def metric_value(y: np.ndarray, pred: np.ndarray, metric: str, n_classes: int) -> float:
    """Accuracy or macro-F1 (see METRICS) of ``pred`` (n,) against ``y`` (n,); 0.0 without clips.

    Parameters
    ----------
    y : ndarray of shape (n,), int
    pred : ndarray of shape (n,), int
    metric : str
        One of METRICS.
    n_classes : int

    Returns
    -------
    value : float
    """
    y = _labels(y, pred)
    codes = _codes(y, pred, n_classes)
    return float(_from_confusions(_resampled_confusions(codes, np.arange(len(y))[None], n_classes), metric)[0])


def bootstrap_values(
    y: np.ndarray, pred: np.ndarray, metric: str, n_classes: int, n_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """``metric`` of ``pred`` (n,) against ``y`` (n,) on each of ``n_resamples`` resamples of the clips drawn
    with replacement (see the module docstring): (n_resamples,).

    Parameters
    ----------
    y : ndarray of shape (n,), int
    pred : ndarray of shape (n,), int
    metric : str
        One of METRICS.
    n_classes : int
    n_resamples : int
    seed : int

    Returns
    -------
    values : ndarray of shape (n_resamples,)
    """
    y = _labels(y, pred)
    codes = _codes(y, pred, n_classes)
    draws = _bootstrap_draws(len(y), n_resamples, seed)
    return _from_confusions(_resampled_confusions(codes, draws, n_classes), metric)


def bootstrap_interval(
    y: np.ndarray,
    pred: np.ndarray,
    metric: str,
    n_classes: int,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of ``metric`` over the clips; (nan, nan) below two clips.

    Parameters
    ----------
    y : ndarray of shape (n,), int
    pred : ndarray of shape (n,), int
    metric : str
        One of METRICS.
    n_classes : int
    n_resamples : int
    confidence : float
        In (0, 1).
    seed : int

    Returns
    -------
    low, high : float
    """
    _check_metric(metric)
    if len(_labels(y, pred)) < 2:
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
    """Two-sided paired bootstrap p-value of "a and b score the same" by the percentile method: each resample of
    the clips scores both (n,) predictions, d* = metric(a*) - metric(b*), p = min(1, 2 min(P(d* <= 0),
    P(d* >= 0))). Identical predictions (and no clips) give 1.0.

    Parameters
    ----------
    y : ndarray of shape (n,), int
    pred_a, pred_b : ndarray of shape (n,), int
    metric : str
        One of METRICS.
    n_classes : int
    n_resamples : int
    seed : int

    Returns
    -------
    p : float
    """
    _check_metric(metric)
    y = _labels(y, pred_a, pred_b)
    if not len(y):
        return 1.0
    draws = _bootstrap_draws(len(y), n_resamples, seed)
    scores = [
        _from_confusions(_resampled_confusions(_codes(y, p, n_classes), draws, n_classes), metric)
        for p in (pred_a, pred_b)
    ]
    difference = scores[0] - scores[1]
    return float(min(1.0, 2 * min((difference <= 0).mean(), (difference >= 0).mean())))


def mcnemar_pvalue(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Exact McNemar p-value on the discordant clips of (n,) predictions (a right and b wrong, or the reverse):
    two-sided binomial test of min(b01, b10) in b01 + b10 at 1/2; 1.0 without discordant clips.

    Parameters
    ----------
    y : ndarray of shape (n,), int
    pred_a, pred_b : ndarray of shape (n,), int

    Returns
    -------
    p : float
    """
    from scipy.stats import binomtest

    y = _labels(y, pred_a, pred_b)
    a_right, b_right = np.asarray(pred_a) == y, np.asarray(pred_b) == y
    only_a, only_b = int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)


def reliability_curve(
    y: np.ndarray, probabilities: np.ndarray, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean confidence, accuracy, count) per equal-width confidence bin on [0, 1], each (n_bins,), NaN where a
    bin is empty. ``probabilities`` (n, C); confidence = the highest probability, correct = argmax == ``y`` (n,);
    bin k holds confidences in [k / n_bins, (k + 1) / n_bins), and a confidence of 1.0 falls in the last bin.

    Parameters
    ----------
    y : ndarray of shape (n,), int
    probabilities : ndarray of shape (n, C)
    n_bins : int

    Returns
    -------
    confidence, accuracy, count : ndarray of shape (n_bins,)
    """
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be (n, n_classes), got shape {probabilities.shape}")
    y = _labels(y, probabilities)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore"):
        return np.bincount(bins, confidence, n_bins) / counts, np.bincount(bins, correct, n_bins) / counts, counts


def _ece(confidence: np.ndarray, accuracy: np.ndarray, counts: np.ndarray) -> float:
    """ECE of one reliability_curve; 0.0 without clips."""
    filled = counts > 0
    return float((np.abs(accuracy[filled] - confidence[filled]) * counts[filled]).sum() / max(counts.sum(), 1))


def expected_calibration_error(y: np.ndarray, probabilities: np.ndarray, n_bins: int = 15) -> float:
    """Sum over reliability_curve's bins of |accuracy - mean confidence| times the bin's share of the clips;
    ``y`` (n,), ``probabilities`` (n, C); 0.0 without clips.

    Parameters
    ----------
    y : ndarray of shape (n,), int
    probabilities : ndarray of shape (n, C)
    n_bins : int

    Returns
    -------
    ece : float
    """
    return _ece(*reliability_curve(y, probabilities, n_bins))


def _temperature_log_softmax(log_probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(log p / T) of (n, C) log-probabilities."""
    from scipy.special import log_softmax

    return log_softmax(log_probabilities / temperature, axis=1)


def _clipped_log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-7, None))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T) of (n, C) ``probabilities`` (clipped to >= 1e-7): (n, C), rows sum to 1, argmax
    unchanged.

    Parameters
    ----------
    probabilities : ndarray of shape (n, C)
    temperature : float
        Above 0.

    Returns
    -------
    probabilities : ndarray of shape (n, C)
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return np.exp(_temperature_log_softmax(_clipped_log(probabilities), temperature))


def fit_temperature(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T in [0.05, 20] minimising the mean negative log-likelihood of
    softmax(log(p) / T) on ``probabilities`` (n, C) and ``y`` (n,), searched over log T; 1.0 without clips.

    Parameters
    ----------
    probabilities : ndarray of shape (n, C)
    y : ndarray of shape (n,), int

    Returns
    -------
    temperature : float
    """
    from scipy.optimize import minimize_scalar

    y = _labels(y, probabilities)
    if not len(y):
        return 1.0
    log_probabilities = _clipped_log(probabilities)
    rows = np.arange(len(y))

    def loss(log_temperature: float) -> float:
        return float(-_temperature_log_softmax(log_probabilities, np.exp(log_temperature))[rows, y].mean())

    found = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0.0 for one value) of at least one value.

    Parameters
    ----------
    values : iterable of float

    Returns
    -------
    mean, std : float
    """
    values = np.asarray(list(values), dtype=float)
    if not len(values):
        raise ValueError("mean_std needs at least one value")
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else 0.0)


def format_mean_std(values: Iterable[float], digits: int = 3) -> str:
    """ "0.812 ± 0.014"; "0.812" for one value.

    Parameters
    ----------
    values : iterable of float
    digits : int
        Decimals.

    Returns
    -------
    text : str
    """
    values = list(values)
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if len(values) > 1 else "")


def format_interval(value: float, interval: tuple[float, float], digits: int = 3) -> str:
    """ "0.812 [0.785, 0.840]".

    Parameters
    ----------
    value : float
    interval : tuple of (float, float)
    digits : int
        Decimals.

    Returns
    -------
    text : str
    """
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def save_reliability_diagram(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, n_bins: int = 15
) -> Path:
    """A PNG reliability diagram at ``path``: for each model name -> (y (n,), probabilities (n, C)), accuracy
    against mean confidence per bin with the ECE in the legend, the diagonal, and below a histogram of the
    confidences. Written atomically; returns ``path``.

    Parameters
    ----------
    curves : dict of str to (ndarray of shape (n,), ndarray of shape (n, C))
        Model name -> (y, probabilities).
    path : Path
        The PNG to write.
    title : str
    n_bins : int

    Returns
    -------
    path : Path
    """
    from gvs.core.figures import subplots
    from gvs.core.io import atomic_write_bytes

    figure, (diagram, histogram) = subplots(
        2, 1, figsize=(5.6, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    diagram.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, (y, probabilities) in curves.items():
        curve = reliability_curve(y, probabilities, n_bins)
        confidence, accuracy, counts = curve
        filled = counts > 0
        label = f"{name} (ECE {_ece(*curve):.3f})"
        (line,) = diagram.plot(confidence[filled], accuracy[filled], marker="o", markersize=3, label=label)
        histogram.hist(
            np.asarray(probabilities).max(axis=1),
            bins=np.linspace(0, 1, n_bins + 1),
            histtype="step",
            color=line.get_color(),
        )
    diagram.set_ylabel("accuracy")
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1)
    diagram.legend(fontsize=7, loc="upper left")
    diagram.set_title(title, fontsize=9)
    histogram.set_xlabel("confidence (highest probability)")
    histogram.set_ylabel("clips")
    figure.tight_layout()
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    return Path(path)
