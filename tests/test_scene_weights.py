"""--scene-weights FILE: a ResNet-50 (no top) weights file loads into the scene backbone; a missing file is refused."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import skimage.data

from preprocess.scene import SceneWeightsError, build_backbone, prepare_frames

WIDTH, HEIGHT = 96, 64


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A ResNet-50 without top, randomly initialised (seed 1, not the seed 'none' uses), and its weights file."""
    keras.utils.set_random_seed(1)
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(HEIGHT, WIDTH, 3))
    path = tmp_path_factory.mktemp("scene") / "resnet50_notop.weights.h5"
    model.save_weights(path)
    return model, path


def test_weights_file_gives_the_saved_model(saved):
    model, path = saved
    backbone, used = build_backbone(str(path), WIDTH, HEIGHT)
    assert used == "file:resnet50_notop.weights.h5" and not backbone.trainable
    batch = prepare_frames(skimage.data.astronaut()[None], WIDTH, HEIGHT)
    expected = model(batch, training=False).numpy()
    maps = backbone(batch, training=False).numpy()
    assert maps.shape == expected.shape == (1, 2, 3, 2048)
    assert np.allclose(maps, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    random, _ = build_backbone("none", WIDTH, HEIGHT)  # the file's weights, not another initialisation
    assert not np.allclose(random(batch, training=False).numpy(), expected, atol=1e-3 * np.abs(expected).max())


def test_missing_weights_file_is_refused(tmp_path):
    missing = tmp_path / "resnet50_notop.weights.h5"
    with pytest.raises(SceneWeightsError, match=rf"--scene-weights {missing}: no such file; use imagenet, none, auto"):
        build_backbone(str(missing), WIDTH, HEIGHT)
