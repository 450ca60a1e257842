"""Arithmetic precision of the scene ResNet-50 on TensorFlow: float32, or bfloat16 where it is fast.

``auto`` picks bfloat16 on a CPU with bfloat16 instructions (x86 AVX512_BF16 or AMX-BF16) or when TensorFlow
sees a GPU, float32 elsewhere (docs/engine.md: on a CPU with openvino the scene backbone runs int8 there instead).
Measured on an AVX512_BF16 CPU: the scene ResNet-50 1.5x faster with maps at cosine >= 0.9999 per frame. FER, the
pose graph and the small trained heads stay float32: bfloat16 moves the pose keypoints, and FER kept the top
expression of only 0.956 of yuface's faces (tests/test_precision.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from gvs.core.errors import InputError

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "int8")  # int8: OpenVINO only (engine.py)
CPU_BFLOAT16_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of bfloat16 arithmetic
CPUINFO = Path("/proc/cpuinfo")


@cache
def cpu_bfloat16_flags() -> tuple[str, ...]:
    """The bfloat16 instruction flags this CPU reports (empty where /proc/cpuinfo is absent, e.g. macOS)."""
    try:
        words = set(CPUINFO.read_text(errors="replace").split())
    except OSError:
        return ()
    return tuple(flag for flag in CPU_BFLOAT16_FLAGS if flag in words)


def gpu_count() -> int:
    """GPUs TensorFlow sees."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_precision(precision: str) -> tuple[str, str]:
    """``(float32 | bfloat16, why)``: TensorFlow's precision for a requested one; ``auto`` decides by the hardware.

    int8 exists only on the OpenVINO backend (preprocess/engine.py): models that stay on TensorFlow run float32.

    Parameters
    ----------
    precision : str
        One of PRECISIONS.

    Returns
    -------
    precision : str
        "float32" or "bfloat16".
    why : str
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8":
        return "float32", "int8 is for OpenVINO backbones; TensorFlow models run float32"
    if precision != "auto":
        return precision, "asked for"
    if gpu_count():
        return "bfloat16", "auto: a GPU is used"
    flags = cpu_bfloat16_flags()
    if flags:
        return "bfloat16", f"auto: the CPU has {'/'.join(flags)}"
    return "float32", "auto: no GPU and no bfloat16 instructions on this CPU"


def keras_policy(precision: str) -> str:
    """The Keras dtype policy of a backbone in this precision: variables stay float32, arithmetic in bfloat16.

    Parameters
    ----------
    precision : str
        "float32" or "bfloat16".

    Returns
    -------
    policy : str
    """
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


@contextlib.contextmanager
def building_in(precision: str) -> Iterator[None]:
    """Keras layers built inside this block compute in ``precision``; the global policy is restored after.

    Parameters
    ----------
    precision : str
        "float32" or "bfloat16".
    """
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras_policy(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def keras_model_in(model, precision: str):
    """``model`` (a functional Keras model) rebuilt with its layers computing in ``precision``, same weights.

    Parameters
    ----------
    model : keras.Model
    precision : str
        "float32" or "bfloat16".

    Returns
    -------
    model : keras.Model
        ``model`` itself for float32.
    """
    if precision == "float32":
        return model
    import keras

    def in_policy(layer):
        config = layer.get_config()
        config["dtype"] = keras_policy(precision)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=in_policy)
    copy.set_weights(model.get_weights())
    return copy
