"""Downloads and imports of model files: checked against the registry's checksum, written whole or not at all.

A download streams into a hidden temporary file beside the target (gvs.core.io.atomic_write_bytes) while it is
hashed; only a complete file with the right checksum is renamed into place. A 404, a cut connection or a wrong
checksum leaves nothing behind and raises ModelFileError naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gvs.core.errors import GVSError, ModelFileError
from gvs.core.io import atomic_write_bytes

from .model_files import verified, writable_model_dir
from .model_registry import KERAS, MIRROR_ENV, TOOLKIT, ModelFile, checksum, download_url, keras_models_dir

TIMEOUT_S = 30  # per read of the connection
BLOCK = 1 << 16


def destination(spec: ModelFile) -> Path | None:
    """Where ``spec`` is downloaded or imported to (None for files a package installs).

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    path : Path or None
    """
    if spec.home == TOOLKIT:
        return writable_model_dir() / spec.filename
    if spec.home == KERAS:
        return keras_models_dir() / spec.filename
    return None


def _fix(spec: ModelFile, target: Path) -> str:
    return (
        f"download it on a machine with internet (`gvs models fetch`) and copy it in with "
        f"`gvs models import FOLDER`, or put it at {target}"
    )


def _stream(response, spec: ModelFile, url: str, handle: IO[bytes], progress: bool) -> None:
    """Copy ``response`` into ``handle``, hashing it; raise ModelFileError on a short read or a wrong checksum."""
    expected = checksum(spec)
    hasher = hashlib.new(expected[0] if expected else "sha256")
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=spec.filename, file=sys.stderr)
    received = 0
    try:
        while True:
            block = response.read(BLOCK)
            if not block:
                break
            handle.write(block)
            hasher.update(block)
            received += len(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    if expected is not None and hasher.hexdigest() != expected[1]:
        raise ModelFileError(
            f"{spec.filename} downloaded from {url} has {expected[0]} {hasher.hexdigest()}, expected {expected[1]}; "
            f"nothing was written. The server holds another file (check {MIRROR_ENV} if set) or the download was "
            "altered; try again later or fetch it elsewhere and `gvs models import FOLDER`."
        )


def download(spec: ModelFile, target: Path, progress: bool | None = None) -> Path:
    """Download ``spec`` to ``target`` (checksum-checked, atomic); ``progress`` None: a bar when stderr is a tty.

    Parameters
    ----------
    spec : ModelFile
    target : Path
        The file to write.
    progress : bool or None
        Show a progress bar.

    Returns
    -------
    target : Path
    """
    url = download_url(spec)
    if url is None:
        raise ModelFileError(f"{spec.filename} is not downloaded by gvs: {spec.install or spec.source}")
    show = sys.stderr.isatty() if progress is None else progress
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "group-video-sentiment"})
    except ValueError as error:  # not a URL (a mistyped GVS_MODEL_MIRROR)
        raise ModelFileError(f"cannot download {spec.filename}: {error}; check {MIRROR_ENV} if set") from None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            atomic_write_bytes(target, lambda handle: _stream(response, spec, url, handle, show))
    except urllib.error.HTTPError as error:
        raise ModelFileError(
            f"cannot download {spec.filename} from {url}: HTTP {error.code} {error.reason}; {_fix(spec, target)}"
        ) from None
    except urllib.error.URLError as error:
        raise ModelFileError(
            f"cannot download {spec.filename} from {url}: {error.reason} (no network?); {_fix(spec, target)}"
        ) from None
    except (http.client.HTTPException, ConnectionError, TimeoutError) as error:
        what = "the connection was cut mid-file" if isinstance(error, http.client.IncompleteRead) else str(error)
        raise ModelFileError(
            f"cannot download {spec.filename} from {url}: {what}; nothing was written. Run `gvs models fetch` "
            f"again, or {_fix(spec, target)}"
        ) from None
    return target


@dataclass(frozen=True)
class Imported:
    """What `gvs models import` did with one file of the folder."""

    name: str
    source: Path
    target: Path | None
    outcome: str  # "imported", "already there", "wrong checksum", "not importable"


def import_file(name: str, spec: ModelFile, source: Path) -> Imported:
    """Copy ``source`` to ``spec``'s home when its checksum is right (atomic); never over a verified copy.

    Parameters
    ----------
    name : str
        The registry name of ``spec``.
    spec : ModelFile
    source : Path
        The file to copy.

    Returns
    -------
    imported : Imported
        Where it went and what happened.
    """
    target = destination(spec)
    if target is None or checksum(spec) is None:
        return Imported(name, source, None, "not importable")
    if not verified(source, spec):
        return Imported(name, source, target, "wrong checksum")
    if target.is_file() and verified(target, spec):
        return Imported(name, source, target, "already there")
    with source.open("rb") as original:
        atomic_write_bytes(target, lambda handle: shutil.copyfileobj(original, handle, BLOCK))
    if not verified(target, spec):  # the source changed while it was copied
        target.unlink(missing_ok=True)
        raise ModelFileError(f"{source} changed while it was copied to {target}; run the import again")
    return Imported(name, source, target, "imported")


def import_folder(folder: Path, registry: dict[str, ModelFile]) -> list[Imported]:
    """Import every file of ``folder`` whose name is a registry file name (one level, symlinks followed).

    Parameters
    ----------
    folder : Path
    registry : dict of str to ModelFile

    Returns
    -------
    imported : list of Imported
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GVSError(f"{folder} is not a folder; give the folder that holds the model files")
    by_filename = {spec.filename: (name, spec) for name, spec in registry.items()}
    found = [path for path in sorted(folder.iterdir()) if path.name in by_filename and path.is_file()]
    return [import_file(*by_filename[path.name], path) for path in found]
