"""The people of a video shown (issue 29): `gvs report`'s section "The people in this video" and the timeline's
person rows, from a prediction made by hand (no bundle, no decoding)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gvs.core.privacy import blurred_thumbnail
from gvs.predict.timeline import MAX_PERSON_ROWS, PERSON_MIN_FRAMES, timeline_figure, timeline_people
from gvs.report.html import write_page
from gvs.report.movement import MIN_CHANGE
from gvs.report.persons import drop_sentence, persons_section
from tests.people_fakes import checkerboard, people_video


def _pixels(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(np.float64)


@pytest.fixture(scope="module")
def section():
    return persons_section(people_video())


def test_the_people_are_ranked_by_how_far_the_verdict_falls_without_them(section) -> None:
    assert section.key == "persons" and section.title == "The people in this video"
    np.testing.assert_array_equal(section.arrays["person_ids"], [3, 1, 5, 2])  # drops 0.12, 0.05, 0.0, -0.03
    assert "p(Negative) falls 0.12 without person 3" in section.text
    assert "p(Negative) rises 0.03 without person 2" in section.text
    table = section.tables[0]
    assert [row[1] for row in table.rows] == [
        "person 3",
        "person 1",
        "person 5",
        "person 2",
        "person 4 (too few frames)",
    ]
    assert [row[0] for row in table.rows] == ["1", "2", "3", "4", "-"]
    assert [row[5] for row in table.rows][:4] == ["+0.12", "+0.05", "+0.00", "−0.03"]
    assert [f.name for f in section.figures] == ["persons", "group"]
    np.testing.assert_array_equal(section.arrays["window_people"], [1, 2, 3, 1, 2, 3])


def test_people_seen_on_too_few_frames_are_left_out_and_named(section) -> None:
    assert 4 not in section.arrays["person_ids"]  # seen on 2 sampled frames, though its drop is the largest
    assert f"fewer than {PERSON_MIN_FRAMES} sampled frames (frames in brackets): person 4 (2)" in section.text


def test_drop_sentences_are_signed() -> None:
    assert drop_sentence("Negative", 0.12, 3) == "p(Negative) falls 0.12 without person 3"
    assert drop_sentence("Positive", -0.034, 2) == "p(Positive) rises 0.03 without person 2"
    assert drop_sentence("Positive", 0.004, 5) == "p(Positive) moves less than 0.005 without person 5"


def test_blur_faces_blurs_every_thumbnail(section) -> None:
    board = checkerboard()
    assert blurred_thumbnail(board).astype(float).var() < 0.05 * board.astype(float).var()
    blurred = persons_section(people_video(), blur_faces=True)
    sharp_png, blurred_png = section.figures[0].png, blurred.figures[0].png
    assert _pixels(blurred_png).var() < 0.5 * _pixels(sharp_png).var()
    assert "blurred (--blur-faces)" in blurred.text and "faces blurred" in blurred.figures[0].caption


def test_nobody_is_ranked_when_no_removal_moves_the_verdict() -> None:
    small = MIN_CHANGE / 2
    section = persons_section(people_video({3: small, 1: -small, 2: 0.0}))
    assert "less than 0.005" in section.text and "order of first appearance" in section.text
    assert "without person" not in section.text and "carried the verdict" not in section.text
    np.testing.assert_array_equal(section.arrays["person_ids"], [1, 2, 3])
    assert [row[0] for row in section.tables[0].rows] == ["-", "-", "-"]
    assert "in order of first appearance" in section.figures[0].caption


def test_untracked_videos_get_one_sentence() -> None:
    off = persons_section(people_video(tracked=False))
    assert not off.figures and not off.tables and "--no-people" in off.text and ". " not in off.text
    nobody = persons_section(people_video({}))
    assert "No face was found" in nobody.text and not nobody.figures


def test_the_section_renders_on_the_page(section, tmp_path) -> None:
    page = write_page(tmp_path, "party", "party.mp4", {}, [section], ("Positive", "Neutral", "Negative"))
    html = page.read_text(encoding="utf-8")
    assert 'id="persons"' in html and "The people in this video" in html
    assert html.count("data:image/png;base64,") == 2 and "person 3" in html


def test_the_timeline_gets_a_row_per_person_seen_often_enough() -> None:
    video = people_video()
    bare = timeline_figure(people_video(tracked=False), thumbnails=0)
    drawn = timeline_figure(video, thumbnails=0)
    assert len(drawn.axes) == len(bare.axes) + 1
    assert drawn.get_size_inches()[1] > bare.get_size_inches()[1]
    rows = drawn.axes[0]  # the people's rows, under the plot; the plot stays the last axes
    labels = [t.get_text() for t in rows.get_yticklabels()]
    assert labels == ["person 5", "person 3", "person 2", "person 1"]  # top row first: person 1; person 4 left out
    assert drawn.axes[-1].get_ylabel() == "fused probability"
    np.testing.assert_allclose(rows.get_xlim(), drawn.axes[-1].get_xlim())


def test_the_timeline_keeps_at_most_the_people_seen_most() -> None:
    video = people_video({i: 0.0 for i in range(1, 20)})
    picked = timeline_people(video)
    assert len(picked) == MAX_PERSON_ROWS and [p["id"] for p in picked] == sorted(p["id"] for p in picked)
    assert min(p["frames_seen"] for p in picked) >= PERSON_MIN_FRAMES
