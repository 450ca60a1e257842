"""The server's HTML pages, rendered with Jinja2 on `gvs report`'s base template (its look and CSS).

Templates in serve/templates extend report/templates/base.html.j2; everything is autoescaped (a file name is text,
whatever characters it holds). serve/static/serve.css adds what the report has no need for (the drop zone, the
stage list).
"""

from __future__ import annotations

import functools

import jinja2
from starlette.responses import HTMLResponse

from gvs import __version__
from gvs.core.vocabulary import CLASS_NAMES
from report.html import CLASS_HEX


@functools.cache
def _environment() -> jinja2.Environment:
    loader = jinja2.ChoiceLoader(
        [jinja2.PackageLoader("serve", "templates"), jinja2.PackageLoader("report", "templates")]
    )
    return jinja2.Environment(
        loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )


def render(template: str, status_code: int = 200, **values) -> HTMLResponse:
    """The page ``template`` filled with ``values`` (plus the version and the class colours)."""
    text = (
        _environment()
        .get_template(template)
        .render(version=__version__, class_hex=CLASS_HEX, class_names=CLASS_NAMES, **values)
    )
    return HTMLResponse(text, status_code=status_code)


def bars(probabilities: dict[str, float]) -> list[dict]:
    """One bar per class: name, colour, probability and its width in percent (the report's verdict card)."""
    return [
        {"name": name, "colour": CLASS_HEX[name], "p": p, "width": f"{100 * p:.1f}"}
        for name, p in ((c, float(probabilities.get(c, 0.0))) for c in CLASS_NAMES)
    ]


def job_page(view: dict) -> HTMLResponse:
    """The page of one job: its progress, and once predicted its verdict, probabilities, timeline and links."""
    verdict = None
    if view["verdict"]:
        probabilities = view["probabilities"]
        verdict = {
            "name": view["verdict"],
            "colour": CLASS_HEX[view["verdict"]],
            "probability": probabilities[view["verdict"]],
            "bars": bars(probabilities),
        }
    rows = [("fused (video verdict)", view["probabilities"])] if view["probabilities"] else []
    rows += list(view["modalities"].items())
    return render("job.html.j2", job=view, verdict=verdict, rows=rows)


def error_page(status: int, message: str) -> HTMLResponse:
    return render("error.html.j2", status, status=status, message=message)
