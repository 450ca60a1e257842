"""Keras layers of the time-aware fusions (ensemble.temporal), registered so saved fusions load in safe mode.

Shapes: B clips, T steps, W features; ``steps`` tensors are (B, T) with 1.0 at real steps, 0.0 at padded or
missing ones.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="ensemble")
class PositionEmbedding(layers.Layer):
    """Adds a learned vector per step index: (B, T, W) -> (B, T, W)."""

    def build(self, input_shape) -> None:
        """Make the (T, W) table of step vectors.

        Parameters
        ----------
        input_shape : tuple
            (B, T, W).
        """
        self.table = self.add_weight(
            shape=tuple(input_shape[1:]), initializer=keras.initializers.RandomNormal(stddev=1.0), name="table"
        )

    def call(self, inputs):
        """``inputs`` plus the learned vector of each step.

        Parameters
        ----------
        inputs : tensor of shape (B, T, W)

        Returns
        -------
        outputs : tensor of shape (B, T, W)
        """
        return inputs + self.table


@keras.saving.register_keras_serializable(package="ensemble")
class CrossAttention(layers.Layer):
    """Multi-head attention of query steps over key steps with a learned bias per head and relative time
    (key step - query step, as in T5's relative position bias), so heads can look at "the same moment" or "1.2 s
    later" in another modality whatever the absolute time.

    Inputs: [queries (B, Tq, W), keys (B, Tk, W), mask (B, Tq, Tk) bool]; the keys are one or more modalities'
    ``steps`` steps each, key j at step j % steps. Returns (attended (B, Tq, W), weights (B, heads, Tq, Tk));
    a query with no real key attends to nothing (zeros)."""

    def __init__(self, heads: int, key_dim: int, steps: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.steps = heads, key_dim, steps

    def build(self, input_shape) -> None:
        """Make the projection kernels and the (heads, 2 * steps - 1) time bias.

        Parameters
        ----------
        input_shape : list of tuple
            The shapes of [queries, keys, mask].
        """
        width = input_shape[0][-1]
        shape = (width, self.heads, self.key_dim)
        self.query_kernel = self.add_weight(shape=shape, initializer="glorot_uniform", name="query_kernel")
        self.key_kernel = self.add_weight(shape=shape, initializer="glorot_uniform", name="key_kernel")
        self.value_kernel = self.add_weight(shape=shape, initializer="glorot_uniform", name="value_kernel")
        self.output_kernel = self.add_weight(
            shape=(self.heads, self.key_dim, width), initializer="glorot_uniform", name="output_kernel"
        )
        same_moment = np.zeros((self.heads, 2 * self.steps - 1), "float32")
        same_moment[:, self.steps - 1] = 2.0  # the prior: look at the same moment in the other modalities first
        self.time_bias = self.add_weight(shape=same_moment.shape, initializer="zeros", name="time_bias")
        self.time_bias.assign(same_moment)

    def call(self, inputs):
        """The queries' attended values and the attention weights.

        Parameters
        ----------
        inputs : list of tensors
            [queries (B, Tq, W), keys (B, Tk, W), mask (B, Tq, Tk) bool].

        Returns
        -------
        attended : tensor of shape (B, Tq, W)
        weights : tensor of shape (B, heads, Tq, Tk)
        """
        queries, keys, mask = inputs
        q = ops.einsum("btw,whd->bhtd", queries, self.query_kernel) / float(self.key_dim) ** 0.5
        k = ops.einsum("bsw,whd->bhsd", keys, self.key_kernel)
        v = ops.einsum("bsw,whd->bhsd", keys, self.value_kernel)
        query_time = ops.arange(ops.shape(queries)[1]) % self.steps
        key_time = ops.arange(ops.shape(keys)[1]) % self.steps
        offsets = ops.expand_dims(key_time, 0) - ops.expand_dims(query_time, 1) + self.steps - 1  # (Tq, Tk)
        bias = ops.take(self.time_bias, offsets, axis=1)  # (heads, Tq, Tk)
        scores = ops.einsum("bhtd,bhsd->bhts", q, k) + bias
        allowed = ops.expand_dims(ops.cast(mask, "bool"), 1)
        scores = ops.where(allowed, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1) * ops.cast(allowed, scores.dtype)  # no real key: all zeros
        attended = ops.einsum("bhts,bhsd->bhtd", weights, v)
        return ops.einsum("bhtd,hdw->btw", attended, self.output_kernel), weights

    def compute_output_shape(self, input_shape):
        """The shapes of the attended values and of the weights.

        Parameters
        ----------
        input_shape : list of tuple
            The shapes of [queries, keys, mask].

        Returns
        -------
        shapes : tuple of tuple
            (B, Tq, W) and (B, heads, Tq, Tk).
        """
        queries, keys = input_shape[0], input_shape[1]
        return queries, (queries[0], self.heads, queries[1], keys[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim, "steps": self.steps}


@keras.saving.register_keras_serializable(package="ensemble")
class ZeroPadded(layers.Layer):
    """Zeros the padded steps: [(B, T, W), steps (B, T)] -> (B, T, W)."""

    def call(self, inputs):
        """The values, zero at the padded steps.

        Parameters
        ----------
        inputs : list of tensors
            [values (B, T, W), steps (B, T)].

        Returns
        -------
        outputs : tensor of shape (B, T, W)
        """
        values, steps = inputs
        return values * ops.expand_dims(ops.cast(steps, values.dtype), -1)


@keras.saving.register_keras_serializable(package="ensemble")
class CrossStepMask(layers.Layer):
    """The attention mask of queries over keys: [query steps (B, Tq), key steps (B, Tk)] -> (B, Tq, Tk) bool."""

    def call(self, inputs):
        """True where both the query step and the key step are real.

        Parameters
        ----------
        inputs : list of tensors
            [query steps (B, Tq), key steps (B, Tk)].

        Returns
        -------
        mask : tensor of shape (B, Tq, Tk), bool
        """
        query, key = inputs
        return ops.logical_and(ops.expand_dims(query > 0.5, 2), ops.expand_dims(key > 0.5, 1))


@keras.saving.register_keras_serializable(package="ensemble")
class MaskedMean(layers.Layer):
    """Mean over the real steps: [(B, T, W), steps (B, T)] -> (B, W); zeros where no step is real."""

    def call(self, inputs):
        """The mean over the real steps.

        Parameters
        ----------
        inputs : list of tensors
            [values (B, T, W), steps (B, T)].

        Returns
        -------
        mean : tensor of shape (B, W)
        """
        values, steps = inputs
        weights = ops.expand_dims(ops.cast(steps, values.dtype), -1)
        return ops.sum(values * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="ensemble")
class MaskedMax(layers.Layer):
    """Maximum over the real steps: [(B, T, W), steps (B, T)] -> (B, W); zeros where no step is real."""

    def call(self, inputs):
        """The maximum over the real steps.

        Parameters
        ----------
        inputs : list of tensors
            [values (B, T, W), steps (B, T)].

        Returns
        -------
        maximum : tensor of shape (B, W)
        """
        values, steps = inputs
        real = ops.expand_dims(ops.cast(steps, "bool"), -1)
        largest = ops.max(ops.where(real, values, ops.full_like(values, -1e9)), axis=1)
        return ops.where(ops.any(real, axis=1), largest, ops.zeros_like(largest))


@keras.saving.register_keras_serializable(package="ensemble")
class AnyStep(layers.Layer):
    """Whether any of several step masks is real: list of (B, T) -> (B, T) bool (an RNN's mask)."""

    def call(self, inputs):
        """True where any of the masks is real.

        Parameters
        ----------
        inputs : list of tensors of shape (B, T)

        Returns
        -------
        steps : tensor of shape (B, T), bool
        """
        return ops.any(ops.stack([step > 0.5 for step in inputs], axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="ensemble")
class Presence(layers.Layer):
    """Whether each modality has any real step: list of M (B, T) -> (B, M) float."""

    def call(self, inputs):
        """1.0 where a modality has any real step.

        Parameters
        ----------
        inputs : list of M tensors of shape (B, T)

        Returns
        -------
        presence : tensor of shape (B, M), float
        """
        return ops.cast(ops.stack([ops.any(step > 0.5, axis=1) for step in inputs], axis=-1), "float32")


@keras.saving.register_keras_serializable(package="ensemble")
class ModalityWeights(layers.Layer):
    """Learned modality weights alpha = softmax(logits) (they start equal): a list of M (B, T, W) -> their
    concatenation (B, T, M * W), modality m scaled by M * alpha_m (so equal weights leave the values as they are)."""

    def build(self, input_shape) -> None:
        """Make the M logits, all zero (equal weights).

        Parameters
        ----------
        input_shape : list of M tuples
        """
        self.logits = self.add_weight(shape=(len(input_shape),), initializer="zeros", name="logits")

    def alpha(self):
        """(M,) the modality weights, summing to 1."""
        return ops.softmax(self.logits)

    def call(self, inputs):
        """The weighted concatenation of the modalities' values.

        Parameters
        ----------
        inputs : list of M tensors of shape (B, T, W)

        Returns
        -------
        outputs : tensor of shape (B, T, M * W)
        """
        alpha = self.alpha() * len(inputs)
        return ops.concatenate([values * alpha[index] for index, values in enumerate(inputs)], axis=-1)
