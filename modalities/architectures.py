"""One Keras functional model per modality, after the reference paper; every size is an option.

Every model has one input "<modality>_input", a layer "hidden" (the vector fusions cut at) and a softmax
layer "probabilities". Padded time steps (all zeros) are masked.
"""

from __future__ import annotations

import keras
from keras import layers, ops, regularizers

from gvs.core.errors import InputError
from gvs.core.vocabulary import CLASS_NAMES

HIDDEN_LAYER = "hidden"  # the vector every fusion cuts at
PROBABILITIES_LAYER = "probabilities"

# Sizes of each architecture; build_model(..., **sizes) overrides any of them.
DEFAULT_SIZES: dict[str, dict] = {
    # reduce_channels: a per-frame 1x1 convolution to this many channels before the ConvLSTM heads when the
    # features have more (0 = the paper's configuration: ConvLSTM2D directly on the 2048 ResNet channels).
    "scene": {"heads": 3, "filters": 10, "kernel": 3, "reduce_channels": 64, "l2": 1e-3},
    "pose": {"units": 64, "l2": 1e-2},
    # bn_momentum 0.9 (Keras' default is 0.99): the moving statistics used at prediction settle in about 50
    # training steps instead of 500, which small datasets (the demo: one step per epoch) never reach.
    "audio": {
        "conv_filters": (64, 512, 512),
        "kernel": 2,
        "pool": 2,
        "dropout": 0.3,
        "lstm_units": (64, 64),
        "dense": 32,
        "bn_momentum": 0.9,
    },
    "faces": {"units": 32, "dense": 8},
}
LEARNING_RATES: dict[str, float] = {"scene": 1e-2, "pose": 1e-2, "audio": 4e-5, "faces": 5e-3}
AUDIO_DECAY = {"decay_steps": 10_000, "decay_rate": 0.9}  # exponential decay of the audio learning rate


@keras.saving.register_keras_serializable(package="modalities")
class StepMasking(layers.Masking):
    """Masking for inputs with several feature axes (frames of feature maps): a step is padding when
    all its values equal ``mask_value``; the mask has shape (batch, steps)."""

    def compute_mask(self, inputs, mask=None):
        """The (batch, steps) mask: True where a step holds any value other than ``mask_value``.

        Parameters
        ----------
        inputs : tensor of shape (batch, steps, ...)
        mask : tensor or None
            The incoming mask (ignored).

        Returns
        -------
        mask : tensor of shape (batch, steps), bool
        """
        return ops.any(ops.not_equal(inputs, self.mask_value), axis=tuple(range(2, len(inputs.shape))))

    def call(self, inputs):
        """``inputs`` with padding steps set to zero.

        Parameters
        ----------
        inputs : tensor of shape (batch, steps, ...)

        Returns
        -------
        outputs : tensor of the shape of ``inputs``
        """
        keep = ops.cast(self.compute_mask(inputs), inputs.dtype)
        return inputs * ops.reshape(keep, ops.shape(keep) + (1,) * (len(inputs.shape) - 2))


@keras.saving.register_keras_serializable(package="modalities")
class PooledStepMask(layers.Layer):
    """The (batch, steps) mask of non-zero input steps, max-pooled like the convolution blocks pool
    time, so recurrent layers after pooling still skip the padding."""

    def __init__(self, pool: int, n_pools: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool = pool
        self.n_pools = n_pools

    def call(self, inputs):
        """The pooled mask: True where a pooled step covers any non-zero input step.

        Parameters
        ----------
        inputs : tensor of shape (batch, steps, features)

        Returns
        -------
        mask : tensor of shape (batch, ceil(steps / pool ** n_pools)), bool
        """
        real = ops.cast(ops.any(ops.not_equal(inputs, 0.0), axis=-1, keepdims=True), "float32")
        for _ in range(self.n_pools):
            real = ops.max_pool(real, pool_size=self.pool, strides=self.pool, padding="same")
        return ops.squeeze(real, axis=-1) > 0.5

    def compute_output_shape(self, input_shape):
        """The mask's shape after ``n_pools`` poolings by ``pool``.

        Parameters
        ----------
        input_shape : tuple
            (batch, steps, features).

        Returns
        -------
        shape : tuple
            (batch, pooled steps).
        """
        steps = input_shape[1]
        for _ in range(self.n_pools):
            steps = None if steps is None else -(-steps // self.pool)
        return (input_shape[0], steps)

    def get_config(self) -> dict:
        return {**super().get_config(), "pool": self.pool, "n_pools": self.n_pools}


def build_model(modality: str, input_shape: tuple[int, ...], n_classes: int = len(CLASS_NAMES), **sizes) -> keras.Model:
    """The (uncompiled) model of ``modality`` for per-clip features of ``input_shape``, ``n_classes`` outputs.

    Parameters
    ----------
    modality : str
        "scene", "pose", "audio" or "faces".
    input_shape : tuple of int
        One clip's features, without the batch axis (steps first).
    n_classes : int
    **sizes
        Overrides of DEFAULT_SIZES[modality].

    Returns
    -------
    model : keras.Model
        (batch, *input_shape) -> (batch, n_classes) probabilities.
    """
    if modality not in _BUILDERS:
        raise InputError(f"unknown modality {modality!r}; choose from {', '.join(_BUILDERS)}")
    unknown = set(sizes) - set(DEFAULT_SIZES[modality])
    if unknown:
        raise InputError(
            f"{modality}: unknown size option(s) {sorted(unknown)}; valid: {', '.join(DEFAULT_SIZES[modality])}"
        )
    inputs = keras.Input(shape=tuple(input_shape), name=f"{modality}_input")
    hidden = _BUILDERS[modality](inputs, **(DEFAULT_SIZES[modality] | sizes))
    l2 = sizes.get("l2", DEFAULT_SIZES[modality].get("l2"))
    outputs = layers.Dense(
        n_classes,
        activation="softmax",
        name=PROBABILITIES_LAYER,
        kernel_regularizer=regularizers.L2(l2) if l2 else None,
    )(hidden)
    return keras.Model(inputs, outputs, name=f"{modality}_model")


def cut_at_hidden(model: keras.Model) -> keras.Model:
    """The same model with two outputs: its hidden vectors (batch, H...) and its probabilities (batch, n_classes).

    Parameters
    ----------
    model : keras.Model
        A model from build_model.

    Returns
    -------
    model : keras.Model
    """
    return keras.Model(
        model.inputs, [model.get_layer(HIDDEN_LAYER).output, model.get_layer(PROBABILITIES_LAYER).output]
    )


def compile_model(model: keras.Model, modality: str, learning_rate: float | None = None) -> keras.Model:
    """Adam at the modality's learning rate (audio: exponentially decayed) and cross-entropy.

    Parameters
    ----------
    model : keras.Model
    modality : str
    learning_rate : float or None
        None for LEARNING_RATES[modality].

    Returns
    -------
    model : keras.Model
        ``model``, compiled.
    """
    rate = learning_rate or LEARNING_RATES[modality]
    if modality == "audio":
        rate = keras.optimizers.schedules.ExponentialDecay(rate, **AUDIO_DECAY)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _scene(inputs, *, heads: int, filters: int, kernel: int, reduce_channels: int, l2: float):
    x = StepMasking(name="scene_mask")(inputs)
    if 0 < reduce_channels < inputs.shape[-1]:
        x = layers.TimeDistributed(layers.Conv2D(reduce_channels, 1, activation="relu"), name="scene_reduce")(x)
    pooled = []
    for head in range(heads):
        maps = layers.ConvLSTM2D(filters, kernel, padding="same", name=f"scene_convlstm_{head}")(x)
        pooled.append(layers.GlobalAveragePooling2D(name=f"scene_pool_{head}")(maps))
    if heads == 1:
        return layers.Identity(name=HIDDEN_LAYER)(pooled[0])
    return layers.Concatenate(name=HIDDEN_LAYER)(pooled)


def _pose(inputs, *, units: int, l2: float):
    x = layers.Masking(name="pose_mask")(inputs)
    lstm = layers.LSTM(units, kernel_regularizer=regularizers.L2(l2), recurrent_regularizer=regularizers.L2(l2))
    x = layers.Bidirectional(lstm, name="pose_bilstm")(x)
    return layers.Identity(name=HIDDEN_LAYER)(x)


def _audio(inputs, *, conv_filters, kernel: int, pool: int, dropout: float, lstm_units, dense: int, bn_momentum: float):
    step_mask = PooledStepMask(pool, len(conv_filters), name="audio_mask")(inputs)
    x = layers.UnitNormalization(axis=(1, 2), name="audio_l2")(inputs)  # each clip L2-normalised
    for block, filters in enumerate(conv_filters):
        x = layers.Conv1D(filters, kernel, padding="same", name=f"audio_conv_{block}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"audio_bn_{block}")(x)
        x = layers.Activation("relu", name=f"audio_relu_{block}")(x)
        x = layers.MaxPooling1D(pool, padding="same", name=f"audio_pool_{block}")(x)
        x = layers.Dropout(dropout, name=f"audio_dropout_{block}")(x)
    for index, units in enumerate(lstm_units):
        last = index == len(lstm_units) - 1
        recurrent = layers.Bidirectional(layers.LSTM(units, return_sequences=not last), name=f"audio_bilstm_{index}")
        x = recurrent(x, mask=step_mask) if index == 0 else recurrent(x)
    return layers.Dense(dense, activation="relu", name=HIDDEN_LAYER)(x)


def _faces(inputs, *, units: int, dense: int):
    x = layers.Masking(name="faces_mask")(inputs)
    x = layers.Bidirectional(layers.LSTM(units), name="faces_bilstm")(x)
    return layers.Dense(dense, activation="relu", name=HIDDEN_LAYER)(x)


_BUILDERS = {"scene": _scene, "pose": _pose, "audio": _audio, "faces": _faces}
