"""`gvs serve`: a web app to upload a video (or pick a sample) and get its verdict, timeline and report."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

from gvs.core.command import add_people_arguments, positive_float, positive_int
from gvs.core.errors import GVSError, InputError, Interrupted
from preprocess.engine import BACKENDS
from preprocess.precision import PRECISIONS

from .settings import MB, default_store

MAX_PORT = 65535
STOPPED_LINE = "interrupted; gvs serve stopped (jobs it had not finished are marked failed: upload them again)"

DESCRIPTION = (
    "Serve a web app: upload a video (drag and drop or file picker) or pick a sample clip, follow its job, get the "
    "verdict, each modality's and the fused probabilities, the timeline and the `gvs report` page. Reports are "
    "quick by default (occlusion and gradients, no LIME: a 5-s clip's verdict in a few seconds, its report in about "
    "15 s); --full-report adds LIME."
)
EPILOG = """\
pages: /  (upload or pick a sample)   /jobs/ID  (progress, then the result)   /jobs/ID/report.html
API:   POST /api/jobs  (multipart field `file`, or form field `sample`) -> 202 {"id": ..., "page": ...}
       GET  /api/jobs/ID  -> status (queued/running/done/failed), stage, position, verdict, probabilities
       GET  /api/samples   GET /api/health;   errors are {"error": "..."} with status 400/404/413/415/422/503/507

jobs and uploads are kept in --store (default $GVS_HOME/serve, else ~/.cache/group-video-sentiment/serve) and
deleted after --keep-hours or when the folder passes --store-gb. There is no login: anyone who can reach the
address can upload, and anyone with a job's link can see it. It listens on 127.0.0.1 (this machine only) unless
--host says otherwise.

examples:
  gvs serve                                            the last exported bundle, http://127.0.0.1:8000
  gvs serve --model runs/demo/bundle --port 8080
  curl -F file=@wedding.mp4 http://127.0.0.1:8000/api/jobs
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs serve`."""
    parser.add_argument(
        "--model", type=Path, help="a bundle folder or .zip, or a RUNS folder (default: the last exported bundle)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=port_number, default=8000, help="port, 1 to 65535 (default 8000)")
    parser.add_argument(
        "--full-report", action="store_true", help="LIME and every key frame in the reports (~4x slower than quick)"
    )
    parser.add_argument("--workers", type=positive_int, default=1, help="jobs run at once, each with its models (1)")
    parser.add_argument("--queue", type=positive_int, default=16, help="jobs that may wait; more get 503 (16)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=200.0, help="largest upload (200 MB)")
    parser.add_argument("--max-minutes", type=positive_float, default=10.0, help="longest video taken (10 min)")
    parser.add_argument("--store", type=Path, help=f"folder of jobs and uploads (default {default_store()})")
    parser.add_argument("--keep-hours", type=positive_float, default=24.0, help="jobs are deleted after (24 h)")
    parser.add_argument("--store-gb", type=positive_float, default=5.0, help="the store's size cap (5 GB)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="backbone arithmetic (default auto)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="backbone engine (default auto)")
    add_people_arguments(parser, blur=False)
    parser.add_argument(
        "--blur-faces", action="store_true", help="blur every face in the reports and the job pages' thumbnails"
    )


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    port = positive_int(text)
    if port > MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is 1 to {MAX_PORT}, got {port}; pass another --port (e.g. 8000)")
    return port


def check_port_free(host: str, port: int) -> None:
    """InputError naming the port when something already listens there (uvicorn would only log it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InputError(f"cannot listen on {host}:{port} ({error.strerror}); pass another --port") from error


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    """Check the model and the port, then serve until Ctrl-C."""
    import uvicorn

    from gvs.predict.bundle import last_bundle, load_bundle

    from .app import create_app
    from .settings import ServeSettings

    model = args.model or last_bundle()
    if model is None:
        raise InputError("no --model given and no bundle exported yet; run `gvs run` or `gvs export` first")
    bundle = load_bundle(model)  # checks every file now, so a bad --model fails here and not in a worker
    check_port_free(args.host, args.port)
    settings = ServeSettings(
        model=model,
        store=args.store,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_seconds=args.max_minutes * 60,
        workers=args.workers,
        queue_size=args.queue,
        keep_seconds=args.keep_hours * 3600,
        store_bytes=int(args.store_gb * 1000 * MB),
        full_report=args.full_report,
        precision=args.precision,
        backend=args.backend,
        people=args.people,
        blur_faces=args.blur_faces,
    )
    print(f"model: {model} ({bundle.fusion_name}); {'full' if args.full_report else 'quick'} reports")
    print(f"jobs kept in {settings.store}")
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach it can upload videos (there is no login)")
    print(f"serving on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    config = uvicorn.Config(
        create_app(settings), host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=2
    )
    server = _quiet_server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn raises the signal it caught again once it has stopped
        pass
    if not server.started:
        raise GVSError(f"the server did not start on {args.host}:{args.port}; the lines above say why")
    # A worker still loading its models or running a job cannot be stopped, and the interpreter would wait for it
    # at exit (TensorFlow's threads); every job's state is on disk already, so the process ends here.
    print(STOPPED_LINE, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(Interrupted.exit_code)


def _quiet_server(config):
    """A uvicorn Server whose log goes quiet on the signal that stops it (the command prints one line instead)."""
    import uvicorn

    class QuietStop(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
            super().handle_exit(sig, frame)

    return QuietStop(config)
