"""Modality shares, the audio section and the people section on hand-built models with known dependence."""

from __future__ import annotations

import dataclasses

import cv2
import keras
import numpy as np
import pytest
from skimage import data

from gvs.core.vocabulary import COCO_KEYPOINTS
from gvs.predict.predictor import FUSED
from gvs.report.audio_section import audio_section, audio_steps
from gvs.report.modality_shares import coalitions, modality_shares, section, shapley_values
from gvs.report.movement import MIN_CHANGE
from gvs.report.people import KEYPOINT_NAMES, people_section
from tests.report_fakes import KnownPredictor, known_window, probabilities_from

STEPS = 11  # audio steps of the default config (5 s at hop 0.5 s)
FRAMES = 4


def evidence_model(shape: tuple[int, ...], evidence, name: str) -> keras.Model:
    """A model (B, *shape) -> (B, 3) probabilities softmax([e, 0, -e]) with e = ``evidence``(inputs) (B, 1)."""
    inputs = keras.Input(shape, name=name)
    e = keras.layers.Lambda(evidence, name=f"{name}_evidence")(inputs)
    return keras.Model(inputs, probabilities_from(e), name=f"{name}_model")


def mean_evidence(weight: float):
    """e = weight x mean of every input value: all-zero (padded) inputs give e = 0, i.e. no opinion."""
    return lambda x: weight * keras.ops.mean(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)), axis=1, keepdims=True)


def blank_frames(n: int = FRAMES) -> np.ndarray:
    return np.zeros((n, 24, 32, 3), np.uint8)


# ----- modality shares -----


def test_shapley_values_of_a_known_game():
    members = coalitions(3)
    values = members @ np.array([1.0, 2.0, 3.0]) + 10 * (members[:, 0] & members[:, 1])  # additive + a pair bonus
    phi = shapley_values(values.astype(float), members)
    np.testing.assert_allclose(phi, [6.0, 7.0, 3.0])  # the bonus is split equally between 0 and 1
    assert members[0].sum() == 0 and members[-1].all()


@pytest.fixture(scope="module")
def scene_led_window():
    """Fusion = weighted mean 5 : 1 : 1 of scene (strongly for Positive), pose (against) and audio (weakly for)."""
    models = {
        "scene": evidence_model((FRAMES, 6), mean_evidence(3.0), "scene"),
        "pose": evidence_model((FRAMES, 27), mean_evidence(-0.5), "pose"),
        "audio": evidence_model((STEPS, 8), mean_evidence(0.3), "audio"),
    }
    predictor = KnownPredictor(models, {"scene": 5, "pose": 1, "audio": 1})
    features = {"scene": np.ones((FRAMES, 6), np.float32), "pose": np.ones((FRAMES, 27)), "audio": np.ones((STEPS, 8))}
    features = {m: x.astype(np.float32) for m, x in features.items()}
    return known_window(predictor, features, blank_frames(), class_index=0)


def test_shares_rank_the_modality_the_fusion_depends_on(scene_led_window):
    window = scene_led_window
    result = modality_shares(window)
    assert result.modalities == ["scene", "pose", "audio"]
    assert result.shares.sum() == pytest.approx(1.0)
    assert result.phi.sum() == pytest.approx(result.v_all - result.v_none, abs=1e-6)
    assert result.v_all == pytest.approx(window.prediction.probabilities[FUSED][0], abs=1e-6)
    assert result.v_none == pytest.approx(1 / 3, abs=1e-6)
    # The fusion is linear in the modalities' probabilities: phi_m = weight_m x (p_m - 1/3), exactly.
    weights = np.array([5, 1, 1]) / 7
    own = np.array([window.prediction.probabilities[m][0] for m in result.modalities])
    np.testing.assert_allclose(result.phi, weights * (own - 1 / 3), atol=1e-6)
    np.testing.assert_allclose(result.own, own, atol=1e-6)
    assert np.argmax(result.shares) == 0
    assert result.direction.tolist() == [1, -1, 1]
    assert np.argmax(np.abs(result.leave_one_out)) == 0
    assert result.leave_one_out[0] == result.leave_one_out.max()


def test_modalities_section_has_its_figures_and_table(scene_led_window):
    built = section(modality_shares(scene_led_window), scene_led_window)
    assert built.key == "modalities"
    assert [f.name for f in built.figures] == ["modalities-shares", "modalities-leave-one-out"]
    for figure in built.figures:
        assert cv2.imdecode(np.frombuffer(figure.png, np.uint8), cv2.IMREAD_COLOR) is not None
    rows = built.tables[0].rows
    assert [r[0] for r in rows] == ["scene", "pose", "audio"]
    assert [r[3] for r in rows] == ["supports", "against", "supports"]
    assert "scene has the largest share" in built.text
    assert built.caveat
    assert "nothing here to explain" not in built.text


def test_modalities_that_never_move_the_fusion_get_no_shares():
    """Models with no evidence (the fusion gives 1/3 with or without each modality): no shares, no figures."""
    models = {m: evidence_model((FRAMES, 4), mean_evidence(0.0), m) for m in ("scene", "pose")}
    window = known_window(KnownPredictor(models), {m: np.ones((FRAMES, 4), np.float32) for m in models}, blank_frames())
    result = modality_shares(window)
    assert not result.moved
    built = section(result, window)
    assert not built.figures and "nothing here to explain" in built.text
    assert "share of |attribution|" not in built.tables[0].columns and len(built.tables[0].rows) == 2


# ----- audio -----


def step_reader(step: int):
    """e = 4 x sum of audio step ``step``'s values: only that step matters."""
    return lambda x: 4.0 * keras.ops.sum(x[:, step, :], axis=-1, keepdims=True)


def audio_window(audio: np.ndarray | None, step: int = 3):
    """A window whose only modality is audio, read by a model that uses step ``step`` alone."""
    predictor = KnownPredictor({"audio": evidence_model((STEPS, 8), step_reader(step), "audio")})
    features = np.random.default_rng(0).uniform(0.1, 0.3, (STEPS, 8)).astype(np.float32)
    if audio is None:
        features[:] = 0.0
    return known_window(predictor, {"audio": features}, blank_frames(), class_index=0, audio=audio)


def tone(seconds: float = 5.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (t > 1.0)).astype(np.float32)


def test_the_step_the_model_reads_is_the_key_audio_step():
    window = audio_window(tone())
    result = audio_steps(window, samples=4)
    assert result.ranking[0] == 3
    assert np.argmax(result.saliency) == 3
    assert result.saliency[3] == pytest.approx(1.0)
    assert result.drops["audio"][3] > 0.5
    np.testing.assert_allclose(np.delete(result.drops["audio"], 3), 0.0, atol=1e-6)
    np.testing.assert_allclose(result.times, np.arange(STEPS) * 0.5)
    built = audio_section(window)
    assert built.key == "audio"
    assert built.tables[0].rows[0][0] == "1.5"  # step 3 is centred at 1.5 s
    assert len(built.tables[0].rows) == 3
    assert cv2.imdecode(np.frombuffer(built.figures[0].png, np.uint8), cv2.IMREAD_COLOR) is not None


def test_no_audio_track_gives_a_section_that_says_so():
    built = audio_section(audio_window(None))
    assert built.key == "audio"
    assert "no audio track" in built.text
    assert not built.figures and not built.tables


# ----- people -----

FACE = (30, 240, 220, 150)  # (top, right, bottom, left) around the astronaut's face in skimage's 512 x 512 image
RIGHT_WRIST = 4  # COCO keypoint index; body keypoint 3, pose feature columns 6 and 7


def skeleton() -> np.ndarray:
    """(1, 18, 3) a hand-made person on the astronaut image, the left ear missing (confidence 0)."""
    points = {
        0: (195, 120), 1: (195, 250), 2: (120, 260), 3: (90, 360), 4: (110, 450), 5: (280, 260), 6: (320, 360),
        7: (300, 450), 8: (150, 470), 11: (250, 470), 14: (180, 105), 15: (210, 105), 16: (165, 115),
    }  # fmt: skip
    person = np.full((18, 3), [-1.0, -1.0, 0.0], np.float32)
    for index, (x, y) in points.items():
        person[index] = (x, y, 0.9)
    return person[None]


def people_window(blur: bool = False):
    """Astronaut frames with one skeleton and one face; pose model reads only the right wrist, faces model only the
    max of 'happy' (faces column 7 + 3)."""
    pose_model = evidence_model(
        (FRAMES, 27), lambda x: 3.0 * keras.ops.mean(x[:, :, 6:8], axis=(1, 2))[:, None], "pose"
    )
    faces_model = evidence_model((FRAMES, 22), lambda x: 3.0 * keras.ops.mean(x[:, :, 10], axis=1)[:, None], "faces")
    predictor = KnownPredictor({"pose": pose_model, "faces": faces_model})
    rng = np.random.default_rng(1)
    features = {
        "pose": rng.uniform(0.2, 0.8, (FRAMES, 27)).astype(np.float32),
        "faces": rng.uniform(0.2, 0.8, (FRAMES, 22)).astype(np.float32),
    }
    scores = np.array([[0.02, 0.01, 0.02, 0.83, 0.04, 0.03, 0.05]], np.float32)
    window = known_window(
        predictor,
        features,
        np.repeat(data.astronaut()[None], FRAMES, axis=0),
        class_index=0,
        keypoints=[skeleton()] * FRAMES,
        face_boxes=[np.array([FACE], np.int32)] * FRAMES,
        face_scores=[scores] * FRAMES,
    )
    return dataclasses.replace(window, blur_faces=blur)


def test_people_section_draws_and_ranks_what_the_models_read():
    window = people_window()
    built = people_section(window, [1, 2, 1])
    assert built.key == "people"
    assert built.arrays["key_frames"].tolist() == [1, 2]
    image = cv2.imdecode(np.frombuffer(built.figures[0].png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] > image.shape[0]
    keypoints = built.arrays["keypoint_shares"]
    assert keypoints.sum() == pytest.approx(1.0)
    assert KEYPOINT_NAMES[int(np.argmax(keypoints))] == COCO_KEYPOINTS[RIGHT_WRIST]
    assert keypoints[3] == pytest.approx(1.0)
    statistics = built.arrays["statistic_shares"]
    assert np.argmax(statistics) == 7 + 3 and statistics.sum() == pytest.approx(1.0)
    keypoint_table, statistics_table = built.tables
    assert keypoint_table.rows[0] == ["right wrist", "100.0%"]
    assert statistics_table.rows[3][0] == "happy" and statistics_table.rows[3][2] == "100.0%"
    assert "right wrist" in built.text and "max over faces of happy" in built.text


def test_blurred_faces_reach_the_figure_and_only_the_faces_change():
    plain, blurred = people_window(False), people_window(True)
    original, shown = plain.display_frames[1], blurred.display_frames[1]
    top, right, bottom, left = FACE
    face = (slice(top, bottom), slice(left, right))
    assert np.abs(shown[face].astype(int) - original[face]).mean() > 5
    np.testing.assert_array_equal(shown[400:, :100], original[400:, :100])  # bottom-left corner, away from the face
    figures = [
        cv2.imdecode(np.frombuffer(people_section(w, [1]).figures[0].png, np.uint8), cv2.IMREAD_COLOR)
        for w in (plain, blurred)
    ]
    assert figures[0].shape == figures[1].shape and np.any(figures[0] != figures[1])


def test_windows_without_people_faces_or_those_modalities_do_not_crash():
    scene_only = KnownPredictor({"scene": evidence_model((FRAMES, 6), mean_evidence(1.0), "scene")})
    window = known_window(scene_only, {"scene": np.ones((FRAMES, 6), np.float32)}, blank_frames(), class_index=0)
    built = people_section(window, [0])
    assert "no pose modality" in built.text and "no faces modality" in built.text
    assert not built.tables and built.figures
    models = {
        "pose": evidence_model((FRAMES, 27), mean_evidence(1.0), "pose"),
        "faces": evidence_model((FRAMES, 22), mean_evidence(1.0), "faces"),
    }
    empty = {"pose": np.full((FRAMES, 27), -1.0, np.float32), "faces": np.full((FRAMES, 22), -1.0, np.float32)}
    empty["pose"][:, -1] = empty["faces"][:, -1] = 0.0
    built = people_section(known_window(KnownPredictor(models), empty, blank_frames(), class_index=0), [])
    assert "No people were found" in built.text and "No faces were found" in built.text
    assert built.arrays["key_frames"].tolist() == [FRAMES // 2]


def test_people_section_ranks_nothing_for_a_model_whose_probability_did_not_move():
    """Issue 27: a saturated pose model (p = 1.00 whatever it sees) gets a sentence, no table and no saliency
    colours; the faces model, which moved, keeps its table."""
    moving = people_window()
    saturated = evidence_model((FRAMES, 27), lambda x: 40.0 + 0.0 * keras.ops.mean(x, axis=(1, 2))[:, None], "pose")
    predictor = KnownPredictor({"pose": saturated, "faces": moving.predictor.bundle.model("faces")})
    window = dataclasses.replace(moving, predictor=predictor)
    built = people_section(window, [1], samples=4)
    assert built.arrays["pose_spread"] < MIN_CHANGE <= built.arrays["faces_spread"]
    assert "keypoint_shares" not in built.arrays and "keypoint_saliency" not in built.arrays
    assert [table.columns[0] for table in built.tables] == ["expression"]
    assert "the pose model's p(Positive) by at most 0.000" in built.text and "nothing here to explain" in built.text
    assert "max over faces of happy" in built.text
