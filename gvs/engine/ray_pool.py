"""A pool of Ray actors that runs per-clip work for ``--engine ray``.

Each actor builds its worker once (models loaded once per actor) and takes one item at a time; an actor that dies
(its node lost, a native crash, a kill) is replaced and its item retried on another actor, up to ``retries`` times,
after which the item is reported failed with the reason. Ray is optional: it is imported only here, only when
``--engine ray`` is asked for (``pip install -e '.[ray]'``).

Files the actors read and write (videos, bundles, the cache) must be at the same path on every node: a shared
filesystem (NFS, a cluster filesystem) mounted alike everywhere. docs/cluster.md says how to start a cluster.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gvs.core.cluster import RAY_INSTALL, EngineOptions, limit_threads
from gvs.core.errors import GVSError, InputError

DEFAULT_CPUS_PER_WORKER = 2  # threads per actor when neither --workers nor --cpus-per-worker says otherwise
FORWARDED_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL",)  # with every GVS_* variable: the actors' model folders and home

log = logging.getLogger(__name__)


class ClusterError(GVSError):
    """The Ray cluster cannot be reached, is too small for the actors asked for, or a node cannot see a path."""


def import_ray():
    """The ray module, or an InputError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise InputError(
            f"--engine ray needs Ray, which is not installed here ({error}); install it: {RAY_INSTALL}"
        ) from None
    return ray


def forwarded_environment() -> dict[str, str]:
    """Variables every actor gets from this process (a cluster's workers start from the node's own environment)."""
    return {k: v for k, v in os.environ.items() if k.startswith("GVS_") or k in FORWARDED_VARIABLES}


@contextmanager
def ray_session(options: EngineOptions) -> Iterator[Any]:
    """Connect to (or start) Ray for the length of the block; a Ray started here is shut down after it."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(options.address)
        try:
            context = ray.init(
                address=options.address,
                include_dashboard=options.dashboard or None,
                runtime_env={"env_vars": forwarded_environment()},
                logging_level=logging.WARNING,
                log_to_driver=False,  # failures come back with their items; node logs: /tmp/ray/session_latest/logs
            )
        except ConnectionError as error:
            raise ClusterError(
                f"--ray-address {options.address}: no Ray cluster answers there ({error}); start one with "
                "`ray start --head` (docs/cluster.md), or leave --ray-address out to run Ray on this machine"
            ) from None
        if options.dashboard:
            url = context.dashboard_url
            print(f"Ray dashboard: http://{url}" if url else "Ray dashboard: not running (needs ray[default])")
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def _check_reachable(address: str | None, seconds: float = 5.0) -> None:
    """A ClusterError at once when nothing listens at a HOST:PORT address (Ray itself retries for minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address}: expected auto or HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise ClusterError(
            f"--ray-address {address}: no Ray cluster answers there ({error}); start one with `ray start --head` "
            "(docs/cluster.md), or leave --ray-address out to run Ray on this machine"
        ) from None


def plan_actors(cluster: dict[str, float], options: EngineOptions) -> tuple[int, float]:
    """(actors, CPUs per actor) for a cluster of ``cluster`` resources ({"CPU": n, "GPU": n}); refuses more than
    the cluster holds."""
    cpus = float(cluster.get("CPU", 0))
    if options.cpus_per_worker is not None:
        per_actor = options.cpus_per_worker
    elif options.workers:
        per_actor = max(1.0, cpus // options.workers)
    else:
        per_actor = min(float(DEFAULT_CPUS_PER_WORKER), max(1.0, cpus))
    actors = options.workers or max(1, int(cpus // per_actor))
    if actors * per_actor > cpus:
        raise ClusterError(
            f"{actors} actors x {per_actor:g} CPUs need {actors * per_actor:g} CPUs; the cluster has {cpus:g}: "
            "lower --workers or --cpus-per-worker, or add nodes"
        )
    gpus = float(cluster.get("GPU", 0))
    if actors * options.gpus_per_worker > gpus:
        raise ClusterError(
            f"{actors} actors x {options.gpus_per_worker:g} GPUs need {actors * options.gpus_per_worker:g} GPUs; "
            f"the cluster has {gpus:g}: lower --workers or --gpus-per-worker"
        )
    return actors, per_actor


def check_visible(paths: Iterable[str | Path]) -> None:
    """A ClusterError naming this node and the path when one of ``paths`` is not there."""
    for path in paths:
        if not Path(path).exists():
            raise ClusterError(
                f"node {socket.gethostname()} cannot see {path}: put it on a filesystem every node mounts at the "
                "same path (docs/cluster.md)"
            )


class ActorFailed(GVSError):
    """An item whose actor died more often than the retries allow (the reason names the last error)."""


def run_on_actors(
    ray, worker_factory: Callable[[], Callable[[Any], Any]], items: list, options: EngineOptions, retries: int = 2
) -> Iterator[tuple[Any, Any]]:
    """Yield (item, result) as each item finishes on a pool of Ray actors; result is an ActorFailed for an item
    whose actor died ``retries + 1`` times. An exception the worker raises stops the run (workers report their
    items' own failures in their results).

    ``worker_factory`` is called once per actor, on its node, and returns the callable each item goes to; it must
    be picklable (a module-level function or a functools.partial of one). Actors are killed when the generator
    ends, however it ends.
    """
    wanted, cpus = plan_actors(ray.cluster_resources(), options)
    remote = ray.remote(num_cpus=cpus, num_gpus=options.gpus_per_worker, max_restarts=0, max_task_retries=0)(_Actor)
    threads = max(1, int(cpus))

    def spawn():
        return remote.options(scheduling_strategy="SPREAD").remote(worker_factory, threads, os.getcwd())

    actors = [spawn() for _ in range(max(1, min(wanted, len(items))))]
    try:
        _ready(ray, actors)
        queue, idle, pending, deaths = deque(range(len(items))), list(actors), {}, [0] * len(items)
        while queue or pending:
            while queue and idle:
                actor, index = idle.pop(), queue.popleft()
                pending[actor.run.remote(items[index])] = (actor, index)
            (finished,), _ = ray.wait(list(pending), num_returns=1)
            actor, index = pending.pop(finished)
            try:
                result = ray.get(finished)
            except ray.exceptions.RayTaskError as error:  # the worker itself raised: not an item's failure
                raise error.as_instanceof_cause() from None
            except ray.exceptions.RayActorError as error:  # the actor (or its node) died: replace it, retry the item
                ray.kill(actor)
                actors.remove(actor)
                actors.append(spawn())
                idle.append(actors[-1])
                deaths[index] += 1
                if deaths[index] <= retries:
                    log.warning("an actor died on %s (%s); retrying on another", items[index], _first_line(error))
                    queue.appendleft(index)
                else:
                    yield items[index], ActorFailed(f"worker died {deaths[index]} times: {_first_line(error)}")
                continue
            idle.append(actor)
            yield items[index], result
    finally:
        for actor in actors:
            ray.kill(actor)


def _ready(ray, actors: list) -> None:
    """Wait until every actor has built its worker; the first actor's error (e.g. a node that cannot see the cache)
    otherwise."""
    try:
        nodes = ray.get([actor.node.remote() for actor in actors])
    except ray.exceptions.RayTaskError as error:  # the worker could not be built: its own error, as it was raised
        raise (error.cause if isinstance(error.cause, GVSError) else error.as_instanceof_cause()) from None
    except ray.exceptions.RayActorError as error:
        raise ClusterError(f"a Ray actor could not start: {_first_line(error)}") from None
    log.info("%d actors on %d nodes", len(actors), len(set(nodes)))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class _Actor:
    """One Ray actor: builds its worker once (threads limited to its CPUs), then runs item after item; it works in
    the driver's folder where the node has it, so relative paths mean what they meant there."""

    def __init__(self, worker_factory: Callable[[], Callable[[Any], Any]], threads: int, folder: str) -> None:
        if Path(folder).is_dir():
            os.chdir(folder)
        limit_threads(threads)
        self.name = socket.gethostname()
        self.failure: GVSError | None = None
        try:
            self.worker = worker_factory()
        except GVSError as error:  # kept for node(): an actor that dies in __init__ loses its error's type
            self.failure = error

    def node(self) -> str:
        """This actor's node; raises the error its worker could not be built with."""
        if self.failure is not None:
            raise self.failure
        return self.name

    def run(self, item: Any) -> Any:
        return self.worker(item)
