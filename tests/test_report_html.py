"""report.html and report.screenshot: pages that open from disk with every section, figure and table, escaped text,
no network reference; the index; safe unique file stems; and the page as headless Chromium renders it."""

from __future__ import annotations

import base64
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
from skimage import data

from gvs.core.errors import InputError
from gvs.core.vocabulary import CLASS_NAMES
from gvs.report import screenshot as shots
from gvs.report.html import MAX_STEM_BYTES, page_stem, write_index, write_page
from gvs.report.sections import Figure, Section, Table, png_bytes, rgb_png

TRICKY = "Tall bars <b>mark</b> the moments that matter & <script>alert(1)</script> is text"
SUMMARY = {
    "verdict": "Positive (Positive 0.70, Neutral 0.20, Negative 0.10)",
    "explained": "Positive, window 4.4-8.8 s of 20.0 s",
    "model": "fc <fusion> & co",
}


class Page(HTMLParser):
    """The tags (with attributes), ids, text and headings of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "h2":
            self._in_h2 = True
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, text: str) -> None:
        self.text.append(text)
        if self._in_h2:
            self.headings[-1] += text

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if "id" in attrs}

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def _plot_png() -> bytes:
    from gvs.core.figures import subplots

    figure, axis = subplots(figsize=(6, 2.5))
    axis.plot(np.linspace(0, 1, 20), np.linspace(0, 1, 20) ** 2, color="tab:green")
    return png_bytes(figure)


@pytest.fixture(scope="module")
def sections() -> list[Section]:
    """Three sections with a matplotlib plot, a photograph, tables, caveats and text needing escaping."""
    return [
        Section(
            "verdict",
            "Verdict",
            "The video is Positive.\n\nThe timeline shows each class over time.",
            figures=[Figure("timeline", _plot_png(), "Fused probability over time")],
            tables=[Table(["", "Positive", "Neutral", "Negative"], [["video", "0.70", "0.20", "0.10"]], "Per class")],
            caveat="Notes on this video: 1 of 4 windows fused without faces.",
            arrays={"video_probabilities": np.array([0.7, 0.2, 0.1])},
        ),
        Section(
            "sections",
            "Key moments <when>",
            TRICKY,
            figures=[Figure("key frame", rgb_png(data.astronaut()[::4, ::4]), "Key frame & its regions")],
            caveat="Removing frames <b>is not</b> the frames never happening.\n\nSecond paragraph.",
        ),
        Section(
            "modalities",
            "Each modality's share",
            "How much each modality moves the fused probability.",
            tables=[Table(["modality", "share"], [["scene", "60%"], ["audio <raw>", "40%"]])],
        ),
    ]


def _decoded(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "an image of the page does not decode as PNG"
    return image


def test_page_shows_every_section_with_embedded_images(tmp_path: Path, sections: list[Section]) -> None:
    path = write_page(tmp_path, "clip", "clip 1.mp4", SUMMARY, sections, CLASS_NAMES)
    assert path == tmp_path / "clip.html"
    page = Page(path.read_text(encoding="utf-8"))
    toc = {attrs["href"] for attrs in page.all("a")}
    for section in sections:
        assert section.key in page.ids
        assert f"#{section.key}" in toc
        assert any(heading.endswith(section.title) for heading in page.headings)
    images = page.all("img")
    figures = [f for s in sections for f in s.figures]
    assert len(images) == len(figures)
    for attrs, figure in zip(images, figures):
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        png = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
        assert png == figure.png
        height, width = _decoded(png).shape[:2]
        assert (attrs["width"], attrs["height"]) == (str(width), str(height))
        assert attrs["alt"] == figure.caption
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.html"]  # nothing beside it, no temporary file


def test_page_is_self_contained(tmp_path: Path, sections: list[Section]) -> None:
    text = write_page(tmp_path, "clip", "clip.mp4", SUMMARY, sections, CLASS_NAMES).read_text(encoding="utf-8")
    assert not re.search(r"https?://|@import|url\(|<script|<link", text, re.IGNORECASE)
    page = Page(text)
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name, "")
            assert not value.startswith("//"), value
            assert value == "" or value.startswith(("#", "data:image/png;base64,")), value


def test_text_is_escaped(tmp_path: Path, sections: list[Section]) -> None:
    text = write_page(tmp_path, "clip", "<i>clip</i>.mp4", SUMMARY, sections, CLASS_NAMES).read_text(encoding="utf-8")
    page = Page(text)
    assert {"b", "i", "script", "raw", "fusion", "when"}.isdisjoint(name for name, _ in page.tags)
    assert TRICKY in page.plain
    assert "&lt;b&gt;mark&lt;/b&gt; the moments that matter &amp; &lt;script&gt;" in text
    for shown in [
        "<i>clip</i>.mp4",
        "fc <fusion> & co",
        "audio <raw>",
        "Key moments <when>",
        "Key frame & its regions",
    ]:
        assert shown in page.plain


def test_summary_tables_and_caveats(tmp_path: Path, sections: list[Section]) -> None:
    page = Page(write_page(tmp_path, "clip", "clip.mp4", SUMMARY, sections, CLASS_NAMES).read_text(encoding="utf-8"))
    plain = page.plain
    assert "explained Positive, window 4.4-8.8 s of 20.0 s" in plain
    assert SUMMARY["verdict"] not in plain  # drawn as the verdict card instead
    assert "Verdict Positive 0.70" in plain
    widths = re.findall(r"width: ([\d.]+)%", " ".join(a.get("style", "") for a in page.all("span")))
    assert widths == ["70.0", "20.0", "10.0"]
    assert len(page.all("thead")) == 2 and len(page.all("tbody")) == 2
    assert "Per class Positive Neutral Negative video 0.70 0.20 0.10" in plain
    assert len(page.all("aside")) == 2 and plain.count("When not to trust this") == 2
    assert "Removing frames <b>is not</b> the frames never happening. Second paragraph." in plain


def test_files_beside_the_page(tmp_path: Path, sections: list[Section]) -> None:
    stem = page_stem(Path("fête, été 2019.mp4"), set())
    path = write_page(tmp_path, stem, "fête, été 2019.mp4", SUMMARY, sections, CLASS_NAMES, embed=False)
    page = Page(path.read_text(encoding="utf-8"))
    images = page.all("img")
    assert len(images) == 2
    for attrs, figure in zip(images, [f for s in sections for f in s.figures]):
        assert not attrs["src"].startswith(("data:", "/", "file:"))
        file = tmp_path / unquote(attrs["src"])
        assert file.parent == tmp_path / f"{stem}_files" and file.is_file()
        assert file.read_bytes() == figure.png
        _decoded(file.read_bytes())


def test_index_lists_pages_and_failures(tmp_path: Path) -> None:
    entries = [
        {"video": "/v/a b.mp4", "status": "done", "reason": "", "page": "a_b.html", "verdict": "Positive",
         "probabilities": [0.7, 0.2, 0.1], "flags": [], "seconds": 12.0},
        {"video": "/v/c.mp4", "pick": "wrong", "status": "flagged", "reason": "", "page": "c.html",
         "verdict": "Negative", "probabilities": [0.1, 0.3, 0.6], "flags": ["no audio track"], "seconds": 9.5},
        {"video": "/v/broken.mp4", "status": "failed", "reason": "/v/broken.mp4: moov atom not found"},
    ]  # fmt: skip
    path = write_index(tmp_path, entries, CLASS_NAMES)
    assert path == tmp_path / "index.html"
    page = Page(path.read_text(encoding="utf-8"))
    assert [a["href"] for a in page.all("a")] == ["a_b.html", "c.html"]
    rows = [attrs for attrs in page.all("tr")][1:]
    assert len(rows) == 3 and rows[2].get("class") == "failed"
    plain = page.plain
    for shown in ["a b.mp4", "Positive", "0.70 / 0.20 / 0.10", "Negative", "wrong", "no audio track", "broken.mp4"]:
        assert shown in plain
    assert "failed /v/broken.mp4: moov atom not found" in plain


def test_page_stems_are_safe_and_unique(tmp_path: Path, sections: list[Section]) -> None:
    names = [
        "my video, take 2.mp4", "my video; take 2.mp4", "a/b/my video, take 2.mp4", "Ünïcode 日本.mp4",
        unicodedata.normalize("NFD", "Ünïcode 日本.mp4"), "index.mp4", ".hidden.mp4", "Clip.mp4", "clip.mp4",
        "%#?&'\"<>.mp4", "é" * 200 + ".mp4",
    ]  # fmt: skip
    taken: set[str] = set()
    for name in names:
        stem = page_stem(Path(name), taken)
        taken.add(stem)
        assert re.fullmatch(r"[\w.-]+", stem) and not stem.startswith(".")
        assert len(stem.encode()) <= MAX_STEM_BYTES + 4
    stems = [page_stem(Path(n), set()) for n in names]
    assert stems[:4] == ["my_video_take_2"] * 3 + ["Ünïcode_日本"]
    assert stems[4] == stems[3] and stems[5] == "index-2" and stems[6] == "hidden" and stems[9] == "video"
    assert len({s.casefold() for s in taken}) == len(names)
    for stem in taken:
        write_page(tmp_path, stem, stem, {}, sections[2:], CLASS_NAMES)
    assert len(list(tmp_path.glob("*.html"))) == len(names)


def test_a_figure_that_is_not_png_is_refused(tmp_path: Path) -> None:
    section = Section("bad", "Bad", "", figures=[Figure("bad", b"GIF89a not a png")])
    with pytest.raises(ValueError, match="not a PNG"):
        write_page(tmp_path, "bad", "bad.mp4", {}, [section], CLASS_NAMES)
    assert not list(tmp_path.iterdir())


def test_missing_browser_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "p.html"
    page.write_text("<p>hi</p>")
    monkeypatch.setattr(shots.shutil, "which", lambda name: None)
    assert shots.find_chromium() is None
    with pytest.raises(InputError, match="apt-get install chromium"):
        shots.rendered_dom(page)


@pytest.mark.slow
def test_chromium_renders_the_page(tmp_path: Path, sections: list[Section]) -> None:
    if shots.find_chromium() is None:
        pytest.skip("headless Chromium not installed (`apt-get install chromium`)")
    stem = page_stem(Path("fête, été.mp4"), set())
    path = write_page(tmp_path, stem, "fête, été.mp4", SUMMARY, sections, CLASS_NAMES)
    dom = Page(shots.rendered_dom(path))
    for section in sections:
        assert section.key in dom.ids
        assert any(heading.endswith(section.title) for heading in dom.headings)
    assert len(dom.all("img")) == 2
    full = _decoded(shots.screenshot(path, tmp_path / "full.png", width=1000).read_bytes())
    assert full.shape[1] == 1000 and 1000 < full.shape[0] < shots.FULL_PAGE_HEIGHT  # trimmed to the page
    assert full.std() > 0
    window = _decoded(shots.screenshot(path, tmp_path / "top.png", width=800, height=600).read_bytes())
    assert window.shape[:2] == (600, 800) and window.std() > 0
