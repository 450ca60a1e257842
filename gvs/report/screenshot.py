"""Render report pages in headless Chromium: a PNG screenshot (for the README, or to check a page by eye) and the
DOM as the browser built it (to check a page renders).

Chromium runs offline (no host name resolves) with a fresh temporary profile per call, so a page that renders
here needs no network, and calls never share state.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FULL_PAGE_HEIGHT = 12000  # the tallest page a full-page screenshot shows (px)
FULL_PAGE_MARGIN = 24  # background rows kept under the page's content in a full-page screenshot (px)
FLAGS = (
    "--headless=new",
    "--disable-gpu",
    "--no-sandbox",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome executable on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _chromium() -> str:
    browser = find_chromium()
    if browser is None:
        raise InputError(
            f"no headless browser found on PATH ({', '.join(BROWSERS)}); install one: `sudo apt-get install chromium`"
        )
    return browser


def _run(html: Path, options: list[str], timeout: float) -> str:
    """Run Chromium on the file ``html`` with ``options`` and a fresh profile; its stdout. A missing page raises
    InputError; a browser that fails or takes over ``timeout`` seconds raises RuntimeError."""
    html = Path(html).resolve()
    if not html.is_file():
        raise InputError(f"{html}: no such page")
    with tempfile.TemporaryDirectory(prefix="gvs-chromium-") as profile:
        command = [_chromium(), *FLAGS, f"--user-data-dir={profile}", *options, html.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{command[0]} took over {timeout:.0f} s to render {html}") from error
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed on {html} (exit {done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def rendered_dom(html: Path, timeout: float = 60) -> str:
    """The DOM of the page ``html`` as headless Chromium serialises it once loaded."""
    return _run(html, ["--dump-dom"], timeout)


def screenshot(html: Path, png: Path, width: int = 1280, height: int | None = None, timeout: float = 60) -> Path:
    """Screenshot the page ``html`` into ``png`` at ``width`` x ``height`` CSS pixels and return ``png``.

    height : None for the whole page: rendered FULL_PAGE_HEIGHT tall, then cut FULL_PAGE_MARGIN below the last
        row that differs from the page's bottom background
    """
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(html, [f"--window-size={width},{height or FULL_PAGE_HEIGHT}", f"--screenshot={png}"], timeout)
    if not png.is_file():
        raise RuntimeError(f"the browser wrote no screenshot of {html} to {png}")
    if height is None:
        _trim_bottom(png)
    return png


def _trim_bottom(png: Path) -> None:
    """Cut the rows at the bottom of the image ``png`` that are all the colour of its last row (keeping a margin)."""
    import cv2

    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    differs = np.flatnonzero(np.any(image != image[-1:], axis=(1, 2)))
    keep = min(len(image), int(differs[-1]) + 1 + FULL_PAGE_MARGIN) if len(differs) else len(image)
    if keep < len(image) and not cv2.imwrite(str(png), image[:keep]):
        raise RuntimeError(f"could not rewrite the screenshot {png}")
