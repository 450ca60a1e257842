"""Five fusions with one contract: ``fit(outputs, y, validation=None)`` / ``predict_proba(outputs)``.

``outputs`` maps a modality name to its :class:`~ensemble.outputs.ModalityOutputs` (hidden vectors and
probabilities of the frozen modality model, one row per clip, rows aligned across modalities).
``validation`` is ``(outputs, y)`` of the selection part: fc and vae stop early on it (best epoch kept),
weighted fits its weights on it; hard and soft learn nothing.

fc and vae are Keras functional models with one input per modality named ``<modality>_hidden``; their
standardisation (mean and variance fitted on the training rows only) is a ``Normalization`` layer inside the
model named ``<modality>_scale``, so the saved ``model.keras`` takes the raw hidden vectors.
"""
from __future__ import annotations

import inspect
import itertools
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from preprocess.config import MODALITIES
from preprocess.labels import CLASS_NAMES

from .outputs import ModalityOutputs

N_CLASSES = len(CLASS_NAMES)
Outputs = Mapping[str, ModalityOutputs]
Validation = tuple[Outputs, np.ndarray] | None


class Fusion:
    """Base class: subclasses set ``kind`` and implement ``fit`` and ``predict_proba``."""

    kind = ""

    def fit(self, outputs: Outputs, y: np.ndarray, validation: Validation = None) -> "Fusion":
        self.modalities_ = sorted(outputs)
        return self

    def predict_proba(self, outputs: Outputs) -> np.ndarray:
        raise NotImplementedError

    def predict(self, outputs: Outputs) -> np.ndarray:
        return self.predict_proba(outputs).argmax(axis=1)

    def state(self) -> dict:
        """Hyperparameters and learned values written to fusion.json."""
        return {}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        record = {"kind": self.kind, "modalities": self.modalities_, **self.state()}
        (folder / "fusion.json").write_text(json.dumps(record, indent=2))

    def _check(self, outputs: Outputs) -> None:
        if sorted(outputs) != self.modalities_:
            raise ValueError(f"{self.kind} fusion was fitted on {self.modalities_}, got outputs of {sorted(outputs)}")


def _stacked_probabilities(fusion: Fusion, outputs: Outputs) -> np.ndarray:
    fusion._check(outputs)
    return np.stack([outputs[m].probabilities for m in fusion.modalities_])  # (M, N, C)


class HardVote(Fusion):
    """Majority vote of the modalities' predicted classes.

    Tie rule: among the classes with the most votes, the one with the highest summed probability wins.
    ``predict_proba`` returns the vote shares; ``predict`` applies the tie rule.
    """

    kind = "hard"

    def predict_proba(self, outputs: Outputs) -> np.ndarray:
        probabilities = _stacked_probabilities(self, outputs)
        votes = np.eye(N_CLASSES)[probabilities.argmax(axis=2)].sum(axis=0)
        return votes / len(self.modalities_)

    def predict(self, outputs: Outputs) -> np.ndarray:
        shares = self.predict_proba(outputs)
        summed = _stacked_probabilities(self, outputs).sum(axis=0)
        tied = shares == shares.max(axis=1, keepdims=True)
        return np.where(tied, summed, -np.inf).argmax(axis=1)

    def state(self) -> dict:
        return {"tie_rule": "highest summed probability among the tied classes"}


class SoftVote(Fusion):
    """Mean of the modalities' class probabilities."""

    kind = "soft"

    def predict_proba(self, outputs: Outputs) -> np.ndarray:
        return _stacked_probabilities(self, outputs).mean(axis=0)


def log_loss(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0)).mean())


class WeightedVote(Fusion):
    """Weighted mean of the modalities' probabilities.

    ``weights`` (modality -> weight) are used as given; without them the weights are searched on a grid
    over the simplex (step ``grid_step``) for the highest accuracy on the validation rows (the training rows
    when no validation is given), ties broken by the lower log-loss. Weights are normalised to sum to 1.
    """

    kind = "weighted"

    def __init__(self, weights: Mapping[str, float] | None = None, grid_step: float = 0.1) -> None:
        self.weights = dict(weights) if weights else None
        self.grid_step = grid_step

    def fit(self, outputs: Outputs, y: np.ndarray, validation: Validation = None) -> "WeightedVote":
        super().fit(outputs, y)
        if self.weights is not None:
            unknown, lacking = set(self.weights) - set(MODALITIES), set(self.modalities_) - set(self.weights)
            if unknown or lacking:
                raise ValueError(f"weights {self.weights}: unknown modalities {sorted(unknown)}, no weight for "
                                 f"{sorted(lacking)}; give one weight per fused modality")
            raw = np.array([float(self.weights[m]) for m in self.modalities_])  # weights of others ignored
            if raw.sum() <= 0 or (raw < 0).any():
                raise ValueError(f"weights must be non-negative with a positive sum, got {self.weights}")
            self.fitted_on_ = "given"
        else:
            fit_outputs, fit_y = validation if validation is not None and len(validation[1]) else (outputs, y)
            raw = self._search(_stacked_probabilities(self, fit_outputs), fit_y)
            self.fitted_on_ = "select" if fit_outputs is not outputs else "train"
        self.weights_ = dict(zip(self.modalities_, (raw / raw.sum()).tolist()))
        return self

    def _search(self, probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
        steps = int(round(1 / self.grid_step))
        best, best_score = np.ones(len(probabilities)), (np.inf, np.inf)
        for combo in itertools.product(range(steps + 1), repeat=len(probabilities)):
            if sum(combo) != steps:
                continue
            weights = np.array(combo, dtype=float) / steps
            fused = np.tensordot(weights, probabilities, axes=1)
            score = (-float((fused.argmax(axis=1) == y).mean()), log_loss(fused, y))
            if score < best_score:
                best, best_score = weights, score
        return best

    def predict_proba(self, outputs: Outputs) -> np.ndarray:
        weights = np.array([self.weights_[m] for m in self.modalities_])
        return np.tensordot(weights, _stacked_probabilities(self, outputs), axes=1)

    def state(self) -> dict:
        return {"weights": self.weights_, "weights_from": self.fitted_on_, "grid_step": self.grid_step}


def hidden_inputs(outputs: Outputs, modalities: list[str]) -> dict[str, np.ndarray]:
    """The Keras input dict of a fused model: ``{"<modality>_hidden": hidden vectors}``."""
    return {f"{m}_hidden": outputs[m].hidden.astype(np.float32) for m in modalities}


def _scaled_inputs(outputs: Outputs, modalities: list[str]):
    """One Keras input per modality plus a Normalization layer fitted on these (training) rows."""
    import keras

    inputs, scaled, scaler = [], [], {}
    for modality in modalities:
        hidden = outputs[modality].hidden.astype(np.float64)
        mean, variance = hidden.mean(axis=0), hidden.var(axis=0)
        variance = np.where(variance < 1e-12, 1.0, variance)  # constant units pass through centred
        scaler[f"{modality}_mean"], scaler[f"{modality}_variance"] = mean, variance
        tensor = keras.Input(shape=(hidden.shape[1],), name=f"{modality}_hidden")
        inputs.append(tensor)
        scaled.append(keras.layers.Normalization(mean=mean, variance=variance, name=f"{modality}_scale")(tensor))
    return inputs, scaled, scaler


def _concatenate(scaled: list):
    import keras

    return keras.layers.Concatenate(name="fused_hidden")(scaled) if len(scaled) > 1 else scaled[0]


class _KerasFusion(Fusion):
    """Shared fit/predict/save for the fused Keras models."""

    def __init__(self, epochs: int = 200, patience: int = 20, batch_size: int = 32, learning_rate: float = 1e-3,
                 seed: int = 0, verbose: int = 0) -> None:
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.verbose = verbose

    def _fit_classifier(self, model, outputs: Outputs, y: np.ndarray, validation: Validation) -> None:
        """Train ``model`` on one-hot labels, stopping early on the validation loss (best weights kept)."""
        import keras

        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        callbacks, validation_data = [], None
        if validation is not None and len(validation[1]):
            validation_data = (hidden_inputs(validation[0], self.modalities_), np.eye(N_CLASSES)[validation[1]])
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                           restore_best_weights=True))
        history = model.fit(hidden_inputs(outputs, self.modalities_), np.eye(N_CLASSES)[y], epochs=self.epochs,
                            batch_size=self.batch_size, validation_data=validation_data, callbacks=callbacks,
                            shuffle=True, verbose=self.verbose)
        self.epochs_trained_ = len(history.history["loss"])

    def predict_proba(self, outputs: Outputs) -> np.ndarray:
        self._check(outputs)
        return self.model_.predict(hidden_inputs(outputs, self.modalities_), batch_size=256, verbose=0)

    def save(self, folder: Path) -> None:
        super().save(folder)
        self.model_.save(folder / "model.keras")
        np.savez(folder / "scaler.npz", **self.scaler_)

    def state(self) -> dict:
        return {"epochs": self.epochs, "patience": self.patience, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "seed": self.seed,
                "epochs_trained": getattr(self, "epochs_trained_", None),
                "scaler": "mean/variance of the training rows, in scaler.npz and the <modality>_scale layers"}


class FCFusion(_KerasFusion):
    """Early fusion: concatenated hidden vectors -> Dense(units, ReLU) -> softmax(3); modality models frozen."""

    kind = "fc"

    def __init__(self, units: int = 32, dropout: float = 0.2, l2: float = 1e-3, **training) -> None:
        super().__init__(**training)
        self.units = units
        self.dropout = dropout
        self.l2 = l2

    def fit(self, outputs: Outputs, y: np.ndarray, validation: Validation = None) -> "FCFusion":
        import keras

        super().fit(outputs, y)
        keras.utils.set_random_seed(self.seed)
        inputs, scaled, self.scaler_ = _scaled_inputs(outputs, self.modalities_)
        x = _concatenate(scaled)
        x = keras.layers.Dense(self.units, activation="relu", kernel_regularizer=keras.regularizers.L2(self.l2),
                               name="fusion_dense")(x)
        x = keras.layers.Dropout(self.dropout, name="fusion_dropout")(x)
        probabilities = keras.layers.Dense(N_CLASSES, activation="softmax", name="probabilities")(x)
        self.model_ = keras.Model(inputs, probabilities, name="fc_fusion")
        self._fit_classifier(self.model_, outputs, y, validation)
        return self

    def state(self) -> dict:
        return {"units": self.units, "dropout": self.dropout, "l2": self.l2, **super().state()}


class VAEFusion(_KerasFusion):
    """Concatenated hidden vectors -> VAE (``latent_dim`` latent; reconstruction + KL loss) -> classifier.

    The VAE is trained first, unsupervised, on the training rows (the epoch with the lowest validation VAE
    loss is kept); then the encoder is frozen and a Dense(units, ReLU) -> softmax(3) classifier is trained on
    the latent means. ``model_`` maps the hidden vectors to probabilities; ``encoder_`` to the latent means
    (layer ``z_mean``); ``decoder_`` maps latents back to the standardised concatenation.
    """

    kind = "vae"

    def __init__(self, latent_dim: int = 20, encoder_units: int = 64, units: int = 16, beta: float = 1.0,
                 vae_epochs: int = 200, **training) -> None:
        super().__init__(**training)
        self.latent_dim = latent_dim
        self.encoder_units = encoder_units
        self.units = units
        self.beta = beta
        self.vae_epochs = vae_epochs

    def fit(self, outputs: Outputs, y: np.ndarray, validation: Validation = None) -> "VAEFusion":
        import keras

        super().fit(outputs, y)
        keras.utils.set_random_seed(self.seed)
        inputs, scaled, self.scaler_ = _scaled_inputs(outputs, self.modalities_)
        target = _concatenate(scaled)
        hidden = keras.layers.Dense(self.encoder_units, activation="relu", name="vae_encoder_dense")(target)
        z_mean = keras.layers.Dense(self.latent_dim, name="z_mean")(hidden)
        z_log_var = keras.layers.Dense(self.latent_dim, name="z_log_var")(hidden)
        self.encoder_ = keras.Model(inputs, z_mean, name="vae_encoder")
        vae_encoder = keras.Model(inputs, [z_mean, z_log_var, target], name="vae_training_encoder")
        latent = keras.Input(shape=(self.latent_dim,), name="latent")
        decoded = keras.layers.Dense(self.encoder_units, activation="relu", name="vae_decoder_dense")(latent)
        decoded = keras.layers.Dense(int(target.shape[-1]), name="reconstruction")(decoded)
        self.decoder_ = keras.Model(latent, decoded, name="vae_decoder")
        self.vae_loss_ = self._train_vae(vae_encoder, outputs, validation)

        for layer in self.encoder_.layers:
            layer.trainable = False
        x = keras.layers.Dense(self.units, activation="relu", name="latent_dense")(z_mean)
        probabilities = keras.layers.Dense(N_CLASSES, activation="softmax", name="probabilities")(x)
        self.model_ = keras.Model(inputs, probabilities, name="vae_fusion")
        self._fit_classifier(self.model_, outputs, y, validation)
        return self

    def _train_vae(self, vae_encoder, outputs: Outputs, validation: Validation) -> dict:
        import keras
        import tensorflow as tf

        optimizer = keras.optimizers.Adam(self.learning_rate)
        weights = vae_encoder.trainable_weights + self.decoder_.trainable_weights
        train_inputs = hidden_inputs(outputs, self.modalities_)
        select_inputs = hidden_inputs(validation[0], self.modalities_) if validation is not None else None
        generator = tf.random.Generator.from_seed(self.seed)

        def losses(batch: dict, training: bool):
            z_mean, z_log_var, target = vae_encoder(batch, training=training)
            z = z_mean + tf.exp(0.5 * z_log_var) * generator.normal(tf.shape(z_mean))
            reconstruction = tf.reduce_mean(tf.reduce_sum(tf.square(target - self.decoder_(z)), axis=1))
            kl = tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1))
            return reconstruction, kl

        @tf.function(reduce_retracing=True)
        def train_step(batch: dict) -> None:
            with tf.GradientTape() as tape:
                reconstruction, kl = losses(batch, training=True)
                loss = reconstruction + self.beta * kl
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))

        n = len(next(iter(train_inputs.values())))
        order_rng = np.random.default_rng(self.seed)
        best = {"loss": np.inf, "epoch": 0}
        best_weights = [w.numpy() for w in weights]
        for epoch in range(self.vae_epochs):
            order = order_rng.permutation(n)
            for start in range(0, n, self.batch_size):
                rows = order[start:start + self.batch_size]
                train_step({name: values[rows] for name, values in train_inputs.items()})
            reconstruction, kl = losses(select_inputs or train_inputs, training=False)
            epoch_loss = float(reconstruction + self.beta * kl)
            if epoch_loss < best["loss"]:
                best = {"loss": epoch_loss, "reconstruction": float(reconstruction), "kl": float(kl), "epoch": epoch + 1}
                best_weights = [w.numpy() for w in weights]
            elif epoch + 1 - best["epoch"] >= self.patience:
                break
        for variable, value in zip(weights, best_weights):
            variable.assign(value)
        best["measured_on"] = "select" if select_inputs else "train"
        return best

    def latents(self, outputs: Outputs) -> np.ndarray:
        """Latent means (N, latent_dim) of the given rows."""
        self._check(outputs)
        return self.encoder_.predict(hidden_inputs(outputs, self.modalities_), batch_size=256, verbose=0)

    def save(self, folder: Path) -> None:
        super().save(folder)
        self.decoder_.save(folder / "decoder.keras")

    def state(self) -> dict:
        return {"latent_dim": self.latent_dim, "encoder_units": self.encoder_units, "units": self.units,
                "beta": self.beta, "vae_epochs": self.vae_epochs, "vae_loss": getattr(self, "vae_loss_", None),
                **super().state()}


FUSIONS: dict[str, type[Fusion]] = {"hard": HardVote, "soft": SoftVote, "weighted": WeightedVote,
                                    "fc": FCFusion, "vae": VAEFusion}


def accepted_options(kind: str, options: dict) -> dict:
    """The entries of ``options`` that fusion ``kind`` takes (so one options dict serves every fusion)."""
    if kind not in FUSIONS:
        raise ValueError(f"unknown fusion {kind!r}; choose from {', '.join(FUSIONS)}")
    accepted = set()
    for klass in FUSIONS[kind].__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters)
    return {k: v for k, v in options.items() if k in accepted}


def make_fusion(kind: str, **options) -> Fusion:
    """A fusion by name; ``options`` it does not take are ignored."""
    return FUSIONS[kind](**accepted_options(kind, options))


def load_fusion(folder: Path) -> Fusion:
    """A fusion saved by ``Fusion.save`` (fc and vae with their Keras models), ready to ``predict_proba``."""
    record = json.loads((Path(folder) / "fusion.json").read_text())
    fusion = FUSIONS[record["kind"]]()
    fusion.modalities_ = record["modalities"]
    if isinstance(fusion, WeightedVote):
        fusion.weights_, fusion.fitted_on_ = record["weights"], record["weights_from"]
    if isinstance(fusion, _KerasFusion):
        import keras

        fusion.model_ = keras.models.load_model(Path(folder) / "model.keras")
        with np.load(Path(folder) / "scaler.npz") as scaler:
            fusion.scaler_ = {name: scaler[name] for name in scaler.files}
    if isinstance(fusion, VAEFusion):
        fusion.encoder_ = keras.Model(fusion.model_.inputs, fusion.model_.get_layer("z_mean").output)
        fusion.decoder_ = keras.models.load_model(Path(folder) / "decoder.keras")
    return fusion
