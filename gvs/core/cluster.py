"""How to run per-clip work: the engine options every command shares, ``local`` (this machine's processes) or
``ray`` (a Ray cluster's actors), and the thread limit a worker sets for itself.

The Ray actor pool is gvs.engine.ray_pool; this module imports no Ray. docs/cluster.md says how to start a cluster.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .errors import InputError

ENGINES: tuple[str, ...] = ("local", "ray")
RAY_INSTALL = "pip install -e '.[ray]' (in this checkout) or pip install 'ray[default]>=2.52'"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """How to run per-clip work.

    engine : "local" or "ray"
    address : Ray's address: None starts Ray on this machine for this run, "auto" joins the cluster this machine
        is part of (``ray start``), "HOST:PORT" a head node's
    workers : actors (ray) or processes (local); None = one per ``cpus_per_worker`` CPUs of the cluster (ray)
    cpus_per_worker : CPUs (threads) reserved per actor; None = the cluster's CPUs / workers, else 2
    gpus_per_worker : GPUs per actor (fractions share one GPU); 0 = CPU only
    dashboard : start (or show) Ray's dashboard and print its address
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0
    dashboard: bool = False


def check_engine_options(options: EngineOptions) -> None:
    """Refuse Ray options given without --engine ray (they would be silently ignored)."""
    if options.engine == "ray":
        if options.gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker {options.gpus_per_worker}: must be 0 or more")
        return
    given = [
        name
        for name, value in (
            ("--ray-address", options.address),
            ("--cpus-per-worker", options.cpus_per_worker),
            ("--gpus-per-worker", options.gpus_per_worker or None),
            ("--ray-dashboard", options.dashboard or None),
        )
        if value is not None
    ]
    if given:
        raise InputError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --engine ray")


def limit_threads(threads: int) -> None:
    """Keep a worker to its share of the cores (TensorFlow, OpenCV and BLAS would each take all of them)."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import cv2
    import tensorflow as tf

    cv2.setNumThreads(threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran something in this process: its pools are fixed
        log.debug("TensorFlow's thread pools were already set", exc_info=True)
