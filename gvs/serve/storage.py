"""The job folders: one per job under the store, named by a random id, holding only files of fixed names.

STORE/<id>/upload            the uploaded video (its original name is kept only as text, in state.json)
STORE/<id>/upload.part       the upload while it streams in (removed if the upload stops)
STORE/<id>/state.json        the job's state (status, stage, verdict...)
STORE/<id>/timeline.png      the fused probability of each class over time
STORE/<id>/predictions.json  what `gvs predict` writes to predictions.json, for this one video
STORE/<id>/report.html       the `gvs report` page

Ids are ``secrets.token_urlsafe`` (16 characters, 96 random bits) and every id from a request is checked against
ID_PATTERN before it becomes part of a path; only SERVED names are ever served. Cleanup deletes finished jobs
older than the age limit, then the oldest ones while the store holds more than its size cap.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path

from gvs.core.io import disk_errors

from .errors import RequestError

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16}")
UPLOAD = "upload"
PARTIAL = "upload.part"
STATE = "state.json"
TIMELINE = "timeline.png"
PREDICTIONS = "predictions.json"
REPORT = "report.html"
SERVED: dict[str, str] = {  # the only files served from a job folder, with their media types
    REPORT: "text/html; charset=utf-8",
    TIMELINE: "image/png",
    PREDICTIONS: "application/json",
}


def check_id(job_id: str) -> str:
    """``job_id`` if it has the shape of an id; else RequestError 404 (a bad id is an unknown job)."""
    if not ID_PATTERN.fullmatch(job_id):
        raise RequestError(404, f"no job {job_id!r}: a job id is 16 letters, digits, '-' or '_'; check the link")
    return job_id


class JobStore:
    """The folder of job folders, with its age limit (seconds) and size cap (bytes)."""

    def __init__(self, root: str | Path, keep_seconds: float, max_bytes: int) -> None:
        self.root = Path(root)
        self.keep_seconds = keep_seconds
        self.max_bytes = max_bytes
        with disk_errors(self.root):
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def create(self) -> tuple[str, Path]:
        """A new job's id and its (empty, private) folder."""
        while True:
            job_id = secrets.token_urlsafe(12)
            folder = self.root / job_id
            try:
                with disk_errors(self.root):
                    folder.mkdir(mode=0o700)
            except FileExistsError:
                continue
            return job_id, folder

    def folder(self, job_id: str) -> Path:
        """The folder of job ``job_id`` (the id checked first); RequestError 404 when there is none."""
        folder = self.root / check_id(job_id)
        if not folder.is_dir():
            raise RequestError(404, f"no job {job_id!r}: it never existed or was cleaned up; upload the video again")
        return folder

    def served_file(self, job_id: str, name: str) -> Path:
        """The file ``name`` of job ``job_id`` if ``name`` is one of SERVED and it is written; else RequestError 404."""
        if name not in SERVED:
            raise RequestError(404, f"no file {name!r} here: a job serves {', '.join(sorted(SERVED))}")
        path = self.folder(job_id) / name
        if not path.is_file():
            raise RequestError(404, f"{name} of job {job_id} is not written (yet); wait for the job to finish")
        return path

    def remove(self, job_id: str) -> None:
        """Delete a job's folder (nothing if it is gone)."""
        shutil.rmtree(self.root / check_id(job_id), ignore_errors=True)

    def job_ids(self) -> list[str]:
        """Ids of every job folder in the store (other entries are left alone)."""
        return [p.name for p in self.root.iterdir() if p.is_dir() and ID_PATTERN.fullmatch(p.name)]

    def sweep(self, active: set[str]) -> list[str]:
        """Delete the folders of jobs not in ``active`` that are older than the age limit, then the oldest ones
        while the store is over its size cap; the ids deleted."""
        now = time.time()
        folders = []  # (last change, id, bytes) of every job folder
        for job_id in self.job_ids():
            try:
                folders.append((self.root.joinpath(job_id).stat().st_mtime, job_id, _size(self.root / job_id)))
            except FileNotFoundError:  # removed meanwhile
                continue
        total = sum(size for *_, size in folders)
        removed = []
        for mtime, job_id, size in sorted(folders):
            if job_id in active or (now - mtime <= self.keep_seconds and total <= self.max_bytes):
                continue
            self.remove(job_id)
            total -= size
            removed.append(job_id)
        return removed


def _size(folder: Path) -> int:
    """Bytes of the files directly in ``folder`` (job folders have no sub-folders)."""
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total
