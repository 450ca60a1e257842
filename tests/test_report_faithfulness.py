"""The faithfulness check's verdict: better or worse than random only outside the random orders' spread, none when
no deletion moved the probability; and a sentence instead of a curve for such an explanation."""

from __future__ import annotations

import numpy as np

from gvs.report.faithfulness import DeletionCurve, deletion_curve, faithfulness_section
from gvs.report.movement import MIN_CHANGE


def _curve(ranked, random_orders) -> DeletionCurve:
    return DeletionCurve(np.asarray(ranked, float), np.asarray(random_orders, float))


def _additive(weights: np.ndarray):
    """A score of keep-masks: 0.9 minus the summed weights of the removed parts."""
    return lambda keep: 0.9 - (~keep).astype(float) @ weights


def test_the_ranked_curve_of_an_additive_model_beats_random_orders():
    weights = np.array([0.4, 0.0, 0.02, 0.3, 0.0, 0.01])
    best = np.argsort(-weights, kind="stable")
    curve = deletion_curve(_additive(weights), best, len(weights), orders=10, seed=0)
    assert curve.orders == 10 and curve.random_orders.shape == (10, 7)
    assert curve.ranked_area < curve.random_area - curve.random_areas.std()
    assert curve.verdict() == "better than random"
    assert deletion_curve(_additive(weights), best[::-1], len(weights), 10, 0).verdict() == "worse than random"


def test_a_small_difference_inside_the_random_spread_gets_no_better_or_worse():
    random_orders = [[0.9, 0.6, 0.3], [0.9, 0.8, 0.3], [0.9, 0.4, 0.3], [0.9, 0.7, 0.3]]
    curve = _curve([0.9, 0.6, 0.3], random_orders)  # 0.0125 below the mean area, inside its spread (0.074)
    assert curve.ranked_area < curve.random_area
    assert curve.verdict() == "within the random orders' spread"


def test_a_probability_that_never_moved_gets_no_verdict_and_no_curve():
    flat = _curve([1.0, 1.0, 0.9999], [[1.0, 0.9999, 0.9999], [1.0, 1.0, 1.0]])
    assert flat.spread < MIN_CHANGE and flat.verdict().startswith("none")
    moving = _curve([0.9, 0.2, 0.1], [[0.9, 0.8, 0.1], [0.9, 0.7, 0.1]])
    made = faithfulness_section({"key moments": flat, "superpixels": moving}, "Negative")
    verdicts = {row[0]: row[-1] for row in made.tables[0].rows}
    assert verdicts["key moments"].startswith("none") and not verdicts["superpixels"].startswith("none")
    assert made.text.count("nothing here to explain") == 1 and "key moments" in made.text
    assert len(made.figures) == 1  # the moving curve only
    assert not faithfulness_section({"key moments": flat}, "Negative").figures


def test_an_order_from_perturbations_that_moved_nothing_is_not_judged():
    """Removing all the parts moves p, but the explanation's order came from single removals that did not: no
    verdict, whatever the areas say."""
    weights = np.array([0.3, 0.3, 0.3])
    curve = deletion_curve(_additive(weights), [0, 1, 2], 3, orders=10, seed=0, order_moved=False)
    assert curve.spread > MIN_CHANGE and curve.verdict() == "none: nothing was ranked"
    made = faithfulness_section({"key moments": curve}, "Negative")
    assert "key moments ranked nothing" in made.text and not made.figures
