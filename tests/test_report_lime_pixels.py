"""LIME on a key frame and pixel saliency, with a hand-built scene model that only looks at a patch.

The stand-in backbone maps a preprocessed frame to an (h/8, w/8, 3) map: channel 0 detects saturated green,
channel 1 is brightness (on everywhere), channel 2 redness. The scene head's evidence for class 0 is the mean of
channel 0 over the top-left REGION of the key frame's map, and the key frame has a green square there: every
explanation should point at that corner. Brightness is on everywhere but unread, so Grad-CAM only stays in the
corner if it weights the channels by their gradients.
"""

from __future__ import annotations

import dataclasses
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data

from gvs.core.errors import InputError
from gvs.predict.predictor import FUSED
from gvs.report import lime_frame, pixels
from gvs.report.movement import MIN_CHANGE, MIN_R2
from preprocess.config import PreprocessConfig
from preprocess.scene import prepare_frames
from tests.report_fakes import KnownPredictor, KnownStream, known_window, probabilities_from

WIDTH, HEIGHT, CELL = 96, 64, 8  # the backbone's input size and its pooling: an 8 x 12 map
KEY = 1  # the key frame's row
REGION = (slice(0, 24), slice(0, 32))  # top-left 3 x 4 cells of the map, in input pixels
SQUARE = (slice(4, 20), slice(6, 22))  # the green square, inside REGION, in input pixels


class PatchBackbone:
    """Stand-in for SceneExtractor: ``model`` (h, w, 3) preprocessed BGR -> (h/8, w/8, 3) detectors, averaged
    over 8 x 8 pixel cells; ``forward`` its tf.function returning float32, as the real one (counting the images
    it is given in ``passes``)."""

    def __init__(self) -> None:
        inputs = keras.Input((HEIGHT, WIDTH, 3))
        detectors = keras.layers.Conv2D(3, 1, activation="relu")
        maps = keras.layers.AveragePooling2D(CELL)(detectors(inputs))
        b, g, r = pixels.IMAGENET_BGR_MEANS
        # columns: green - (blue + red) / 2 - 60, brightness / 255, red - (blue + green) / 2 (pixel units / 100)
        kernel = np.array([[-0.5, 1 / 7.65, -0.5], [1.0, 1 / 7.65, -0.5], [-0.5, 1 / 7.65, 1.0]]) / 100
        bias = np.array([g - (b + r) / 2 - 60, (b + g + r) / 7.65, r - (b + g) / 2]) / 100
        detectors.set_weights([kernel.reshape(1, 1, 3, 3).astype(np.float32), bias.astype(np.float32)])
        self.model = keras.Model(inputs, maps)
        self._forward = tf.function(lambda x: tf.cast(self.model(x, training=False), tf.float32))
        self.passes = 0

    def forward(self, x: np.ndarray):
        self.passes += len(x)
        return self._forward(x)


def _patch_head(steps: int) -> keras.Model:
    """(B, steps, 8, 12, 3) -> probabilities; evidence 4 x (mean green detector over REGION of row KEY) - 1."""
    rows, columns = (slice(s.start // CELL, s.stop // CELL) for s in REGION)
    inputs = keras.Input((steps, HEIGHT // CELL, WIDTH // CELL, 3))
    evidence = keras.layers.Lambda(
        lambda x: 4.0 * keras.ops.mean(x[:, KEY, rows, columns, 0], axis=(1, 2))[:, None] - 1.0
    )(inputs)
    return keras.Model(inputs, probabilities_from(evidence))


def _constant(steps: int) -> keras.Model:
    """(B, steps, 2) -> probabilities with the mean of feature 0 as evidence (constant here: 0.5)."""
    inputs = keras.Input((steps, 2))
    evidence = keras.layers.Lambda(lambda x: keras.ops.mean(x[:, :, 0], axis=1)[:, None])(inputs)
    return keras.Model(inputs, probabilities_from(evidence))


def _frames() -> np.ndarray:
    """(3, 128, 192, 3) uint8: coffee, astronaut with a green square (the key frame), astronaut."""
    size = (2 * WIDTH, 2 * HEIGHT)
    astronaut, coffee = (cv2.resize(i, size, interpolation=cv2.INTER_AREA) for i in (data.astronaut(), data.coffee()))
    marked = astronaut.copy()
    marked[2 * SQUARE[0].start : 2 * SQUARE[0].stop, 2 * SQUARE[1].start : 2 * SQUARE[1].stop] = (0, 255, 0)
    return np.stack([coffee, marked, astronaut])


@pytest.fixture(scope="module")
def window():
    backbone = PatchBackbone()
    frames = _frames()
    features = {
        "scene": backbone.forward(prepare_frames(frames, WIDTH, HEIGHT)).numpy(),
        "pose": np.full((len(frames), 2), 0.5, np.float32),
    }
    stream = KnownStream(PreprocessConfig(scene_width=WIDTH, scene_height=HEIGHT), {"scene": backbone})
    predictor = KnownPredictor(
        {"scene": _patch_head(len(frames)), "pose": _constant(len(frames))}, {"scene": 2.0, "pose": 1.0}, stream
    )
    return known_window(predictor, features, frames, class_index=0)


@pytest.fixture(scope="module")
def lime_run(window) -> tuple[lime_frame.LimeResult, int]:
    """LIME on the key frame, and the number of images it ran through the backbone."""
    backbone = window.predictor.stream.extractors["scene"]
    before = backbone.passes
    result = lime_frame.lime_frame(window, KEY, samples=100, segments=30, seed=0, batch=16)
    return result, backbone.passes - before


@pytest.fixture(scope="module")
def found(lime_run) -> lime_frame.LimeResult:
    return lime_run[0]


def _share_inside(mass: np.ndarray) -> float:
    """Share of a non-negative (h, w) map's total inside REGION."""
    return float(mass[REGION].sum() / mass.sum())


def test_the_patch_drives_the_scene_model(window):
    scene = window.prediction.probabilities["scene"]
    assert scene[0] > 0.7
    assert window.window.features["scene"][[0, 2], ..., 0].max() == 0  # no green anywhere but the key frame


def test_lime_ranks_a_superpixel_inside_the_patch_first(found):
    for source in ("scene", FUSED):
        top = int(np.argmax(found.weights[source]))
        assert _share_inside((found.segments == top).astype(float)) > 0.5, source
        assert found.weights[source][top] > 0
    assert found.segments.shape == (HEIGHT, WIDTH)
    assert len(found.weights["scene"]) == found.segments.max() + 1
    assert found.r2["scene"] > 0.3 and found.probability["scene"] > 0.7 and found.spread["scene"] > 0.5


def test_fused_lime_deletion_curve_lies_below_random(lime_run):
    found, passes = lime_run
    curve = found.curve
    assert curve.ranked_area < curve.random_area
    assert curve.ranked[0] == pytest.approx(found.probability[FUSED], abs=1e-5)
    assert curve.ranked[-1] == pytest.approx(curve.random[-1], abs=1e-6)  # everything hidden either way
    assert sorted(np.concatenate(found.groups).tolist()) == list(range(len(found.weights[FUSED])))
    assert len(found.groups) == lime_frame.DELETION_GROUPS and passes <= 100 + 2**lime_frame.DELETION_GROUPS


def test_lime_section(found, window):
    made = lime_frame.section(found, window)
    assert made.key == "lime" and [f.name for f in made.figures] == ["lime-scene", "lime-fused"]
    assert all(f.png.startswith(b"\x89PNG") for f in made.figures)
    assert min(found.r2.values()) >= found.r2_floor >= MIN_R2 and not any("faded" in f.caption for f in made.figures)
    assert "nothing here to explain" not in made.text
    top = str(int(np.argmax(found.weights[FUSED])))
    assert made.tables[0].rows[0][0] == top and len(made.tables[0].columns) == 4
    assert made.arrays["segments"].shape == (HEIGHT, WIDTH)


def _decoded(png: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_a_poor_fit_is_drawn_faded_with_the_reason(found, window):
    poor = dataclasses.replace(found, r2={"scene": MIN_R2 / 2, FUSED: found.r2[FUSED]})
    made = lime_frame.section(poor, window)
    captions = {f.name: f.caption for f in made.figures}
    assert "faded" in captions["lime-scene"] and f"below {poor.r2_floor:.2f}" in captions["lime-scene"]
    assert "faded" not in captions["lime-fused"] and "(faded map)" in made.text
    frame = pixels.at_scene_size(window, window.frames[KEY])
    faded, full = (lime_frame.drawn(frame, found.segments, found.weights["scene"], f) for f in (True, False))
    tinted = np.isin(found.segments, np.concatenate(list(lime_frame.strongest(found.weights["scene"]).values())))
    change = {
        name: np.median(np.abs(image.astype(float) - frame)[tinted])
        for name, image in (("faded", faded), ("full", full))
    }
    assert 0 < change["faded"] < 0.5 * change["full"]  # medians: the superpixels' numbers are drawn alike in both


def test_lime_on_a_frame_the_model_never_reads_draws_nothing(window):
    """The head reads only row KEY: hiding parts of frame 0 moves no probability, so there is no map, no table
    and a sentence for each output."""
    unread = lime_frame.lime_frame(window, 0, samples=20, segments=10, seed=0, batch=16)
    assert max(unread.spread.values()) < MIN_CHANGE
    made = lime_frame.section(unread, window)
    assert not made.figures and not made.tables
    assert made.text.count("nothing here to explain") == 2
    assert unread.curve.verdict().startswith("none")


def test_missing_lime_says_how_to_install(window, monkeypatch):
    monkeypatch.setitem(sys.modules, "lime", None)
    with pytest.raises(InputError, match="pip install lime"):
        lime_frame.lime_frame(window, KEY, samples=4, segments=10)


def test_preprocessing_in_tensorflow_matches_prepare_frames():
    frame = cv2.resize(data.astronaut(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    ours = pixels.preprocess(tf.constant(frame[None].astype(np.float32))).numpy()
    np.testing.assert_allclose(ours, prepare_frames(frame[None], WIDTH, HEIGHT), atol=1e-4)


def test_the_differentiable_path_gives_the_window_probability(window):
    frame = pixels.at_scene_size(window, window.frames[KEY]).astype(np.float32)
    row = np.eye(len(window.frames), dtype=np.float32)[KEY]
    fixed = window.window.features["scene"][None].astype(np.float32)
    log_probability = pixels.scene_log_probability(window.predictor)
    _, log_p = log_probability(tf.constant(frame[None]), tf.constant(row), tf.constant(fixed), window.class_index)
    expected = window.prediction.probabilities["scene"][window.class_index]
    assert float(np.exp(log_p[0])) == pytest.approx(expected, abs=1e-5)


@pytest.fixture(scope="module")
def saliency(window):
    return pixels.pixel_saliency(window, [KEY, 0], samples=4, seed=0)


def test_pixel_saliency_sits_in_the_patch(saliency):
    assert saliency.moved.tolist() == [True, False]  # the head reads row KEY only: noise on frame 0 moves nothing
    assert saliency.spread[0] >= MIN_CHANGE > saliency.spread[1]
    assert saliency.smoothgrad.shape == saliency.gradcam.shape == (2, HEIGHT, WIDTH)
    assert saliency.cells.shape == (2, HEIGHT // CELL, WIDTH // CELL)
    assert _share_inside(saliency.smoothgrad[0]) > 0.9
    assert _share_inside(saliency.gradcam[0]) > 0.75
    assert saliency.gradcam[1].max() == 0  # the head does not read frame 0
    assert saliency.smoothgrad.max() == pytest.approx(1.0) and saliency.gradcam.max() == pytest.approx(1.0)


def test_pixels_section(saliency, window):
    made = pixels.section(saliency, window)
    assert made.key == "pixels" and made.figures[0].png.startswith(b"\x89PNG")
    assert made.text.count("nothing here to explain") == 1 and "key frame 1 (0.0 s)" in made.text
    one_row = _decoded(made.figures[0].png)
    both = dataclasses.replace(saliency, spread=np.full(2, 1.0))
    two_rows = _decoded(pixels.section(both, window).figures[0].png)
    assert one_row.shape[0] < 0.75 * two_rows.shape[0]  # frame 0's row is not drawn
    nothing = pixels.section(dataclasses.replace(saliency, spread=np.zeros(2)), window)
    assert not nothing.figures and nothing.text.count("nothing here to explain") == 2
    assert "8x12" in made.caveat
    assert made.arrays["gradcam_cells"].shape == (2, HEIGHT // CELL, WIDTH // CELL)
