"""Deletion curves: is an explanation's ranking better than chance?

Parts (video sections, superpixels, ...) are removed in the explanation's order, most important first, and
the probability of the explained class is read after each removal; the same is done in random orders. A
faithful ranking makes the probability fall faster than random: its curve lies below the random one and its
area (mean of the curve over 0 .. all parts removed) is smaller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class DeletionCurve:
    """Probability of the explained class after removing the first k ranked parts, k = 0 .. n_parts.

    ranked : (n_parts + 1,) following the explanation's order
    random : (n_parts + 1,) mean over ``orders`` random orders; random_std the spread across them
    """

    ranked: np.ndarray
    random: np.ndarray
    random_std: np.ndarray
    orders: int

    @property
    def ranked_area(self) -> float:
        return curve_area(self.ranked)

    @property
    def random_area(self) -> float:
        return curve_area(self.random)


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
) -> DeletionCurve:
    """The deletion curve of ``order`` against ``orders`` random orders.

    ``score``: (B, n_parts) bool keep-masks -> (B,) probability of the explained class with the parts whose
    mask is False removed; it is called once with every mask of every curve stacked, so it can batch.
    """
    generator = np.random.default_rng(seed)
    curves = [removal_masks(order, n_parts)] + [
        removal_masks(generator.permutation(n_parts), n_parts) for _ in range(orders)
    ]
    values = np.asarray(score(np.concatenate(curves)), dtype=np.float64).reshape(len(curves), n_parts + 1)
    return DeletionCurve(values[0], values[1:].mean(axis=0), values[1:].std(axis=0), orders)


def deletion_figure(curves: dict[str, DeletionCurve], class_name: str):
    """Matplotlib figure: each explanation's ranked curve (solid) against its random curve (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2), squeeze=False)
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
        axis.set_ylim(0, 1)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def faithfulness_section(curves: dict[str, DeletionCurve], class_name: str):
    """Section 8: every explanation's deletion curve against random orders, with the areas in a table."""
    from .sections import Figure, Section, Table, png_bytes

    rows = [
        [
            name,
            f"{curve.ranked_area:.3f}",
            f"{curve.random_area:.3f}",
            "better than random" if curve.ranked_area < curve.random_area else "NOT better than random",
        ]
        for name, curve in curves.items()
    ]
    return Section(
        "faithfulness",
        "Faithfulness check",
        f"Each explanation's parts are removed most important first, and the probability of {class_name} is read "
        f"after each removal (solid line); the dashed line does the same in random orders (mean of "
        f"{next(iter(curves.values())).orders}, band: one standard deviation). A faithful explanation makes the "
        "probability fall faster than random: its curve lies below and its area is smaller.",
        figures=[Figure("deletion-curves", png_bytes(deletion_figure(curves, class_name)), "Deletion curves")],
        tables=[Table(["explanation", "area (ranked)", "area (random)", "verdict"], rows, "Areas under the curves")],
        caveat="A curve close to the random one means the ranking is no better than chance for this window; "
        "removal replaces parts by padding (sections) or a flat colour (superpixels), inputs the models rarely saw.",
        arrays={f"{name}_{kind}": getattr(c, kind) for name, c in curves.items() for kind in ("ranked", "random")},
    )
