"""Per-time-step outputs of a trained modality model (what the time-aware fusions read), on one time grid.

The "sequence" cut of each model is its last layer that still has one vector per input step, read from the
trained layers (no retraining, older models included):

- scene: the frames entering the ConvLSTM heads (after the 1x1 reduction when the model has one), averaged over
  space: (n_frames, channels)
- pose, faces: the trained BiLSTM run with one output per step (same weights): (n_frames, 2 * units)
- audio: the first convolution block, before any pooling: (audio_steps, conv_filters[0])

Padded steps (an all-zero input step) are zeros, with their step mask False.

The time grid is the visual one: step i is frame i * frame_step, at i * frame_step / fps seconds (0.4 s apart
at 25 fps, VGAF's rate: 12 steps over 0..4.4 s). Audio step k is centred at k * audio_hop seconds (0, 0.5, ...
5.0 s); each visual step takes the audio step whose centre is nearest (0, 1, 2, 2, 3, 4, 5, 6, 6, 7, 8, 9 at the
defaults), so audio after 4.75 s is not read by the time-aware fusions (the visual window ends at 4.4 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gvs.core.vocabulary import AUDIO_HOP, FRAME_STEP, N_FRAMES

NOMINAL_FPS = 25.0  # the frame rate the time grid assumes (VGAF's clips); real rates only stretch the grid


@dataclass(frozen=True)
class TimeGrid:
    """The visual time grid and where the audio steps sit on it."""

    n_frames: int = N_FRAMES
    frame_step: int = FRAME_STEP
    audio_hop: float = AUDIO_HOP

    @classmethod
    def from_params(cls, params: dict) -> TimeGrid:
        """The grid of features made with ``params`` (a PreprocessConfig's fields; missing ones: defaults).

        Parameters
        ----------
        params : dict

        Returns
        -------
        grid : TimeGrid
        """
        defaults = cls()
        return cls(
            int(params.get("n_frames", defaults.n_frames)),
            int(params.get("frame_step", defaults.frame_step)),
            float(params.get("audio_hop", defaults.audio_hop)),
        )

    @property
    def seconds(self) -> np.ndarray:
        """(n_frames,) time of each visual step in seconds."""
        return np.arange(self.n_frames) * self.frame_step / NOMINAL_FPS

    def audio_rows(self, audio_steps: int) -> np.ndarray:
        """(n_frames,) index of the audio step nearest each visual step (clipped to the steps there are).

        Parameters
        ----------
        audio_steps : int
            Steps of the audio sequence.

        Returns
        -------
        rows : ndarray of shape (n_frames,), int
        """
        return np.clip(np.floor(self.seconds / self.audio_hop + 0.5).astype(int), 0, audio_steps - 1)


def sequence_model(model, modality: str):
    """``model`` with three outputs: hidden (batch, H), probabilities (batch, n_classes) and the per-step
    sequence (batch, steps, F) described in the module docstring.

    Parameters
    ----------
    model : keras.Model
        A trained modality model (architectures.build_model).
    modality : str

    Returns
    -------
    model : keras.Model
    """
    import keras
    from keras import layers

    from .architectures import HIDDEN_LAYER, PROBABILITIES_LAYER

    if modality == "scene":
        source = "scene_reduce" if "scene_reduce" in [layer.name for layer in model.layers] else "scene_mask"
        steps = layers.TimeDistributed(layers.GlobalAveragePooling2D(), name="scene_steps")(
            model.get_layer(source).output
        )
    elif modality in ("pose", "faces"):
        trained = model.get_layer(f"{modality}_bilstm")
        per_step = layers.LSTM.from_config(
            {**trained.forward_layer.get_config(), "return_sequences": True, "go_backwards": False, "name": "steps"}
        )
        every_step = layers.Bidirectional(per_step, merge_mode=trained.merge_mode, name=f"{modality}_steps")
        steps = every_step(model.get_layer(f"{modality}_mask").output)
        every_step.set_weights(trained.get_weights())
    elif modality == "audio":
        steps = model.get_layer("audio_relu_0").output
    else:
        raise ValueError(f"no sequence cut for modality {modality!r}")
    hidden, probabilities = model.get_layer(HIDDEN_LAYER).output, model.get_layer(PROBABILITIES_LAYER).output
    return keras.Model(model.inputs, [hidden, probabilities, steps])


def input_steps(x: np.ndarray) -> np.ndarray:
    """(batch, steps) bool: True where an input step has any non-zero value (padding is all zeros).

    Parameters
    ----------
    x : ndarray of shape (batch, steps, ...)

    Returns
    -------
    steps : ndarray of shape (batch, steps), bool
    """
    x = np.asarray(x)
    return np.any(x.reshape(x.shape[0], x.shape[1], -1) != 0, axis=2)


def on_grid(modality: str, sequence: np.ndarray, steps: np.ndarray, grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
    """A batch's sequence (batch, steps, F) and step mask (batch, steps) on the visual grid: (batch, n_frames, F)
    float32 with padded steps zeroed, and (batch, n_frames) bool.

    Parameters
    ----------
    modality : str
    sequence : ndarray of shape (batch, steps, F)
    steps : ndarray of shape (batch, steps), bool
    grid : TimeGrid

    Returns
    -------
    sequence : ndarray of shape (batch, n_frames, F), float32
    steps : ndarray of shape (batch, n_frames), bool
    """
    sequence, steps = np.asarray(sequence, np.float32), np.asarray(steps, bool)
    if modality == "audio":
        rows = grid.audio_rows(sequence.shape[1])
        sequence, steps = sequence[:, rows], steps[:, rows]
    elif sequence.shape[1] != grid.n_frames:  # visual features of another length: pad or cut to the grid
        sequence, steps = _fit_length(sequence, grid.n_frames), _fit_length(steps, grid.n_frames)
    return np.where(steps[..., None], sequence, 0).astype(np.float32), steps


def _fit_length(values: np.ndarray, length: int) -> np.ndarray:
    """``values`` (batch, steps, ...) cut or zero-padded along axis 1 to ``length`` steps."""
    if values.shape[1] >= length:
        return values[:, :length]
    padding = np.zeros((values.shape[0], length - values.shape[1], *values.shape[2:]), values.dtype)
    return np.concatenate([values, padding], axis=1)


def sequence_outputs(cut, modality: str, x: np.ndarray, grid: TimeGrid) -> tuple[np.ndarray, ...]:
    """One batch through a :func:`sequence_model`: hidden (batch, H), probabilities (batch, n_classes), sequence
    (batch, n_frames, F) and step mask (batch, n_frames) bool, on ``grid``.

    Parameters
    ----------
    cut : keras.Model
        From sequence_model.
    modality : str
    x : ndarray of shape (batch, steps, ...)
        The modality's features.
    grid : TimeGrid

    Returns
    -------
    hidden : ndarray of shape (batch, H)
    probabilities : ndarray of shape (batch, n_classes)
    sequence : ndarray of shape (batch, n_frames, F), float32
    steps : ndarray of shape (batch, n_frames), bool
    """
    hidden, probabilities, sequence = cut.predict_on_batch(x)
    sequence, steps = on_grid(modality, np.asarray(sequence), input_steps(x), grid)
    return np.asarray(hidden).reshape(len(x), -1), np.asarray(probabilities), sequence, steps
