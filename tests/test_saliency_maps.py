"""Saliency on small hand-built models whose true dependence is known: the map must rank that input first.

Also what tf-keras-vis gets right and wrong for our models: its Saliency is the gradient of log p(class), its
Gradcam is right on the ConvLSTM2D heads (one (h, w) map per clip) only unexpanded, and gives no per-frame maps
on a sequence of feature maps.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam

from modalities.architectures import build_model
from saliency import maps

T, H, W, C = 12, 4, 6, 16


def _head(features, name: str = "probabilities"):
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(features)
    return keras.layers.Dense(3, activation="softmax", name=name)(hidden)


def _pick(index, name: str):
    return keras.layers.Lambda(lambda tensor: tensor[:, index], name=name)


def _log_probability(class_index: int):
    return lambda probabilities: tf.math.log(probabilities[:, class_index] + 1e-7)


@pytest.fixture(scope="module")
def scene_model() -> keras.Model:
    """Looks only at frame 5, and there only at cell (2, 3), through a ConvLSTM returning its sequence."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((T, H, W, C), name="scene_input")
    sequence = keras.layers.ConvLSTM2D(4, 1, return_sequences=True, name="scene_sequence")(inputs)
    cell = keras.layers.Lambda(lambda tensor: tensor[:, 5, 2, 3, :], name="frame5_cell")(sequence)
    return keras.Model(inputs, _head(cell))


@pytest.fixture(scope="module")
def scene_heads() -> keras.Model:
    """The real scene architecture: ConvLSTM2D heads "scene_convlstm_<i>" returning their last state (h, w, C)."""
    keras.utils.set_random_seed(7)
    return build_model("scene", (T, H, W, C), heads=2, filters=3, reduce_channels=4)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(T, H, W, C)).astype(np.float32)


@pytest.mark.slow  # smoothgrad traces the ConvLSTM's gradient for each call
def test_scene_saliency_ranks_the_only_frame_and_cell_first(scene_model, clip):
    for frame_maps in (
        maps.vanilla_saliency(scene_model, clip, 0, keepdims=False),
        maps.smoothgrad(scene_model, clip, 0, samples=8, keepdims=False),
    ):
        assert frame_maps.shape == (T, H, W)  # largest value over channels
        frame, row, column = np.unravel_index(np.argmax(frame_maps), frame_maps.shape)
        assert (frame, row, column) == (5, 2, 3)
        assert frame_maps[6:].max() == 0  # a recurrent step never looks ahead


def test_vanilla_saliency_is_the_gradient_of_the_log_probability(scene_heads, clip):
    x = tf.constant(clip[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.math.log(scene_heads(x, training=False)[:, 1] + 1e-7)
    expected = np.abs(np.asarray(tape.gradient(score, x))[0])
    np.testing.assert_allclose(maps.vanilla_saliency(scene_heads, clip, 1), expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        maps.vanilla_saliency(scene_heads, clip, 1, keepdims=False), expected.max(axis=-1), rtol=1e-4, atol=1e-7
    )


@pytest.mark.slow  # three smoothgrad runs of the real scene heads
def test_smoothgrad_is_deterministic_in_its_seed_and_leaves_numpy_alone(scene_heads, clip):
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    first = maps.smoothgrad(scene_heads, clip, 0, samples=3, seed=4)
    assert np.random.random() == before  # numpy's global generator is restored
    np.testing.assert_array_equal(first, maps.smoothgrad(scene_heads, clip, 0, samples=3, seed=4))
    assert not np.array_equal(first, maps.smoothgrad(scene_heads, clip, 0, samples=3, seed=5))


def _grad_cam_by_hand(model: keras.Model, x: np.ndarray, layer: str, class_index: int, axes: tuple[int, ...]):
    """Grad-CAM with channel weights averaged over ``axes`` of the layer output (batch axis dropped)."""
    cut = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        activations, probabilities = cut(tf.constant(x[None]), training=False)
        score = tf.math.log(probabilities[:, class_index] + 1e-7)
    gradients = np.asarray(tape.gradient(score, activations))[0]
    activations = np.asarray(activations)[0]
    return np.maximum((gradients.mean(axis=axes, keepdims=True) * activations).sum(axis=-1), 0.0)


@pytest.mark.slow  # twelve Grad-CAM maps (two heads, three classes, both ways)
def test_gradcam_on_the_convlstm_heads_is_one_map_per_clip(scene_heads, clip):
    """A head's output (h, w, C) has no time axis: one Grad-CAM map per clip, as the formula gives it."""
    for head in ("scene_convlstm_0", "scene_convlstm_1"):
        for class_index in range(3):
            cam = maps.gradcam(scene_heads, clip, head, class_index)
            assert cam.shape == (H, W) and np.all(cam >= 0)
            np.testing.assert_allclose(
                cam, _grad_cam_by_hand(scene_heads, clip, head, class_index, (0, 1)), rtol=1e-4, atol=1e-7
            )


def test_tf_keras_vis_expanded_gradcam_misplaces_the_axes_of_a_convlstm_head(scene_heads, clip):
    """Why maps.gradcam asks tf-keras-vis for the raw map: expanded to the input (T, h, w, C), the (h, w) map is
    zoomed onto the input's first axes (T, h), so rows become frames and columns become rows."""
    expanded = Gradcam(scene_heads, clone=False)(
        _log_probability(0),
        clip[None],
        penultimate_layer="scene_convlstm_0",
        seek_penultimate_conv_layer=False,
        normalize_cam=False,
    )
    assert np.shape(expanded) == (1, T, H)


def test_tf_keras_vis_gradcam_gives_no_per_frame_maps_on_a_sequence_of_maps(scene_model, clip):
    """On a ConvLSTM returning its sequence (T, h, w, C) tf-keras-vis averages the channel weights over time too:
    frames the score does not depend on get a map, where per-frame weights mark frame 5 only. Our heads return
    their last state, so maps.gradcam refuses such a layer rather than draw misleading per-frame maps."""
    library = np.stack(
        [
            np.asarray(
                Gradcam(scene_model, clone=False)(
                    _log_probability(c),
                    clip[None],
                    penultimate_layer="scene_sequence",
                    seek_penultimate_conv_layer=False,
                    expand_cam=False,
                    normalize_cam=False,
                )
            )[0]
            for c in range(3)
        ]
    )
    per_frame = np.stack([_grad_cam_by_hand(scene_model, clip, "scene_sequence", c, (1, 2)) for c in range(3)])
    assert library.shape == per_frame.shape == (3, T, H, W)
    np.testing.assert_allclose(
        library,
        np.stack([_grad_cam_by_hand(scene_model, clip, "scene_sequence", c, (0, 1, 2)) for c in range(3)]),
        rtol=1e-4,
        atol=1e-7,
    )
    per_frame_totals = per_frame.sum(axis=(0, 2, 3))
    assert np.argmax(per_frame_totals) == 5 and np.all(np.delete(per_frame_totals, 5) == 0)
    assert np.delete(library.sum(axis=(0, 2, 3)), 5).max() > 0
    with pytest.raises(ValueError, match="per clip"):
        maps.gradcam(scene_model, clip, "scene_sequence", 0)


def test_gradcam_rejects_a_layer_without_feature_maps(scene_heads, clip):
    with pytest.raises(ValueError, match="hidden"):
        maps.gradcam(scene_heads, clip, "hidden", 0)
    with pytest.raises(ValueError, match="no layer"):
        maps.gradcam(scene_heads, clip, "scene_convlstm_9", 0)


def test_smoothgrad_keeps_padded_frames_masked():
    """tf-keras-vis adds noise to padded steps too; maps.smoothgrad keeps them zero, masked and without saliency."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((T, 27), name="pose_input")
    masked = keras.layers.Masking(name="pose_mask")(inputs)
    model = keras.Model(inputs, _head(keras.layers.LSTM(6, name="pose_lstm")(masked)))
    x = np.random.default_rng(1).uniform(size=(T, 27)).astype(np.float32)
    x[9:] = 0
    saliency = maps.smoothgrad(model, x, 2, samples=8, noise=0.3)
    assert saliency.shape == (T, 27)
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
    steps = maps.step_saliency(
        maps.smoothgrad(audio_model, np.random.default_rng(3).normal(size=(11, 32)), 0, samples=4)
    )
    assert steps.shape == (11,) and np.argmax(steps) == 7

    faces = keras.Input((T, 22), name="faces_input")
    column = keras.layers.Lambda(lambda tensor: tensor[:, :, 10:11], name="column10")(faces)
    faces_model = keras.Model(faces, _head(keras.layers.Flatten()(column)))
    saliency = maps.vanilla_saliency(faces_model, np.random.default_rng(4).uniform(size=(T, 22)), 2)
    assert np.argmax(maps.column_saliency(saliency)) == 10


def test_hidden_and_probabilities_cut_a_modality_model_at_its_hidden_layer(scene_heads, clip):
    hidden, probabilities = maps.hidden_and_probabilities(scene_heads, np.stack([clip, clip * 0.5]))
    assert hidden.shape == (2, 6)  # 2 heads x 3 filters, pooled
    np.testing.assert_allclose(probabilities[0], maps.predict_probabilities(scene_heads, clip), rtol=1e-5)


@pytest.fixture(scope="module")
def fusion_model() -> keras.Model:
    """Three named hidden-vector inputs; only "pose_hidden" reaches the output."""
    keras.utils.set_random_seed(5)
    named = {f"{m}_hidden": keras.Input((8,), name=f"{m}_hidden") for m in ("scene", "pose", "audio")}
    only_pose = keras.layers.Lambda(lambda t: t[1] + 0.0 * (t[0] + t[2]), name="only_pose")(list(named.values()))
    return keras.Model(named, _head(only_pose))


def test_integrated_gradients_put_all_attribution_on_the_used_input(fusion_model):
    generator = np.random.default_rng(5)
    inputs = {f"{m}_hidden": generator.normal(size=8).astype(np.float32) for m in ("scene", "pose", "audio")}
    attributions = maps.integrated_gradients(fusion_model, inputs, 1)
    assert set(attributions) == set(inputs)
    assert np.abs(attributions["pose_hidden"]).sum() > 0
    assert np.all(attributions["scene_hidden"] == 0) and np.all(attributions["audio_hidden"] == 0)
    saliency = maps.vanilla_saliency(fusion_model, inputs, 1)
    assert saliency["pose_hidden"].shape == (8,) and np.all(saliency["scene_hidden"] == 0)


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
        maps.predict_probabilities(fusion_model, baseline)[2]
    )
    assert total == pytest.approx(expected, abs=0.02)


def test_multi_input_model_needs_named_inputs(fusion_model):
    with pytest.raises(ValueError, match="pass a dict"):
        maps.vanilla_saliency(fusion_model, np.zeros(8), 0)
    with pytest.raises(ValueError, match="audio_hidden"):
        maps.vanilla_saliency(fusion_model, {"scene_hidden": np.zeros(8), "pose_hidden": np.zeros(8)}, 0)
