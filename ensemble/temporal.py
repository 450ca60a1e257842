"""Two time-aware fusions of the modality models' per-step outputs (one vector per step of the visual time grid,
modalities.sequence): ``X[m]`` of shape (n_clips, n_steps, F) and its real steps ``X[steps_key(m)]`` of shape
(n_clips, n_steps), bool (ensemble.fusions).

- ``attention`` (after the video-emotion app paper): each modality's steps are standardised, projected to a
  common ``width`` and given a learned position embedding; each modality's steps then query the steps of the
  other modalities (multi-head cross-attention with a learned bias per relative time, sequence_layers.
  CrossAttention; padded steps and missing modalities masked), are added back to their own, layer-normalised and
  passed through a small feed-forward block, then mean- and max-pooled over their real steps, concatenated with
  the presence mask and classified. ``attention(X)`` gives the attention weights.
- ``lstm`` (after the weighted modal fusion paper, "mid-level" fusion): at each step, each modality's projected
  features are weighted by a learned modality weight (softmax alpha, ``alpha_``) and concatenated; an LSTM runs
  over the fused steps (steps real in no modality masked) and its last state is classified. The paper's other
  weighting, of the modalities' late outputs by a searched alpha, is the ``weighted`` fusion.

Both follow the contract of the other fusions (ensemble.fusions): presence-aware (a missing modality has no real
step), trained with modality dropout and, as augmentation, with steps dropped at random: each real step is kept
with probability 1 - ``step_dropout`` (at least one), the same steps in every modality so their order holds,
as the app paper samples frames at random positions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Self

import numpy as np

from gvs.core.errors import InputError
from gvs.core.workspace import RunFolder

from .fusions import SEQUENCE, Arrays, Validation, _KerasFusion, presence_matrix, steps_key

WEIGHTS_LAYER = "modality_weights"  # the lstm fusion's learned modality weights (more than one modality)


def sequence_inputs(X: Arrays, present: np.ndarray | None, modalities: list[str]) -> dict[str, np.ndarray]:
    """The Keras inputs of a time-aware fusion: ``<modality>_sequence`` (n_clips, T, F) and ``<modality>_steps``
    (n_clips, T), 1.0 at the real steps of the clips that have the modality.

    Parameters
    ----------
    X : mapping of str to ndarray
        Modality -> its per-step outputs (n_clips, T, F), and ``steps_key(modality)`` -> its real steps
        (n_clips, T), bool.
    present : ndarray of shape (n_clips, n_modalities), bool, or None
        Columns in ``modalities`` order; None: every clip has every modality.
    modalities : list of str

    Returns
    -------
    inputs : dict of str to ndarray, float32
    """
    inputs = {}
    present = presence_matrix(X, present, modalities)
    for index, modality in enumerate(modalities):
        if steps_key(modality) not in X:
            raise InputError(
                f"{modality}: no real steps ({steps_key(modality)!r}) beside its per-step outputs; the time-aware "
                "fusions read sequences and steps (ensemble.fusions.fusion_arrays with reads='sequence')"
            )
        steps = np.asarray(X[steps_key(modality)], dtype=bool) & present[:, index][:, None]
        inputs[f"{modality}_sequence"] = np.asarray(X[modality]).astype(np.float32)
        inputs[f"{modality}_steps"] = steps.astype(np.float32)
    return inputs


def _sequence_batches(inputs: dict, targets: np.ndarray, modalities: list[str], fusion: _SequenceFusion):
    """A keras PyDataset over ``inputs`` and ``targets``, reshuffled each epoch, that drops each present modality
    of a clip with probability ``modality_dropout`` (keeping one) and each real step with probability
    ``step_dropout``, the same steps in every modality (keeping one)."""
    import keras

    step_names = [f"{m}_steps" for m in modalities]
    steps = np.stack([inputs[name] for name in step_names], axis=1) > 0.5  # (n, M, T)
    present = steps.any(axis=2)  # (n, M)

    class StepDropout(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self._draw()

        def _draw(self) -> None:
            rng = np.random.default_rng([fusion.seed, self.epoch])
            self.order = rng.permutation(len(targets))
            kept_modalities = present & (rng.random(present.shape) >= fusion.modality_dropout)
            for row in np.flatnonzero(~kept_modalities.any(axis=1) & present.any(axis=1)):
                kept_modalities[row, rng.choice(np.flatnonzero(present[row]))] = True
            kept = steps & kept_modalities[..., None]
            real = kept.any(axis=1)  # (n, T) steps some kept modality has
            kept_steps = real & (rng.random(real.shape) >= fusion.step_dropout)
            for row in np.flatnonzero(~kept_steps.any(axis=1) & real.any(axis=1)):
                kept_steps[row, rng.choice(np.flatnonzero(real[row]))] = True
            self.steps = (kept & kept_steps[:, None, :]).astype(np.float32)

        def __len__(self) -> int:
            return math.ceil(len(targets) / fusion.batch_size)

        def __getitem__(self, index: int):
            rows = self.order[index * fusion.batch_size : (index + 1) * fusion.batch_size]
            batch = {name: values[rows] for name, values in inputs.items() if name not in step_names}
            for position, name in enumerate(step_names):
                batch[name] = self.steps[rows, position]
            return batch, targets[rows]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._draw()

    return StepDropout()


class _SequenceFusion(_KerasFusion):
    """Shared inputs, standardisation, training and loading of the time-aware fusions; subclasses build the
    model from the projected steps in ``_head``."""

    reads = SEQUENCE

    def __init__(
        self,
        width: int,
        units: int,
        dropout: float,
        step_dropout: float,
        epochs: int,
        patience: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
        verbose: int,
        modality_dropout: float,
    ) -> None:
        super().__init__(
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            verbose=verbose,
            modality_dropout=modality_dropout,
        )
        self.width = width
        self.units = units
        self.dropout = dropout
        self.step_dropout = step_dropout

    def fit(
        self,
        X: Arrays,
        y: np.ndarray,
        present: np.ndarray | None = None,
        validation: Validation = None,
        n_classes: int | None = None,
    ) -> Self:
        """Learn from the train rows (see Fusion.fit).

        Parameters
        ----------
        X : mapping of str to ndarray
            Modality -> its per-step outputs (n_clips, T, F); ``steps_key(modality)`` -> its real steps (n_clips, T).
        y : ndarray of shape (n_clips,), int
        present : ndarray of shape (n_clips, n_modalities), bool, or None
        validation : tuple of (X, y) or (X, y, present), or None
            The select part.
        n_classes : int or None

        Returns
        -------
        self : _SequenceFusion
        """
        import keras

        from . import sequence_layers as sl

        super().fit(X, y, present, n_classes=n_classes)  # classes, modalities and prior (Fusion.fit)
        keras.utils.set_random_seed(self.seed)
        train = sequence_inputs(X, present, self.modalities_)
        inputs, projected, steps, self.scaler_ = [], [], [], {}
        for modality in self.modalities_:
            values, real = train[f"{modality}_sequence"], train[f"{modality}_steps"] > 0.5
            if not real.any():
                raise InputError(f"no training clip has {modality} steps; drop {modality} from the fusion")
            mean, variance = values[real].mean(axis=0), values[real].var(axis=0)
            variance = np.where(variance < 1e-12, 1.0, variance)
            self.scaler_[f"{modality}_mean"], self.scaler_[f"{modality}_variance"] = mean, variance
            sequence = keras.Input(shape=values.shape[1:], name=f"{modality}_sequence")
            step = keras.Input(shape=values.shape[1:2], name=f"{modality}_steps")
            scaled = keras.layers.Normalization(mean=mean, variance=variance, name=f"{modality}_scale")(sequence)
            x = keras.layers.Dense(self.width, name=f"{modality}_project")(scaled)
            projected.append(sl.ZeroPadded(name=f"{modality}_padded")([x, step]))
            inputs += [sequence, step]
            steps.append(step)
        probabilities = self._head(projected, steps)
        self.model_ = keras.Model(inputs, probabilities, name=f"{self.kind}_fusion")
        self._fit_classifier(self.model_, X, y, present, validation)
        return self

    def _head(self, projected: list, steps: list):
        """probabilities (B, n_classes) from each modality's projected steps (B, T, width) and step masks (B, T)."""
        raise NotImplementedError

    def _classify(self, features):
        """Dense(units, ReLU) -> Dropout -> softmax(n_classes) on ``features`` (B, D)."""
        import keras

        x = keras.layers.Dense(self.units, activation="relu", name="fusion_dense")(features)
        x = keras.layers.Dropout(self.dropout, name="fusion_dropout")(x)
        return keras.layers.Dense(len(self.classes_), activation="softmax", name="probabilities")(x)

    def _model_inputs(self, X: Arrays, present: np.ndarray | None) -> dict[str, np.ndarray]:
        return sequence_inputs(X, present, self.modalities_)

    def _batches(self, inputs: dict[str, np.ndarray], targets: np.ndarray):
        return _sequence_batches(inputs, targets, self.modalities_, self)

    @classmethod
    def from_run(cls, folder: RunFolder | str | Path) -> Self:
        from . import sequence_layers  # noqa: F401  (registers the layers the saved model is made of)

        return super().from_run(folder)


class AttentionFusion(_SequenceFusion):
    """Cross-attention over time between the modalities (see the module docstring)."""

    kind = "attention"

    def __init__(
        self,
        width: int = 32,
        heads: int = 2,
        units: int = 32,
        dropout: float = 0.2,
        step_dropout: float = 0.25,
        epochs: int = 200,
        patience: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        seed: int = 0,
        verbose: int = 0,
        modality_dropout: float = 0.2,
    ) -> None:
        super().__init__(
            width=width,
            units=units,
            dropout=dropout,
            step_dropout=step_dropout,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            verbose=verbose,
            modality_dropout=modality_dropout,
        )
        self.heads = heads

    def _head(self, projected: list, steps: list):
        import keras

        from . import sequence_layers as sl

        position = sl.PositionEmbedding(name="position")  # one table: every modality's steps are on one time grid
        placed = [position(x) for x in projected]
        pooled = []
        for index, modality in enumerate(self.modalities_):
            others = [i for i in range(len(placed)) if i != index] or [index]  # one modality: it attends to itself
            keys = _joined([placed[i] for i in others], f"{modality}_keys")
            key_steps = _joined([steps[i] for i in others], f"{modality}_key_steps")
            mask = sl.CrossStepMask(name=f"{modality}_attention_mask")([steps[index], key_steps])
            attention = sl.CrossAttention(
                self.heads, max(1, self.width // self.heads), steps[index].shape[1], name=f"{modality}_attends"
            )
            attended, _ = attention([placed[index], keys, mask])
            x = keras.layers.Add(name=f"{modality}_residual")([placed[index], attended])
            x = keras.layers.LayerNormalization(name=f"{modality}_norm")(x)
            y = keras.layers.Dense(2 * self.width, activation="relu", name=f"{modality}_feed")(x)
            y = keras.layers.Dense(self.width, name=f"{modality}_feed_out")(y)
            x = keras.layers.Add(name=f"{modality}_feed_residual")([x, y])
            x = keras.layers.LayerNormalization(name=f"{modality}_feed_norm")(x)
            pooled.append(sl.MaskedMean(name=f"{modality}_mean")([x, steps[index]]))
            pooled.append(sl.MaskedMax(name=f"{modality}_max")([x, steps[index]]))
        presence = sl.Presence(name="presence")(steps)
        return self._classify(keras.layers.Concatenate(name="fused_hidden")([*pooled, presence]))

    def attention(self, X: Arrays, present: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """{modality: weights (n_clips, T, K)}: how much each of the modality's steps attended to each step of the
        other modalities (keys in ``modalities_`` order, T steps each), averaged over heads; rows of padded steps
        are zeros.

        Parameters
        ----------
        X : mapping of str to ndarray
            Sequences and steps (see ``fit``) of the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None

        Returns
        -------
        weights : dict of str to ndarray of shape (n_clips, T, K)
        """
        import keras

        self._check(X)
        inputs = self._model_inputs(X, present)
        outputs = [self.model_.get_layer(f"{m}_attends").output[1] for m in self.modalities_]  # (B, heads, T, K)
        scores = keras.Model(self.model_.inputs, outputs, name="attention_scores").predict(
            inputs, batch_size=256, verbose=0
        )
        scores = scores if isinstance(scores, list) else [scores]
        weights = {}
        for modality, values in zip(self.modalities_, scores):
            real = inputs[f"{modality}_steps"][:, :, None]
            weights[modality] = np.asarray(values).mean(axis=1) * real
        return weights


class LSTMFusion(_SequenceFusion):
    """Per-step weighted concatenation of the modalities, an LSTM over it (see the module docstring).

    Learned, besides the model: ``alpha_`` (modality -> weight, summing to 1)."""

    kind = "lstm"

    def __init__(
        self,
        width: int = 32,
        units: int = 32,
        dropout: float = 0.2,
        step_dropout: float = 0.25,
        epochs: int = 200,
        patience: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        seed: int = 0,
        verbose: int = 0,
        modality_dropout: float = 0.2,
    ) -> None:
        super().__init__(
            width=width,
            units=units,
            dropout=dropout,
            step_dropout=step_dropout,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            verbose=verbose,
            modality_dropout=modality_dropout,
        )

    def _head(self, projected: list, steps: list):
        import keras

        from . import sequence_layers as sl

        activated = [keras.layers.Activation("relu", name=f"{m}_relu")(x) for m, x in zip(self.modalities_, projected)]
        fused = sl.ModalityWeights(name=WEIGHTS_LAYER)(activated) if len(activated) > 1 else activated[0]
        real = sl.AnyStep(name="fused_steps")(steps)
        last = keras.layers.LSTM(self.units, name="fusion_lstm")(fused, mask=real)
        presence = sl.Presence(name="presence")(steps)
        return self._classify(keras.layers.Concatenate(name="fused_hidden")([last, presence]))

    def fit(
        self,
        X: Arrays,
        y: np.ndarray,
        present: np.ndarray | None = None,
        validation: Validation = None,
        n_classes: int | None = None,
    ) -> Self:
        """Learn from the train rows (see Fusion.fit) and keep the learned modality weights in ``alpha_``.

        Parameters
        ----------
        X : mapping of str to ndarray
            Sequences and steps (see _SequenceFusion.fit).
        y : ndarray of shape (n_clips,), int
        present : ndarray of shape (n_clips, n_modalities), bool, or None
        validation : tuple of (X, y) or (X, y, present), or None
            The select part.
        n_classes : int or None

        Returns
        -------
        self : LSTMFusion
        """
        super().fit(X, y, present, validation, n_classes)
        alpha = np.asarray(self.model_.get_layer(WEIGHTS_LAYER).alpha()) if len(self.modalities_) > 1 else [1.0]
        self.alpha_ = dict(zip(self.modalities_, np.round(alpha, 6).tolist()))
        return self

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "alpha": self.alpha_}


def _joined(tensors: list, name: str):
    """Tensors (B, T, ...) joined along the steps axis (one tensor passes through)."""
    import keras

    return tensors[0] if len(tensors) == 1 else keras.layers.Concatenate(axis=1, name=name)(tensors)
