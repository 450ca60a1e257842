"""Jobs: their state (kept on the server, so a page that reloads finds it), the bounded queue, the worker threads.

A job is queued, then running (stage by stage: the prediction over the video's windows, then each report section),
then done or failed. Its state lives in memory and in its folder's state.json (written at each change of stage), so
a restarted server still shows finished jobs; jobs it finds unfinished are marked failed. Each worker thread loads
its own models once (``maker_factory()``) and takes job after job.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gvs.core.errors import GVSError
from gvs.core.io import atomic_write_json, read_json
from gvs.report.stages import REPORT_STAGES

from .errors import RequestError
from .storage import STATE, JobStore

log = logging.getLogger(__name__)

# What the job page says of each stage: serve's own around the report's (their names and labels: gvs.report.stages).
STAGE_LABELS: dict[str, str] = {
    "queued": "waiting in the queue",
    "predict": "decoding the video and predicting its windows",
    **REPORT_STAGES,
    "writing": "writing the report page",
    "done": "done",
    "failed": "failed",
}
FINISHED = ("done", "failed")


@dataclass
class Job:
    """One video's job. ``name``: the uploaded file's name or the sample's, as text only; ``video``: the file the
    worker reads (the job folder's ``upload``, or a sample clip). Probabilities are {class name: p}; ``modalities``
    {modality: {class name: p}} (mean over the windows); ``class_names`` the bundle's classes in order (state.json
    sorts the keys of those dicts); times are seconds since the epoch. ``familiarity`` and ``unfamiliar``: the
    video's familiarity and the scores below the bundle's threshold (gvs.predict.familiarity); ``notes``: what the
    bundle says of itself (the demo banner, no familiarity data). ``people``: the (at most) three people whose
    faces carried the verdict most (runner.top_people: id, top expression, drop, sentence, thumbnail as a data:
    URI); ``people_note``: what the page says of the people instead or besides (none tracked, nobody moved it)."""

    id: str
    name: str
    video: Path
    folder: Path
    status: str = "queued"
    stage: str = "queued"
    detail: str = ""
    stages_done: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    started: float | None = None
    verdict_at: float | None = None
    finished: float | None = None
    verdict: str | None = None
    probabilities: dict[str, float] | None = None
    class_names: list[str] = field(default_factory=list)
    modalities: dict[str, dict[str, float]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    familiarity: float | None = None
    unfamiliar: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    people: list[dict] = field(default_factory=list)
    people_note: str = ""
    error: str = ""
    duration_s: float | None = None
    windows: int = 0
    files: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """The job as JSON (what state.json holds)."""
        return {**dataclasses.asdict(self), "video": str(self.video), "folder": str(self.folder)}

    @classmethod
    def from_record(cls, record: dict) -> Job:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        return cls(**values | {"video": Path(record["video"]), "folder": Path(record["folder"])})


def _seconds(since: float | None, until: float | None) -> float | None:
    return None if since is None or until is None else round(until - since, 2)


class JobBoard:
    """Every job's state and the queue of waiting ones (at most ``queue_size``); safe to use from any thread."""

    def __init__(self, store: JobStore, queue_size: int) -> None:
        self.store = store
        self.queue_size = queue_size
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[str] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False

    def recover(self) -> None:
        """Load the jobs the store holds; one left queued or running by a stopped server is marked failed."""
        for job_id in self.store.job_ids():
            path = self.store.root / job_id / STATE
            try:
                job = Job.from_record(read_json(path) | {"id": job_id, "folder": str(path.parent)})
            except (GVSError, OSError, ValueError, KeyError, TypeError):  # an upload that never became a job, or damage
                continue
            if job.status not in FINISHED:
                job.status, job.stage = "failed", "failed"
                job.error = "the server stopped before this job finished; upload the video again"
                self._save(job)
            with self._changed:
                self._jobs[job.id] = job

    def full(self) -> bool:
        with self._changed:
            return len(self._waiting) >= self.queue_size

    def submit(self, job: Job) -> None:
        """Queue ``job``; RequestError 503 when the queue is full."""
        with self._changed:
            if self._closed:
                raise RequestError(503, "the server is stopping; try again in a minute")
            if len(self._waiting) >= self.queue_size:
                raise RequestError(503, queue_full_message(self.queue_size))
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._changed.notify()
        self._save(job)

    def take(self) -> Job | None:
        """The next waiting job (blocks until there is one); None once the board is closed."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            if self._closed:
                return None
            return self._jobs[self._waiting.popleft()]

    def update(self, job_id: str, save: bool = True, **changes) -> None:
        """Change fields of a job; ``save`` writes its state.json (skip it for frequent, minor changes)."""
        with self._changed:
            job = self._jobs[job_id]
            stage = changes.get("stage", job.stage)
            if stage != job.stage and job.stage != "queued" and stage != "failed":
                job.stages_done = [*job.stages_done, job.stage]
            for name, value in changes.items():
                setattr(job, name, value)
            snapshot = dataclasses.replace(job) if save else None
        if snapshot is not None:
            self._save(snapshot)

    def view(self, job_id: str) -> dict:
        """What the API says of a job (RequestError 404 for an unknown one)."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:
                raise RequestError(
                    404, f"no job {job_id!r}: it never existed or was cleaned up; upload the video again"
                )
            position = self._waiting.index(job_id) + 1 if job.status == "queued" and job_id in self._waiting else 0
            running = sum(j.status == "running" for j in self._jobs.values())
            return public_view(job, position, running)

    def active(self) -> set[str]:
        """Ids of the jobs queued or running (their folders are never cleaned up)."""
        with self._changed:
            return {job_id for job_id, job in self._jobs.items() if job.status not in FINISHED}

    def counts(self) -> dict[str, int]:
        with self._changed:
            return {
                "queued": len(self._waiting),
                "running": sum(j.status == "running" for j in self._jobs.values()),
            }

    def forget(self, job_ids: list[str]) -> None:
        """Drop cleaned-up jobs."""
        with self._changed:
            for job_id in job_ids:
                self._jobs.pop(job_id, None)

    def close(self) -> None:
        """Wake every worker with nothing to do: they stop after their current job."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _save(self, job: Job) -> None:
        try:
            atomic_write_json(job.folder / STATE, job.record())
        except OSError as error:  # a cleaned-up folder or a full disk: the state in memory still serves the pages
            log.warning("cannot save the state of job %s: %s", job.id, error)


def queue_full_message(queue_size: int) -> str:
    return (
        f"the queue is full ({queue_size} videos waiting; gvs serve --queue sets the limit); try again in a few minutes"
    )


def public_view(job: Job, position: int, running: int) -> dict:
    """A job as the JSON API shows it: no server paths, file links only for files written."""
    base = f"/jobs/{job.id}"
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "stage": job.stage,
        "stage_label": STAGE_LABELS.get(job.stage, job.stage),
        "stages_done": [STAGE_LABELS.get(s, s) for s in job.stages_done],
        "detail": job.detail,
        "position": position,
        "running": running,
        "verdict": job.verdict,
        "probabilities": job.probabilities,
        "class_names": job.class_names or list(job.probabilities or {}),
        "modalities": job.modalities,
        "flags": job.flags,
        "familiarity": job.familiarity,
        "unfamiliar": job.unfamiliar,
        "notes": job.notes,
        "people": job.people,
        "people_note": job.people_note,
        "error": job.error or None,
        "duration_s": job.duration_s,
        "windows": job.windows,
        "seconds": {
            "waited": _seconds(job.created, job.started),
            "to_verdict": _seconds(job.created, job.verdict_at),
            "total": _seconds(job.created, job.finished),
        },
        "page": base,
        "files": {name: f"{base}/{name}" for name in job.files},
    }


class WorkerPool:
    """``workers`` threads, each loading its models once with ``maker_factory()`` and running ``run_job(job, maker,
    board)`` on job after job. ``ready`` is set once every worker has tried to load; ``error`` says why loading
    failed (the jobs then fail with it); ``notes``: what the loaded bundle says of itself (the demo banner, no
    familiarity data), for the home page."""

    def __init__(
        self,
        board: JobBoard,
        maker_factory: Callable[[], object],
        run_job: Callable[[Job, object, JobBoard], None],
        workers: int = 1,
    ) -> None:
        self.board = board
        self.maker_factory = maker_factory
        self.run_job = run_job
        self.workers = workers
        self.ready = threading.Event()
        self.error: str | None = None
        self.notes: list[str] = []
        self._loaded = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"gvs-serve-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the board and give each worker ``timeout`` seconds to finish (a running job is not interrupted;
        the threads are daemons and end with the process)."""
        self.board.close()
        for thread in self._threads:
            thread.join(timeout)

    def _load(self) -> object | None:
        try:
            maker = self.maker_factory()
            self.notes = _notes(maker)  # before ready: the home page shows them once the models are loaded
            return maker
        except Exception as error:  # a bad bundle: every job fails saying so, and the server keeps answering
            log.exception("the models could not be loaded")
            self.error = f"the models could not be loaded: {error}"
            return None
        finally:
            with self._lock:
                self._loaded += 1
                if self._loaded == self.workers:
                    self.ready.set()

    def _work(self) -> None:
        maker = self._load()
        while (job := self.board.take()) is not None:
            if maker is None:
                self.board.update(job.id, status="failed", stage="failed", error=self.error, finished=time.time())
                continue
            self.run_job(job, maker, self.board)


def _notes(maker) -> list[str]:
    """What a loaded maker's bundle says of itself (bundle.notes: the demo banner...); none when it cannot say."""
    try:
        return list(maker.describe()[0].get("notes", []))
    except Exception:  # a maker without a describable bundle (a test's fake) shows no banner
        return []
