"""The report's pages: one self-contained HTML file per video, and ``index.html`` linking them.

A page shows the video's verdict with a bar per class, the summary, a table of contents and every Section (text,
figures, tables, caveat) in order. It opens from disk in any browser with no network: the CSS is inline, there
is no JavaScript and no web font, and images are embedded as ``data:`` URIs (or, with ``embed=False``, written
beside the page in ``<stem>_files/`` and linked relatively). Pages are rendered with the Jinja2 templates in
``report/templates`` (autoescaped: every text of a Section is plain text) and written atomically.
"""

from __future__ import annotations

import base64
import functools
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

import jinja2
import numpy as np

from gvs import __version__
from gvs.core.io import atomic_write_bytes, atomic_write_text
from gvs.predict.outputs import class_colours

from .sections import Figure, Section, Table

UNKNOWN_COLOUR = "#59636e"  # a badge of no class of the bundle (the page's muted grey)
PROBABILITIES_ARRAY = "video_probabilities"  # the Section array the verdict card is drawn from (verdict.py's)
RESERVED_STEMS = frozenset({"index"})  # index.html is the report's own
MAX_STEM_BYTES = 120  # leaves room for "-NN", "_files" and ".html" under the usual 255-byte file name limit
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NUMBER = re.compile(r"^[-+−]?\d[\d,]*(\.\d+)?\s*(%|s|px)?$")


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment of report/templates (autoescaped; an undefined name is an error)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gvs.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _render(template: str, class_names, **values) -> str:
    """The page ``template`` for predictions of ``class_names`` (the bundle's classes, in order)."""
    return _environment().get_template(template).render(version=__version__, class_names=list(class_names), **values)


def safe_name(text: str) -> str:
    """``text`` as a file-name part: NFC unicode letters, digits, ``_ . -`` kept, every other run of characters
    (spaces, commas, slashes, quotes) one ``_``, no leading dot, at most MAX_STEM_BYTES of UTF-8; "video" when
    nothing is left."""
    name = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", text)).strip("._")
    while len(name.encode()) > MAX_STEM_BYTES:
        name = name[:-1]
    return name.rstrip("._") or "video"


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... whichever no name of ``taken`` equals ignoring case (so pages stay
    apart on case-insensitive file systems too)."""
    folded = {t.casefold() for t in taken}
    candidate, number = name, 1
    while candidate.casefold() in folded:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def page_stem(path: Path, taken: set[str]) -> str:
    """A file stem for the page of the video ``path``: its name made safe (see ``safe_name``), made unique against
    ``taken`` (and "index"). ``taken`` is not changed: add the stem to it once used."""
    return _unique(safe_name(Path(path).stem), taken | RESERVED_STEMS)


def _paragraphs(text: str) -> list[str]:
    """Plain text split on blank lines, each paragraph stripped."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _png_size(figure: Figure) -> tuple[int, int]:
    """(width, height) from the PNG header of ``figure``; a figure that is not a PNG raises ValueError."""
    if figure.png[:8] != PNG_SIGNATURE or len(figure.png) < 24:
        raise ValueError(f"figure {figure.name!r} is not a PNG image")
    return int.from_bytes(figure.png[16:20], "big"), int.from_bytes(figure.png[20:24], "big")


def _figure_views(section: Section, out_dir: Path, stem: str, embed: bool, used: set[str]) -> list[dict]:
    """What the template shows of each figure of ``section``; with ``embed`` False its PNG is written first to
    ``out_dir/<stem>_files/<name>.png`` (names made safe and unique in ``used``)."""
    views = []
    for figure in section.figures:
        width, height = _png_size(figure)
        if embed:
            src = "data:image/png;base64," + base64.b64encode(figure.png).decode("ascii")
        else:
            name = _unique(safe_name(figure.name), used)
            used.add(name)
            atomic_write_bytes(out_dir / f"{stem}_files" / f"{name}.png", lambda handle, f=figure: handle.write(f.png))
            src = quote(f"{stem}_files/{name}.png")
        alt = figure.caption or f"{section.title}: {figure.name}"
        views.append({"src": src, "alt": alt, "caption": figure.caption, "width": width, "height": height})
    return views


def _table_view(table: Table) -> dict:
    """A table's cells, each marked numeric (right-aligned) or not."""
    rows = [
        [{"text": str(cell), "number": bool(NUMBER.match(str(cell).strip()))} for cell in row] for row in table.rows
    ]
    return {"columns": table.columns, "rows": rows, "caption": table.caption}


def _verdict(sections: list[Section], class_names) -> dict | None:
    """The verdict card: class and probability bars from the first section holding PROBABILITIES_ARRAY (one
    probability per class of ``class_names``)."""
    for section in sections:
        probabilities = section.arrays.get(PROBABILITIES_ARRAY)
        if probabilities is not None and np.shape(probabilities) == (len(class_names),):
            verdict = class_names[int(np.argmax(probabilities))]
            return {
                "name": verdict,
                "colour": class_colours(class_names)[verdict],
                "probability": float(np.max(probabilities)),
                "bars": _bars(probabilities, class_names),
            }
    return None


def _bars(probabilities, class_names) -> list[dict]:
    """One bar per class of ``class_names``: name, colour, probability and its width in percent."""
    colours = class_colours(class_names)
    return [
        {"name": name, "colour": colours[name], "p": float(p), "width": f"{100 * float(p):.1f}"}
        for name, p in zip(class_names, probabilities)
    ]


def write_page(
    out_dir: Path,
    stem: str,
    title: str,
    summary: dict,
    sections: list[Section],
    class_names: tuple[str, ...] | list[str],
    embed: bool = True,
) -> Path:
    """Write the page ``out_dir/<stem>.html`` of one video (atomically) and return its path.

    title : the video's name, the page's heading
    summary : label -> text, shown as a definition list under the verdict ("verdict" is left out when a section
        holds the video's probabilities, which are then drawn as the verdict card)
    sections : shown in order, each under its ``key`` as anchor, linked from the table of contents
    class_names : the classes the video's probabilities are of (the bundle's), in order
    embed : images as data: URIs (default); False writes them to ``out_dir/<stem>_files/`` (before the page)
    """
    class_names = tuple(class_names)
    out_dir = Path(out_dir)
    used: set[str] = set()
    views = [
        {
            "key": section.key,
            "title": section.title,
            "paragraphs": _paragraphs(section.text),
            "figures": _figure_views(section, out_dir, stem, embed, used),
            "tables": [_table_view(t) for t in section.tables],
            "caveat": _paragraphs(section.caveat),
        }
        for section in sections
    ]
    verdict = _verdict(sections, class_names)
    details = {label: str(text) for label, text in summary.items() if not (verdict and label == "verdict")}
    page = out_dir / f"{stem}.html"
    text = _render("report.html.j2", class_names, title=title, verdict=verdict, details=details, sections=views)
    atomic_write_text(page, text)
    return page


def _index_row(entry: dict, class_names: tuple[str, ...]) -> dict:
    """What the index shows of one video's entry (as ``gvs report`` collects them: video, pick, status, reason,
    and for a written page: page, verdict, probabilities (one per class of ``class_names``), flags, seconds)."""
    page = entry.get("page")
    probabilities = entry.get("probabilities")
    status = entry.get("status", "failed")
    if not page:
        notes = [entry.get("reason") or "no page written"]
    else:
        notes = list(entry.get("flags") or [])
    seconds = entry.get("seconds")
    verdict = entry.get("verdict") if page else None
    return {
        "name": Path(entry["video"]).name,
        "path": str(entry["video"]),
        "href": quote(page) if page else None,
        "pick": entry.get("pick") or "",
        "status": status if page else "failed",
        "verdict": verdict,
        "colour": class_colours(class_names).get(verdict, UNKNOWN_COLOUR),
        "bars": _bars(probabilities, class_names) if page and probabilities is not None else [],
        "notes": notes,
        "seconds": f"{seconds:.0f} s" if seconds is not None else "",
    }


def write_index(out_dir: Path, entries: list[dict], class_names: tuple[str, ...] | list[str]) -> Path:
    """Write ``out_dir/index.html`` (atomically): one row per video with its page's link, verdict and fused
    probabilities (of ``class_names``, the bundle's classes), and its flags, or for a video without a page, why it
    failed (no link). Returns its path."""
    class_names = tuple(class_names)
    rows = [_index_row(entry, class_names) for entry in entries]
    failed = sum(row["href"] is None for row in rows)
    index = Path(out_dir) / "index.html"
    text = _render("index.html.j2", class_names, rows=rows, failed=failed, picks=any(row["pick"] for row in rows))
    atomic_write_text(index, text)
    return index
