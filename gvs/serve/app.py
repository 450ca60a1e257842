"""The FastAPI app of `gvs serve`: pages, the JSON API and the job folders' files.

Pages                          JSON API
GET  /                         GET  /api/samples          the sample clips' names
POST /jobs       (form) -> 303 POST /api/jobs             multipart ``file``, or ``sample``: 202 {"id", "page", ...}
GET  /jobs/{id}                GET  /api/jobs/{id}        status, stage, queue position, verdict, probabilities,
                                                          class_names (the bundle's classes, in order)
GET  /jobs/{id}/{file}         GET  /api/health           models loaded, queue
     report.html, timeline.png, predictions.json (?download=1: as an attachment); nothing else from a job folder

Every error is ``{"error": "..."}`` with its status under /api/ and an error page elsewhere: 400 (no video, empty
file, bad form), 404 (unknown job, file or route), 408 (stalled upload), 413 (over the size limit), 415 (not a
video, or not multipart), 422 (too long, bad parameters), 503 (queue full), 507 (the store's disk is full or cannot
be written).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from gvs.core.errors import DiskError
from gvs.core.io import disk_errors

from . import pages
from .errors import RequestError, no_room
from .jobs import Job, JobBoard, WorkerPool, queue_full_message
from .media import check_video, find_samples
from .runner import maker_factory as real_maker_factory
from .runner import run_job
from .settings import ServeSettings
from .storage import PARTIAL, SERVED, UPLOAD, JobStore, check_id
from .uploads import FILE_FIELD, Upload, receive_upload

log = logging.getLogger(__name__)
STOP_WAIT_S = 1.0  # how long a stopping server waits for a running job (then marks it failed)
STOPPED = "the server was stopped before this job finished; upload the video again"
STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    ),
]


class Services:
    """What the routes share: settings, the job folders, the job board, the workers and the sample clips."""

    def __init__(self, settings: ServeSettings, maker_factory: Callable[[], object], samples: dict[str, Path]) -> None:
        self.settings = settings
        self.store = JobStore(settings.store, settings.keep_seconds, settings.store_bytes)
        self.board = JobBoard(self.store, settings.queue_size)
        self.pool = WorkerPool(self.board, maker_factory, run_job, settings.workers)
        self.samples = samples

    def start(self) -> None:
        self.board.recover()
        self.sweep()
        self.pool.start()

    def stop(self) -> None:
        """Stop the workers and mark each job still queued or running failed on disk (a restart would, later)."""
        self.pool.stop(timeout=STOP_WAIT_S)
        for job_id in self.board.active():
            self.board.update(job_id, status="failed", stage="failed", error=STOPPED, finished=time.time())

    def sweep(self) -> None:
        """Delete expired jobs and the oldest ones over the size cap."""
        self.board.forget(self.store.sweep(self.board.active()))

    def job_for(self, upload: Upload, job_id: str, folder: Path) -> Job:
        """The job an upload asks for: its file (checked by decoding) or a listed sample; RequestError otherwise."""
        if upload.file_name is not None:
            (folder / PARTIAL).replace(folder / UPLOAD)
            check_video(folder / UPLOAD, upload.file_name, self.settings.max_seconds)
            return Job(job_id, upload.file_name, folder / UPLOAD, folder)
        sample = upload.fields.get("sample")
        if sample:
            if sample not in self.samples:
                raise RequestError(400, f"no sample clip {sample!r}; GET /api/samples lists them")
            return Job(job_id, sample, self.samples[sample], folder)
        if FILE_FIELD in upload.fields:
            raise RequestError(400, f"the field {FILE_FIELD!r} must be a file: curl -F {FILE_FIELD}=@video.mp4 ...")
        raise RequestError(400, f"no video: send one in the multipart field {FILE_FIELD!r}, or a 'sample' name")

    async def intake(self, request: Request) -> str:
        """Receive one upload (or sample pick), check it and queue its job; the job's id. On any error the job's
        folder is removed (a partial upload included) and the error raised."""
        if self.board.full():
            raise RequestError(503, queue_full_message(self.settings.queue_size))
        try:
            with disk_errors(self.store.root):
                job_id, folder = self.store.create()
        except DiskError as error:
            raise _no_room(error) from error
        try:
            with disk_errors(self.store.root):
                upload = await receive_upload(request, folder / PARTIAL, self.settings.max_upload_bytes)
                job = await run_in_threadpool(self.job_for, upload, job_id, folder)
            self.board.submit(job)
        except DiskError as error:
            self.store.remove(job_id)
            raise _no_room(error) from error
        except BaseException:
            self.store.remove(job_id)
            raise
        await run_in_threadpool(self.sweep)
        return job_id


def _no_room(error: DiskError) -> RequestError:
    """The 507 a disk error while storing an upload gets; the server's log names the folder (no traceback)."""
    log.warning("an upload was refused: %s", error)
    cause = error.__cause__
    reason = getattr(cause, "strerror", None) or "the disk is full or cannot be written"
    return no_room(reason.lower())


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(request: Request, status: int, message: str) -> Response:
    """The JSON error under /api/, the error page elsewhere."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return pages.error_page(status, message)


def create_app(
    settings: ServeSettings,
    maker_factory: Callable[[], object] | None = None,
    samples: dict[str, Path] | None = None,
) -> FastAPI:
    """The app. ``maker_factory``: what each worker calls once for its models (default: a ServeReportMaker of
    ``settings.model``); ``samples``: {name: path} of the sample clips (default: find_samples())."""
    services = Services(
        settings,
        maker_factory or real_maker_factory(settings),
        find_samples() if samples is None else samples,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        services.start()
        yield
        services.stop()

    app = FastAPI(title="gvs serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app)
    _add_pages(app, services)
    _add_api(app, services)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> Response:
        response = _error(request, error.status, str(error))
        if error.status == 503:
            response.headers["retry-after"] = "60"
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        message = "no such page" if error.status_code == 404 else str(error.detail)
        return _error(request, error.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _error(request, 422, f"bad request parameters ({where})")

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, error: ClientDisconnect) -> Response:
        log.info("an upload was cut off by the client; its partial file was removed")
        return Response(status_code=400)


def _add_pages(app: FastAPI, services: Services) -> None:
    settings = services.settings

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        groups: dict[str, list[str]] = {}
        for name in services.samples:
            groups.setdefault(name.rsplit("/", 1)[0], []).append(name)
        return pages.render(
            "home.html.j2",
            samples=groups,
            max_upload_bytes=settings.max_upload_bytes,
            max_minutes=settings.max_seconds / 60,
            keep_hours=settings.keep_seconds / 3600,
            model=str(settings.model or "a test's model"),
            full_report=settings.full_report,
            counts=services.board.counts(),
            ready=services.pool.ready.is_set(),
            notes=services.pool.notes,
        )

    @app.post("/jobs", include_in_schema=False)
    async def post_form(request: Request) -> Response:
        job_id = await services.intake(request)
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @app.get("/jobs/{job_id}", include_in_schema=False)
    async def job_page(job_id: str) -> Response:
        return pages.job_page(_view(services, job_id))

    @app.get("/jobs/{job_id}/{name}", include_in_schema=False)
    async def job_file(job_id: str, name: str, download: bool = False) -> Response:
        path = services.store.served_file(job_id, name)
        view = services.board.view(job_id)
        stem = view["name"].rsplit(".", 1)[0] or "video"
        filename = f"{stem}-{name}" if download else None
        return FileResponse(path, media_type=SERVED[name], filename=filename, content_disposition_type="attachment")


def _view(services: Services, job_id: str) -> dict:
    """The API's view of a job, saying when the models are still loading."""
    view = services.board.view(check_id(job_id))
    if view["status"] == "queued" and not services.pool.ready.is_set():
        view["detail"] = "the models are loading"
    return view


def _add_api(app: FastAPI, services: Services) -> None:
    @app.post("/api/jobs", status_code=202)
    async def post_job(request: Request) -> JSONResponse:
        job_id = await services.intake(request)
        return JSONResponse(
            {"id": job_id, "page": f"/jobs/{job_id}", "api": f"/api/jobs/{job_id}"},
            status_code=202,
            headers={"location": f"/api/jobs/{job_id}"},
        )

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str) -> JSONResponse:
        return JSONResponse(_view(services, job_id), headers={"cache-control": "no-store"})

    @app.get("/api/samples")
    async def get_samples() -> dict:
        return {"samples": list(services.samples)}

    @app.get("/api/health")
    async def health() -> dict:
        pool = services.pool
        return {"ready": pool.ready.is_set(), "error": pool.error, "workers": pool.workers, **services.board.counts()}
