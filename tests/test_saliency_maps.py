"""Saliency on small hand-built models whose true dependence is known: the map must rank that input first."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from saliency import maps

T, H, W, C = 12, 4, 6, 16


def _head(features, name: str = "probabilities"):
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(features)
    return keras.layers.Dense(3, activation="softmax", name=name)(hidden)


def _pick(index, name: str):
    return keras.layers.Lambda(lambda tensor: tensor[:, index], name=name)


@pytest.fixture(scope="module")
def scene_model() -> keras.Model:
    """Looks only at frame 5, and there only at cell (2, 3), through a ConvLSTM named like the real heads."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((T, H, W, C), name="scene_input")
    masked = keras.layers.Masking(name="scene_mask")(inputs)
    sequence = keras.layers.ConvLSTM2D(4, 1, return_sequences=True, name="scene_convlstm_0")(masked)
    cell = keras.layers.Lambda(lambda tensor: tensor[:, 5, 2, 3, :], name="frame5_cell")(sequence)
    return keras.Model(inputs, _head(cell))


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(T, H, W, C)).astype(np.float32)


def test_scene_saliency_ranks_the_only_frame_and_cell_first(scene_model, clip):
    for saliency in (maps.vanilla_saliency(scene_model, clip, 0), maps.smoothgrad(scene_model, clip, 0, samples=8)):
        frame_maps = maps.scene_frame_maps(saliency)
        assert frame_maps.shape == (T, H, W)
        frame, row, column = np.unravel_index(np.argmax(frame_maps), frame_maps.shape)
        assert (frame, row, column) == (5, 2, 3)
        assert frame_maps[6:].max() == 0  # a recurrent step never looks ahead


def test_gradcam_gives_one_map_per_frame_and_marks_only_the_used_frame(scene_model, clip):
    """Grad-CAM weighs whole feature maps, so it finds the frame (not the cell) the score depends on."""
    cams = np.stack([maps.gradcam(scene_model, clip, "scene_convlstm_0", class_index=c) for c in range(3)])
    assert cams.shape == (3, T, H, W)
    assert np.all(cams >= 0)
    per_frame = cams.sum(axis=(0, 2, 3))
    assert np.argmax(per_frame) == 5 and per_frame[5] > 0
    assert np.all(np.delete(per_frame, 5) == 0)


def test_gradcam_rejects_a_layer_without_feature_maps(scene_model, clip):
    with pytest.raises(ValueError, match="hidden"):
        maps.gradcam(scene_model, clip, "hidden", 0)
    with pytest.raises(ValueError, match="no layer"):
        maps.gradcam(scene_model, clip, "scene_convlstm_9", 0)


def test_smoothgrad_keeps_padded_frames_masked():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((T, 27), name="pose_input")
    masked = keras.layers.Masking(name="pose_mask")(inputs)
    model = keras.Model(inputs, _head(keras.layers.LSTM(6, name="pose_lstm")(masked)))
    x = np.random.default_rng(1).uniform(size=(T, 27)).astype(np.float32)
    x[9:] = 0
    saliency = maps.smoothgrad(model, x, 2, samples=8, noise=0.3)
    assert np.all(saliency[9:] == 0)
    assert np.all(saliency[:9].sum(axis=1) > 0)


def test_pose_saliency_ranks_the_only_keypoint_first():
    """The model reads body keypoint 4 (x, y columns 8 and 9; COCO keypoint 5, LShoulder) of frame 3 only."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((T, 27), name="pose_input")
    used = keras.layers.Lambda(lambda tensor: tensor[:, 3, 8:10], name="frame3_keypoint4")(inputs)
    model = keras.Model(inputs, _head(used))
    x = np.random.default_rng(2).uniform(size=(T, 27)).astype(np.float32)
    keypoints = maps.pose_keypoint_saliency(maps.vanilla_saliency(model, x, 0))
    assert keypoints.shape == (T, maps.POSE_KEYPOINTS)
    assert np.unravel_index(np.argmax(keypoints), keypoints.shape) == (3, 4)


def test_audio_and_faces_reductions_rank_the_used_step_and_statistic_first():
    keras.utils.set_random_seed(4)
    audio = keras.Input((11, 32), name="audio_input")
    audio_model = keras.Model(audio, _head(_pick(7, "step7")(audio)))
    steps = maps.step_saliency(maps.smoothgrad(audio_model, np.random.default_rng(3).normal(size=(11, 32)), 0,
                                               samples=4))
    assert steps.shape == (11,) and np.argmax(steps) == 7

    faces = keras.Input((T, 22), name="faces_input")
    column = keras.layers.Lambda(lambda tensor: tensor[:, :, 10:11], name="column10")(faces)
    faces_model = keras.Model(faces, _head(keras.layers.Flatten()(column)))
    saliency = maps.vanilla_saliency(faces_model, np.random.default_rng(4).uniform(size=(T, 22)), 2)
    assert np.argmax(maps.column_saliency(saliency)) == 10


@pytest.fixture(scope="module")
def fusion_model() -> keras.Model:
    """Three named hidden-vector inputs; only "pose_hidden" reaches the output."""
    keras.utils.set_random_seed(5)
    named = {f"{m}_hidden": keras.Input((8,), name=f"{m}_hidden") for m in ("scene", "pose", "audio")}
    only_pose = keras.layers.Lambda(lambda t: t[1] + 0.0 * (t[0] + t[2]), name="only_pose")(list(named.values()))
    return keras.Model(named, _head(only_pose))


@pytest.mark.parametrize("method", [maps.gradient_x_input, maps.integrated_gradients])
def test_modality_shares_put_all_weight_on_the_used_input(fusion_model, method):
    generator = np.random.default_rng(5)
    inputs = {f"{m}_hidden": generator.normal(size=8).astype(np.float32) for m in ("scene", "pose", "audio")}
    attributions = method(fusion_model, inputs, 1)
    assert set(attributions) == set(inputs)
    shares = maps.modality_shares(attributions)
    assert shares["pose_hidden"] == pytest.approx(1.0)
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("baseline_scale", [0.0, 1.0])
def test_integrated_gradients_are_complete(fusion_model, baseline_scale):
    """Attributions sum to log p(x) - log p(baseline) (the defining property of integrated gradients)."""
    generator = np.random.default_rng(6)
    names = [f"{m}_hidden" for m in ("scene", "pose", "audio")]
    inputs = {name: generator.normal(size=8).astype(np.float32) for name in names}
    baseline = {name: baseline_scale * generator.normal(size=8).astype(np.float32) for name in names}
    attributions = maps.integrated_gradients(fusion_model, inputs, 2, steps=64, baseline=baseline)
    total = sum(a.sum() for a in attributions.values())
    expected = np.log(maps.predict_probabilities(fusion_model, inputs)[2]) - np.log(
        maps.predict_probabilities(fusion_model, baseline)[2])
    assert total == pytest.approx(expected, abs=0.02)


def test_multi_input_model_needs_named_inputs(fusion_model):
    with pytest.raises(ValueError, match="pass a dict"):
        maps.vanilla_saliency(fusion_model, np.zeros(8), 0)
    with pytest.raises(ValueError, match="audio_hidden"):
        maps.vanilla_saliency(fusion_model, {"scene_hidden": np.zeros(8), "pose_hidden": np.zeros(8)}, 0)
