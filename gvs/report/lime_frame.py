"""Section 3: which regions of a key frame the verdict rests on, by LIME on superpixels (Ribeiro et al. 2016).

The key frame, at the scene backbone's input size (scene_width x scene_height: its features were computed at
that size, and it saves compute), is cut into SLIC superpixels. LIME hides random subsets of them (filled with
the frame's mean colour), runs each copy through the backbone (in batches), puts its feature map in the key
frame's row of the window's scene features (the other frames and the other modalities unchanged) and scores
the window. One sampling pass explains two outputs: the scene model's and the fused probability of the
explained class. A weighted linear model of "superpixel shown" (LIME's surrogate, Ridge on the samples near
the frame) gives each superpixel a signed weight: positive where showing it raises the probability.

Faithfulness: the superpixels ranked by their fused weight are cut into min(5, n) groups of consecutive ranks
(about eight superpixels each for 40); the fused deletion curve hides the groups best first, against 10 random
orders of the same groups. Each distinct set of hidden groups is scored once, and 5 groups have at most 32 such
sets, so the curve costs at most 32 backbone passes whatever the number of orders (ten single superpixels plus
"the rest" would need about 40 passes for 3 orders, and a random order hiding "the rest" early would hide far
more of the frame at each step than the ranked one).

An output whose probability moved by less than movement.MIN_CHANGE across LIME's samples gets a sentence instead
of a map; a map whose surrogate fits with R^2 below movement.r2_floor is drawn faded, with the reason.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gvs.core.errors import InputError
from gvs.predict.predictor import FUSED
from preprocess.scene import prepare_frames

from .faithfulness import DeletionCurve, deletion_curve
from .movement import MIN_CHANGE, MIN_R2, r2_floor, unmoved_sentence
from .pixels import at_scene_size, scene_size
from .sections import Figure, Section, Table, rgb_png
from .window import ExplainedWindow

SOURCES = ("scene", FUSED)  # the two explained outputs, in the column order of the classifier LIME calls
DELETION_GROUPS = 5
DELETION_ORDERS = 10
SHOWN = 5  # superpixels drawn per direction (towards, against) in each figure
COLOURS = {"towards": np.array([46, 204, 64]), "against": np.array([231, 76, 60])}  # RGB green, red
TINT = 0.45  # share of the colour in a drawn superpixel
FADED_TINT = 0.15  # the same in a faded map (R^2 below movement.r2_floor), outlines as faint


@dataclass
class LimeResult:
    """LIME's superpixel weights for one key frame, for the scene model and the fused prediction.

    frame_index : the key frame (row of the window's frames and scene features)
    segments : (h, w) int superpixel of each pixel, 0 .. n - 1, at the backbone's input size
    weights : {"scene" | "fused": (n,) signed surrogate weight of each superpixel; > 0: showing it raises the
        probability of the explained class}
    intercept : {"scene" | "fused": the surrogate's probability with every superpixel hidden}
    r2 : {"scene" | "fused": the surrogate's weighted R^2 on LIME's samples (how well the linear model fits)}
    probability : {"scene" | "fused": the probability of the explained class for the unchanged frame}
    spread : {"scene" | "fused": largest minus smallest probability over LIME's samples (how much hiding parts of
        this frame can move it at all)}
    curve : fused deletion curve over ``groups``
    groups : superpixels of each deletion part, best ranked (by fused weight) first
    hide_color : (3,) uint8 RGB colour hidden superpixels are filled with (the frame's mean)
    samples : perturbed copies scored
    """

    frame_index: int
    segments: np.ndarray
    weights: dict[str, np.ndarray]
    intercept: dict[str, float]
    r2: dict[str, float]
    probability: dict[str, float]
    spread: dict[str, float]
    curve: DeletionCurve
    groups: list[np.ndarray]
    hide_color: np.ndarray
    samples: int

    def moved(self, source: str) -> bool:
        """Whether hiding superpixels moved ``source``'s probability by at least MIN_CHANGE (else: nothing to map)."""
        return self.spread[source] >= MIN_CHANGE

    @property
    def r2_floor(self) -> float:
        """The R^2 below which a map is drawn faded, for this many superpixels and samples (movement.r2_floor)."""
        return r2_floor(len(self.weights[FUSED]), self.samples)

    def faded(self, source: str) -> bool:
        """Whether ``source``'s map is drawn faded: its surrogate's R^2 is below ``r2_floor``."""
        return self.r2[source] < self.r2_floor


def _lime_image():
    """The ``lime.lime_image`` module, or an InputError saying how to install it."""
    try:
        from lime import lime_image
    except ImportError as error:
        raise InputError(
            "the LIME section needs the lime package: pip install lime==0.2.0.1 (or gvs report --quick skips LIME)"
        ) from error
    return lime_image


def superpixels(image: np.ndarray, segments: int) -> np.ndarray:
    """(h, w) int SLIC superpixels 0 .. n - 1 (consecutive) of an (h, w, 3) uint8 RGB image, about ``segments``."""
    from skimage.segmentation import slic

    labels = slic(image, n_segments=segments, compactness=10, start_label=0)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def classifier(window: ExplainedWindow, frame_index: int, batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """The function LIME calls: (B, h, w, 3) uint8 copies of the key frame -> (B, 2C) probabilities, the scene
    model's C classes then the fused C, with each copy's feature map in row ``frame_index`` of the window.

    The backbone and the models run ``batch`` copies at a time. The ``batch`` copies of the window's scene
    features (about 15 MB each) are made once: only row ``frame_index`` changes from one batch to the next.
    """
    extractor = window.predictor.stream.extractors["scene"]
    width, height = scene_size(window)
    scene = window.tiled(batch)["scene"]

    def classify(images: np.ndarray) -> np.ndarray:
        parts = []
        for begin in range(0, len(images), batch):
            chunk = images[begin : begin + batch]
            scene[: len(chunk), frame_index] = np.asarray(extractor.forward(prepare_frames(chunk, width, height)))
            scored = window.score({"scene": scene[: len(chunk)]}, batch)
            parts.append(np.concatenate([scored[source] for source in SOURCES], axis=1))
        return np.concatenate(parts)

    return classify


def explain(
    image: np.ndarray,
    segments: np.ndarray,
    classify: Callable[[np.ndarray], np.ndarray],
    class_index: int,
    hide_color: np.ndarray,
    samples: int,
    seed: int,
    batch: int,
) -> dict[str, dict]:
    """LIME's image explainer on ``image`` (h, w, 3) with fixed ``segments``, for the scene and fused columns.

    LimeImageExplainer's own steps (``data_labels`` samples and scores the copies once; ``base`` fits one
    surrogate per label), called directly because its ``explain_instance`` keeps the R^2 of the last label only.
    Returns {"weights" | "intercept" | "r2" | "probability" | "spread": {source: value}}, see LimeResult.
    """
    import sklearn.metrics

    explainer = _lime_image().LimeImageExplainer(random_state=seed)
    hidden = np.broadcast_to(hide_color.astype(image.dtype), image.shape).copy()
    with contextlib.redirect_stderr(io.StringIO()):  # lime draws a tqdm progress bar
        data, labels = explainer.data_labels(image, hidden, segments, classify, samples, batch_size=batch)
    distances = sklearn.metrics.pairwise_distances(data, data[:1], metric="cosine").ravel()
    n = int(segments.max()) + 1
    n_classes = labels.shape[1] // len(SOURCES)
    fits = {name: {} for name in ("weights", "intercept", "r2", "probability", "spread")}
    for column, source in enumerate(SOURCES):
        label = column * n_classes + class_index
        intercept, ranked, r2, _ = explainer.base.explain_instance_with_data(
            data, labels, distances, label, n, feature_selection=explainer.feature_selection
        )
        weights = np.zeros(n)
        for superpixel, weight in ranked:
            weights[superpixel] = weight
        fits["weights"][source], fits["intercept"][source], fits["r2"][source] = weights, float(intercept), float(r2)
        fits["probability"][source] = float(labels[0, label])  # LIME's first sample is the unchanged frame
        fits["spread"][source] = float(np.ptp(labels[:, label]))
    return fits


def _hidden_copies(image: np.ndarray, segments: np.ndarray, groups: list[np.ndarray], keep, hide_color) -> np.ndarray:
    """(B, h, w, 3) copies of ``image`` with the superpixels of every group whose (B, n_groups) keep is False
    filled with ``hide_color``."""
    group_of = np.zeros(int(segments.max()) + 1, dtype=int)
    for index, members in enumerate(groups):
        group_of[members] = index
    shown = np.asarray(keep, dtype=bool)[:, group_of[segments]]  # (B, h, w)
    return np.where(shown[..., None], image[None], hide_color.astype(image.dtype)).astype(image.dtype)


def lime_frame(
    window: ExplainedWindow, frame_index: int, samples: int = 200, segments: int = 40, seed: int = 0, batch: int = 16
) -> LimeResult:
    """LIME on key frame ``frame_index``: signed superpixel weights for the scene model and the fused prediction of
    the explained class, from one pass of ``samples`` perturbed copies, and the fused deletion curve.

    At most ``samples`` + 32 backbone passes, ``batch`` at a time. Deterministic in ``seed``.
    """
    image = at_scene_size(window, window.frames[frame_index])
    parts = superpixels(image, segments)
    hide_color = np.round(image.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    classify = classifier(window, frame_index, batch)
    c = window.class_index
    fused_column = SOURCES.index(FUSED) * len(window.class_names)
    fits = explain(image, parts, classify, c, hide_color, samples, seed, batch)
    ranking = np.argsort(-fits["weights"][FUSED], kind="stable")
    groups = np.array_split(ranking, min(DELETION_GROUPS, len(ranking)))

    def fused_probability(keep: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(np.asarray(keep, dtype=bool), axis=0, return_inverse=True)
        scores = classify(_hidden_copies(image, parts, groups, unique, hide_color))[:, fused_column + c]
        return scores[inverse.reshape(-1)]

    order_moved = fits["spread"][FUSED] >= MIN_CHANGE  # else the groups' order is arbitrary
    curve = deletion_curve(fused_probability, np.arange(len(groups)), len(groups), DELETION_ORDERS, seed, order_moved)
    return LimeResult(frame_index, parts, **fits, curve=curve, groups=groups, hide_color=hide_color, samples=samples)


def strongest(weights: np.ndarray, count: int = SHOWN) -> dict[str, np.ndarray]:
    """{"towards": the ``count`` largest positive weights' superpixels, "against": the most negative ones}."""
    order = np.argsort(-weights, kind="stable")
    towards = [i for i in order[:count] if weights[i] > 0]
    against = [i for i in order[::-1][:count] if weights[i] < 0]
    return {"towards": np.array(towards, dtype=int), "against": np.array(against, dtype=int)}


def drawn(frame: np.ndarray, segments: np.ndarray, weights: np.ndarray, faded: bool = False) -> np.ndarray:
    """(h, w, 3) uint8: ``frame`` with the strongest superpixels towards the class tinted and outlined green, those
    against red, each labelled with its number; ``faded``: tint and outlines at FADED_TINT."""
    import cv2
    from skimage.segmentation import find_boundaries

    out = frame.astype(np.float32)
    tint = FADED_TINT if faded else TINT
    for direction, chosen in strongest(weights).items():
        colour = COLOURS[direction]
        inside = np.isin(segments, chosen)
        out[inside] = (1 - tint) * out[inside] + tint * colour
        edge = find_boundaries(np.where(inside, segments, -1), mode="inner") & inside
        out[edge] = colour if not faded else (1 - 2 * tint) * out[edge] + 2 * tint * colour
    out = out.astype(np.uint8)
    for superpixel in np.concatenate(list(strongest(weights).values())):
        rows, columns = np.nonzero(segments == superpixel)
        centre = (int(columns.mean()) - 6, int(rows.mean()) + 5)
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # white on a dark outline
            cv2.putText(out, str(superpixel), centre, cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, thickness, cv2.LINE_AA)
    return out


NAMES = {"scene": "scene model", FUSED: "fused prediction"}


def section(result: LimeResult, window: ExplainedWindow) -> Section:
    """Section "lime": the key frame with the superpixels for and against the class, for the scene model and the
    fused prediction (faded where R^2 is below the floor), and a table of their weights; an output whose probability
    did not move gets a sentence instead of a map and a column."""
    frame = at_scene_size(window, window.display_frames[result.frame_index])
    figures = [
        Figure(
            f"lime-{source}",
            rgb_png(drawn(frame, result.segments, result.weights[source], result.faded(source))),
            f"LIME, {NAMES[source]}: green raises p({window.class_name}), red lowers it (R^2 {result.r2[source]:.2f}"
            + (
                f", below {result.r2_floor:.2f}: faded, the linear model explains little)"
                if result.faded(source)
                else ")"
            ),
        )
        for source in SOURCES
        if result.moved(source)
    ]
    return Section(
        "lime",
        "Regions of the key frame (LIME)",
        _text(result, window),
        figures=figures,
        tables=[_table(result, window)] if figures else [],
        caveat=_caveat(result, window),
        arrays={
            "segments": result.segments,
            "weights_scene": result.weights["scene"],
            "weights_fused": result.weights[FUSED],
            "r2": np.array([result.r2[source] for source in SOURCES]),
            "spread": np.array([result.spread[source] for source in SOURCES]),
        },
    )


def _table(result: LimeResult, window: ExplainedWindow) -> Table:
    """The superpixels drawn in the figures, by the weight of the last output drawn (fused, else scene): number,
    share of the frame and the weight for each output whose probability moved."""
    sources = [source for source in SOURCES if result.moved(source)]
    drawn_ones = {int(i) for source in sources for ids in strongest(result.weights[source]).values() for i in ids}
    area = np.bincount(result.segments.ravel(), minlength=len(result.weights[FUSED])) / result.segments.size
    rows = [
        [str(i), f"{100 * area[i]:.1f} %", *[f"{result.weights[source][i]:+.3g}" for source in sources]]
        for i in sorted(drawn_ones, key=lambda i: -result.weights[sources[-1]][i])
    ]
    return Table(
        ["superpixel", "share of frame", *[f"weight, {NAMES[source]}" for source in sources]],
        rows,
        f"Superpixels drawn in the figures; a weight is the change in p({window.class_name}) the surrogate "
        "predicts when the superpixel is shown rather than hidden",
    )


def _text(result: LimeResult, window: ExplainedWindow) -> str:
    """What LIME did, then for each output either how to read its map (with its fit) or the one sentence saying
    its probability did not move."""
    n, name = len(result.weights[FUSED]), window.class_name
    time_s = window.frame_times[result.frame_index]
    text = (
        f"Key frame {result.frame_index + 1} ({time_s:.1f} s), cut into {n} superpixels. LIME scored "
        f"{result.samples} copies of the window in which random superpixels of this frame were hidden (filled with "
        "the frame's mean colour; the other frames, the people, faces and sound unchanged) and fitted a linear "
        "model of the probability on which superpixels were shown. The fused prediction sees this frame only "
        "through the scene model."
    )
    drawn_sources = [source for source in SOURCES if result.moved(source)]
    if drawn_sources:
        text += (
            f"\n\nGreen superpixels raise p({name}) in that model, red ones lower it (the {SHOWN} strongest each "
            f"way; the numbers match the table). A map is drawn faded when its fit's R^2 is below "
            f"{result.r2_floor:.2f}: the linear model then explains little of how the probability moved ({MIN_R2} at "
            "least, and never below what such a fit of this many superpixels on this many samples reaches on "
            "noise)."
        )
    for source in SOURCES:
        label = f"{NAMES[source]}'s p({name}) from {result.probability[source]:.2f}"
        if result.moved(source):
            text += (
                f"\n\n{NAMES[source].capitalize()}: p = {result.probability[source]:.2f} for the unchanged frame, "
                f"varied by {result.spread[source]:.3g} across LIME's samples, fit R^2 {result.r2[source]:.2f}"
                + (" (faded map)." if result.faded(source) else ".")
            )
        else:
            text += "\n\n" + unmoved_sentence(
                "Hiding superpixels in LIME's samples", f"the {label}", result.spread[source]
            )
    return text


def _caveat(result: LimeResult, window: ExplainedWindow) -> str:
    weights = window.scene_weights
    random_backbone = (
        f" This bundle's ResNet-50 has random weights ({weights}), so the regions say nothing about what the frame "
        "shows."
        if weights.startswith("random")
        else ""
    )
    return (
        "LIME's linear model is local: it describes how the probability moves when superpixels of this frame are "
        "hidden, around this frame only, and R^2 says how well it fits (near 0: the weights explain little). "
        f"Hiding fills regions with a flat colour, an input the backbone never saw in training; with {result.samples} "
        f"samples for {len(result.weights[FUSED])} superpixels the smaller weights are noisy.{random_backbone}"
    )
