"""What a report section holds: text, figures (PNG bytes), tables and the numbers behind them.

Every section module returns a ``Section``; ``report.html`` renders any list of them, so a section is added by
writing its module, not by touching the page.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Figure:
    """One image of a section: ``name`` is its file stem (unique within the report), ``png`` its bytes."""

    name: str
    png: bytes
    caption: str = ""


@dataclass
class Table:
    """A small table: ``columns`` names, ``rows`` of already formatted cells."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """One part of the page.

    key : stable id, also the HTML anchor (e.g. "sections", "lime", "pixels")
    title : heading
    text : what it shows and how to read it (paragraphs separated by blank lines, plain text)
    caveat : when not to trust it (plain text; shown under the section)
    arrays : the numbers behind the figures, for the Python API (e.g. {"drop": (n_sections,)})
    """

    key: str
    title: str
    text: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    caveat: str = ""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def png_bytes(figure) -> bytes:
    """A matplotlib figure (drawn on its own canvas: gvs.core.figures) as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def rgb_png(image: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 RGB image as PNG bytes."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return encoded.tobytes()
