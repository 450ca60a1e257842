"""Errors a request can cause: each carries the HTTP status it is answered with, and a message saying what to do."""

from __future__ import annotations

from gvs.core.errors import InputError


class RequestError(InputError):
    """A request the server refuses; ``status`` is the HTTP status of the answer (400, 404, 413, 415, 422, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
