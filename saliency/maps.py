"""Attribution maps: model + one clip's inputs -> numpy arrays of the inputs' shape (or reduced from it).

Every function explains one clip (inputs without a batch axis) for one class. ``inputs`` is an array for a
model with one input, or ``{input name: array}`` for a model with several named inputs (a fusion model);
results come back in the same form. The explained score is the log-probability of ``class_index`` (a softmax
output saturates; its logarithm does not), so gradients stay informative for confident predictions.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

Inputs = np.ndarray | dict[str, np.ndarray]
_EPSILON = 1e-7
_CHUNK = 8  # noisy or interpolated copies per model call


def input_names(model: keras.Model) -> list[str]:
    """Names of the model's inputs, in the model's order."""
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


def _call(model: keras.Model, batch: list[tf.Tensor]) -> tf.Tensor:
    if len(batch) == 1:
        return model(batch[0], training=False)
    return model(dict(zip(input_names(model), batch)), training=False)


def predict_probabilities(model: keras.Model, inputs: Inputs) -> np.ndarray:
    """(classes,) softmax output of the model for one clip."""
    batch = [tf.constant(a[None]) for a in _as_list(model, inputs)]
    return np.asarray(_call(model, batch))[0]


def _log_probability_gradients(model: keras.Model, batch: list[np.ndarray], class_index: int) -> list[np.ndarray]:
    """Gradient of log p(class) for every sample of a batch (samples are independent, so one call serves all)."""
    tensors = [tf.constant(a) for a in batch]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        probabilities = _call(model, tensors)
        score = tf.reduce_sum(tf.math.log(probabilities[:, class_index] + _EPSILON))
    gradients = tape.gradient(score, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return [np.asarray(g) for g in gradients]


def _batched_gradients(model: keras.Model, copies: list[np.ndarray], class_index: int) -> list[np.ndarray]:
    """Gradients for stacked copies (S, ...) of each input, computed ``_CHUNK`` copies per call."""
    parts = [[] for _ in copies]
    for start in range(0, len(copies[0]), _CHUNK):
        chunk = _log_probability_gradients(model, [c[start:start + _CHUNK] for c in copies], class_index)
        for part, gradient in zip(parts, chunk):
            part.append(gradient)
    return [np.concatenate(part) for part in parts]


def vanilla_saliency(model: keras.Model, inputs: Inputs, class_index: int) -> Inputs:
    """|d log p(class) / d input| for one clip (Simonyan et al. 2014)."""
    arrays = _as_list(model, inputs)
    gradients = _log_probability_gradients(model, [a[None] for a in arrays], class_index)
    return _as_inputs(model, [np.abs(g[0]) for g in gradients], inputs)


def real_steps(x: np.ndarray) -> np.ndarray:
    """(T,) bool: time steps that are not all zero (all-zero steps are padding that the models mask)."""
    return np.any(x.reshape(x.shape[0], -1) != 0, axis=1)


def smoothgrad(model: keras.Model, inputs: Inputs, class_index: int, samples: int = 16, noise: float = 0.15,
               seed: int = 0) -> Inputs:
    """Mean |gradient| over noisy copies of the clip (Smilkov et al. 2017).

    The noise has standard deviation ``noise`` x (max - min) of each input and is added to real time steps
    only (axis 0 of a sequence input), so padded steps stay zero and stay masked.
    """
    arrays = _as_list(model, inputs)
    generator = np.random.default_rng(seed)
    copies = []
    for array in arrays:
        sigma = noise * float(array.max() - array.min()) or noise
        perturbation = generator.normal(0.0, sigma, (samples,) + array.shape).astype(np.float32)
        if array.ndim >= 2:
            perturbation *= real_steps(array).reshape((1, -1) + (1,) * (array.ndim - 1))
        copies.append(array[None] + perturbation)
    gradients = _batched_gradients(model, copies, class_index)
    return _as_inputs(model, [np.abs(g).mean(axis=0) for g in gradients], inputs)


def gradient_x_input(model: keras.Model, inputs: Inputs, class_index: int) -> Inputs:
    """Signed gradient x input attribution for one clip."""
    arrays = _as_list(model, inputs)
    gradients = _log_probability_gradients(model, [a[None] for a in arrays], class_index)
    return _as_inputs(model, [g[0] * a for g, a in zip(gradients, arrays)], inputs)


def integrated_gradients(model: keras.Model, inputs: Inputs, class_index: int, steps: int = 32,
                         baseline: Inputs | None = None) -> Inputs:
    """Signed integrated gradients (Sundararajan et al. 2017, midpoint rule) from ``baseline`` (default zeros).

    The attributions of all inputs together sum to about log p(class | inputs) - log p(class | baseline).
    """
    arrays = _as_list(model, inputs)
    starts = [np.zeros_like(a) for a in arrays] if baseline is None else _as_list(model, baseline)
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    copies = [s[None] + alphas.reshape((-1,) + (1,) * a.ndim) * (a - s)[None] for a, s in zip(arrays, starts)]
    gradients = _batched_gradients(model, copies, class_index)
    return _as_inputs(model, [g.mean(axis=0) * (a - s) for g, a, s in zip(gradients, arrays, starts)], inputs)


def modality_shares(attributions: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the total |attribution| carried by each input (shares sum to 1)."""
    magnitudes = {name: float(np.abs(a).sum()) for name, a in attributions.items()}
    total = sum(magnitudes.values()) or 1.0
    return {name: magnitude / total for name, magnitude in magnitudes.items()}


def gradcam(model: keras.Model, x: np.ndarray, layer_name: str, class_index: int) -> np.ndarray:
    """Grad-CAM on a spatial layer such as "scene_convlstm_0" -> (T, h, w) per frame, or (h, w) for the clip.

    For a sequence of feature maps (T, h, w, C) the channel weights are the gradients averaged over each
    frame's (h, w), so every frame gets its own map and frames the score does not depend on get none.
    Raises ValueError when the layer is missing or its output is not a feature map.
    """
    try:
        layer = model.get_layer(layer_name)
    except ValueError as error:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; Grad-CAM needs one") from error
    if len(layer.output.shape) not in (4, 5):
        raise ValueError(f"layer {layer_name!r} outputs {layer.output.shape}, not a (time,) height, width, "
                         f"channels feature map; Grad-CAM needs one")
    cut = keras.Model(model.input, [layer.output, model.output])
    with tf.GradientTape() as tape:
        activations, probabilities = cut(tf.constant(x[None].astype(np.float32)), training=False)
        score = tf.math.log(probabilities[:, class_index] + _EPSILON)
    gradients = np.asarray(tape.gradient(score, activations))[0]
    activations = np.asarray(activations)[0]
    weights = gradients.mean(axis=(-3, -2), keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0)


def scene_frame_maps(saliency: np.ndarray) -> np.ndarray:
    """(T, h, w, C) saliency over feature maps -> (T, h, w): the largest value over channels (as tf-keras-vis)."""
    return saliency.max(axis=-1)


POSE_KEYPOINTS = 13  # body keypoints 1..13 of the 18 COCO keypoints: Neck .. LAnkle


def pose_keypoint_saliency(saliency: np.ndarray) -> np.ndarray:
    """(T, 27) saliency over pose features -> (T, 13): x and y column saliency summed per keypoint.

    Column j is body keypoint j, i.e. COCO keypoint j + 1 (feature columns 2j and 2j + 1).
    """
    coordinates = np.abs(saliency[:, : 2 * POSE_KEYPOINTS]).reshape(saliency.shape[0], POSE_KEYPOINTS, 2)
    return coordinates.sum(axis=-1)


def step_saliency(saliency: np.ndarray) -> np.ndarray:
    """(T, ...) saliency -> (T,): total |saliency| of each time step (audio steps, face frames)."""
    return np.abs(saliency).reshape(saliency.shape[0], -1).sum(axis=1)


def column_saliency(saliency: np.ndarray) -> np.ndarray:
    """(T, F) saliency -> (F,): total |saliency| of each feature column over all steps (face statistics)."""
    return np.abs(saliency).sum(axis=0)
