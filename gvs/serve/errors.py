"""Errors a request can cause: each carries the HTTP status it is answered with, and a message saying what to do."""

from __future__ import annotations

from gvs.core.errors import InputError


class RequestError(InputError):
    """A request the server refuses; ``status`` is the HTTP status of the answer (400, 404, 413, 415, 422, 503,
    507)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def no_room(reason: str) -> RequestError:
    """507: the store cannot take the upload (``reason``: the disk error, without the server's paths)."""
    return RequestError(
        507,
        f"the server has no room to store this video ({reason}); try again later, or ask whoever runs gvs serve "
        "to free space in its store (gvs serve --store, --store-gb)",
    )
