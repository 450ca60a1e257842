"""Matplotlib figures without pyplot: each figure draws on its own Agg canvas, so library code chooses no backend
for the process and figures drawn in several threads never meet in pyplot's global state."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, constrained_layout=None, **grid: Any):
    """``(figure, axes)`` as ``matplotlib.pyplot.subplots`` gives them (``grid``: sharex, squeeze, gridspec_kw, ...),
    on a figure of its own that needs no closing."""
    figure = Figure(figsize=figsize, constrained_layout=constrained_layout)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, **grid)
