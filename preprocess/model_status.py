"""The state of every registry entry on this machine: where it is, its size and whether its checksum holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .model_fetch import destination
from .model_files import locate, package_path, verified
from .model_registry import PACKAGE, TOOLKIT, CacheFolder, ModelFile

VERIFIED, MISSING, WRONG, UNCHECKED, NOT_INSTALLED = (
    "verified",
    "missing",
    "wrong checksum",
    "unchecked",
    "not installed",
)


@dataclass(frozen=True)
class EntryStatus:
    """One registry entry as found here: ``state`` one of verified, missing, wrong checksum, unchecked (no
    published checksum), not installed (its package is absent), or for a cache folder 'N files' / 'empty'."""

    name: str
    entry: ModelFile | CacheFolder
    state: str
    path: Path | None  # the copy found (or where it would go)
    size: int | None  # bytes


def file_status(name: str, spec: ModelFile) -> EntryStatus:
    """Where ``spec`` is and whether it is the right file.

    Parameters
    ----------
    name : str
        The registry name.
    spec : ModelFile

    Returns
    -------
    status : EntryStatus
    """
    if spec.home == TOOLKIT:
        found, wrong = locate(spec)
        if found is not None:
            return EntryStatus(name, spec, VERIFIED, found, found.stat().st_size)
        if wrong:
            return EntryStatus(name, spec, WRONG, wrong[0], wrong[0].stat().st_size)
        return EntryStatus(name, spec, MISSING, destination(spec), None)
    path = package_path(spec) if spec.home == PACKAGE else destination(spec)
    if path is None:
        return EntryStatus(name, spec, NOT_INSTALLED, None, None)
    if not path.is_file():
        return EntryStatus(name, spec, MISSING, path, None)
    state = {True: VERIFIED, False: WRONG, None: UNCHECKED}[verified(path, spec)]
    return EntryStatus(name, spec, state, path, path.stat().st_size)


def folder_status(name: str, entry: CacheFolder) -> EntryStatus:
    """A cache folder: its file count and total size ('not available' where its module is absent).

    Parameters
    ----------
    name : str
        The registry name.
    entry : CacheFolder

    Returns
    -------
    status : EntryStatus
    """
    folder = entry.path()
    if folder is None:
        return EntryStatus(name, entry, "not available", None, None)
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    state = f"{len(files)} file{'s' if len(files) > 1 else ''}" if files else "empty"
    return EntryStatus(name, entry, state, folder, sum(p.stat().st_size for p in files) if files else None)


def statuses(registry: dict[str, ModelFile | CacheFolder]) -> list[EntryStatus]:
    """Every entry's status, in registry order.

    Parameters
    ----------
    registry : dict of str to ModelFile or CacheFolder

    Returns
    -------
    statuses : list of EntryStatus
    """
    return [
        folder_status(name, entry) if isinstance(entry, CacheFolder) else file_status(name, entry)
        for name, entry in registry.items()
    ]
