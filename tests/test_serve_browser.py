"""`gvs serve` end to end with a real (small) bundle: a headless Chromium uploads the real clip Val/1_1.mp4 through
the page's file input and waits for the verdict, the probabilities, the timeline and the report; and the real worker
takes a video without audio (flagged) and a 4K clip. The page and the report show the demo banner and the
familiarity flag.

The browser is Debian's chromium driven through its chromedriver (no browser download at test time); without them
the browser test skips saying what to install.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gvs.serve.app import create_app
from gvs.serve.settings import ServeSettings
from tests.media import ffmpeg
from tests.test_serve_api import running_server, upload

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
JOB_DEADLINE_S = 240.0  # the first job builds every model's graph; 2 shared cores


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through the system's chromedriver."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}: `sudo apt-get install chromium chromium-driver`")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1500", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_a_browser_uploads_a_real_clip_and_gets_the_verdict_timeline_and_report(
    browser, small_bundle: Path, val_clip: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = create_app(ServeSettings(model=small_bundle, store=tmp_path / "store"), samples={})
    with running_server(app) as base:
        browser.get(f"{base}/")
        browser.find_element(By.ID, "file").send_keys(str(val_clip))
        browser.find_element(By.ID, "send").click()
        wait = WebDriverWait(browser, JOB_DEADLINE_S, poll_frequency=0.5)
        wait.until(lambda driver: driver.find_elements(By.ID, "verdict"))
        assert browser.current_url.startswith(f"{base}/jobs/")
        verdict = browser.find_element(By.CSS_SELECTOR, "#verdict .class").text
        assert verdict.split()[0] in ("Positive", "Neutral", "Negative")
        rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#probabilities tbody tr")]
        assert [row.split()[0] for row in rows] == ["fused", "audio", "pose"], rows
        assert all(float(p) >= 0 for row in rows for p in row.split()[-3:])
        # the small bundle was trained on the demo set, and a real clip is unlike its training data
        assert browser.find_element(By.ID, "bundle-note").text.startswith("Demo bundle: trained on ")
        familiarity = browser.find_element(By.ID, "familiarity")
        assert familiarity.text.startswith("Unlike the training data (") and "unfamiliar" in familiarity.get_attribute(
            "class"
        )
        wait.until(lambda driver: driver.find_elements(By.ID, "report"))  # the page reloads when the job is done
        timeline = browser.find_element(By.ID, "timeline")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", timeline) > 300
        browser.save_screenshot(str(tmp_path / "serve.png"))
        assert (tmp_path / "serve.png").stat().st_size > 10_000
        report = browser.find_element(By.ID, "report").get_attribute("href")
        assert browser.find_element(By.ID, "predictions").get_attribute("href").endswith("predictions.json?download=1")
        browser.get(report)
        assert "1_1.mp4" in browser.title and browser.find_elements(By.ID, "verdict")  # the report's first section
        verdict_section = browser.find_element(By.ID, "verdict").text
        assert "Demo bundle: trained on " in verdict_section and "Unlike the training data (" in verdict_section


def _wait_done(client: TestClient, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_DEADLINE_S
    while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_the_real_worker_flags_a_video_without_audio_and_takes_a_4k_clip(
    small_bundle: Path, val_clip: Path, tmp_path: Path
) -> None:
    ffmpeg("-i", str(val_clip), "-an", "-c:v", "copy", str(tmp_path / "noaudio.mp4"))
    ffmpeg("-i", str(val_clip), "-t", "2", "-vf", "scale=3840:2160", "-preset", "ultrafast", str(tmp_path / "4k.mp4"))
    with TestClient(create_app(ServeSettings(model=small_bundle, store=tmp_path / "store"), samples={})) as client:
        silent = _wait_done(client, upload(client, tmp_path / "noaudio.mp4").json()["id"])
        assert silent["status"] == "done" and silent["verdict"], silent
        assert any("without some modality" in flag for flag in silent["flags"]), silent["flags"]
        page = client.get(silent["page"]).text
        assert "Notes on this video" in page
        large = _wait_done(client, upload(client, tmp_path / "4k.mp4").json()["id"])
        assert large["status"] == "done" and large["verdict"], large
        assert client.get(large["files"]["report.html"]).status_code == 200


def test_the_serve_maker_reports_each_window_and_keeps_one_predictor(small_bundle: Path, val_clip: Path) -> None:
    from gvs.report.explain import ReportOptions
    from gvs.serve.runner import ServeReportMaker

    maker = ServeReportMaker(small_bundle, ReportOptions(quick=True))
    predictor = maker.predictor  # report sections cache compiled functions per predictor: one for the maker's life
    for _ in range(2):
        seen, predicted = [], []
        report = maker.explain(
            val_clip, on_prediction=predicted.append, on_window=lambda f, w, seen=seen: seen.append(w)
        )
        assert maker.predictor is predictor and report.window.predictor is predictor
        assert [w.index for w in seen] == [w.index for w in report.video.windows] and predicted == [report.video]
