"""The frozen backbones on OpenVINO: converted once to IR files cached on disk, compiled per input size, run
frame by frame on parallel inference requests.

A backbone's IR (model.xml + model.bin, weights in float32; int8 ones quantised by NNCF) is saved under
``engine_cache_dir()/ir/<name>-<key>/``, the key a hash of everything the network depends on (weights, input size,
precision, package versions): the conversion (a Keras ResNet-50 takes ~10 s to trace) and the int8 calibration
(~1-2 min) run once per machine. OpenVINO's own CACHE_DIR (``engine_cache_dir()/compiled``) keeps the compiled
networks, so a later process only maps them in.

Each compiled network takes one frame (1, h, w, 3): a batch of any length runs as that many requests on
OpenVINO's throughput streams (AsyncInferQueue), so no batch size ever recompiles (fixed shapes) and both cores
stay busy whatever the chunk size.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

import numpy as np

from gvs.core.errors import InputError
from gvs.core.io import digest_of

from .engine import engine_cache_dir

log = logging.getLogger(__name__)

IR_FILE = "model.xml"
KEY_FILE = "key.json"
OPENVINO_HINTS: dict[str, str] = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}  # int8 layers are in the IR


@cache
def core():
    """One OpenVINO Core per process, with the compiled-network cache on disk."""
    import openvino as ov

    ov_core = ov.Core()
    compiled = engine_cache_dir() / "compiled"
    try:
        compiled.mkdir(parents=True, exist_ok=True)
        ov_core.set_property({"CACHE_DIR": str(compiled)})
    except OSError:  # a read-only home: compile every time, which is only slower
        pass
    return ov_core


def package_versions() -> dict[str, str]:
    """Versions that change an IR: OpenVINO's converter and NNCF's quantiser."""
    from importlib import metadata

    versions = {}
    for name in ("openvino", "nncf"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def cached_ir(name: str, key: dict, build: Callable[[], object]) -> Path:
    """The IR file of network ``name`` for ``key`` (a JSON-able dict); ``build()`` -> openvino.Model makes it
    when it is not cached yet. Written to a temporary folder then renamed, so a crash leaves no half IR.

    Parameters
    ----------
    name : str
    key : dict
        What the IR depends on (package versions are added).
    build : callable
        Returns the openvino.Model to save.

    Returns
    -------
    path : Path
        The cached IR's .xml file.
    """
    import openvino as ov

    key = {**key, "versions": package_versions()}
    root = engine_cache_dir() / "ir"
    folder = root / f"{name}-{digest_of(key)}"
    if (folder / IR_FILE).is_file():
        return folder / IR_FILE
    how_long = "int8 calibration takes about a minute" if "int8" in name else "about 10-30 s"
    log.warning("OpenVINO: building %s once (%s); cached in %s", name, how_long, folder)
    model = build()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    except OSError as error:
        raise InputError(
            f"cannot write the OpenVINO model cache {root} ({error}); set GVS_ENGINE_CACHE to a writable folder "
            "or use --backend tensorflow"
        ) from error
    try:
        ov.save_model(model, staging / IR_FILE, compress_to_fp16=False)
        (staging / KEY_FILE).write_text(json.dumps(key, indent=2, sort_keys=True))
        os.replace(staging, folder)
    except OSError:
        if not (folder / IR_FILE).is_file():  # another process finished first: theirs is the same model
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / IR_FILE


def quantize(model, inputs: Iterable[np.ndarray], subset_size: int):
    """``model`` (openvino.Model) with int8 weights and activations, calibrated on ``inputs`` ((1, h, w, 3) float32
    network inputs) by NNCF's post-training quantisation.

    Parameters
    ----------
    model : openvino.Model
    inputs : iterable of ndarray of shape (1, h, w, 3), float32
    subset_size : int
        How many inputs NNCF calibrates on.

    Returns
    -------
    model : openvino.Model
    """
    try:
        import nncf
    except ImportError as error:
        raise InputError("--precision int8 needs NNCF: pip install nncf (or use --precision float32)") from error
    dataset = nncf.Dataset(list(inputs))
    return nncf.quantize(model, dataset, subset_size=subset_size, fast_bias_correction=True)


def thread_count() -> int | None:
    """The threads a worker may use (gvs.core.cluster.limit_threads sets OMP_NUM_THREADS); None: all cores."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


class OpenVinoNet:
    """An IR file compiled for one frame (1, h, w, 3) at each input size it meets; batches run as parallel requests.

    ``precision``: float32, bfloat16 (OpenVINO's bf16 inference hint, native only with AVX512_BF16/AMX) or int8
    (the IR holds the int8 layers; the rest computes in float32).
    """

    def __init__(self, xml: Path, precision: str) -> None:
        self.xml = Path(xml)
        self.precision = precision
        self._compiled: dict[tuple[int, int], tuple] = {}  # (h, w) -> (compiled model, AsyncInferQueue)

    def _network(self, height: int, width: int):
        import openvino as ov

        if (height, width) not in self._compiled:
            model = core().read_model(self.xml)
            model.reshape([1, height, width, 3])
            config = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[self.precision]}
            threads = thread_count()
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            compiled = core().compile_model(model, "CPU", config)
            self._compiled[height, width] = (compiled, ov.AsyncInferQueue(compiled))
        return self._compiled[height, width]

    def output_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The output shape (1, ...) for one (1, height, width, 3) input.

        Parameters
        ----------
        height, width : int

        Returns
        -------
        shape : tuple of int
        """
        return tuple(self._network(height, width)[0].outputs[0].shape)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Network input (n, h, w, 3) float32 -> output (n, ...) float32, one request per frame."""
        if len(batch) == 0:
            raise ValueError("OpenVinoNet needs at least one frame")
        _, queue = self._network(*batch.shape[1:3])
        outputs: list[np.ndarray | None] = [None] * len(batch)

        def done(request, index: int) -> None:
            outputs[index] = request.get_output_tensor(0).data[0].copy()

        queue.set_callback(done)
        for index in range(len(batch)):
            queue.start_async({0: np.ascontiguousarray(batch[index : index + 1], dtype=np.float32)}, userdata=index)
        queue.wait_all()
        return np.stack(outputs)
