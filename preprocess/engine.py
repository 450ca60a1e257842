"""Which inference engine runs each frozen backbone (scene ResNet-50, pose graph), in which precision.

``--backend``: ``tensorflow`` (the path for GPUs and training), ``openvino`` (a CPU engine: the backbones
converted once to OpenVINO IR, cached in ``engine_cache_dir()``, see preprocess/openvino_net.py) or ``auto``:
TensorFlow where TensorFlow sees a GPU; on a CPU, OpenVINO for each backbone it was measured faster on
(``OPENVINO_FASTER``) when the ``openvino`` package is installed, else TensorFlow, saying so in one line.

``--precision`` int8 is NNCF post-training quantisation on OpenVINO; ``auto`` picks it for a backbone only where
its agreement limits held (``INT8_HOLDS``; scene maps cosine >= 0.99 per frame against TensorFlow float32 and the
trained scene model's probabilities within 0.02; pose: >= 99 % of keypoints within 2 px and the people count
equal on >= 99 % of frames; tests/test_backend.py checks them on two shared clips). The figures behind both
tables are in docs/engine.md.

A resolved configuration records each backbone's choice in ``PreprocessConfig.backend`` as a plan such as
``scene=openvino/int8,pose=tensorflow/float32`` (each modality's fingerprint holds its own entry, see
preprocess/config.py), so workers and caches say what really ran.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from gvs.core.errors import InputError

from .config import PreprocessConfig, modality_backend
from .precision import PRECISIONS, gpu_count, resolve_precision

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "tensorflow", "openvino")
# --backend and --precision as every command that runs the backbones explains them.
BACKEND_HELP = (
    "backbone engine: auto (default; OpenVINO on a CPU where installed, TensorFlow on a GPU), tensorflow or openvino "
    "(docs/engine.md)"
)
PRECISION_HELP = (
    "backbone arithmetic: auto (default; int8 scene on OpenVINO where it keeps the answers, bfloat16 on a CPU with "
    "AVX512_BF16/AMX or a GPU, else float32), float32, bfloat16 (slow on a CPU without it) or int8 (OpenVINO; "
    "docs/engine.md)"
)
BACKBONES: tuple[str, ...] = ("scene", "pose")
# The one folder of compiled backbones (IR files and OpenVINO's compiled-network cache); `gvs models` lists it.
ENGINE_CACHE_ENV = "GVS_ENGINE_CACHE"
# Not under $GVS_HOME: the IR files are a pure function of their key, so every GVS_HOME (a test's, a user's) shares
# them and the int8 calibration (about a minute) runs once per machine.
DEFAULT_ENGINE_CACHE = Path.home() / ".cache" / "group-video-sentiment" / "engine"
# Measured on the project's 2-core AVX2 CPU, both engines in one process (docs/engine.md).
OPENVINO_FASTER: dict[str, bool] = {"scene": True, "pose": True}
INT8_HOLDS: dict[str, bool] = {"scene": True, "pose": False}
MISSING_OPENVINO = (
    "openvino is not installed: the backbones run on TensorFlow "
    "(pip install openvino nncf for the faster CPU engine, or pass --backend tensorflow to silence this)"
)


def engine_cache_dir() -> Path:
    """The folder of compiled backbones: $GVS_ENGINE_CACHE, else ~/.cache/group-video-sentiment/engine."""
    return Path(os.environ.get(ENGINE_CACHE_ENV) or DEFAULT_ENGINE_CACHE)


@cache
def openvino_available() -> bool:
    """Whether the openvino package imports."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _say_openvino_missing() -> None:
    """The one-line fallback notice, once per process."""
    log.warning(MISSING_OPENVINO)


@dataclass(frozen=True)
class Plan:
    """How one backbone runs: ``backend`` tensorflow | openvino, ``precision`` float32 | bfloat16 | int8, and why."""

    backend: str
    precision: str
    why: str = "asked for"

    def __str__(self) -> str:
        return f"{self.backend}/{self.precision}"


def check_choice(backend: str, precision: str) -> None:
    """An InputError naming the valid values when ``backend`` or ``precision`` is unknown.

    Parameters
    ----------
    backend : str
        One of BACKENDS.
    precision : str
        One of PRECISIONS.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def _backend_for(backbone: str, backend: str, precision: str) -> tuple[str, str]:
    """(tensorflow | openvino, why) for one backbone."""
    if backend == "tensorflow":
        if precision == "int8":
            raise InputError("--precision int8 runs on OpenVINO: use --backend openvino or auto, not tensorflow")
        return "tensorflow", "asked for"
    if backend == "openvino":
        if not openvino_available():
            raise InputError(
                "--backend openvino: the openvino package is not installed; pip install openvino nncf "
                "(or use --backend auto or tensorflow)"
            )
        return "openvino", "asked for"
    if not openvino_available():
        _say_openvino_missing()
        return "tensorflow", "auto: openvino is not installed"
    if precision == "int8" and INT8_HOLDS[backbone]:
        return "openvino", "auto: int8 asked for"
    if gpu_count():
        return "tensorflow", "auto: a GPU is used"
    if OPENVINO_FASTER[backbone]:
        return "openvino", "auto: OpenVINO measured faster on CPU"
    return "tensorflow", "auto: OpenVINO measured no faster for this backbone"


def plan_backbone(backbone: str, backend: str = "auto", precision: str = "auto") -> Plan:
    """The Plan of ``backbone`` (scene | pose) for a requested backend and precision (see the module doc).

    Parameters
    ----------
    backbone : str
        "scene" or "pose".
    backend : str
        One of BACKENDS.
    precision : str
        One of PRECISIONS.

    Returns
    -------
    plan : Plan
    """
    check_choice(backend, precision)
    engine, why = _backend_for(backbone, backend, precision)
    tf_precision, precision_why = resolve_precision(precision)  # float32 | bfloat16; int8 -> float32
    if engine == "openvino" and INT8_HOLDS[backbone] and precision in ("int8", "auto"):
        used = "int8"
        precision_why = "asked for" if precision == "int8" else "auto: int8 holds its agreement limits"
    elif backbone == "pose":  # bfloat16 and int8 move its keypoints (preprocess/pose.py, docs/engine.md)
        used, precision_why = "float32", "pose keeps float32"
    else:
        used = tf_precision
    return Plan(engine, used, f"{why}; {precision_why}")


def plan_of(config: PreprocessConfig, backbone: str) -> Plan:
    """The Plan of ``backbone`` in ``config``: the recorded one of a resolved config, else planned now.

    Parameters
    ----------
    config : PreprocessConfig
    backbone : str
        "scene" or "pose".

    Returns
    -------
    plan : Plan
    """
    recorded = modality_backend(config.backend, backbone)
    if "/" in recorded:
        engine, precision = recorded.split("/", 1)
        return Plan(engine, precision, "resolved")
    return plan_backbone(backbone, recorded, config.precision)


def resolve_backends(config: PreprocessConfig, backbones: tuple[str, ...] = BACKBONES) -> PreprocessConfig:
    """``config`` with ``backend`` as a plan (``scene=openvino/int8,pose=tensorflow/float32``) and ``precision``
    as TensorFlow's (float32 | bfloat16, for the models that stay on TensorFlow such as FER).

    Parameters
    ----------
    config : PreprocessConfig
    backbones : tuple of str
        The backbones planned.

    Returns
    -------
    config : PreprocessConfig
    """
    plans = {b: plan_of(config, b) for b in backbones}
    backend = ",".join(f"{b}={plan}" for b, plan in plans.items())
    return replace(config, backend=backend, precision=resolve_precision(config.precision)[0])


def describe(config: PreprocessConfig, backbones: tuple[str, ...] = BACKBONES) -> str:
    """One line: each backbone's engine and precision, and why (e.g. for `gvs predict`'s output).

    Parameters
    ----------
    config : PreprocessConfig
    backbones : tuple of str

    Returns
    -------
    line : str
    """
    return "; ".join(f"{b} {plan} ({plan.why})" for b in backbones for plan in [plan_of(config, b)])
