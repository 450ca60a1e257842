"""Run preprocessing over a dataset: decode each clip once, extract every missing modality, write the cache.

Safety rules: the cache belongs to one source (CACHE/source.json) and is locked while a run writes to it;
a corrupt or foreign feature file counts as missing and is recomputed; a full or read-only disk stops the run
with a message naming the folder; one Ctrl-C stops every worker and ends with what finished; workers exit
when their parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from gvs.core.cluster import EngineOptions, limit_threads
from gvs.core.errors import DiskError, InputError, Interrupted
from gvs.core.io import atomic_write_text
from gvs.core.vocabulary import MODALITIES
from gvs.core.workspace import CacheDir, ClipRecord, FeatureStore
from gvs.engine.ray_pool import check_visible, ray_session, run_on_actors

from .config import PreprocessConfig, fingerprint, modality_params
from .decode import decode_clip
from .engine import describe
from .labels import discover
from .precision import resolve_precision
from .resolve import model_file_checksums, resolve_config

log = logging.getLogger(__name__)


@dataclass
class ClipOutcome:
    """What happened to one clip: per modality done / skipped / failed, reasons, flags and stage seconds."""

    key: str
    status: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0


@dataclass
class RunSummary:
    """Counts of clips done (any modality extracted), skipped (all cached) and failed, with reasons."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    not_taken: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    fingerprints: dict[str, str] = field(default_factory=dict)
    total: int = 0
    interrupted: bool = False
    precision: str = ""  # TensorFlow's precision and why, then each backbone's engine/precision, e.g. "float32 (...);
    # backbones: scene openvino/int8 (auto: ...); pose openvino/float32 (...)"

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def add(self, outcome: ClipOutcome) -> None:
        """Count one clip's outcome: failed when any modality failed, done when any was extracted, else skipped.

        Parameters
        ----------
        outcome : ClipOutcome
        """
        states = set(outcome.status.values())
        if "failed" in states:
            self.failed += 1
            self.failures[outcome.key] = outcome.reasons
        elif "done" in states:
            self.done += 1
        else:
            self.skipped += 1
        if outcome.flags:
            self.flags[outcome.key] = outcome.flags
        for stage, seconds in outcome.seconds.items():
            self.stage_seconds.setdefault(stage, []).append(seconds)
        self.peak_memory_mb = max(self.peak_memory_mb, outcome.peak_memory_mb)


def make_extractor(modality: str, config: PreprocessConfig):
    """The extractor of one modality, its models loaded.

    Parameters
    ----------
    modality : str
        One of MODALITIES: "scene", "pose", "audio" or "faces".
    config : PreprocessConfig

    Returns
    -------
    extractor : Extractor

    Raises
    ------
    InputError
        ``modality`` is none of MODALITIES.
    """
    if modality == "scene":
        from .scene import SceneExtractor as extractor_class
    elif modality == "pose":
        from .pose import PoseExtractor as extractor_class
    elif modality == "audio":
        from .audio import AudioExtractor as extractor_class
    elif modality == "faces":
        from .faces import FaceExtractor as extractor_class
    else:
        raise InputError(f"no extractor for modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    return extractor_class(config)


class ClipProcessor:
    """Extracts the missing modalities of one clip at a time; each model is loaded once, on first need."""

    def __init__(self, config: PreprocessConfig, stores: dict[str, FeatureStore]) -> None:
        self.config = config
        self.stores = stores
        self.extractors: dict = {}

    def extractor(self, modality: str):
        """The extractor of ``modality``, made on first need and kept.

        Parameters
        ----------
        modality : str

        Returns
        -------
        extractor : Extractor
        """
        if modality not in self.extractors:
            self.extractors[modality] = make_extractor(modality, self.config)
        return self.extractors[modality]

    def __call__(self, clip: ClipRecord) -> ClipOutcome:
        outcome = ClipOutcome(clip.key)
        todo = [m for m, store in self.stores.items() if not store.has(clip.key)]
        outcome.status = {m: "skipped" for m in self.stores if m not in todo}
        if not todo:
            return outcome
        audio = "audio" in todo
        sample_rate = self.extractor("audio").sample_rate if audio else None
        started = time.perf_counter()
        try:
            decoded = decode_clip(
                clip.path,
                self.config.frame_step,
                self.config.n_frames,
                sample_rate,
                self.config.audio_seconds + self.config.audio_hop if audio else None,
            )
        except Exception as error:  # every decode failure is this clip's failure, never the run's
            return self._fail_all(outcome, todo, clip, f"decode: {error}")
        outcome.seconds["decode"] = time.perf_counter() - started
        outcome.flags.extend(decoded.flags)
        meta = {
            "clip": clip.name,
            "split": clip.split,
            "label": clip.label,
            "path": str(clip.path),
            "fps": decoded.fps,
            "frame_indices": decoded.frame_indices,
        }
        for modality in todo:
            started = time.perf_counter()
            try:
                result = self.extractor(modality).extract(decoded)
                self.stores[modality].write(clip.key, result.arrays, dict(meta, flags=result.flags))
            except DiskError:
                raise  # every later clip would fail the same way: stop the run
            except Exception as error:  # one modality failing leaves the others and the run going
                log.debug("%s %s failed", clip.key, modality, exc_info=True)
                self._fail(outcome, modality, clip, f"{type(error).__name__}: {error}")
                continue
            outcome.seconds[modality] = time.perf_counter() - started
            outcome.status[modality] = "done"
            outcome.flags.extend(f for f in result.flags if f not in outcome.flags)
        outcome.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return outcome

    def _fail(self, outcome: ClipOutcome, modality: str, clip: ClipRecord, reason: str) -> None:
        outcome.status[modality] = "failed"
        outcome.reasons[modality] = f"{clip.path}: {reason}"
        self.stores[modality].write_failure(clip.key, outcome.reasons[modality])

    def _fail_all(self, outcome: ClipOutcome, todo: list[str], clip: ClipRecord, reason: str) -> ClipOutcome:
        for modality in todo:
            self._fail(outcome, modality, clip, reason)
        return outcome


_WORKER: ClipProcessor | None = None


def _die_with_parent(parent: int) -> None:
    """End this worker when its parent process ends, even by kill -9 (no orphans holding gigabytes)."""
    try:  # Linux: the kernel sends SIGKILL when the parent dies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # elsewhere: poll the parent id
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(config: PreprocessConfig, stores: dict[str, FeatureStore], threads: int, parent: int) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _die_with_parent(parent)
    limit_threads(threads)
    _WORKER = ClipProcessor(config, stores)


def _run_in_worker(clip: ClipRecord) -> ClipOutcome:
    assert _WORKER is not None
    return _WORKER(clip)


def _processor_on_node(config: PreprocessConfig, stores: dict[str, FeatureStore], shared: list[Path]) -> ClipProcessor:
    """A Ray actor's ClipProcessor, once the node is seen to share the cache and the dataset (``shared``)."""
    check_visible(shared)
    return ClipProcessor(config, stores)


def _worker_failed(clip: ClipRecord, stores: dict[str, FeatureStore], error: BaseException) -> ClipOutcome:
    """The outcome of a clip whose worker process died (a native crash, a kill, a lost node)."""
    reason = f"{clip.path}: worker failed: {type(error).__name__}: {error}"
    return ClipOutcome(clip.key, {m: "failed" for m in stores}, {m: reason for m in stores})


def prepare_stores(
    cache: CacheDir, config: PreprocessConfig, modalities: tuple[str, ...], writable: bool = True
) -> tuple[PreprocessConfig, dict[str, FeatureStore]]:
    """Resolve 'auto' settings and model files, and open one fingerprinted feature store per modality.

    Parameters
    ----------
    cache : CacheDir
    config : PreprocessConfig
    modalities : tuple of str
    writable : bool
        Write each store's parameters and clear its temporary files.

    Returns
    -------
    config : PreprocessConfig
        Resolved (see resolve_config).
    stores : dict of str to FeatureStore
        One per modality.
    """
    config = resolve_config(config, modalities)
    stores = {}
    for modality in modalities:
        params = modality_params(config, modality, model_file_checksums(modality))
        store = cache.store(modality, fingerprint(params))
        if writable:
            store.write_params(params)
            store.clean_temporary()
        stores[modality] = store
    return config, stores


def run_preprocess(
    source: str | Path,
    cache: str | Path,
    config: PreprocessConfig = PreprocessConfig(),
    modalities: tuple[str, ...] = MODALITIES,
    workers: int = 1,
    progress: bool = True,
    splits: tuple[str, ...] | None = None,
    engine: EngineOptions | None = None,
) -> RunSummary:
    """Extract the features of every clip under ``source`` into ``cache``; cached clips are skipped.

    ``engine`` with ``engine="ray"`` runs the clips on a Ray cluster's actors (``workers`` is then ignored for
    ``engine.workers``); the cache and the dataset must be at the same path on every node.
    Returns a RunSummary and writes it to CACHE/logs/. Bad clips are recorded, never raised. Raises
    Interrupted (with ``.summary``) on Ctrl-C, DiskError when the cache cannot be written, CacheError when the
    cache belongs to another source or another run holds it.

    Parameters
    ----------
    source : str or Path
        A dataset (see labels.discover).
    cache : str or Path
        The cache folder.
    config : PreprocessConfig
    modalities : tuple of str
    workers : int
        Processes on this machine (local engine).
    progress : bool
        Show a progress bar.
    splits : tuple of str or None
        Only these splits; None for all.
    engine : EngineOptions or None
        None for the local engine.

    Returns
    -------
    summary : RunSummary
    """
    from tqdm import tqdm

    cache_dir = CacheDir(Path(cache).absolute())  # absolute: Ray actors elsewhere write to the same path
    precision = "{} ({})".format(*resolve_precision(config.precision))
    if any(m in modalities for m in ("scene", "pose")):
        precision += f"; backbones: {describe(config, tuple(m for m in ('scene', 'pose') if m in modalities))}"
    dataset = discover(source)
    clips = [c for c in dataset.clips if splits is None or c.split in splits]
    with cache_dir.lock() as writable:
        if writable or cache_dir.source_path.is_file():  # read-only: still refuse another source's cache
            cache_dir.claim_source(dataset.source_record())
        config, stores = prepare_stores(cache_dir, config, modalities, writable)
        cache_dir.write_clips(dataset.clips, dataset.classes)
        summary = RunSummary(
            missing=dataset.missing,
            not_taken=dataset.not_taken,
            total=len(clips),
            fingerprints={m: s.fingerprint for m, s in stores.items()},
            precision=precision,
        )
        started = time.perf_counter()
        bar = tqdm(total=len(clips), unit="clip", desc="preprocess", disable=not progress, dynamic_ncols=True)
        try:
            if engine is not None and engine.engine == "ray":
                shared = [cache_dir.source_path, dataset.source]
                outcomes_of = _outcomes_on_ray(clips, config, stores, engine, shared)
            else:
                outcomes_of = _outcomes(clips, config, stores, workers)
            with contextlib.closing(outcomes_of) as outcomes:  # stops workers at once
                for outcome in outcomes:
                    summary.add(outcome)
                    bar.set_postfix(done=summary.done, skipped=summary.skipped, failed=summary.failed, refresh=False)
                    bar.update()
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            bar.close()
            summary.seconds = time.perf_counter() - started
            _record(cache_dir, summary, writable)
    if summary.interrupted:
        error = Interrupted(
            f"interrupted; {summary.finished} of {summary.total} clips finished "
            f"({summary.done} done, {summary.skipped} cached, {summary.failed} failed), "
            "re-run to resume"
        )
        error.summary = summary
        raise error
    return summary


def _record(cache: CacheDir, summary: RunSummary, writable: bool) -> None:
    """Set the current fingerprints and write the run log (a read-only cache that needed nothing is left as is)."""
    try:
        cache.set_current_fingerprints(summary.fingerprints)
        if writable:
            atomic_write_text(cache.log_path(), json.dumps(asdict(summary), indent=2))
    except DiskError:
        if summary.done or summary.failed:
            raise
        log.warning("%s is read-only: nothing needed computing, the run log was not written", cache.root)


def _outcomes_on_ray(
    clips: list[ClipRecord],
    config: PreprocessConfig,
    stores: dict[str, FeatureStore],
    engine: EngineOptions,
    shared: list[Path],
) -> Iterator[ClipOutcome]:
    """Yield one ClipOutcome per clip from a pool of Ray actors, each with its own ClipProcessor (models loaded once
    per actor); a clip whose actor keeps dying fails with the reason, as a dead local worker's does."""
    if not clips:
        return
    with ray_session(engine) as ray:
        factory = functools.partial(_processor_on_node, config, stores, shared)
        for clip, result in run_on_actors(ray, factory, clips, engine):
            yield result if isinstance(result, ClipOutcome) else _worker_failed(clip, stores, result)


def _outcomes(
    clips: list[ClipRecord], config: PreprocessConfig, stores: dict[str, FeatureStore], workers: int
) -> Iterator[ClipOutcome]:
    """Yield one ClipOutcome per clip, in this process (workers=1) or in a pool of spawned worker processes."""
    if workers <= 1 or len(clips) <= 1:
        processor = ClipProcessor(config, stores)
        yield from (processor(clip) for clip in clips)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(config, stores, threads, os.getpid()),
    )
    finished = False
    try:
        futures = {pool.submit(_run_in_worker, clip): clip for clip in clips}
        for future in as_completed(futures):
            try:
                yield future.result()
            except DiskError:
                raise
            except Exception as error:  # a worker that died (e.g. a native crash) fails its clip, not the run
                yield _worker_failed(futures[future], stores, error)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # Ctrl-C, an error or an abandoned generator: stop the workers now, not after their queues
            processes = list((pool._processes or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=10)
