"""Seven fusions of the frozen modality models, each a scikit-learn classifier on arrays: hard, soft, weighted, fc
and vae here, over one vector per clip and modality; attention and lstm (ensemble.temporal), over per-step outputs.

``X`` maps a modality name to the array of that modality the fusion reads (its class attribute ``reads``), one row
per clip, rows aligned across modalities:

- ``reads == "probabilities"`` (hard, soft, weighted): ``X[m]`` of shape (n_clips, n_classes), the modality model's
  class probabilities;
- ``reads == "hidden"`` (fc, vae): ``X[m]`` of shape (n_clips, hidden_size), its hidden vectors;
- ``reads == "sequence"`` (attention, lstm): ``X[m]`` of shape (n_clips, n_steps, F), its per-step outputs on the
  visual time grid, and ``X[steps_key(m)]`` (``"<m>_steps"``) of shape (n_clips, n_steps), bool, its real steps.

``present`` (keyword, optional) is a bool array of shape (n_clips, n_modalities), columns in the fusion's modality
order (the sorted modality names, ``modalities_`` once fitted): False where a clip lacks the modality (its row of
``X`` is then ignored); None means every clip has every modality. ``y`` holds class indices (``classes_`` is
``arange(n_classes)``; n_classes is the width of the probabilities, or ``n_classes`` given to ``fit``, or
``max(y) + 1``). ``fit(X, y, present=None, validation=None)`` takes ``validation = (X, y)`` or ``(X, y, present)``
of the select part: fc, vae, attention and lstm stop early on it (best epoch kept), weighted searches its weights on
it; hard and soft learn nothing. :func:`fusion_arrays` makes ``X`` from per-modality arrays by kind, and
``ensemble.outputs.fusion_inputs`` makes ``(X, present)`` from the cached records
(:class:`~ensemble.outputs.ModalityOutputs`).

Every fusion predicts every clip that has at least one modality: the votes count the modalities present, fc and
vae take a presence mask (a missing hidden vector is zeros plus a 0 mask bit) and are trained with modality
dropout so they accept any subset. A clip with no modality at all gets ``prior_``, the train part's class shares.

Hyperparameters are ``__init__`` arguments (``get_params``, ``set_params``, ``clone`` work as in scikit-learn),
learned state ends in ``_``. ``save(folder)`` writes a fusion's RunFolder; ``Class.from_run(folder)``, or
:func:`load_fusion` for any kind, reads it back.

fc and vae are Keras functional models with one input per modality named ``<modality>_hidden``; their
standardisation (mean and variance fitted on the training rows only) is a ``Normalization`` layer inside the
model named ``<modality>_scale``, so the saved model takes the raw hidden vectors.
"""

from __future__ import annotations

import difflib
import functools
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import log_loss
from sklearn.utils.validation import check_is_fitted

from gvs.core.errors import InputError, RunError
from gvs.core.io import atomic_write_bytes, atomic_write_json, read_json
from gvs.core.vocabulary import MODALITIES
from gvs.core.workspace import RunFolder, load_keras_model

PRESENCE_INPUT = "presence"  # fc/vae input: (n_clips, n_modalities) 1 where the clip has the modality
PROBABILITIES, HIDDEN, SEQUENCE = "probabilities", "hidden", "sequence"  # what a fusion reads (Fusion.reads)
READS: tuple[str, ...] = (PROBABILITIES, HIDDEN, SEQUENCE)
STEPS = "steps"  # the real steps of a sequence, beside it (keys ``<modality>_steps``)
Arrays = Mapping[str, np.ndarray]
Validation = tuple[Arrays, np.ndarray] | tuple[Arrays, np.ndarray, np.ndarray | None] | None


def steps_key(modality: str) -> str:
    """The key of ``X`` holding the real steps of ``modality``'s sequence (time-aware fusions).

    Parameters
    ----------
    modality : str

    Returns
    -------
    key : str
        ``"<modality>_steps"``.
    """
    return f"{modality}_{STEPS}"


def modalities_of(X: Arrays) -> list[str]:
    """The modalities ``X`` holds arrays of, sorted (the fusion's modality order; steps keys left out).

    Parameters
    ----------
    X : mapping of str to ndarray

    Returns
    -------
    modalities : list of str
    """
    return sorted(key for key in X if not key.endswith(f"_{STEPS}"))


def fusion_arrays(reads: str, arrays: Mapping[str, Mapping[str, np.ndarray | None]]) -> dict[str, np.ndarray]:
    """``X`` of a fusion that reads ``reads``, from each modality's arrays by kind.

    Parameters
    ----------
    reads : str
        One of READS (a fusion's ``reads``).
    arrays : mapping of str to mapping of str to ndarray
        Modality -> {"probabilities": (n, C), "hidden": (n, d), "sequence": (n, T, F) or None, "steps": (n, T)
        bool or None}; only the kinds ``reads`` needs are read.

    Returns
    -------
    X : dict of str to ndarray
        Modality -> its ``reads`` array; with ``reads == "sequence"`` also ``steps_key(modality)`` -> its steps.
    """
    if reads not in READS:
        raise InputError(f"unknown fusion input {reads!r}; choose from {', '.join(READS)}")
    X = {}
    for modality, kinds in arrays.items():
        if kinds[reads] is None:
            raise InputError(
                f"{modality}: no per-step outputs; the time-aware fusions read per-step sequences, which "
                "ensemble.outputs.compute_outputs (and gvs predict) compute; fit them through `gvs fuse`"
            )
        X[modality] = kinds[reads]
        if reads == SEQUENCE:
            X[steps_key(modality)] = np.asarray(kinds[STEPS], dtype=bool)
    return X


def presence_matrix(X: Arrays, present: np.ndarray | None, modalities: list[str]) -> np.ndarray:
    """``present`` checked, or all True when None.

    Parameters
    ----------
    X : mapping of str to ndarray
        The fusion's input (for the number of clips).
    present : ndarray of shape (n_clips, n_modalities), bool, or None
    modalities : list of str
        The column order.

    Returns
    -------
    present : ndarray of shape (n_clips, n_modalities), bool
    """
    n = len(X[modalities[0]])
    if present is None:
        return np.ones((n, len(modalities)), dtype=bool)
    present = np.asarray(present, dtype=bool)
    if present.shape != (n, len(modalities)):
        raise InputError(
            f"present has shape {present.shape}; give one row per clip ({n}) and one column per modality "
            f"({'+'.join(modalities)}, in that order)"
        )
    return present


def _unpack(validation: Validation) -> tuple[Arrays, np.ndarray, np.ndarray | None] | None:
    """``validation`` as (X, y, present), or None when it has no clip."""
    if validation is None or len(validation[1]) == 0:
        return None
    X, y, *rest = validation
    return X, np.asarray(y, dtype=int), rest[0] if rest else None


def as_run_folder(folder: RunFolder | str | Path) -> RunFolder:
    """``folder`` as a RunFolder.

    Parameters
    ----------
    folder : RunFolder, str or Path

    Returns
    -------
    run : RunFolder
    """
    return folder if isinstance(folder, RunFolder) else RunFolder(folder)


class Fusion(ClassifierMixin, BaseEstimator):
    """Base class: subclasses set ``kind`` and ``reads`` and implement ``predict_proba``; those that learn extend
    ``fit`` and ``_fitted_state`` (their JSON-able learned attributes, written to and read back from the fusion
    record)."""

    kind = ""
    reads = PROBABILITIES  # the array of each modality ``X`` holds (see the module docstring)
    learns_from_outputs = False  # True: trained on the train part's modality outputs (--oof replaces them)

    @property
    def reads_sequences(self) -> bool:
        """True for the time-aware fusions, which read the per-step outputs, not the hidden vectors."""
        return self.reads == SEQUENCE

    def fit(
        self,
        X: Arrays,
        y: np.ndarray,
        present: np.ndarray | None = None,
        validation: Validation = None,
        n_classes: int | None = None,
    ) -> Self:
        """Learn from the train rows.

        Parameters
        ----------
        X : mapping of str to ndarray
            Modality -> the array the fusion reads (``reads``), n_clips rows each.
        y : ndarray of shape (n_clips,), int
            Class indices.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in sorted modality order; None: every clip has every modality.
        validation : tuple of (X, y) or (X, y, present), or None
            The select part.
        n_classes : int or None
            The number of classes; None: the probabilities' width, else ``max(y) + 1``.

        Returns
        -------
        self : Fusion
        """
        self.modalities_ = modalities_of(X)
        y = np.asarray(y, dtype=int)
        if n_classes is None:
            first = np.asarray(X[self.modalities_[0]])
            n_classes = first.shape[1] if self.reads == PROBABILITIES else int(y.max()) + 1
        self.classes_ = np.arange(n_classes)
        counts = np.bincount(y, minlength=len(self.classes_)) + 1.0  # Laplace: no zeros
        self.prior_ = (counts / counts.sum()).tolist()
        return self

    def predict_proba(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities of each clip.

        Parameters
        ----------
        X : mapping of str to ndarray
            Modality -> the array the fusion reads, n_clips rows each; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        probabilities : ndarray of shape (n_clips, n_classes)
        """
        raise NotImplementedError

    def predict(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """The most probable class of each clip.

        Parameters
        ----------
        X : mapping of str to ndarray
            Modality -> the array the fusion reads, n_clips rows each; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        classes : ndarray of shape (n_clips,), int
        """
        return self.predict_proba(X, present).argmax(axis=1)

    def _fitted_state(self) -> dict:
        return {}

    def _presence(self, X: Arrays, present: np.ndarray | None) -> np.ndarray:
        """presence : ndarray of shape (n_modalities, n_clips), bool"""
        self._check(X)
        return presence_matrix(X, present, self.modalities_).T

    def _with_prior(self, probabilities: np.ndarray, presence: np.ndarray) -> np.ndarray:
        """``probabilities`` (n_clips, n_classes) with ``prior_`` in the rows no modality is present in."""
        none = ~presence.any(axis=0)
        probabilities = np.array(probabilities, dtype=np.float64)
        probabilities[none] = self.prior_
        return probabilities

    def _check(self, X: Arrays) -> None:
        check_is_fitted(self)
        if modalities_of(X) != self.modalities_:
            raise InputError(
                f"{self.kind} fusion was fitted on {'+'.join(self.modalities_)}, got arrays of "
                f"{'+'.join(modalities_of(X))}; pass the arrays of the same modalities"
            )

    def _stacked(self, X: Arrays) -> np.ndarray:
        """probabilities : ndarray of shape (n_modalities, n_clips, n_classes)"""
        self._check(X)
        return np.stack([np.asarray(X[m]) for m in self.modalities_])

    def save(self, folder: RunFolder | str | Path) -> RunFolder:
        """Write the fusion record (kind, modalities, hyperparameters, learned state) into ``folder``.

        Parameters
        ----------
        folder : RunFolder, str or Path

        Returns
        -------
        run : RunFolder
        """
        check_is_fitted(self)
        run = as_run_folder(folder)
        atomic_write_json(
            run.fusion,
            {
                "kind": self.kind,
                "modalities": self.modalities_,
                "params": self.get_params(),
                "fitted": {"prior": self.prior_, **self._fitted_state()},
            },
        )
        return run

    @classmethod
    def from_run(cls, folder: RunFolder | str | Path) -> Self:
        """The fusion saved in ``folder`` by ``save``, ready to predict.

        Parameters
        ----------
        folder : RunFolder, str or Path
            A run folder written by ``save`` for this kind.

        Returns
        -------
        fusion : Fusion
        """
        run = as_run_folder(folder)
        record = _read_record(run)
        if record["kind"] != cls.kind:
            raise RunError(
                f"{run.fusion} holds a {record['kind']} fusion, not {cls.kind}; read it with "
                "ensemble.fusions.load_fusion"
            )
        fusion = cls(**record["params"])
        fusion.modalities_ = record["modalities"]
        fusion.classes_ = np.arange(len(record["fitted"]["prior"]))
        for name, value in record["fitted"].items():
            setattr(fusion, f"{name}_", value)
        return fusion


class HardVote(Fusion):
    """Majority vote of the modalities' predicted classes.

    Only the modalities a clip has vote. Tie rule: among the classes with the most votes, the one with the
    highest summed probability wins. ``predict_proba`` returns the vote shares; ``predict`` applies the tie rule.
    """

    kind = "hard"

    def predict_proba(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """Each class's share of the votes of the modalities a clip has (the prior where it has none).

        Parameters
        ----------
        X : mapping of str to ndarray of shape (n_clips, n_classes)
            Modality -> its probabilities; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        shares : ndarray of shape (n_clips, n_classes)
        """
        probabilities, presence = self._stacked(X), self._presence(X, present)
        votes = (np.eye(len(self.classes_))[probabilities.argmax(axis=2)] * presence[..., None]).sum(axis=0)
        shares = votes / np.maximum(presence.sum(axis=0), 1)[:, None]
        return self._with_prior(shares, presence)

    def predict(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """The class with the most votes; ties go to the highest summed probability.

        Parameters
        ----------
        X : mapping of str to ndarray of shape (n_clips, n_classes)
            Modality -> its probabilities; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        classes : ndarray of shape (n_clips,), int
        """
        shares = self.predict_proba(X, present)
        presence = self._presence(X, present)
        summed = (self._stacked(X) * presence[..., None]).sum(axis=0) + shares  # prior rows: the prior
        tied = shares == shares.max(axis=1, keepdims=True)
        return np.where(tied, summed, -np.inf).argmax(axis=1)


class SoftVote(Fusion):
    """Mean of the class probabilities of the modalities each clip has."""

    kind = "soft"

    def predict_proba(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """The mean of the probabilities of the modalities a clip has (the prior where it has none).

        Parameters
        ----------
        X : mapping of str to ndarray of shape (n_clips, n_classes)
            Modality -> its probabilities; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        probabilities : ndarray of shape (n_clips, n_classes)
        """
        presence = self._presence(X, present)
        weights = presence / np.maximum(presence.sum(axis=0), 1)
        return self._with_prior(np.einsum("mn,mnc->nc", weights, self._stacked(X)), presence)


class WeightedVote(Fusion):
    """Weighted mean of the modalities' probabilities.

    ``weights`` (modality -> weight) are used as given; without them the weights are searched on a grid over
    the simplex (step ``grid_step``) for the highest accuracy on the validation rows (the training rows when no
    validation is given), ties broken by the lower log-loss. ``weights_`` are normalised to sum to 1;
    ``weights_from_`` says where they come from (given, select or train). A clip lacking some modalities uses the
    weights of those it has, renormalised (equal weights when all of those weigh 0).
    """

    kind = "weighted"

    def __init__(self, weights: Mapping[str, float] | None = None, grid_step: float = 0.1) -> None:
        self.weights = weights
        self.grid_step = grid_step

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
        X : mapping of str to ndarray of shape (n_clips, n_classes)
            Modality -> its probabilities.
        y : ndarray of shape (n_clips,), int
        present : ndarray of shape (n_clips, n_modalities), bool, or None
        validation : tuple of (X, y) or (X, y, present), or None
            The select part.
        n_classes : int or None

        Returns
        -------
        self : WeightedVote
        """
        super().fit(X, y, present, n_classes=n_classes)
        if self.weights:
            raw = self._given_weights()
            self.weights_from_ = "given"
        else:
            select = _unpack(validation)
            fit_X, fit_y, fit_present = select if select is not None else (X, y, present)
            raw = self._search(fit_X, np.asarray(fit_y, dtype=int), fit_present)
            self.weights_from_ = "train" if select is None else "select"
        self.weights_ = dict(zip(self.modalities_, (raw / raw.sum()).tolist()))
        return self

    def _given_weights(self) -> np.ndarray:
        unknown, lacking = set(self.weights) - set(MODALITIES), set(self.modalities_) - set(self.weights)
        if unknown or lacking:
            raise InputError(
                f"weights {dict(self.weights)}: unknown modalities {sorted(unknown)}, no weight for "
                f"{sorted(lacking)}; give one weight per fused modality"
            )
        raw = np.array([float(self.weights[m]) for m in self.modalities_])  # weights of others ignored
        if raw.sum() <= 0 or (raw < 0).any():
            raise InputError(f"weights must be non-negative with a positive sum, got {dict(self.weights)}")
        return raw

    def _search(self, X: Arrays, y: np.ndarray, present: np.ndarray | None) -> np.ndarray:
        """weights : ndarray of shape (n_modalities,), the best grid point on ``X``'s clips."""
        probabilities, presence = self._stacked(X), self._presence(X, present)
        probabilities = probabilities / probabilities.sum(axis=2, keepdims=True, dtype=np.float64)
        steps = int(round(1 / self.grid_step))
        best, best_score = np.ones(len(probabilities)), (np.inf, np.inf)
        for combo in itertools.product(range(steps + 1), repeat=len(probabilities)):
            if sum(combo) != steps:
                continue
            fused = self._weighted(np.array(combo, dtype=float) / steps, probabilities, presence)
            fused = np.clip(fused, 1e-12, None)
            score = (-float((fused.argmax(axis=1) == y).mean()), log_loss(y, fused, labels=self.classes_))
            if score < best_score:
                best, best_score = np.array(combo, dtype=float) / steps, score
        return best

    def _weighted(self, weights: np.ndarray, probabilities: np.ndarray, presence: np.ndarray) -> np.ndarray:
        """Per-clip weighted mean (n_clips, n_classes) of ``probabilities`` (M, N, C) over the present modalities."""
        per_clip = weights[:, None] * presence
        silent = (per_clip.sum(axis=0) == 0) & presence.any(axis=0)  # only zero-weight modalities present
        per_clip[:, silent] = presence[:, silent]
        per_clip = per_clip / np.maximum(per_clip.sum(axis=0), 1e-12)
        return self._with_prior(np.einsum("mn,mnc->nc", per_clip, probabilities), presence)

    def predict_proba(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """The weighted mean of the probabilities of the modalities a clip has.

        Parameters
        ----------
        X : mapping of str to ndarray of shape (n_clips, n_classes)
            Modality -> its probabilities; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        probabilities : ndarray of shape (n_clips, n_classes)
        """
        probabilities, presence = self._stacked(X), self._presence(X, present)
        return self._weighted(np.array([self.weights_[m] for m in self.modalities_]), probabilities, presence)

    def _fitted_state(self) -> dict:
        return {"weights": self.weights_, "weights_from": self.weights_from_}


def hidden_inputs(X: Arrays, present: np.ndarray | None, modalities: list[str]) -> dict[str, np.ndarray]:
    """The Keras input dict of a fused model: ``{"<modality>_hidden": ndarray of shape (n_clips, hidden)}``, then
    ``{"presence": ndarray of shape (n_clips, n_modalities)}``, 1.0 where the clip has the modality.

    Parameters
    ----------
    X : mapping of str to ndarray of shape (n_clips, hidden)
        Modality -> its hidden vectors.
    present : ndarray of shape (n_clips, n_modalities), bool, or None
        Columns in ``modalities`` order; None: every clip has every modality.
    modalities : list of str

    Returns
    -------
    inputs : dict of str to ndarray, float32
    """
    inputs = {f"{m}_hidden": np.asarray(X[m]).astype(np.float32) for m in modalities}
    return inputs | {PRESENCE_INPUT: presence_matrix(X, present, modalities).astype(np.float32)}


def _scaled_inputs(X: Arrays, present: np.ndarray, modalities: list[str]):
    """One Keras input per modality, standardised by a Normalization layer fitted on the training rows that have
    it, times the modality's presence bit (a missing modality is zeros), and the presence input.

    Returns (inputs, gated hidden tensors, presence tensor, scaler)."""
    import keras

    inputs, gated, scaler = [], [], {}
    presence = keras.Input(shape=(len(modalities),), name=PRESENCE_INPUT)
    for index, modality in enumerate(modalities):
        hidden = np.asarray(X[modality])[present[:, index]].astype(np.float64)
        if not len(hidden):
            raise InputError(f"no training clip has {modality} outputs; drop {modality} from the fusion")
        mean, variance = hidden.mean(axis=0), hidden.var(axis=0)
        variance = np.where(variance < 1e-12, 1.0, variance)  # constant units pass through centred
        scaler[f"{modality}_mean"], scaler[f"{modality}_variance"] = mean, variance
        tensor = keras.Input(shape=(hidden.shape[1],), name=f"{modality}_hidden")
        inputs.append(tensor)
        scaled = keras.layers.Normalization(mean=mean, variance=variance, name=f"{modality}_scale")(tensor)
        gated.append(keras.layers.Multiply(name=f"{modality}_gate")([scaled, presence[:, index : index + 1]]))
    return [*inputs, presence], gated, presence, scaler


def _concatenate(parts: list):
    import keras

    return keras.layers.Concatenate(name="fused_hidden")(parts) if len(parts) > 1 else parts[0]


def _training_batches(inputs: dict, targets, batch_size: int, dropout: float, seed: int):
    """A keras PyDataset over ``inputs`` (and ``targets``, or None for the VAE), reshuffled each epoch, that drops
    each present modality of each clip with probability ``dropout`` (modality dropout: zero hidden vector, 0
    presence bit), always keeping at least one, so the fused model learns every subset of modalities."""
    import math

    import keras

    class ModalityDropout(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.n = len(inputs[PRESENCE_INPUT])
            self._draw()

        def _draw(self) -> None:
            rng = np.random.default_rng([seed, self.epoch])
            self.order = rng.permutation(self.n)
            presence = inputs[PRESENCE_INPUT]
            kept = presence * (rng.random(presence.shape) >= dropout)
            lost = (kept.sum(axis=1) == 0) & (presence.sum(axis=1) > 0)
            for row in np.flatnonzero(lost):  # keep one of the clip's modalities, drawn at random
                kept[row, rng.choice(np.flatnonzero(presence[row]))] = 1.0
            self.presence = kept.astype(np.float32)

        def __len__(self) -> int:
            return math.ceil(self.n / batch_size)

        def __getitem__(self, index: int):
            rows = self.order[index * batch_size : (index + 1) * batch_size]
            batch = {name: values[rows] for name, values in inputs.items() if name != PRESENCE_INPUT}
            batch[PRESENCE_INPUT] = self.presence[rows]
            return (batch,) if targets is None else (batch, targets[rows])

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._draw()

    return ModalityDropout()


class _KerasFusion(Fusion):
    """Shared training, prediction, saving and loading of the fused Keras models.

    Learned: ``model_`` (hidden vectors -> probabilities), ``scaler_`` (``<modality>_mean`` and
    ``<modality>_variance`` of the training rows), ``epochs_trained_``. Subclasses fed other inputs than the
    hidden vectors override ``_model_inputs`` and ``_batches``.
    """

    reads = HIDDEN
    learns_from_outputs = True

    def __init__(
        self,
        epochs: int,
        patience: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
        verbose: int,
        modality_dropout: float,
    ) -> None:
        self.modality_dropout = modality_dropout
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.verbose = verbose

    def _fit_classifier(
        self, model, X: Arrays, y: np.ndarray, present: np.ndarray | None, validation: Validation
    ) -> None:
        """Train ``model`` on one-hot labels, stopping early on the validation loss (best weights kept)."""
        import keras

        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate), loss="categorical_crossentropy", metrics=["accuracy"]
        )
        callbacks, validation_data = [], None
        one_hot = np.eye(len(self.classes_), dtype=np.float32)
        select = _unpack(validation)
        if select is not None:
            validation_data = (self._model_inputs(select[0], select[2]), one_hot[select[1]])
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
            )
        train = self._batches(self._model_inputs(X, present), one_hot[np.asarray(y, dtype=int)])
        history = model.fit(
            train, epochs=self.epochs, validation_data=validation_data, callbacks=callbacks, verbose=self.verbose
        )
        self.epochs_trained_ = len(history.history["loss"])

    def _model_inputs(self, X: Arrays, present: np.ndarray | None) -> dict[str, np.ndarray]:
        """The Keras input dict of ``model_`` for the clips of ``X``."""
        return hidden_inputs(X, present, self.modalities_)

    def _batches(self, inputs: dict[str, np.ndarray], targets: np.ndarray):
        """The training batches (a keras PyDataset) of ``inputs`` and one-hot ``targets``."""
        return _training_batches(inputs, targets, self.batch_size, self.modality_dropout, self.seed)

    def predict_proba(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        presence = self._presence(X, present)
        probabilities = self.model_.predict(self._model_inputs(X, present), batch_size=256, verbose=0)
        return self._with_prior(probabilities, presence)

    def _fitted_state(self) -> dict:
        return {"epochs_trained": self.epochs_trained_}

    def save(self, folder: RunFolder | str | Path) -> RunFolder:
        run = super().save(folder)
        self.model_.save(run.model)
        atomic_write_bytes(run.scaler, lambda handle: np.savez(handle, **self.scaler_))
        return run

    @classmethod
    def from_run(cls, folder: RunFolder | str | Path) -> Self:
        fusion = super().from_run(folder)
        run = as_run_folder(folder)
        fusion.model_ = load_keras_model(run.model)
        with np.load(run.scaler) as scaler:
            fusion.scaler_ = {name: scaler[name] for name in scaler.files}
        return fusion


class FCFusion(_KerasFusion):
    """Early fusion: gated hidden vectors and the presence mask concatenated -> Dense(units, ReLU) ->
    softmax(n_classes); modality models frozen; ``modality_dropout`` of present modalities dropped in training."""

    kind = "fc"

    def __init__(
        self,
        units: int = 32,
        dropout: float = 0.2,
        l2: float = 1e-3,
        epochs: int = 200,
        patience: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        seed: int = 0,
        verbose: int = 0,
        modality_dropout: float = 0.2,
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
        self.units = units
        self.dropout = dropout
        self.l2 = l2

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
        X : mapping of str to ndarray of shape (n_clips, hidden)
            Modality -> its hidden vectors.
        y : ndarray of shape (n_clips,), int
        present : ndarray of shape (n_clips, n_modalities), bool, or None
        validation : tuple of (X, y) or (X, y, present), or None
            The select part.
        n_classes : int or None

        Returns
        -------
        self : FCFusion
        """
        import keras

        super().fit(X, y, present, n_classes=n_classes)
        keras.utils.set_random_seed(self.seed)
        presence_rows = presence_matrix(X, present, self.modalities_)
        inputs, gated, presence, self.scaler_ = _scaled_inputs(X, presence_rows, self.modalities_)
        x = keras.layers.Dense(
            self.units, activation="relu", kernel_regularizer=keras.regularizers.L2(self.l2), name="fusion_dense"
        )(_concatenate([*gated, presence]))
        x = keras.layers.Dropout(self.dropout, name="fusion_dropout")(x)
        probabilities = keras.layers.Dense(len(self.classes_), activation="softmax", name="probabilities")(x)
        self.model_ = keras.Model(inputs, probabilities, name="fc_fusion")
        self._fit_classifier(self.model_, X, y, present, validation)
        return self


@functools.cache
def _vae_class() -> type:
    """The VAE training model, a keras.Model subclass (defined on first use: importing this module does not
    import Keras)."""
    import keras
    import tensorflow as tf
    from keras import ops

    class VariationalAutoencoder(keras.Model):
        """``encoder`` (inputs -> z_mean, z_log_var, target) and ``decoder`` (z -> reconstructed target) trained
        by ``fit`` on reconstruction + beta * KL, z drawn from a seeded generator; ``evaluate`` decodes z_mean,
        so validation losses do not depend on the draw. Metrics (per-clip means): loss, reconstruction, kl."""

        def __init__(self, encoder, decoder, beta: float, seed: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.encoder, self.decoder, self.beta = encoder, decoder, beta
            self.noise = keras.random.SeedGenerator(seed)
            self.loss_trackers = [keras.metrics.Mean(name=name) for name in ("loss", "reconstruction", "kl")]

        @property
        def metrics(self) -> list:
            return self.loss_trackers

        def _loss_terms(self, data, sample: bool) -> tuple:
            """loss, reconstruction, kl : tensors of shape (batch,)"""
            x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
            z_mean, z_log_var, target = self.encoder(x, training=sample)
            z = z_mean
            if sample:
                z = z + ops.exp(0.5 * z_log_var) * keras.random.normal(ops.shape(z_mean), seed=self.noise)
            reconstruction = ops.sum(ops.square(target - self.decoder(z, training=sample)), axis=1)
            kl = -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
            return reconstruction + self.beta * kl, reconstruction, kl

        def _track(self, losses: tuple) -> dict:
            for tracker, values in zip(self.loss_trackers, losses):
                tracker.update_state(values)
            return {tracker.name: tracker.result() for tracker in self.loss_trackers}

        def train_step(self, data) -> dict:
            with tf.GradientTape() as tape:
                losses = self._loss_terms(data, sample=True)
                loss = ops.mean(losses[0])
            gradients = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(gradients, self.trainable_variables)
            return self._track(losses)

        def test_step(self, data) -> dict:
            return self._track(self._loss_terms(data, sample=False))

    return VariationalAutoencoder


class VAEFusion(_KerasFusion):
    """Concatenated hidden vectors -> VAE (``latent_dim`` latent; reconstruction + beta * KL loss) -> classifier.

    The VAE is trained first, unsupervised, on the training rows by ``keras.Model.fit``, stopping early on the
    select part's VAE loss (the training loss without one) and keeping the best epoch; then the encoder is
    frozen and a Dense(units, ReLU) -> softmax(3) classifier is trained on the latent means.

    Learned, besides ``model_`` (hidden vectors -> probabilities): ``encoder_`` (-> latent means, layer
    ``z_mean``), ``decoder_`` (latents -> standardised concatenation), ``vae_history_`` (Keras history of the
    VAE) and ``vae_loss_`` (losses of the kept VAE, its epoch and the part they were measured on).
    """

    kind = "vae"

    def __init__(
        self,
        latent_dim: int = 20,
        encoder_units: int = 64,
        units: int = 16,
        beta: float = 1.0,
        vae_epochs: int = 200,
        epochs: int = 200,
        patience: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        seed: int = 0,
        verbose: int = 0,
        modality_dropout: float = 0.2,
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
        self.latent_dim = latent_dim
        self.encoder_units = encoder_units
        self.units = units
        self.beta = beta
        self.vae_epochs = vae_epochs

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
        X : mapping of str to ndarray of shape (n_clips, hidden)
            Modality -> its hidden vectors.
        y : ndarray of shape (n_clips,), int
        present : ndarray of shape (n_clips, n_modalities), bool, or None
        validation : tuple of (X, y) or (X, y, present), or None
            The select part.
        n_classes : int or None

        Returns
        -------
        self : VAEFusion
        """
        import keras

        super().fit(X, y, present, n_classes=n_classes)
        keras.utils.set_random_seed(self.seed)
        presence_rows = presence_matrix(X, present, self.modalities_)
        inputs, gated, presence, self.scaler_ = _scaled_inputs(X, presence_rows, self.modalities_)
        target = _concatenate(gated)
        encoded = keras.layers.Concatenate(name="vae_encoder_input")([target, presence])
        hidden = keras.layers.Dense(self.encoder_units, activation="relu", name="vae_encoder_dense")(encoded)
        z_mean = keras.layers.Dense(self.latent_dim, name="z_mean")(hidden)
        z_log_var = keras.layers.Dense(self.latent_dim, name="z_log_var")(hidden)
        latent = keras.Input(shape=(self.latent_dim,), name="latent")
        decoded = keras.layers.Dense(self.encoder_units, activation="relu", name="vae_decoder_dense")(latent)
        decoded = keras.layers.Dense(int(target.shape[-1]), name="reconstruction")(decoded)
        self.decoder_ = keras.Model(latent, decoded, name="vae_decoder")
        encoder = keras.Model(inputs, [z_mean, z_log_var, target], name="vae_encoder")
        self._train_vae(_vae_class()(encoder, self.decoder_, self.beta, self.seed), X, present, validation)

        self.encoder_ = keras.Model(inputs, z_mean, name="vae_latent_means")
        self.encoder_.trainable = False
        x = keras.layers.Dense(self.units, activation="relu", name="latent_dense")(z_mean)
        probabilities = keras.layers.Dense(len(self.classes_), activation="softmax", name="probabilities")(x)
        self.model_ = keras.Model(inputs, probabilities, name="vae_fusion")
        self._fit_classifier(self.model_, X, y, present, validation)
        return self

    def _train_vae(self, vae, X: Arrays, present: np.ndarray | None, validation: Validation) -> None:
        import keras

        train = hidden_inputs(X, present, self.modalities_)
        chosen = _unpack(validation)
        select = None if chosen is None else (hidden_inputs(chosen[0], chosen[2], self.modalities_), chosen[1])
        monitor = "loss" if select is None else "val_loss"
        vae.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        history = vae.fit(
            _training_batches(train, None, self.batch_size, self.modality_dropout, self.seed),
            epochs=self.vae_epochs,
            validation_data=None if select is None else (select[0],),
            verbose=self.verbose,
            callbacks=[
                keras.callbacks.EarlyStopping(monitor=monitor, patience=self.patience, restore_best_weights=True)
            ],
        )
        self.vae_history_ = {name: [float(v) for v in values] for name, values in history.history.items()}
        kept = vae.evaluate(
            train if select is None else select[0], batch_size=self.batch_size, verbose=0, return_dict=True
        )
        self.vae_loss_ = {
            **{name: float(value) for name, value in kept.items()},
            "epoch": int(np.argmin(self.vae_history_[monitor])) + 1,
            "measured_on": "train" if select is None else "select",
        }

    def latents(self, X: Arrays, present: np.ndarray | None = None) -> np.ndarray:
        """The encoder's latent means of each clip.

        Parameters
        ----------
        X : mapping of str to ndarray of shape (n_clips, hidden)
            Modality -> its hidden vectors; the modalities it was fitted on.
        present : ndarray of shape (n_clips, n_modalities), bool, or None
            Columns in ``modalities_`` order; None: every clip has every modality.

        Returns
        -------
        latents : ndarray of shape (n_clips, latent_dim)
        """
        self._check(X)
        return self.encoder_.predict(hidden_inputs(X, present, self.modalities_), batch_size=256, verbose=0)

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "vae_loss": self.vae_loss_, "vae_history": self.vae_history_}

    def save(self, folder: RunFolder | str | Path) -> RunFolder:
        """Fusion.save, with the decoder.

        Parameters
        ----------
        folder : RunFolder, str or Path

        Returns
        -------
        run : RunFolder
        """
        run = super().save(folder)
        self.decoder_.save(run.decoder)
        return run

    @classmethod
    def from_run(cls, folder: RunFolder | str | Path) -> Self:
        """Fusion.from_run, with the encoder and decoder.

        Parameters
        ----------
        folder : RunFolder, str or Path

        Returns
        -------
        fusion : VAEFusion
        """
        import keras

        fusion = super().from_run(folder)
        fusion.encoder_ = keras.Model(fusion.model_.inputs, fusion.model_.get_layer("z_mean").output)
        fusion.decoder_ = load_keras_model(as_run_folder(folder).decoder)
        return fusion


from .temporal import AttentionFusion, LSTMFusion  # noqa: E402  (they build on the classes above)

FUSIONS: dict[str, type[Fusion]] = {
    "hard": HardVote,
    "soft": SoftVote,
    "weighted": WeightedVote,
    "fc": FCFusion,
    "vae": VAEFusion,
    "attention": AttentionFusion,
    "lstm": LSTMFusion,
}


def make_fusion(kind: str, **options) -> Fusion:
    """A fusion by name, given the ``options`` among its ``get_params()``.

    One options dict serves every fusion (``seed``, ``weights``, ``epochs``...): each takes its own keys, and a
    key that no fusion takes (a typo) raises InputError naming it.

    Parameters
    ----------
    kind : str
        One of FUSIONS.
    **options
        Hyperparameters of any fusion.

    Returns
    -------
    fusion : Fusion
        Unfitted.
    """
    if kind not in FUSIONS:
        raise InputError(f"unknown fusion {kind!r}; choose from {', '.join(FUSIONS)}")
    taken = {name: set(klass().get_params()) for name, klass in FUSIONS.items()}
    known = set().union(*taken.values())
    unknown = sorted(set(options) - known)
    if unknown:
        guesses = [
            f"{name!r}" + "".join(f" (did you mean {close!r}?)" for close in difflib.get_close_matches(name, known, 1))
            for name in unknown
        ]
        raise InputError(f"unknown fusion option {', '.join(guesses)}; fusions take {', '.join(sorted(known))}")
    return FUSIONS[kind](**{name: value for name, value in options.items() if name in taken[kind]})


def _read_record(run: RunFolder) -> dict:
    if not run.fusion.is_file():
        raise RunError(f"{run.fusion}: no fitted fusion in {run.folder}; fit it with `gvs fuse`")
    record = read_json(run.fusion)
    if record.get("kind") not in FUSIONS or not {"modalities", "params", "fitted"} <= set(record):
        raise RunError(
            f"{run.fusion}: not a fusion record this version reads (kind {record.get('kind')!r}); "
            "fit it again with `gvs fuse`"
        )
    return record


def load_fusion(folder: RunFolder | str | Path) -> Fusion:
    """The fusion saved in ``folder`` (any kind, the Keras fusions with their models), ready to predict.

    Parameters
    ----------
    folder : RunFolder, str or Path

    Returns
    -------
    fusion : Fusion
    """
    run = as_run_folder(folder)
    return FUSIONS[_read_record(run)["kind"]].from_run(run)
