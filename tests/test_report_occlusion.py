"""Key moments by occlusion: sections of similar frames, and leave-one-section-out drops with hand-built models whose
dependence on frames and audio steps is known."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
from skimage import data

from gvs.report.faithfulness import faithfulness_section
from gvs.report.movement import MIN_CHANGE
from gvs.report.occlusion import occlusion, removed, section, section_rows, video_sections
from tests.report_fakes import KnownPredictor, known_window, probabilities_from

N_FRAMES, AUDIO_STEPS = 12, 11  # the paper preset: 12 sampled frames (0.4 s apart here), 11 audio steps 0.5 s apart
THIRDS = [(0, 4), (4, 8), (8, 12)]


def _frames(per_image: int = 4, seed: int = 0) -> np.ndarray:
    """(3 * per_image, 120, 160, 3) uint8: astronaut, coffee, chelsea, each repeated with a little noise."""
    rng = np.random.default_rng(seed)
    images = [cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA) for image in _images()]
    frames = [image + rng.normal(0, 3, image.shape) for image in images for _ in range(per_image)]
    return np.clip(frames, 0, 255).astype(np.uint8)


def _images() -> list[np.ndarray]:
    return [data.astronaut(), data.coffee(), data.chelsea()]


def _reader(steps: int, width: int, rows: slice | None) -> keras.Model:
    """(B, steps, width) -> probabilities whose evidence for class 0 is the mean of feature 0 over ``rows``
    (None: no evidence, a constant model)."""
    inputs = keras.Input((steps, width))
    if rows is None:
        evidence = keras.layers.Lambda(lambda x: 0.0 * keras.ops.mean(x[:, :, :1], axis=1))(inputs)
    else:
        evidence = keras.layers.Lambda(lambda x: keras.ops.mean(x[:, rows, :1], axis=1))(inputs)
    return keras.Model(inputs, probabilities_from(evidence))


def _window(frames: np.ndarray, scene_rows: slice | None, audio_rows: slice | None = None, n_real: int = N_FRAMES):
    """A window of ``n_real`` frames (rows past them are padding) whose scene and audio models read the given rows;
    pose and faces are constant. Every real feature is 2, so the explained class is 0."""
    widths = {"scene": 4, "pose": 3, "faces": 2}
    features = {m: np.zeros((N_FRAMES, w), np.float32) for m, w in widths.items()}
    for x in features.values():
        x[:n_real] = 2.0
    features["audio"] = np.full((AUDIO_STEPS, 5), 2.0, np.float32)
    models = {m: _reader(N_FRAMES, w, scene_rows if m == "scene" else None) for m, w in widths.items()}
    models["audio"] = _reader(AUDIO_STEPS, 5, audio_rows)
    audio = np.zeros(16000 * 5, np.float32)
    return known_window(KnownPredictor(models), features, frames[:n_real], audio=audio)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return _frames()


@pytest.fixture(scope="module")
def middle_scene(frames):
    """A window whose scene model reads only frames 4..7 (the middle section), and its occlusion."""
    window = _window(frames, slice(4, 8))
    return window, occlusion(window)


def test_sections_follow_the_shots(frames):
    assert video_sections(frames) == THIRDS
    assert video_sections(frames, min_sections=1) == THIRDS  # found by the SSIM threshold, not the clamp


def test_section_count_is_clamped(frames):
    assert video_sections(frames, max_sections=2) in ([(0, 4), (4, 12)], [(0, 8), (8, 12)])
    five = video_sections(frames, min_sections=5)
    assert len(five) == 5 and {4, 8} <= {start for start, _ in five}
    assert video_sections(frames[:2], min_sections=3) == [(0, 1), (1, 2)]
    assert video_sections(frames[:1]) == [(0, 1)]


def test_removed_zeroes_the_section_frames_and_audio(frames):
    window = _window(frames, slice(4, 8))
    copies = removed(window, np.array([[True, True, True], [True, True, False]]), THIRDS)
    assert all(np.array_equal(copies[m][0], window.window.features[m]) for m in window.modalities)
    for modality in ("scene", "pose", "faces"):
        assert np.all(copies[modality][1, 8:] == 0) and np.all(copies[modality][1, :8] == 2)
    # the last section spans 3.2-4.4 s (the window ends with its last frame): audio steps centred at 3.5 and 4.0 s;
    # those at 4.5 and 5.0 s are past the window
    gone = np.flatnonzero(np.all(copies["audio"][1] == 0, axis=1))
    assert gone.tolist() == [7, 8]


def test_padded_window_sections_cover_only_real_frames(frames):
    window = _window(frames, slice(4, 8), n_real=8)
    sections = video_sections(window.frames)
    assert sections[0][0] == 0 and sections[-1][1] == 8
    assert not section_rows(window, sections)["scene"][:, 8:].any()
    copies = removed(window, np.zeros((1, len(sections)), dtype=bool), sections)
    assert all(np.all(copies[m][0] == 0) for m in ("scene", "pose", "faces"))


def test_middle_section_ranks_first(middle_scene):
    _, result = middle_scene
    assert result.sections == THIRDS
    assert result.ranking[0] == 1
    assert result.drops["fused"][1] > 0.1 and result.drops["scene"][1] > 0.3
    assert np.allclose(result.drops["fused"][[0, 2]], 0, atol=1e-5)
    assert all(np.allclose(result.drops[m], 0, atol=1e-5) for m in ("pose", "faces", "audio"))


def test_sections_lie_inside_the_explained_window(middle_scene):
    window, result = middle_scene
    start, end = window.prediction.start_s, window.prediction.end_s
    assert result.spans.min() >= start and result.spans.max() <= end
    assert result.spans[0, 0] == start and result.spans[-1, 1] == end
    assert np.all(result.spans[1:, 0] == result.spans[:-1, 1])  # they tile it
    assert section(result, window).tables[0].rows[-1][1] == "3.2-4.4"


def test_audio_of_the_last_section_ranks_it_first(frames):
    result = occlusion(_window(frames, None, audio_rows=slice(7, 9)))
    assert np.argmax(result.drops["audio"]) == 2 and result.drops["audio"][2] > 0.3
    assert np.allclose(result.drops["audio"][:2], 0, atol=1e-5)
    assert result.ranking[0] == 2


def test_deletion_curve_beats_random(middle_scene):
    curve = middle_scene[1].curve
    assert np.all(curve.ranked <= curve.random + 1e-6)
    assert curve.ranked_area < curve.random_area


def test_section_figures_and_table(middle_scene):
    window, result = middle_scene
    made = section(result, window)
    assert made.key == "sections" and made.text and made.caveat
    assert result.ranked and "lowers the fused p(Positive) most" in made.text and "nothing" not in made.text
    assert made.tables[0].columns[-1] == "rank"
    assert len(made.figures) == 2
    for figure in made.figures:
        image = cv2.imdecode(np.frombuffer(figure.png, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 50 and image.shape[1] > 50
    assert len(made.tables[0].rows) == len(THIRDS)
    assert [row[-1] for row in made.tables[0].rows][1] == "1"
    assert made.arrays["sections"].tolist() == [list(s) for s in THIRDS]
    assert {"drops_fused", "drops_scene", "drops_audio", "deletion_ranked", "deletion_random"} <= set(made.arrays)


def test_a_model_that_ignores_every_moment_ranks_nothing(frames):
    """Constant models: no removal moves any probability, so the section says so, ranks nothing, draws no drops
    per modality, and the faithfulness check gives no verdict and no curve."""
    window = _window(frames, None)
    result = occlusion(window)
    assert result.moved_by() < MIN_CHANGE and not result.ranked
    made = section(result, window)
    assert "rank" not in made.tables[0].columns and all(
        len(row) == len(made.tables[0].columns) for row in made.tables[0].rows
    )
    assert "nothing here to explain" in made.text and "lowers the fused" not in made.text
    assert [f.name for f in made.figures] == ["sections-strip"]
    checked = faithfulness_section({"key moments": result.curve}, window.class_name)
    assert checked.tables[0].rows[0][-1].startswith("none") and not checked.figures
    assert "key moments ranked nothing" in checked.text


def test_a_ranked_window_gets_a_faithfulness_verdict(middle_scene):
    window, result = middle_scene
    checked = faithfulness_section({"key moments": result.curve}, window.class_name)
    assert checked.tables[0].rows[0][-1] == "better than random"
    assert [f.name for f in checked.figures] == ["deletion-curves"] and "nothing" not in checked.text
