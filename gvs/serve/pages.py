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
from gvs.predict.familiarity import familiarity_text
from gvs.predict.outputs import class_colours
from gvs.predict.timeline import EXPRESSION_COLOURS


@functools.cache
def _environment() -> jinja2.Environment:
    loader = jinja2.ChoiceLoader(
        [jinja2.PackageLoader("gvs.serve", "templates"), jinja2.PackageLoader("gvs.report", "templates")]
    )
    return jinja2.Environment(
        loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )


def render(template: str, status_code: int = 200, class_names=(), **values) -> HTMLResponse:
    """The page ``template`` filled with ``values`` (plus the version and ``class_names``, the classes of the
    probabilities it shows, if any)."""
    text = _environment().get_template(template).render(version=__version__, class_names=list(class_names), **values)
    return HTMLResponse(text, status_code=status_code)


def bars(probabilities: dict[str, float]) -> list[dict]:
    """One bar per class of ``probabilities`` ({class: p}, the bundle's classes in order): name, colour (the
    report's: gvs.predict.outputs.class_colours), probability and its width in percent (the report's verdict card)."""
    colours = class_colours(list(probabilities))
    return [
        {"name": name, "colour": colours[name], "p": float(p), "width": f"{100 * float(p):.1f}"}
        for name, p in probabilities.items()
    ]


def job_page(view: dict) -> HTMLResponse:
    """The page of one job: its progress, and once predicted its verdict, probabilities, timeline, the three people
    who carried it most (thumbnail, top expression, drop) and links.

    The classes shown are the job's ``class_names`` (the bundle's, in order)."""
    verdict = None
    class_names = list(view["class_names"])
    probabilities = {c: view["probabilities"][c] for c in class_names} if view["probabilities"] else {}
    if view["verdict"]:
        verdict = {
            "name": view["verdict"],
            "colour": class_colours(class_names).get(view["verdict"], "#59636e"),
            "probability": probabilities[view["verdict"]],
            "bars": bars(probabilities),
        }
    rows = [("fused (video verdict)", probabilities)] if probabilities else []
    rows += list(view["modalities"].items())
    familiarity = None
    if view["verdict"] and view.get("familiarity") is not None:
        unfamiliar = view.get("unfamiliar") or []
        familiarity = {"flagged": bool(unfamiliar), "text": familiarity_text(view["familiarity"], unfamiliar)}
    people = [p | {"colour": EXPRESSION_COLOURS.get(p["top_expression"], "#59636e")} for p in view.get("people") or []]
    return render(
        "job.html.j2",
        job=view,
        verdict=verdict,
        rows=rows,
        class_names=class_names,
        familiarity=familiarity,
        people=people,
    )


def error_page(status: int, message: str) -> HTMLResponse:
    return render("error.html.j2", status, status=status, message=message)
