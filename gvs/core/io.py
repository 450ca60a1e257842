"""Files written whole or not at all, CSV through the csv module, sha256, and disk errors that name the folder."""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from .errors import DiskError

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_ERRNOS = {*_FULL_ERRNOS, errno.EROFS, errno.EACCES, errno.EPERM}


def disk_error(folder: Path, error: OSError) -> DiskError:
    """A DiskError naming ``folder``, what went wrong and the free space left there."""
    folder = Path(folder)
    probe = next((p for p in [folder, *folder.parents] if p.exists()), Path("/"))
    try:
        free = f"{shutil.disk_usage(probe).free / 2**30:.1f} GiB free"
    except OSError:
        free = "free space unknown"
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }
    reason = reasons.get(error.errno, error.strerror or str(error))
    fix = (
        "free some space or choose another folder"
        if error.errno in _FULL_ERRNOS
        else "choose a folder you can write to"
    )
    return DiskError(f"cannot write to {folder}: {reason} ({free}); {fix}")


@contextlib.contextmanager
def disk_errors(folder: Path) -> Iterator[None]:
    """Turn a full disk, a read-only file system or a permission error under ``folder`` into a DiskError."""
    try:
        yield
    except OSError as error:
        if error.errno in _DISK_ERRNOS:
            raise disk_error(folder, error) from error
        raise


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new hidden ``.<name>.<random>.tmp`` file next to ``path``, open for writing: its descriptor and path.

    It is created with mode 0666 and the kernel takes the umask off, so it gets the permissions a plain ``open``
    would give it without the umask being read (reading it means setting it, which races other threads).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a temporary file next to ``path``, fsync it, then rename it to ``path``.

    A crash, Ctrl-C or kill leaves at most a hidden ``.<name>.*.tmp`` file, never a partial ``path``. The file
    gets the permissions a plain ``open`` would give it (0666 less the umask).
    """
    path = Path(path)
    with disk_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = _create_temporary(path)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def clean_temporary(folder: Path) -> int:
    """Remove the ``.<name>.*.tmp`` files interrupted atomic writes left under ``folder`` (call only while holding
    the folder's lock, so no other run is writing them); how many."""
    folder = Path(folder)
    leftovers = list(folder.rglob(".*.tmp")) if folder.exists() else []
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return len(leftovers)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: Path, value: object) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict:
    """A JSON file; a corrupt one raises CorruptFileError naming it."""
    from .errors import CorruptFileError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"corrupt file {path}: not valid JSON ({error}); delete it and re-run") from error


def csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    """CSV text written by the csv module (fields with commas, quotes or newlines are quoted)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def atomic_write_csv(path: Path, header: list[str], rows: Iterable[Iterable[object]]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV with a header (a UTF-8 byte-order mark, as Excel writes, is accepted)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_of(value: object, length: int = 12) -> str:
    """Short stable hash of a JSON-able value (dict keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:length]


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``target``; on success it replaces ``target`` (the old one is removed
    only then), on any error it is deleted and ``target`` is left as it was."""
    target = Path(target)
    with disk_errors(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    try:
        yield staging
        with disk_errors(target.parent):
            if target.exists():
                retired = target.with_name(f".{target.name}.{os.getpid()}.retired")
                os.replace(target, retired)
                os.replace(staging, target)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
