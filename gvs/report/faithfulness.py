"""Deletion curves: is an explanation's ranking better than chance?

Parts (video sections, superpixels, ...) are removed in the explanation's order, most important first, and
the probability of the explained class is read after each removal; the same is done in random orders. A
faithful ranking makes the probability fall faster than random: its curve lies below the random one and its
area (mean of the curve over 0 .. all parts removed) is smaller. The verdict says better or worse only when the
ranked area lies outside the random orders' spread (their mean area +- one standard deviation), and gives none
when no deletion moved the probability by movement.MIN_CHANGE, or when the explanation's order itself came from
perturbations that moved nothing (an arbitrary order: nothing was ranked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gvs.core.figures import subplots

from .movement import MIN_CHANGE, spread


@dataclass
class DeletionCurve:
    """Probability of the explained class after removing the first k parts, k = 0 .. n_parts.

    ranked : (n_parts + 1,) following the explanation's order
    random_orders : (orders, n_parts + 1) following each random order
    order_moved : whether the explanation's order came from a probability that moved (False: it ranked nothing,
        its order is arbitrary and is not judged)
    """

    ranked: np.ndarray
    random_orders: np.ndarray
    order_moved: bool = True

    @property
    def orders(self) -> int:
        return len(self.random_orders)

    @property
    def random(self) -> np.ndarray:
        """(n_parts + 1,) mean of the random orders' curves."""
        return self.random_orders.mean(axis=0)

    @property
    def random_std(self) -> np.ndarray:
        """(n_parts + 1,) standard deviation of the random orders' curves at each step."""
        return self.random_orders.std(axis=0)

    @property
    def ranked_area(self) -> float:
        return curve_area(self.ranked)

    @property
    def random_areas(self) -> np.ndarray:
        """(orders,) area of each random order's curve."""
        return np.array([curve_area(curve) for curve in self.random_orders])

    @property
    def random_area(self) -> float:
        return float(self.random_areas.mean())

    @property
    def spread(self) -> float:
        """How far any deletion (ranked or random) moved the probability: largest minus smallest value."""
        return spread(np.concatenate([self.ranked, self.random_orders.ravel()]))

    def verdict(self) -> str:
        """ "better than random" / "worse than random" when the ranked area lies below / above the random orders'
        mean area by more than their standard deviation; "within the random orders' spread" otherwise; no verdict
        when no deletion moved the probability by MIN_CHANGE or the explanation ranked nothing."""
        if not self.order_moved:
            return "none: nothing was ranked"
        if self.spread < MIN_CHANGE:
            return f"none: p moved < {MIN_CHANGE}"
        margin = float(self.random_areas.std())
        if self.ranked_area < self.random_area - margin:
            return "better than random"
        if self.ranked_area > self.random_area + margin:
            return "worse than random"
        return "within the random orders' spread"


def curve_area(curve: np.ndarray) -> float:
    """Area under a deletion curve with its x axis scaled to 0 .. 1 (trapezoids)."""
    x = np.linspace(0.0, 1.0, len(curve))
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(x)) / 2)


def removal_masks(order: Sequence[int], n_parts: int) -> np.ndarray:
    """(n_parts + 1, n_parts) bool, row k keeps every part except the first k of ``order``."""
    keep = np.ones((n_parts + 1, n_parts), dtype=bool)
    for k in range(1, n_parts + 1):
        keep[k:, order[k - 1]] = False
    return keep


def deletion_curve(
    score: Callable[[np.ndarray], np.ndarray],
    order: Sequence[int],
    n_parts: int,
    orders: int = 10,
    seed: int = 0,
    order_moved: bool = True,
) -> DeletionCurve:
    """The deletion curve of ``order`` against ``orders`` random orders (``order_moved``: see DeletionCurve).

    ``score``: (B, n_parts) bool keep-masks -> (B,) probability of the explained class with the parts whose
    mask is False removed; it is called once with every mask of every curve stacked, so it can batch.
    """
    generator = np.random.default_rng(seed)
    curves = [removal_masks(order, n_parts)] + [
        removal_masks(generator.permutation(n_parts), n_parts) for _ in range(orders)
    ]
    values = np.asarray(score(np.concatenate(curves)), dtype=np.float64).reshape(len(curves), n_parts + 1)
    return DeletionCurve(values[0], values[1:], order_moved)


def deletion_figure(curves: dict[str, DeletionCurve], class_name: str):
    """Matplotlib figure: each explanation's ranked curve (solid) against its random curve (dashed, the band one
    standard deviation of the random orders)."""
    figure, axes = subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2), squeeze=False)
    for axis, (name, curve) in zip(axes[0], curves.items()):
        x = np.arange(len(curve.ranked))
        axis.plot(x, curve.ranked, "-o", color="#c0392b", ms=3, label=f"explanation (area {curve.ranked_area:.3f})")
        axis.plot(x, curve.random, "--", color="#7f8c8d", label=f"random (area {curve.random_area:.3f})")
        axis.fill_between(
            x, curve.random - curve.random_std, curve.random + curve.random_std, color="#bdc3c7", alpha=0.4
        )
        axis.set_title(name)
        axis.set_xlabel("parts removed")
        axis.set_ylabel(f"p({class_name})")
        axis.set_ylim(-0.05, 1.05)  # a curve at 0 or 1 stays visible off the frame
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def faithfulness_section(curves: dict[str, DeletionCurve], class_name: str):
    """Section "faithfulness": every explanation's deletion curve against random orders, with the areas and a
    verdict in a table; a curve whose deletions never moved the probability gets a sentence, no figure and no
    verdict."""
    from .movement import unmoved_sentence
    from .sections import Figure, Section, Table, png_bytes

    rows = [
        [
            name,
            f"{curve.ranked_area:.3f}",
            f"{curve.random_area:.3f} ± {curve.random_areas.std():.3f}",
            curve.verdict(),
        ]
        for name, curve in curves.items()
    ]
    orders = next(iter(curves.values())).orders
    text = (
        f"Each explanation's parts are removed most important first, and the probability of {class_name} is read "
        f"after each removal (solid line); the dashed line does the same in random orders (mean of {orders}, band: "
        "one standard deviation). A faithful explanation makes the probability fall faster than random: its curve "
        "lies below and its area is smaller. The table says better or worse than random only when the explanation's "
        "area lies outside the random orders' mean area plus or minus their standard deviation."
    )
    unmoved = {name: curve for name, curve in curves.items() if curve.spread < MIN_CHANGE or not curve.order_moved}
    for name, curve in unmoved.items():
        if not curve.order_moved:
            text += (
                f"\n\n{name} ranked nothing (its perturbations moved p({class_name}) by less than {MIN_CHANGE}), so "
                "its order is arbitrary and is not checked."
            )
            continue
        text += "\n\n" + unmoved_sentence(
            f"Removing the parts of {name} in any of the {orders + 1} orders", f"p({class_name})", curve.spread
        )
    drawn = {name: curve for name, curve in curves.items() if name not in unmoved}
    figures = (
        [Figure("deletion-curves", png_bytes(deletion_figure(drawn, class_name)), "Deletion curves")] if drawn else []
    )
    return Section(
        "faithfulness",
        "Faithfulness check",
        text,
        figures=figures,
        tables=[
            Table(
                ["explanation", "area (ranked)", "area (random, mean ± sd)", "verdict"], rows, "Areas under the curves"
            )
        ],
        caveat="A curve within the random orders' spread means the ranking is no better than chance for this window; "
        "removal replaces parts by padding (sections) or a flat colour (superpixels), inputs the models rarely saw.",
        arrays={
            f"{name}_{kind}": getattr(c, kind)
            for name, c in curves.items()
            for kind in ("ranked", "random", "random_orders")
        },
    )
