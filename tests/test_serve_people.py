"""`gvs serve`'s job page shows the three people who carried the verdict most (issue 29): their thumbnails (data:
URIs, blurred when the maker's report options blur faces), top expression and drop; a note when nobody moved the
verdict. A fake maker returns a prediction with people made by hand (no bundle, no decoding)."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from fastapi.testclient import TestClient

from gvs.predict.predictor import VideoPrediction
from gvs.report.movement import MIN_CHANGE
from gvs.serve.app import create_app
from gvs.serve.runner import top_people
from gvs.serve.settings import ServeSettings
from tests.people_fakes import people_video

SAMPLE = "demo/Val/party.mp4"
DEADLINE_S = 20.0


class _Report:
    def __init__(self, video: VideoPrediction) -> None:
        self.video = video

    def write_html(self, out_dir: Path, stem: str) -> Path:
        page = Path(out_dir) / f"{stem}.html"
        page.write_text("<!doctype html><title>fake</title><p>fake report</p>")
        return page


class PeopleMaker:
    """Stands in for ServeReportMaker: the hand-made prediction of tests.people_fakes, with ``options`` as a
    ReportMaker has them."""

    def __init__(self, video: VideoPrediction, blur_faces: bool = False) -> None:
        self.video = video
        self.options = SimpleNamespace(blur_faces=blur_faces)

    def explain(self, path, progress=None, on_prediction=None, on_window=None, name=None) -> _Report:
        for window in self.video.windows:
            on_window(None, window)
        on_prediction(self.video)
        progress("persons")
        return _Report(self.video)

    def describe(self) -> tuple[dict, dict]:
        return {"fusion": "fake"}, {"pool": "mean"}


def _finished(tmp_path: Path, maker: PeopleMaker) -> tuple[dict, str]:
    """The JSON view and the page of a job run by ``maker`` on the sample."""
    settings = ServeSettings(store=tmp_path / "store")
    app = create_app(settings, lambda: maker, {SAMPLE: tmp_path / "never-read.mp4"})
    with TestClient(app) as client:
        job_id = client.post("/api/jobs", files={"sample": (None, SAMPLE)}).json()["id"]
        deadline = time.monotonic() + DEADLINE_S
        while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        return job, client.get(f"/jobs/{job_id}").text


def _image(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/jpeg;base64,")
    return cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def test_the_page_shows_the_three_people_who_carried_the_verdict_most(tmp_path: Path) -> None:
    job, page = _finished(tmp_path, PeopleMaker(people_video()))
    assert job["status"] == "done" and job["people_note"] == ""
    assert [p["id"] for p in job["people"]] == [3, 1, 5]  # person 4's larger drop: seen on 2 frames only
    assert job["people"][0]["sentence"] == "p(Negative) falls 0.12 without person 3"
    assert all(max(_image(p["thumbnail"]).shape[:2]) <= 112 for p in job["people"])
    assert 'id="people"' in page and "Who carried the verdict" in page
    assert re.findall(r'id="person-(\d+)"', page) == ["3", "1", "5"]
    assert "p(Negative) falls 0.12 without person 3" in page and "mostly angry" in page
    assert page.count('src="data:image/jpeg;base64,') == 3


def test_thumbnails_are_blurred_when_the_report_blurs_faces(tmp_path: Path) -> None:
    sharp, _ = _finished(tmp_path / "sharp", PeopleMaker(people_video()))
    blurred, page = _finished(tmp_path / "blurred", PeopleMaker(people_video(), blur_faces=True))
    for a, b in zip(sharp["people"], blurred["people"]):
        assert _image(b["thumbnail"]).astype(float).var() < 0.1 * _image(a["thumbnail"]).astype(float).var()
    assert "(blurred)" in page


def test_nobody_is_shown_when_no_removal_moves_the_verdict() -> None:
    people, note = top_people(people_video({1: MIN_CHANGE / 2, 2: -MIN_CHANGE / 3, 3: 0.0}))
    assert people == [] and "less than 0.005" in note and "nobody carried the verdict" in note
    assert top_people(people_video(tracked=False)) == ([], "")
    assert top_people(people_video({})) == ([], "No face was found in this video.")


def test_a_video_without_people_gets_no_people_box(tmp_path: Path) -> None:
    job, page = _finished(tmp_path, PeopleMaker(people_video(tracked=False)))
    assert job["status"] == "done" and job["people"] == [] and 'id="people"' not in page


def test_without_a_faces_model_the_people_seen_most_are_shown_without_drops(tmp_path: Path) -> None:
    people, note = top_people(people_video({1: None, 2: None, 3: None, 5: None}))
    assert [p["id"] for p in people] == [1, 2, 3] and all(p["sentence"] == "" for p in people)
    assert "only with a faces model" in note
    job, page = _finished(tmp_path, PeopleMaker(people_video({1: None, 2: None, 3: None})))
    assert "The people in this video" in page and "Who carried the verdict" not in page
    assert re.findall(r'id="person-(\d+)"', page) == ["1", "2", "3"] and "without person" not in page
