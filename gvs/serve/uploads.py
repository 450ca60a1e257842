"""Receive one upload: a multipart/form-data body streamed to disk in chunks, its size checked while it streams.

The body is never read whole into memory: python-multipart's streaming parser hands each chunk of the part named
``file`` to a file opened in the job folder, and the upload is refused (413) the moment it passes the limit. The
part's file name is kept only as text (``display_name``); the file on disk always has the job folder's fixed name.
Other form fields (``sample``) are small and kept in memory, at most MAX_FIELD_BYTES each.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from .errors import RequestError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024
MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and small fields beside the file
IDLE_TIMEOUT_S = 60.0  # an upload that sends nothing for this long is dropped
MAX_NAME_CHARACTERS = 200
CURL_HINT = "curl -F file=@video.mp4 http://HOST:PORT/api/jobs"


@dataclass
class Upload:
    """What one upload request carried.

    file_name : the file part's name as the client gave it, made displayable (None when no file was sent)
    size : bytes of the file written
    fields : the other form fields, {name: text}
    """

    file_name: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def display_name(raw: str) -> str:
    """A client's file name as text to show: its last path component, control characters dropped, at most
    MAX_NAME_CHARACTERS; "video" when nothing is left. Never used as a path."""
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c)[0] != "C").strip()
    return name[:MAX_NAME_CHARACTERS] or "video"


def too_large_message(max_bytes: int) -> str:
    return (
        f"the upload is over the limit of {max_bytes / 1e6:.3g} MB (gvs serve --max-upload-mb); cut the video shorter"
    )


class _Receiver:
    """python-multipart callbacks: the part named ``file`` goes to ``target`` (counted), other parts to memory."""

    def __init__(self, target: Path, max_bytes: int) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.upload = Upload()
        self.handle: IO[bytes] | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._part: str | None = None  # the current part's field name (None: a part to skip)
        self._to_file = False  # the current part is the uploaded file
        self._field = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._add_header(data[start:end], b""),
            "on_header_value": lambda data, start, end: self._add_header(b"", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition, self._part, self._to_file, self._field = b"", None, False, bytearray()

    def _add_header(self, name: bytes, value: bytes) -> None:
        self._header_name += name
        self._header_value += value

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            self._part = name or None
            return
        file_name = options[b"filename"].decode("utf-8", "replace")
        if name != FILE_FIELD:
            raise RequestError(400, f"a file came in the form field {name!r}; send it as {FILE_FIELD!r}: {CURL_HINT}")
        if self.handle is not None:
            raise RequestError(400, f"send one video per upload (one {FILE_FIELD!r} field)")
        if not file_name:  # a form submitted with no file chosen
            return
        self.upload.file_name = display_name(file_name)
        self.handle = self.target.open("wb")
        self._part, self._to_file = FILE_FIELD, True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._to_file and self.handle is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise RequestError(413, too_large_message(self.max_bytes))
            self.handle.write(data[start:end])
        elif self._part is not None:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD_BYTES:
                raise RequestError(400, f"form field {self._part!r} is over {MAX_FIELD_BYTES} bytes")

    def _end(self) -> None:
        if self._part is not None and not self._to_file:
            self.upload.fields[self._part] = self._field.decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def multipart_boundary(request: Request) -> bytes:
    """The boundary of a multipart/form-data request; RequestError 415 for any other body."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise RequestError(415, f"send the video as multipart/form-data in the field {FILE_FIELD!r}: {CURL_HINT}")
    return options[b"boundary"]


async def receive_upload(request: Request, target: Path, max_bytes: int) -> Upload:
    """Stream the request's multipart body: its ``file`` part into ``target``, other fields into ``fields``.

    RequestError 413 as soon as the file passes ``max_bytes`` (or before reading, when Content-Length says so),
    415 for a body that is not multipart/form-data, 400 for a malformed one, 408 when the client stops sending.
    A client that disconnects raises starlette's ClientDisconnect. The caller removes ``target`` on any error.
    """
    boundary = multipart_boundary(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + MULTIPART_SLACK:
        raise RequestError(413, too_large_message(max_bytes))
    receiver = _Receiver(target, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    chunks = request.stream().__aiter__()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), IDLE_TIMEOUT_S)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RequestError(
                    408, f"the upload stalled (nothing for {IDLE_TIMEOUT_S:.0f} s); send it again"
                ) from None
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        raise RequestError(400, f"malformed multipart/form-data body ({error}); {CURL_HINT}") from error
    finally:
        receiver.close()
    return receiver.upload
