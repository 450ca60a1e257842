"""Section 4: pixel-level scene saliency of the key frames (SmoothGrad and Grad-CAM through the ResNet-50).

For key frame k one differentiable function maps the frame's pixels to the scene model's probabilities: pixels
(h, w, 3) RGB 0..255 at the backbone's input size -> ResNet-50's preprocessing (caffe style: RGB -> BGR, minus
the ImageNet means; in TensorFlow, equal to ``prepare_frames``) -> the bundle's frozen backbone -> its
(fh, fw, C) feature map, put in row k of the window's scene features (the other rows fixed) -> the scene model
-> probabilities. Both maps explain log p(class) (a softmax saturates, its logarithm does not):

SmoothGrad (Smilkov et al. 2017): mean |d log p / d pixel| over noisy copies of the frame (noise of standard
deviation ``noise`` x the frame's value range, as tf-keras-vis draws it), the largest over the colour channels.
Grad-CAM (Selvaraju et al. 2017) on the backbone's output, the map the ConvLSTM head reads: channel weights =
mean gradient over the map's cells, ReLU(weighted sum of the channels), bilinearly upsampled to the frame.

The backbone keeps the precision it was built in (mixed bfloat16 on most machines): gradients flow through its
casts, and everything after it (feature maps, the scene model, the gradients returned) is float32.

A key frame whose scene probability moved by less than movement.MIN_CHANGE across the frame and its noisy copies
(a saturated softmax has zero gradients) gets a sentence instead of its maps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from gvs.core.figures import subplots

from .movement import MIN_CHANGE, spread, unmoved_sentence
from .sections import Figure, Section, png_bytes
from .window import ExplainedWindow

IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)  # keras.applications.resnet50.preprocess_input ("caffe")
EPSILON = 1e-7
ALPHA = 0.5  # opacity of the heat maps over the frames


@dataclass
class PixelSaliency:
    """Pixel saliency of the scene model for key frames of a window.

    frame_indices : the key frames (rows of the window's frames and scene features)
    smoothgrad : (n_keys, h, w) SmoothGrad at the backbone's input size (h = scene_height, w = scene_width)
    gradcam : (n_keys, h, w) Grad-CAM upsampled to that size
    cells : (n_keys, fh, fw) Grad-CAM on the backbone's grid, before upsampling and normalising
    scale : {"smoothgrad" | "gradcam": the largest value over all key frames before normalising}; the maps are
        divided by it, so both lie in 0 .. 1 and brightness compares key frames (one scale per figure column)
    samples, noise : SmoothGrad's noisy copies and their noise level
    spread : (n_keys,) largest minus smallest scene p(class) over each key frame and its noisy copies
    """

    frame_indices: list[int]
    smoothgrad: np.ndarray
    gradcam: np.ndarray
    cells: np.ndarray
    scale: dict[str, float]
    samples: int
    noise: float
    spread: np.ndarray

    @property
    def moved(self) -> np.ndarray:
        """(n_keys,) bool: the key frames whose scene probability moved by at least MIN_CHANGE (the others have
        nothing to map)."""
        return self.spread >= MIN_CHANGE


def scene_size(window: ExplainedWindow) -> tuple[int, int]:
    """(width, height) of the scene backbone's input."""
    config = window.predictor.stream.config
    return config.scene_width, config.scene_height


def at_scene_size(window: ExplainedWindow, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (h, w, 3) uint8 at the backbone's input size, resized as ``prepare_frames`` does."""
    return cv2.resize(image, scene_size(window), interpolation=cv2.INTER_AREA)


def preprocess(images):
    """(B, h, w, 3) float32 RGB 0..255 tensor -> ResNet-50 input (BGR minus the ImageNet means), differentiable."""
    import tensorflow as tf

    return images[..., ::-1] - tf.constant(IMAGENET_BGR_MEANS, dtype=tf.float32)


def scene_log_probability(predictor) -> Callable:
    """The differentiable path from a key frame's pixels to the scene model's log p(class).

    Returns f(images, row, fixed, class_index): images (B, h, w, 3) float32 RGB 0..255, row (steps,) float32
    one-hot of the key frame's row, fixed (1, steps, fh, fw, C) the window's scene features, class_index an int32
    scalar -> ((B, fh, fw, C) float32 feature maps, (B,) log p), each image's map taking that row of ``fixed``.
    """
    import tensorflow as tf

    backbone = predictor.stream.extractors["scene"].model
    head = predictor.bundle.model("scene")

    def log_probability(images, row, fixed, class_index):
        maps = tf.cast(backbone(preprocess(images), training=False), tf.float32)
        chosen = tf.reshape(row, (1, -1, 1, 1, 1))
        rows = fixed * (1.0 - chosen) + maps[:, None] * chosen
        probabilities = tf.cast(head(rows, training=False), tf.float32)
        return maps, tf.math.log(tf.gather(probabilities, class_index, axis=1) + EPSILON)

    return log_probability


@functools.cache
def compiled_gradients(predictor) -> Callable:
    """A tf.function (images (B, h, w, 3), row (steps,) one-hot, fixed, class_index) -> (d log p / d pixel
    (B, h, w, 3), d log p / d feature map (B, fh, fw, C), feature maps (B, fh, fw, C), log p (B,)), see
    ``scene_log_probability``; one per loaded bundle, so every window and video reuses its trace.

    Each image's gradients are its own (the copies do not interact). Compiled because eager gradients through
    ResNet-50 are about 3x slower on a CPU; it is traced once per batch size (about 4 s).
    """
    import tensorflow as tf

    log_probability = scene_log_probability(predictor)

    @tf.function(reduce_retracing=True)
    def gradients(images, row, fixed, class_index):
        with tf.GradientTape() as tape:
            tape.watch(images)
            maps, log_p = log_probability(images, row, fixed, class_index)
            total = tf.reduce_sum(log_p)
        pixel_gradient, map_gradient = tape.gradient(total, [images, maps])
        return pixel_gradient, map_gradient, maps, log_p

    return gradients


def frame_saliency(
    gradients: Callable,
    frame: np.ndarray,
    row: np.ndarray,
    window: ExplainedWindow,
    samples: int,
    noise: float,
    rng: np.random.Generator,
    batch: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """SmoothGrad (h, w), raw Grad-CAM cells (fh, fw) and the spread of the scene p(class) over the frame and its
    copies, for one (h, w, 3) uint8 key frame in feature row ``row`` of ``window``.

    The frame and its ``samples`` noisy copies go through ``gradients`` (``compiled_gradients``) ``batch`` images
    at a time; Grad-CAM uses the frame's own gradients, SmoothGrad the copies'.
    """
    clean = frame.astype(np.float32)
    sigma = noise * float(clean.max() - clean.min())
    images = np.concatenate([clean[None], clean[None] + rng.normal(0.0, sigma, (samples, *clean.shape))])
    images = images.astype(np.float32)
    smooth, cells, log_p = np.zeros(clean.shape[:2], np.float32), None, []
    fixed = window.window.features["scene"][None].astype(np.float32)
    class_index = np.int32(window.class_index)
    for begin in range(0, len(images), batch):
        outputs = gradients(images[begin : begin + batch], row, fixed, class_index)
        pixel_gradient, map_gradient, maps, log_probability = (t.numpy() for t in outputs)
        log_p.append(log_probability)
        if cells is None:  # the first batch starts with the frame itself
            cells = gradcam_cells(maps[0], map_gradient[0])
            pixel_gradient = pixel_gradient[1:]
        smooth += np.abs(pixel_gradient).max(axis=-1).sum(axis=0)
    return smooth / max(samples, 1), cells, spread(np.exp(np.concatenate(log_p)))


def gradcam_cells(feature_map: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Grad-CAM (fh, fw) of an (fh, fw, C) feature map and the gradient of the score with respect to it:
    ReLU of the channels weighted by their mean gradient over the cells."""
    return np.maximum(feature_map @ gradient.mean(axis=(0, 1)), 0.0)


def pixel_saliency(
    window: ExplainedWindow,
    frame_indices: list[int],
    samples: int = 8,
    noise: float = 0.1,
    seed: int = 0,
    batch: int = 9,
) -> PixelSaliency:
    """SmoothGrad and Grad-CAM of the scene model's log p(explained class) for each key frame.

    Each key frame is taken at the backbone's input size (scene_width x scene_height, resized as the features
    were); ``batch`` images (the frame and its noisy copies; by default all 9 in one call)
    go through the backbone's gradient at a time. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    width, height = scene_size(window)
    gradients = compiled_gradients(window.predictor)
    steps = len(window.window.features["scene"])
    smooth, cells, spreads = [], [], []
    for index in frame_indices:
        frame = at_scene_size(window, window.frames[index])
        row = np.eye(steps, dtype=np.float32)[index]
        s, c, moved_by = frame_saliency(gradients, frame, row, window, samples, noise, rng, batch)
        smooth.append(s)
        cells.append(c)
        spreads.append(moved_by)
    cells = np.stack(cells)
    cams = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in cells])
    maps = {"smoothgrad": np.stack(smooth), "gradcam": np.maximum(cams, 0.0)}
    scale = {name: float(m.max()) for name, m in maps.items()}
    normalised = {name: m / scale[name] if scale[name] > 0 else m for name, m in maps.items()}
    return PixelSaliency(
        list(frame_indices),
        normalised["smoothgrad"],
        normalised["gradcam"],
        cells,
        scale,
        samples,
        noise,
        np.array(spreads),
    )


def _figure(result: PixelSaliency, window: ExplainedWindow):
    """Matplotlib figure: one row per key frame whose probability moved (display frame, SmoothGrad over it,
    Grad-CAM over it)."""
    shown = [(row, index) for row, index in enumerate(result.frame_indices) if result.moved[row]]
    height, width = result.smoothgrad.shape[1:]
    figure, axes = subplots(len(shown), 3, figsize=(11, 11 * height / width / 3 * len(shown) + 0.6), squeeze=False)
    for (row, index), frame_axes in zip(shown, axes):
        frame = at_scene_size(window, window.display_frames[index])
        panels = [("frame", None), ("SmoothGrad", result.smoothgrad[row]), ("Grad-CAM", result.gradcam[row])]
        for axis, (name, heat) in zip(frame_axes, panels):
            axis.imshow(frame)
            if heat is not None:
                axis.imshow(heat, cmap="jet", alpha=ALPHA, vmin=0.0, vmax=1.0)
            peak = "" if heat is None else f", peak {heat.max():.2f}"
            axis.set_title(f"{name}, frame {index + 1} ({window.frame_times[index]:.1f} s){peak}", fontsize=9)
            axis.axis("off")
    figure.tight_layout()
    return figure


def section(result: PixelSaliency, window: ExplainedWindow) -> Section:
    """Section "pixels": each key frame with its SmoothGrad and Grad-CAM overlays, or, for a key frame whose
    probability did not move under the noise, a sentence saying so."""
    grid = "x".join(str(n) for n in result.cells.shape[1:])
    width, height = scene_size(window)
    text = (
        f"Which pixels of the key frames the scene model's probability of {window.class_name} is most sensitive "
        f"to. The frames are shown as the scene backbone sees them ({width}x{height}); red is high, blue low."
    )
    if result.moved.any():
        text += _how_to_read(result, window, grid)
    for row, index in enumerate(result.frame_indices):
        if not result.moved[row]:
            text += "\n\n" + unmoved_sentence(
                f"Adding noise to key frame {index + 1} ({window.frame_times[index]:.1f} s) in {result.samples} copies",
                f"the scene model's p({window.class_name})",
                float(result.spread[row]),
            )
    figures = (
        [Figure("pixels-saliency", png_bytes(_figure(result, window)), "SmoothGrad and Grad-CAM of the key frames")]
        if result.moved.any()
        else []
    )
    return Section(
        "pixels",
        "Pixels of the key frames (scene model)",
        text,
        figures=figures,
        caveat=_caveat(window, grid),
        arrays={
            "frame_indices": np.asarray(result.frame_indices),
            "smoothgrad": result.smoothgrad,
            "gradcam": result.gradcam,
            "gradcam_cells": result.cells,
            "spread": result.spread,
        },
    )


def _how_to_read(result: PixelSaliency, window: ExplainedWindow, grid: str) -> str:
    """The paragraphs saying what SmoothGrad and Grad-CAM show and how the maps are scaled."""
    return (
        "\n\n"
        f"SmoothGrad: how much log p({window.class_name}) of the scene model changes when each pixel changes, "
        f"averaged over {result.samples} noisy copies of the frame (noise {result.noise:.2f} of its value range). "
        "It shows sensitivity, not whether a pixel speaks for or against the class.\n\n"
        f"Grad-CAM: the backbone's {grid} feature map weighted by how much each of its channels raises "
        f"log p({window.class_name}) on average; only the cells that raise it are coloured.\n\n"
        "Each column has one scale for all key frames (its peak, 0 .. 1, is in each title): a frame that stays dark "
        "matters less than the others."
    )


def _caveat(window: ExplainedWindow, grid: str) -> str:
    """When not to trust the maps: the backbone's weights and the Grad-CAM grid."""
    weights = window.scene_weights
    backbone = (
        f"This bundle's ResNet-50 has random weights ({weights}): the maps show the plumbing (which pixels reach "
        "the scene head), not meaning."
        if weights.startswith("random")
        else "Gradients are local: they say what a small change of each pixel would do, not what the pixel shows."
    )
    return (
        f"{backbone} The scene model's ConvLSTM head reads the backbone's {grid} grid of cells, so Grad-CAM has that "
        "resolution (the upsampling only smooths it); SmoothGrad is finer but noisier. Only the scene model is "
        "explained here: the other modalities do not look at pixels."
    )
