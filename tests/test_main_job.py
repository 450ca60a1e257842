"""The main job on the real demo videos: real extractors, real training, fusion and ablation, then a resume.

The main job itself runs once per test run, as the session's demo workspace (conftest.py, tests/bundles.py); the
small bundle other tests predict with is trained on its features."""

import base64
import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from gvs.cli import main as gvs_main
from gvs.core.workspace import RunsDir

pytestmark = [pytest.mark.slow, pytest.mark.integration]
REPORT_SECTIONS = ("verdict", "sections", "lime", "pixels", "people", "persons", "audio", "modalities", "faithfulness")


def tables(printed: str) -> str:
    return printed[printed.index("### Comparison") :]


@pytest.fixture(scope="module")
def chain(demo_workspace) -> tuple[list[str], str, Path]:
    """The main job run once on the demo (fast preset, fc fusion, faces dropped; the session's demo workspace,
    tests/bundles.py): its arguments, what it printed and its RUNS folder."""
    return demo_workspace.arguments, demo_workspace.printed, demo_workspace.runs


def test_demo_chain_ends_with_tables_and_resumes_without_redoing_work(chain, capsys) -> None:
    arguments, printed, runs_root = chain
    assert "### Comparison" in printed and "### Ablation: fc fusion (loo)" in printed
    assert "30 clips: 30 done" in printed and "0 failed" in printed
    runs = RunsDir(runs_root)
    with runs.ablation_stem("fc").with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["dropped"] for r in rows] == ["—", "audio", "pose", "scene"]
    assert all(r["split"] == "Val" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert not runs.modality("faces").folder.exists()  # --drop fer: the faces model is never trained
    for modality in ("scene", "pose", "audio"):
        assert runs.modality(modality).model.is_file()
    models_before = {m: runs.modality(m).model.stat().st_mtime_ns for m in ("scene", "pose", "audio")}

    assert gvs_main(["run", *arguments]) == 0  # `gvs run` is the same job: it reuses features, models and fusions
    again = capsys.readouterr().out
    assert "30 skipped (already cached)" in again and "already trained" in again
    assert {m: runs.modality(m).model.stat().st_mtime_ns for m in models_before} == models_before
    assert tables(again) == tables(printed)


def test_report_of_the_real_clip_with_the_demo_bundle_has_every_section(chain, val_clip: Path, tmp_path: Path) -> None:
    """`gvs report` on the shared clip Val/1_1 with the bundle the main job exported: one page with all nine
    sections and no broken image; in headless Chromium too when it is installed."""
    from gvs.report.screenshot import find_chromium, rendered_dom

    _, _, runs_root = chain
    bundle = RunsDir(runs_root).bundle_path
    out = tmp_path / "reports"
    arguments = ["report", str(val_clip), "--model", str(bundle), "--out", str(out), "--lime-samples", "40"]
    assert gvs_main([*arguments, "--blur-faces", "--quiet"]) == 0
    page = out / "1_1.html"
    html = page.read_text(encoding="utf-8")
    for key in REPORT_SECTIONS:
        assert f'id="{key}"' in html, key
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= len(REPORT_SECTIONS)
    for encoded in images:
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None and decoded.size > 0 and decoded.std() > 0
    assert "1_1.html" in (out / "index.html").read_text(encoding="utf-8")
    if find_chromium() is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium): the page was checked as HTML only")
    dom = rendered_dom(page)
    for key in REPORT_SECTIONS:
        assert f'id="{key}"' in dom, key


def test_report_picks_clips_of_a_split_from_the_cache_and_explains_the_asked_class(chain, tmp_path: Path) -> None:
    """`gvs report --cache --split --top`: the bundle scores the split's cached clips and reports the most confident
    correct (and most confidently wrong) ones; --explain-class explains that class instead of the verdict."""
    arguments, _, runs_root = chain
    cache = arguments[arguments.index("--cache") + 1]
    out = tmp_path / "picks"
    assert (
        gvs_main(
            [
                "report",
                "--cache",
                cache,
                "--split",
                "Val",
                "--top",
                "1",
                "--model",
                str(RunsDir(runs_root).bundle_path),
                "--out",
                str(out),
                "--quick",
                "--explain-class",
                "Negative",
                "--quiet",
            ]
        )
        == 0
    )
    index = (out / "index.html").read_text(encoding="utf-8")
    pages = sorted(out.glob("*.html"))
    assert 2 <= len(pages) <= 3  # index + the confident pick (+ the wrong pick when the demo model errs on Val)
    assert "confident-1" in index
    page = next(p for p in pages if p.name != "index.html").read_text(encoding="utf-8")
    assert "why the model says Negative" in page and 'id="lime"' not in page  # --quick: no LIME
