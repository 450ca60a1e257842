"""`gvs report` on the real clip Val/1_1 with the demo bundle (issue 27: a bundle trained on synthetic clips, whose
scene model hardly reacts to a real frame): each section draws, ranks and judges only what moved the explained
probability by movement.MIN_CHANGE, and says so in one sentence where nothing did; key moments lie inside the
explained window; the page and its timeline carry the name the video was given (a served upload's)."""

from __future__ import annotations

import numpy as np
import pytest

from gvs.core.workspace import RunsDir
from gvs.predict.predictor import FUSED
from gvs.report.explain import ReportMaker, ReportOptions
from gvs.report.movement import MIN_CHANGE, spread

pytestmark = pytest.mark.slow
NOTHING = "nothing here to explain"
SHOWN_NAME = "our party, take 2.mp4"


@pytest.fixture(scope="module")
def report(demo_workspace, val_clip):
    """The full report (LIME with fewer samples) of Val/1_1 with the main job's bundle, named as an upload."""
    options = ReportOptions(lime_samples=24, segments=12, smooth_samples=2)
    return ReportMaker(RunsDir(demo_workspace.runs).bundle_path, options).explain(val_clip, name=SHOWN_NAME)


def test_key_moments_rank_only_what_moved_inside_the_window(report):
    made, prediction = report.section("sections"), report.window.prediction
    times = made.arrays["section_times"]
    assert times.min() >= prediction.start_s and times.max() <= prediction.end_s
    moved = spread(np.append(made.arrays["drops_fused"], 0.0)) >= MIN_CHANGE
    assert ("rank" in made.tables[0].columns) == moved
    assert (NOTHING in made.text) == (not moved)


def test_lime_maps_only_the_outputs_that_moved(report):
    made = report.section("lime")
    moved = dict(zip(("scene", FUSED), made.arrays["spread"] >= MIN_CHANGE))
    assert [f.name for f in made.figures] == [f"lime-{source}" for source, did in moved.items() if did]
    assert made.text.count(NOTHING) == sum(not did for did in moved.values())
    assert bool(made.tables) == any(moved.values())


def test_pixel_saliency_maps_only_key_frames_that_moved(report):
    made = report.section("pixels")
    moved = made.arrays["spread"] >= MIN_CHANGE
    assert bool(made.figures) == moved.any()
    assert made.text.count(NOTHING) == int((~moved).sum())


def test_faithfulness_judges_only_curves_that_moved(report):
    """No verdict where the deletions moved nothing, nor where the explanation's own order came from perturbations
    that moved nothing (on Test_1 the key moments' single removals moved p by 0.001, deleting them all by 0.2)."""
    made = report.section("faithfulness")
    order_moved = {
        "key moments": "rank" in report.section("sections").tables[0].columns,
        "superpixels (LIME, fused)": report.section("lime").arrays["spread"][1] >= MIN_CHANGE,
    }
    for name, *_, verdict in made.tables[0].rows:
        curve = np.concatenate([made.arrays[f"{name}_ranked"], made.arrays[f"{name}_random_orders"].ravel()])
        assert verdict.startswith("none") == (spread(curve) < MIN_CHANGE or not order_moved[name]), name


def test_the_page_and_its_timeline_use_the_given_name(report, tmp_path):
    from gvs.predict.timeline import timeline_figure

    assert report.video.path.name == SHOWN_NAME
    assert timeline_figure(report.video, 0)._suptitle.get_text().startswith(f"{SHOWN_NAME}: ")
    page = report.write_html(tmp_path).read_text(encoding="utf-8")
    assert f"<h1>{SHOWN_NAME}</h1>" in page


def test_the_demo_scene_model_has_nothing_to_explain(report):
    """The issue's case: the demo bundle's scene model (random-weight ResNet-50, synthetic training clips) does not
    move under LIME's hidden superpixels nor under pixel noise, so neither draws a scene map."""
    lime, pixels = report.section("lime"), report.section("pixels")
    assert lime.arrays["spread"][0] < MIN_CHANGE and "lime-scene" not in [f.name for f in lime.figures]
    assert np.all(pixels.arrays["spread"] < MIN_CHANGE) and not pixels.figures
    assert f"less than {MIN_CHANGE}" in pixels.text
