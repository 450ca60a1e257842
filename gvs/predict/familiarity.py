"""Familiarity: how much a window looks like the clips a bundle was trained on, per modality and fused.

What is described: each modality model's hidden vector (the layer every fusion cuts at, (n, H)), and "fused", the
concatenation of all the bundle's modalities' hidden vectors (each modality's block scaled to unit mean variance),
the fusion's inputs. The audio model L2-normalises each clip before its first layer, so a change of level or sign of
the input (another microphone, another embedding) can vanish from its hidden vector: audio is also described by
statistics of the input taken before that normalisation (:func:`input_statistics`: per dimension the mean and
standard deviation over the clip's real steps, and the log of its mean step norm), read from the cache the model was
trained on (its config.json); audio's familiarity is the lower of the two ("audio_input" in the file; a bundle
exported before it scores audio by the hidden vector alone). At export, each is described on the train part's clips
(RUNS/fusion/outputs/<modality>.npz and, for the input statistics, the cache; no clip data goes into the bundle) by

- a probabilistic PCA (scikit-learn's PCA: a mean, K <= 16 components with their variances and one noise variance,
  i.e. a Gaussian with a low-rank-plus-isotropic covariance), which gives each vector a squared Mahalanobis
  distance d2;
- the d2 of held-out training clips (5-fold cross-fitting over the train part: each clip's distance to the PCA of
  the other folds), kept as a sorted table (at most TABLE_SIZE quantiles), with a gamma curve (a scaled chi-square)
  fitted to them for distances beyond the furthest one.

A vector's familiarity is the share of those training clips further away than it (beyond the furthest, 1/n times
the gamma curve's tail from there on, so it keeps falling): about uniform on [0, 1] for clips like the training ones,
near 0 for a video unlike them. A window's familiarity is the lowest of its scores
(a modality the window has nothing of is not scored; fused only when it has every modality); a video's is the lowest,
over scores, of the median over its windows. Below THRESHOLD the window or video is flagged "unlike the training
data" naming the scores below it. The threshold is chosen on the select part (:func:`choose_threshold`) and stored
in bundle.json; ``gvs predict --ood-threshold`` overrides it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gvs.core.errors import CorruptFileError, GVSError
from gvs.core.io import atomic_write_bytes, sha256_of
from gvs.core.workspace import RunsDir

log = logging.getLogger(__name__)

FAMILIARITY_FILE = "familiarity.npz"  # in the bundle's folder, listed in its manifest
FUSED = "fused"
INPUT = "_input"  # "audio_input": the Description of audio's input statistics (absent from older bundles)
DESCRIBED_INPUTS = ("audio",)  # the modalities whose models normalise their input away (modalities.architectures)
SHARE = 0.01  # the threshold rule's share: the select part's 1st percentile of familiarity
MIN_SELECT = 100  # fewer select clips than this cannot place a 1st percentile: the threshold is SHARE itself
MAX_COMPONENTS = 16
FOLDS = 5
MIN_CLIPS = 8  # a score needs this many train clips to be described
TABLE_SIZE = 1001  # held-out distances kept per score (quantiles when there are more clips)
THRESHOLD_RULE = (
    f"the {SHARE:.0%} quantile of the select part's familiarity; {SHARE} when the select part has fewer than "
    f"{MIN_SELECT} clips"
)
NO_FAMILIARITY = (
    "this bundle carries no familiarity data (exported before familiarity flags, or its RUNS lack the fusion "
    "outputs): nothing says whether a video is unlike the training data; export it again with `gvs export` to get "
    "the flags"
)


def unfamiliar_flag(names: list[str], familiarity: float, threshold: float) -> str:
    """The flag of a window or video whose scores ``names`` (modalities, "fused") are below ``threshold``."""
    return f"unlike the training data ({', '.join(names)}): familiarity {familiarity:.3f} < {threshold:.3f}"


def familiarity_text(familiarity: float, unfamiliar: list[str]) -> str:
    """One sentence on a video's familiarity for people (the serve page, the report)."""
    if unfamiliar:
        return (
            f"Unlike the training data ({', '.join(unfamiliar)}): familiarity {familiarity:.3f}, below the bundle's "
            "threshold. The models never saw videos like this one, so the verdict says little about it."
        )
    return (
        f"Like the training data: familiarity {familiarity:.2f} (the share of training clips further from the "
        "training data than this video)."
    )


def input_statistics(x: np.ndarray) -> np.ndarray:
    """(n, 2 D + 1) statistics of model inputs ``x`` (n, steps, D) over each clip's real steps (padded steps are all
    zeros): per dimension the mean and the standard deviation, and the log of the mean step norm; zeros for a clip
    without real steps."""
    x = np.asarray(x, np.float64).reshape(len(x), x.shape[1], -1)
    norms = np.sqrt(np.sum(x * x, axis=2))  # (n, steps)
    real = norms > 0
    count = np.maximum(real.sum(axis=1, keepdims=True), 1)
    mean = np.sum(x * real[..., None], axis=1) / count
    spread = np.sqrt(np.sum(((x - mean[:, None]) * real[..., None]) ** 2, axis=1) / count)
    level = np.log(np.sum(norms, axis=1, keepdims=True) / count + 1e-6) * real.any(axis=1, keepdims=True)
    return np.concatenate([mean, spread, level], axis=1)


@dataclass
class Description:
    """One score's description of the training vectors: a probabilistic PCA and the held-out d2.

    mean, scale : (D,) the vectors are centred by ``mean`` and divided by ``scale`` before the PCA
    components : (K, D) principal axes; variances (K,) their variances; noise : the variance of every other axis
    table : (n,) the held-out training clips' squared distances, sorted
    shape, spread : the gamma curve fitted to ``table`` (shape and scale), for distances beyond its last
    """

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    noise: float
    table: np.ndarray = field(default_factory=lambda: np.ones(1))
    shape: float = 1.0
    spread: float = 1.0

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances (n,) of ``x`` (n, D) under the PCA's Gaussian: mean, covariance
        V diag(variances) V' + noise (I - V V')."""
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        projected = z @ self.components.T
        shrink = 1.0 - self.noise / self.variances
        return np.maximum((np.sum(z * z, axis=1) - projected**2 @ shrink) / self.noise, 0.0)

    def familiarity(self, x: np.ndarray) -> np.ndarray:
        """(n,) in [0, 1]: the share of held-out training clips further away than each row of ``x`` (beyond the
        furthest: 1/n times the gamma tail from it)."""
        from scipy.stats import gamma

        d, n, furthest = self.distances(x), len(self.table), float(self.table[-1])
        share = (n - np.searchsorted(self.table, d, side="right")) / n
        tail = np.exp(
            gamma.logsf(d, self.shape, scale=self.spread) - gamma.logsf(furthest, self.shape, scale=self.spread)
        )
        return np.where(d > furthest, np.minimum(tail, 1.0) / n, share)


def _pca(x: np.ndarray, scale: np.ndarray, components: int) -> Description:
    """The probabilistic PCA of ``x`` (n, D) scaled by ``scale``, with ``components`` axes (gamma not yet fitted)."""
    from sklearn.decomposition import PCA

    mean = x.mean(axis=0)
    pca = PCA(n_components=components, svd_solver="full").fit((x - mean) / scale)
    total = float(np.mean(np.var((x - mean) / scale, axis=0))) or 1.0
    noise = max(float(pca.noise_variance_), 1e-3 * total)  # no axis is trusted to have no variance at all
    variances = np.maximum(pca.explained_variance_, noise)
    return Description(mean, scale, pca.components_, variances, noise)


def describe(x: np.ndarray, scale: np.ndarray | None = None, seed: int = 0) -> Description:
    """The Description of training vectors ``x`` (n, D), n >= MIN_CLIPS: the PCA of all of them, and the gamma
    curve of the distances of each fold's clips to the PCA of the other folds."""
    from scipy.stats import gamma
    from sklearn.model_selection import KFold

    x = np.asarray(x, np.float64)
    scale = np.ones(x.shape[1]) if scale is None else np.asarray(scale, np.float64)
    folds = min(FOLDS, len(x))
    fitted_on = len(x) - -(-len(x) // folds)  # the smallest fold's training size
    components = max(1, min(MAX_COMPONENTS, fitted_on - 2, x.shape[1] - 1))
    held_out = np.empty(len(x))
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        held_out[test] = _pca(x[train], scale, components).distances(x[test])
    description = _pca(x, scale, components)
    held_out = np.sort(held_out)
    if len(held_out) > TABLE_SIZE:
        held_out = np.quantile(held_out, np.linspace(0.0, 1.0, TABLE_SIZE))
    shape, _, spread = gamma.fit(np.maximum(held_out, 1e-9), floc=0)
    description.table, description.shape, description.spread = held_out, float(shape), float(spread)
    return description


def choose_threshold(familiarity: np.ndarray) -> float:
    """The threshold (THRESHOLD_RULE) from the select part's clips' familiarity (n,)."""
    familiarity = np.asarray(familiarity, np.float64)
    if len(familiarity) < MIN_SELECT:
        return SHARE
    return float(np.quantile(familiarity, SHARE))


@dataclass
class Familiarity:
    """A bundle's familiarity: a Description per score (its modalities, and "fused" for two or more), the
    threshold, and the fused input's block scales.

    modalities : the bundle's modalities in its order (the fused vector concatenates their hidden vectors so)
    """

    modalities: list[str]
    descriptions: dict[str, Description]
    threshold: float

    def scores(
        self, hidden: dict[str, np.ndarray], presence: np.ndarray, inputs: dict[str, np.ndarray] | None = None
    ) -> list[dict[str, float]]:
        """Each window's {score name: familiarity} from ``hidden`` {modality: (B, H)} and ``presence``
        (B, n_modalities) bool in the bundle's order: a modality only where present, fused only where all are.
        ``inputs`` {modality: (B, steps, ...)}: the models' inputs; a modality whose input is described (audio) scores
        the lower of its hidden vector's and its input statistics' familiarity (its hidden vector's alone without
        ``inputs`` or in a bundle exported before input statistics)."""
        inputs = inputs or {}
        statistics = {
            m: input_statistics(inputs[m]) for m in self.modalities if m in inputs and m + INPUT in self.descriptions
        }
        return self.scores_of(hidden, presence, statistics)

    def scores_of(
        self, hidden: dict[str, np.ndarray], presence: np.ndarray, statistics: dict[str, np.ndarray]
    ) -> list[dict[str, float]]:
        """:meth:`scores` from ``statistics`` {modality: (B, 2 D + 1)}, the :func:`input_statistics` of the inputs."""
        presence = np.asarray(presence, bool)
        hidden = {m: np.asarray(h).reshape(len(h), -1) for m, h in hidden.items()}
        rows: list[dict[str, float]] = [{} for _ in range(len(presence))]
        for index, modality in enumerate(self.modalities):
            if modality in self.descriptions:
                values = self.descriptions[modality].familiarity(hidden[modality])
                if modality in statistics and modality + INPUT in self.descriptions:
                    values = np.minimum(values, self.descriptions[modality + INPUT].familiarity(statistics[modality]))
                for row, value, present in zip(rows, values, presence[:, index]):
                    if present:
                        row[modality] = float(value)
        if FUSED in self.descriptions:
            values = self.descriptions[FUSED].familiarity(np.concatenate([hidden[m] for m in self.modalities], 1))
            for row, value, present in zip(rows, values, presence.all(axis=1)):
                if present:
                    row[FUSED] = float(value)
        return rows

    def unfamiliar(self, scores: dict[str, float]) -> list[str]:
        """The names of ``scores`` below the threshold."""
        return [name for name, value in scores.items() if value < self.threshold]

    def with_threshold(self, threshold: float | None) -> Familiarity:
        """The same descriptions with another threshold (None keeps this one)."""
        return self if threshold is None else Familiarity(self.modalities, self.descriptions, float(threshold))

    def save(self, path: Path) -> None:
        """The descriptions as one .npz of plain arrays (loaded without pickle)."""
        arrays = {}
        for name, d in self.descriptions.items():
            for key in ("mean", "scale", "components", "variances", "noise", "table", "shape", "spread"):
                arrays[f"{name}.{key}"] = np.asarray(getattr(d, key), np.float64)
        atomic_write_bytes(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: Path, modalities: list[str], threshold: float) -> Familiarity:
        """What :meth:`save` wrote; CorruptFileError when it is not such a file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                names = sorted({key.split(".")[0] for key in data.files})
                descriptions = {
                    name: Description(
                        data[f"{name}.mean"],
                        data[f"{name}.scale"],
                        data[f"{name}.components"],
                        data[f"{name}.variances"],
                        float(data[f"{name}.noise"]),
                        data[f"{name}.table"],
                        float(data[f"{name}.shape"]),
                        float(data[f"{name}.spread"]),
                    )
                    for name in names
                }
        except (OSError, ValueError, KeyError) as error:
            raise CorruptFileError(f"{path} is not a familiarity file ({error}); export the bundle again") from error
        return cls(list(modalities), descriptions, float(threshold))


def video_scores(windows: list[dict[str, float]]) -> dict[str, float]:
    """A video's {score name: median over the windows that have it} from its windows' scores."""
    names = sorted({name for scores in windows for name in scores})
    return {name: float(np.median([s[name] for s in windows if name in s])) for name in names}


def lowest(scores: dict[str, float]) -> float | None:
    """The familiarity of a window or video: the lowest of its scores (None when it has none)."""
    return min(scores.values()) if scores else None


def fit_familiarity(runs: str | Path, modalities: list[str]) -> tuple[Familiarity | None, dict]:
    """The familiarity of the models of ``modalities`` in RUNS, from their cached fusion outputs and the partition,
    and what bundle.json records of it; (None, {"note": why}) when RUNS lacks what it needs."""
    from ensemble.outputs import read_partition

    runs = RunsDir(runs)
    hidden = {}
    for modality in modalities:
        loaded = _training_hidden(runs, modality)
        if loaded is None:
            return None, {"note": f"no up-to-date {runs.outputs_path(modality)}: fit the fusion again (`gvs fuse`)"}
        hidden[modality] = loaded
    part = read_partition(runs.root) if runs.partition_path.is_file() else {}
    train = {m: np.array([part.get(k) == "train" for k in h]) for m, h in hidden.items()}
    if any(rows.sum() < MIN_CLIPS for rows in train.values()):
        return None, {"note": f"fewer than {MIN_CLIPS} train clips with outputs of every modality"}
    descriptions = {m: describe(np.stack(list(h.values()))[train[m]]) for m, h in hidden.items()}
    statistics = {}  # {modality: {clip key: input statistics}} of the described inputs
    for modality in (m for m in modalities if m in DESCRIBED_INPUTS):
        loaded = _training_statistics(runs, modality, part)
        keys = [k for k in hidden[modality] if part.get(k) == "train" and k in (loaded or {})]
        if loaded is not None and len(keys) >= MIN_CLIPS:
            statistics[modality] = loaded
            descriptions[modality + INPUT] = describe(np.stack([loaded[k] for k in keys]))
    common = [k for k in hidden[modalities[0]] if all(k in hidden[m] for m in modalities)]
    if len(modalities) > 1:
        fused_train = [k for k in common if part.get(k) == "train"]
        if len(fused_train) >= MIN_CLIPS:
            blocks = [np.stack([hidden[m][k] for k in fused_train]) for m in modalities]
            scale = np.concatenate([np.full(b.shape[1], np.sqrt(np.mean(np.var(b, 0))) or 1.0) for b in blocks])
            descriptions[FUSED] = describe(np.concatenate(blocks, axis=1), scale)
    familiarity = Familiarity(list(modalities), descriptions, SHARE)
    select = [k for k in hidden[modalities[0]] if part.get(k) == "select"]
    select_scores = [
        lowest(
            familiarity.scores_of(
                {m: hidden[m][k][None] for m in modalities},
                np.ones((1, len(modalities)), bool),
                {m: values[k][None] for m, values in statistics.items() if k in values},
            )[0]
        )
        for k in select
        if k in common
    ]
    familiarity.threshold = choose_threshold(np.array(select_scores))
    record = {
        "file": FAMILIARITY_FILE,
        "threshold": familiarity.threshold,
        "threshold_rule": THRESHOLD_RULE,
        "scores": [name for name in descriptions if not name.endswith(INPUT)],
        "inputs": [name.removesuffix(INPUT) for name in descriptions if name.endswith(INPUT)],
        "components": {name: int(len(d.variances)) for name, d in descriptions.items()},
        "train_clips": {m: int(rows.sum()) for m, rows in train.items()},
        "select_clips": len(select_scores),
    }
    return familiarity, record


def _training_hidden(runs: RunsDir, modality: str) -> dict[str, np.ndarray] | None:
    """{clip key: hidden vector (H,)} of ``modality`` from RUNS/fusion/outputs, None when absent or made by another
    model file than RUNS' (its stamp starts with the model's sha256)."""
    path, model = runs.outputs_path(modality), runs.modality(modality).model
    if not path.is_file() or not model.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if not str(data["stamp"]).startswith(sha256_of(model)[:16]):
                return None
            return dict(
                zip(data["keys"].tolist(), np.asarray(data["hidden"], np.float64).reshape(len(data["keys"]), -1))
            )
    except (OSError, ValueError, KeyError) as error:
        log.warning("cannot read %s (%s): no familiarity data", path, error)
        return None


def _training_statistics(runs: RunsDir, modality: str, part: dict[str, str]) -> dict[str, np.ndarray] | None:
    """{clip key: :func:`input_statistics`} of the train and select clips of ``modality`` in the cache its model was
    trained on (RUNS/<modality>/config.json), None when that cache or those features are gone."""
    from modalities.data import open_features

    config = runs.modality(modality).config
    try:
        settings = json.loads(config.read_text())
        features = open_features(settings["cache"], modality, settings.get("fingerprint"))
    except (OSError, ValueError, KeyError, GVSError) as error:
        log.warning("no %s input statistics for familiarity (%s)", modality, error)
        return None
    rows = [i for i, key in enumerate(features.keys) if part.get(key) in ("train", "select")]
    statistics = {}
    for start in range(0, len(rows), 64):  # a batch at a time: a big cache never sits in memory at once
        batch = rows[start : start + 64]
        for index, values in zip(batch, input_statistics(features.load(batch))):
            statistics[features.keys[index]] = values
    return statistics
