"""ensemble.statistics against independent recomputations: scikit-learn on each resample, math.comb, hand sums."""

from __future__ import annotations

import math
import statistics as stdlib_statistics

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from ensemble import statistics


def _predictions(n: int, n_classes: int, right: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and predictions that equal them with probability ``right``, else a random class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    pred = np.where(rng.random(n) < right, y, rng.integers(0, n_classes, n))
    return y, pred


def _sklearn_metric(y: np.ndarray, pred: np.ndarray, metric: str) -> float:
    if metric == "accuracy":
        return accuracy_score(y, pred)
    labels = np.union1d(y, pred)
    return precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)[2]


def _loop_values(y: np.ndarray, pred: np.ndarray, metric: str, n_resamples: int, seed: int) -> np.ndarray:
    """The documented draw (one rng.integers call, row r = resample r), scored one resample at a time."""
    draws = np.random.default_rng(seed).integers(0, len(y), size=(n_resamples, len(y)))
    return np.array([_sklearn_metric(y[rows], pred[rows], metric) for rows in draws])


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize("metric", statistics.METRICS)
def test_metric_value_matches_sklearn(n_classes: int, metric: str) -> None:
    y, pred = _predictions(60, n_classes, 0.5, seed=n_classes)
    assert statistics.metric_value(y, pred, metric, n_classes) == pytest.approx(_sklearn_metric(y, pred, metric))


def test_macro_f1_counts_a_class_only_predicted() -> None:
    y, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    # classes 0, 1, 2: F1 = 2/3, 1 and 0 (never true, so precision 0) -> mean 5/9
    assert statistics.metric_value(y, pred, "macro_f1", 4) == pytest.approx(5 / 9)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="accuracy, macro_f1"):
        statistics.metric_value(np.array([0, 1]), np.array([0, 1]), "recall", 2)
    with pytest.raises(ValueError, match=r"3 .*2 "):
        statistics.metric_value(np.array([0, 1, 1]), np.array([0, 1]), "accuracy", 2)
    with pytest.raises(ValueError, match="0..1"):
        statistics.bootstrap_values(np.array([0, 1]), np.array([0, 2]), "accuracy", 2)
    with pytest.raises(ValueError, match="4 .*3 "):
        statistics.expected_calibration_error(np.zeros(4, int), np.full((3, 2), 0.5))


@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize("metric", statistics.METRICS)
def test_bootstrap_values_equal_a_plain_loop(n_classes: int, metric: str) -> None:
    y, pred = _predictions(40, n_classes, 0.6, seed=10 + n_classes)
    values = statistics.bootstrap_values(y, pred, metric, n_classes, n_resamples=200, seed=5)
    assert values.shape == (200,)
    np.testing.assert_allclose(values, _loop_values(y, pred, metric, 200, seed=5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", statistics.METRICS)
def test_bootstrap_interval_is_the_percentile_interval_of_the_loop(metric: str) -> None:
    y, pred = _predictions(80, 3, 0.7, seed=1)
    low, high = statistics.bootstrap_interval(y, pred, metric, 3, n_resamples=200, confidence=0.9, seed=2)
    expected = np.percentile(_loop_values(y, pred, metric, 200, seed=2), [5, 95])
    np.testing.assert_allclose([low, high], expected, rtol=0, atol=1e-12)
    assert low < statistics.metric_value(y, pred, metric, 3) < high


def test_bootstrap_interval_halves_with_four_times_the_clips() -> None:
    widths = []
    for n in (200, 800):
        y, pred = _predictions(n, 3, 0.7, seed=n)
        low, high = statistics.bootstrap_interval(y, pred, "accuracy", 3, n_resamples=1000)
        widths.append(high - low)
    assert 0.35 < widths[1] / widths[0] < 0.7


def test_bootstrap_interval_needs_two_clips() -> None:
    for n in (0, 1):
        interval = statistics.bootstrap_interval(np.zeros(n, int), np.zeros(n, int), "accuracy", 3)
        assert all(math.isnan(bound) for bound in interval)


def test_identical_predictions_are_not_different() -> None:
    y, pred = _predictions(50, 3, 0.6, seed=3)
    assert statistics.paired_bootstrap_pvalue(y, pred, pred.copy(), "macro_f1", 3, n_resamples=200) == 1.0
    assert statistics.mcnemar_pvalue(y, pred, pred.copy()) == 1.0


def test_a_clearly_better_predictor_is_significant() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 400)
    good, poor = y.copy(), y.copy()
    good[:40] = (y[:40] + 1) % 3  # 90 % right
    wrong = rng.permutation(400)[:200]
    poor[wrong] = (y[wrong] + 2) % 3  # 50 % right
    assert accuracy_score(y, good) == 0.9 and accuracy_score(y, poor) == 0.5
    for metric in statistics.METRICS:
        assert statistics.paired_bootstrap_pvalue(y, good, poor, metric, 3) < 0.01
    assert statistics.mcnemar_pvalue(y, good, poor) < 0.01


def test_paired_bootstrap_pvalue_matches_the_loop_on_shared_draws() -> None:
    y, a = _predictions(60, 3, 0.7, seed=6)
    _, b = _predictions(60, 3, 0.6, seed=6)
    for metric in statistics.METRICS:
        difference = _loop_values(y, a, metric, 300, seed=8) - _loop_values(y, b, metric, 300, seed=8)
        expected = min(1.0, 2 * min(np.mean(difference <= 1e-12), np.mean(difference >= -1e-12)))
        assert statistics.paired_bootstrap_pvalue(y, a, b, metric, 3, n_resamples=300, seed=8) == pytest.approx(
            expected
        )


def test_mcnemar_is_the_exact_binomial_sum() -> None:
    # 2 clips only a gets right, 9 only b gets right, 5 both, 4 neither
    a_right = np.array([1] * 2 + [0] * 9 + [1] * 5 + [0] * 4, bool)
    b_right = np.array([0] * 2 + [1] * 9 + [1] * 5 + [0] * 4, bool)
    y = np.zeros(20, int)
    pred_a, pred_b = np.where(a_right, 0, 1), np.where(b_right, 0, 2)
    expected = min(1.0, 2 * sum(math.comb(11, k) for k in range(3)) / 2**11)
    assert statistics.mcnemar_pvalue(y, pred_a, pred_b) == pytest.approx(expected)


def _binary(confidence: float, n: int, n_right: int) -> tuple[np.ndarray, np.ndarray]:
    """n clips predicted as class 0 with ``confidence``, the first ``n_right`` of them truly class 0."""
    probabilities = np.tile([confidence, 1 - confidence], (n, 1))
    return (np.arange(n) >= n_right).astype(int), probabilities


def test_ece_of_a_calibrated_case_is_zero() -> None:
    parts = [_binary(0.75, 400, 300), _binary(0.55, 200, 110), _binary(0.95, 100, 95)]
    y = np.concatenate([part[0] for part in parts])
    probabilities = np.concatenate([part[1] for part in parts])
    assert statistics.expected_calibration_error(y, probabilities) == pytest.approx(0, abs=1e-12)


def test_ece_of_an_overconfident_case_equals_the_hand_sum() -> None:
    parts = [_binary(0.95, 10, 6), _binary(0.85, 30, 15), _binary(1.0, 10, 10)]
    y = np.concatenate([part[0] for part in parts])
    probabilities = np.concatenate([part[1] for part in parts])
    # bins of 0.1: 0.85 alone in bin 8, 0.95 and 1.0 (the last bin holds 1.0) share bin 9 at confidence 0.975
    expected = 30 / 50 * abs(0.5 - 0.85) + 20 / 50 * abs(16 / 20 - 0.975)
    assert statistics.expected_calibration_error(y, probabilities, n_bins=10) == pytest.approx(expected)
    confidence, accuracy, counts = statistics.reliability_curve(y, probabilities, n_bins=10)
    assert counts.sum() == len(y) and counts[8] == 30 and counts[9] == 20
    assert accuracy[9] == pytest.approx(0.8) and confidence[9] == pytest.approx(0.975)
    assert np.isnan(confidence[:8]).all() and np.isnan(accuracy[:8]).all()


def test_reliability_curve_shapes_and_counts() -> None:
    rng = np.random.default_rng(9)
    probabilities = _softmax(rng.normal(size=(123, 7)) * 2)
    y = rng.integers(0, 7, 123)
    curve = statistics.reliability_curve(y, probabilities)
    assert [part.shape for part in curve] == [(15,)] * 3
    assert curve[2].sum() == 123
    assert statistics.expected_calibration_error(np.zeros(0, int), np.zeros((0, 7))) == 0.0


def test_temperature_undoes_overconfidence() -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(6000, 4)) * 1.5
    calibrated = _softmax(logits)
    y = np.array([rng.choice(4, p=row) for row in calibrated])
    overconfident = _softmax(3 * logits)
    temperature = statistics.fit_temperature(overconfident, y)
    assert 2.6 < temperature < 3.4
    scaled = statistics.apply_temperature(overconfident, temperature)
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    np.testing.assert_array_equal(scaled.argmax(axis=1), overconfident.argmax(axis=1))
    before = statistics.expected_calibration_error(y, overconfident)
    after = statistics.expected_calibration_error(y, scaled)
    assert after < before / 2


def test_temperature_edge_cases() -> None:
    probabilities = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(statistics.apply_temperature(probabilities, 1.0), probabilities)
    assert statistics.fit_temperature(np.zeros((0, 3)), np.zeros(0, int)) == 1.0
    with pytest.raises(ValueError, match="positive"):
        statistics.apply_temperature(probabilities, 0.0)


def test_mean_std_and_formatting() -> None:
    values = [0.81, 0.79, 0.83, 0.8]
    mean, std = statistics.mean_std(values)
    assert mean == pytest.approx(stdlib_statistics.mean(values))
    assert std == pytest.approx(stdlib_statistics.stdev(values))
    assert statistics.mean_std([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError):
        statistics.mean_std([])
    assert statistics.format_mean_std([0.8, 0.82]) == "0.810 ± 0.014"
    assert statistics.format_mean_std([0.8123]) == "0.812"
    assert statistics.format_mean_std(iter([0.5, 0.7]), digits=2) == "0.60 ± 0.14"
    assert statistics.format_interval(0.8123, (0.7851, 0.8399)) == "0.812 [0.785, 0.840]"


def test_save_reliability_diagram_writes_a_png(tmp_path) -> None:
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(12)
    curves = {}
    for name, scale in (("fc fusion", 1.0), ("scene alone", 3.0)):
        probabilities = _softmax(rng.normal(size=(200, 3)) * scale)
        curves[name] = (rng.integers(0, 3, 200), probabilities)
    path = tmp_path / "figures" / "reliability.png"
    assert statistics.save_reliability_diagram(curves, path, "Reliability, report part") == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = plt.imread(path)
    assert image.size > 0 and image.ndim == 3
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]
