"""Attribution maps: model + one clip's inputs -> numpy arrays of the inputs' shape (or reduced from it).

Every function explains one clip (inputs without a batch axis) for one class. ``inputs`` is an array for a
model with one input, or ``{input name: array}`` for a model with several named inputs (a fusion model);
results come back in the same form. The explained score is the log-probability of ``class_index`` (a softmax
output saturates; its logarithm does not), so gradients stay informative for confident predictions.

Gradients come from tf-keras-vis: vanilla saliency and SmoothGrad are its ``Saliency``, Grad-CAM its
``Gradcam``; integrated gradients (which tf-keras-vis lacks) average its signed gradients along a path.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.saliency import Saliency

from modalities.architectures import cut_at_hidden

Inputs = np.ndarray | dict[str, np.ndarray]
_EPSILON = 1e-7
_CHUNK = 8  # interpolated copies per gradient call


def input_names(model: keras.Model) -> list[str]:
    """Names of the model's inputs, in the model's order.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    names : list of str
    """
    return [tensor.name for tensor in model.inputs]


def _as_list(model: keras.Model, inputs: Inputs) -> list[np.ndarray]:
    if not isinstance(inputs, dict):
        if len(model.inputs) != 1:
            raise ValueError(f"model {model.name!r} has inputs {input_names(model)}; pass a dict of them")
        return [np.asarray(inputs, dtype=np.float32)]
    missing = [name for name in input_names(model) if name not in inputs]
    if missing:
        raise ValueError(f"model {model.name!r} needs inputs {missing}; got {sorted(inputs)}")
    return [np.asarray(inputs[name], dtype=np.float32) for name in input_names(model)]


def _as_inputs(model: keras.Model, arrays: list[np.ndarray], like: Inputs) -> Inputs:
    return dict(zip(input_names(model), arrays)) if isinstance(like, dict) else arrays[0]


def _structured(model: keras.Model, tensors: list):
    """``tensors`` (in the order of ``model.inputs``) in the structure the model was built with."""
    if isinstance(model.input, dict):
        return dict(zip(input_names(model), tensors))
    return tensors if len(tensors) > 1 else tensors[0]


def _log_probability(class_index: int):
    """tf-keras-vis score: log p(class) of each sample of a batch of softmax outputs (batch, classes)."""
    return lambda probabilities: tf.math.log(probabilities[:, class_index] + _EPSILON)


def predict_probabilities(model: keras.Model, inputs: Inputs) -> np.ndarray:
    """Softmax output of the model for one clip.

    Parameters
    ----------
    model : keras.Model
    inputs : ndarray of shape (T, ...) or dict of str to ndarray
        One clip, without the batch axis.

    Returns
    -------
    probabilities : ndarray of shape (n_classes,)
    """
    batch = [tf.constant(a[None]) for a in _as_list(model, inputs)]
    return np.asarray(model(_structured(model, batch), training=False))[0]


def real_steps(x: np.ndarray) -> np.ndarray:
    """(T,) bool: time steps of a (T, ...) clip that are not all zero (all-zero steps are padding the models mask).

    Parameters
    ----------
    x : ndarray of shape (T, ...)

    Returns
    -------
    real : ndarray of shape (T,), bool
    """
    return np.any(x.reshape(x.shape[0], -1) != 0, axis=1)


def _explained(model: keras.Model, arrays: list[np.ndarray], gate: bool) -> keras.Model:
    """``model`` taking a list of inputs, as tf-keras-vis passes them; with ``gate``, behind a gate that keeps
    each sequence input's padded steps (all zero in ``arrays``) at zero.

    tf-keras-vis adds SmoothGrad noise to every value, padding included, so without the gate the models would
    no longer mask the padded steps and saliency would leak onto them; behind it those steps stay zero (still
    masked) and their gradient is zero.
    """
    inputs, gated = [], []
    for name, array in zip(input_names(model), arrays):
        tensor = keras.Input(array.shape, name=name)
        inputs.append(tensor)
        if gate and array.ndim >= 2:
            keep = real_steps(array).astype(np.float32).reshape((1, -1) + (1,) * (array.ndim - 1))
            tensor = keras.layers.Lambda(lambda t, keep=keep: t * keep, name=f"{name}_gate")(tensor)
        gated.append(tensor)
    return keras.Model(inputs, model(_structured(model, gated)), name=f"{model.name}_explained")


def _saliency(
    model: keras.Model,
    inputs: Inputs,
    class_index: int,
    samples: int,
    noise: float,
    seed: int,
    keepdims: bool,
    signed: bool = False,
) -> Inputs:
    """tf-keras-vis Saliency of log p(class) for one clip; ``samples`` > 0 makes it SmoothGrad."""
    arrays = _as_list(model, inputs)
    modifier = None if signed else tf.math.abs
    state = np.random.get_state()  # tf-keras-vis draws its noise from numpy's global generator
    np.random.seed(seed)
    try:
        maps = Saliency(_explained(model, arrays, gate=True), clone=False)(
            _log_probability(class_index),
            [a[None] for a in arrays],
            smooth_samples=samples,
            smooth_noise=noise,
            keepdims=keepdims,
            gradient_modifier=modifier,
            normalize_map=False,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
    finally:
        np.random.set_state(state)
    return _as_inputs(model, [np.asarray(m)[0] for m in maps], inputs)


def vanilla_saliency(model: keras.Model, inputs: Inputs, class_index: int, keepdims: bool = True) -> Inputs:
    """|d log p(class) / d input| for one clip (Simonyan et al. 2014), by tf-keras-vis.

    Parameters
    ----------
    model : keras.Model
        A modality model or a fused model (softmax output).
    inputs : ndarray of shape (T, ...) or dict of str to ndarray
        One clip: its features for a one-input model, or {input name: array} for a fusion model.
    class_index : int
        The class whose log-probability is explained.
    keepdims : bool
        False takes the largest value over the last (channel) axis: (T, h, w, C) scene maps -> (T, h, w).

    Returns
    -------
    saliency : ndarray or dict of str to ndarray
        Non-negative, the shape of ``inputs`` (without the last axis when ``keepdims`` is False).
    """
    return _saliency(model, inputs, class_index, 0, 0.0, 0, keepdims)


def smoothgrad(
    model: keras.Model,
    inputs: Inputs,
    class_index: int,
    samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
    keepdims: bool = True,
) -> Inputs:
    """Mean |gradient| of log p(class) over ``samples`` noisy copies of one clip (Smilkov et al. 2017).

    tf-keras-vis's SmoothGrad: the noise has standard deviation ``noise`` x (max - min) of each input. Padded
    time steps (axis 0 of a sequence input) stay zero and masked, and get zero saliency. Deterministic in
    ``seed``.

    Parameters
    ----------
    model : keras.Model
        A modality model or a fused model (softmax output).
    inputs : ndarray of shape (T, ...) or dict of str to ndarray
        One clip: its features for a one-input model, or {input name: array} for a fusion model.
    class_index : int
        The class whose log-probability is explained.
    samples : int
        Noisy copies.
    noise : float
        The noise's standard deviation as a share of each input's range.
    seed : int
    keepdims : bool
        False takes the largest value over the last (channel) axis: (T, h, w, C) scene maps -> (T, h, w).

    Returns
    -------
    saliency : ndarray or dict of str to ndarray
        Non-negative, the shape of ``inputs`` (without the last axis when ``keepdims`` is False).
    """
    return _saliency(model, inputs, class_index, samples, noise, seed, keepdims)


def integrated_gradients(
    model: keras.Model, inputs: Inputs, class_index: int, steps: int = 32, baseline: Inputs | None = None
) -> Inputs:
    """Signed integrated gradients (Sundararajan et al. 2017, midpoint rule) from ``baseline`` (default zeros).

    tf-keras-vis has no integrated gradients; the signed gradients along the path are its Saliency's.

    Parameters
    ----------
    model : keras.Model
        A modality model or a fused model (softmax output).
    inputs : ndarray of shape (T, ...) or dict of str to ndarray
        One clip: its features for a one-input model, or {input name: array} for a fusion model.
    class_index : int
        The class whose log-probability is explained.
    steps : int
        Points on the path from the baseline to the inputs.
    baseline : ndarray or dict of str to ndarray, or None
        Shaped like ``inputs``; None for zeros.

    Returns
    -------
    attributions : ndarray or dict of str to ndarray
        The shape of ``inputs``; all of them together sum to about log p(class | inputs) - log p(class | baseline).
    """
    arrays = _as_list(model, inputs)
    starts = [np.zeros_like(a) for a in arrays] if baseline is None else _as_list(model, baseline)
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    explained = Saliency(_explained(model, arrays, gate=False), clone=False)
    totals = [np.zeros_like(a) for a in arrays]
    for start in range(0, steps, _CHUNK):
        chunk = alphas[start : start + _CHUNK]
        copies = [s[None] + chunk.reshape((-1,) + (1,) * a.ndim) * (a - s)[None] for a, s in zip(arrays, starts)]
        gradients = explained(
            _log_probability(class_index),
            copies,
            keepdims=True,
            gradient_modifier=None,
            normalize_map=False,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        totals = [total + np.asarray(g).sum(axis=0) for total, g in zip(totals, gradients)]
    return _as_inputs(model, [t / steps * (a - s) for t, a, s in zip(totals, arrays, starts)], inputs)


def gradcam(model: keras.Model, x: np.ndarray, layer_name: str, class_index: int) -> np.ndarray:
    """Grad-CAM of log p(class) on a ConvLSTM2D head such as "scene_convlstm_0" (tf-keras-vis's Gradcam).

    The heads return their last state, (h, w, C) feature maps with no time axis, so there is one map for the
    whole clip. tf-keras-vis is asked for the raw map (``expand_cam=False``): expanded, it zooms the (h, w) map
    onto the input's first axes (T, h) instead of (h, w). A sequence of maps (T, h, w, C) is refused: there
    tf-keras-vis averages the channel weights over the time axis too, so it gives no per-frame maps (frames the
    score does not depend on get a map) -- tests/test_saliency_maps.py shows both.

    Parameters
    ----------
    model : keras.Model
        A scene model.
    x : ndarray of shape (T, H, W, C)
        One clip's features.
    layer_name : str
        The head whose output is an (h, w, C) feature map.
    class_index : int

    Returns
    -------
    cam : ndarray of shape (h, w)
        Non-negative.

    Raises
    ------
    ValueError
        When the layer is missing or its output is not an (h, w, C) feature map.
    """
    try:
        layer = model.get_layer(layer_name)
    except ValueError as error:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; Grad-CAM needs one") from error
    if len(layer.output.shape) != 4:
        raise ValueError(
            f"layer {layer_name!r} outputs {layer.output.shape}, not one height, width, channels "
            f"feature map per clip; Grad-CAM needs one"
        )
    cam = Gradcam(model, clone=False)(
        _log_probability(class_index),
        np.asarray(x, np.float32)[None],
        penultimate_layer=layer_name,
        seek_penultimate_conv_layer=False,
        expand_cam=False,
        normalize_cam=False,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return np.asarray(cam)[0]


def hidden_and_probabilities(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A modality model's "hidden" vectors (the layer fusions cut at) and its probabilities for a batch of clips.

    Parameters
    ----------
    model : keras.Model
        A modality model.
    x : ndarray of shape (N, ...)
        Features of N clips.
    batch_size : int

    Returns
    -------
    hidden : ndarray of shape (N, H)
    probabilities : ndarray of shape (N, n_classes)
    """
    cut = cut_at_hidden(model)
    x = np.asarray(x, np.float32)
    batches = [cut(x[start : start + batch_size], training=False) for start in range(0, len(x), batch_size)]
    hidden = np.concatenate([np.asarray(h) for h, _ in batches])
    return hidden.reshape(len(x), -1), np.concatenate([np.asarray(p) for _, p in batches])


POSE_KEYPOINTS = 13  # body keypoints 1..13 of the 18 COCO keypoints: Neck .. LAnkle


def pose_keypoint_saliency(saliency: np.ndarray) -> np.ndarray:
    """(T, 27) saliency over pose features -> (T, 13): x and y column saliency summed per keypoint.

    Column j is body keypoint j, i.e. COCO keypoint j + 1 (feature columns 2j and 2j + 1).

    Parameters
    ----------
    saliency : ndarray of shape (T, 27)

    Returns
    -------
    keypoints : ndarray of shape (T, 13)
    """
    coordinates = np.abs(saliency[:, : 2 * POSE_KEYPOINTS]).reshape(saliency.shape[0], POSE_KEYPOINTS, 2)
    return coordinates.sum(axis=-1)


def step_saliency(saliency: np.ndarray) -> np.ndarray:
    """(T, ...) saliency -> (T,): total |saliency| of each time step (audio steps, face frames).

    Parameters
    ----------
    saliency : ndarray of shape (T, ...)

    Returns
    -------
    steps : ndarray of shape (T,)
    """
    return np.abs(saliency).reshape(saliency.shape[0], -1).sum(axis=1)


def column_saliency(saliency: np.ndarray) -> np.ndarray:
    """(T, F) saliency -> (F,): total |saliency| of each feature column over all steps (face statistics).

    Parameters
    ----------
    saliency : ndarray of shape (T, F)

    Returns
    -------
    columns : ndarray of shape (F,)
    """
    return np.abs(saliency).sum(axis=0)
