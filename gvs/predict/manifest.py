"""The run manifest of a `gvs predict` output folder, and the output names of a run's videos.

OUT/run.json::

    {"format": 1, "bundle": <the bundle's manifest sha256>, "options": {"stride", "pool", "precision", "backend"},
     "settings": {what predictions.json records of the last predictor}, "videos": {<name>: {"video": <absolute
     path>, "fingerprint": <digest>, "state": "complete" | "partial" | "failed", "finished": <time>}}}

A video is complete once its record (videos/<name>.json) and its timeline are written; a re-run reuses it when its
fingerprint (the bundle, the options, the video file's path, size and modification time) is unchanged. "partial"
holds the windows predicted before an interruption, "failed" a video that could not be predicted: both are
predicted again by the next run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from gvs.core.errors import CacheError, CorruptFileError
from gvs.core.io import atomic_write_json, digest_of, read_json
from gvs.core.workspace import PredictionsDir, check_key

MANIFEST_FORMAT = 1
STATES: tuple[str, ...] = ("complete", "partial", "failed")


def _safe(name: str) -> str:
    """``name`` with each path part usable as a file name ('.', '..' and backslashes replaced by '_')."""
    parts = [part.replace("\\", "_") for part in name.split("/")]
    return "/".join("_" if part in ("", ".", "..") else part for part in parts)


def output_names(paths: list[Path]) -> dict[Path, str]:
    """{path: output name}, unique per path: the file name without its extension, or, for paths sharing one (in
    any case), the path from their common folder without the extension (``d1/clip``, ``d2/clip``), with the
    extension where that is not enough (``clip.mp4``, ``clip.mkv``) and a number after that."""
    absolute = {path: Path(os.path.abspath(path)) for path in paths}
    stems = Counter(path.stem.casefold() for path in absolute.values())
    shared = [a for a in absolute.values() if stems[a.stem.casefold()] > 1]
    common = Path(os.path.commonpath([a.parent for a in shared])) if shared else None
    names = {
        path: a.stem if stems[a.stem.casefold()] == 1 else a.relative_to(common).with_suffix("").as_posix()
        for path, a in absolute.items()
    }
    taken = Counter(name.casefold() for name in names.values())
    names = {path: f"{name}{path.suffix}" if taken[name.casefold()] > 1 else name for path, name in names.items()}
    taken = Counter(name.casefold() for name in names.values())
    names = {
        path: f"{name}-{number}" if taken[name.casefold()] > 1 else name
        for number, (path, name) in enumerate(names.items(), start=1)
    }
    return {path: _safe(name) for path, name in names.items()}


def video_fingerprint(path: Path, run_key: str) -> str:
    """What a video's outputs depend on: ``run_key`` (bundle and options) and the file's path, size and mtime."""
    try:
        status = os.stat(path)
        stamp = [status.st_size, status.st_mtime_ns]
    except OSError:  # a missing file is predicted (and fails) each run
        stamp = None
    return digest_of([run_key, os.path.abspath(path), stamp], 16)


class RunManifest:
    """OUT/run.json: which videos of the folder are complete, for which bundle and options.

    ``bundle``: the bundle's manifest sha256; ``options``: the options that change predictions (stride, pool,
    precision, backend as asked for)."""

    def __init__(self, folder: PredictionsDir, bundle: str, options: dict) -> None:
        self.folder = folder
        self.bundle = bundle
        self.options = dict(options)
        self.run_key = digest_of({"bundle": bundle, "options": self.options, "format": MANIFEST_FORMAT}, 16)
        self.videos: dict[str, dict] = {}
        self.settings: dict = {}
        self.note = ""  # why an earlier manifest was not used (unreadable), for the summary
        if folder.manifest.is_file():
            try:
                earlier = read_json(folder.manifest)
                self.videos = dict(earlier.get("videos", {}))
                self.settings = dict(earlier.get("settings", {}))
            except (CorruptFileError, AttributeError, TypeError) as error:
                self.note = f"{folder.manifest} could not be read ({error}); every video is predicted again"

    def reusable(self, name: str, path: Path) -> dict | None:
        """The record (videos/<name>.json) of ``path`` when it is complete with this bundle and these options."""
        entry = self.videos.get(name)
        if not isinstance(entry, dict) or entry.get("state") != "complete":
            return None
        if entry.get("fingerprint") != video_fingerprint(path, self.run_key):
            return None
        try:
            record = read_json(self.folder.record(name))
        except (CorruptFileError, OSError):
            return None
        if record.get("windows") and not self.folder.timeline(name).is_file():
            return None
        return record

    def keep_only(self, names: set[str]) -> list[str]:
        """Forget the videos not in ``names`` and delete their files (an output folder holds one run's videos);
        the names forgotten."""
        gone = sorted(set(self.videos) - names)
        for name in gone:
            self.discard(name)
        return gone

    def discard(self, name: str) -> None:
        """Forget video ``name`` and delete its files (its record, timeline and EmotiW file), without writing the
        manifest: it is predicted again."""
        self.videos.pop(name, None)
        try:
            check_key(name)
        except CacheError:  # not a name this package writes (an edited manifest): no file of ours
            return
        for path in (self.folder.record(name), self.folder.timeline(name), self.folder.emotiw / f"{name}.txt"):
            path.unlink(missing_ok=True)

    def mark(self, name: str, path: Path, state: str) -> None:
        """Record ``state`` for video ``name`` and write the manifest (atomically)."""
        assert state in STATES, state
        self.videos[name] = {
            "video": os.path.abspath(path),
            "fingerprint": video_fingerprint(path, self.run_key),
            "state": state,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.save()

    def save(self) -> None:
        atomic_write_json(
            self.folder.manifest,
            {
                "format": MANIFEST_FORMAT,
                "bundle": self.bundle,
                "options": self.options,
                "settings": self.settings,
                "videos": self.videos,
            },
        )
