"""Label files and dataset discovery: VGAF label files, CSV lists and bare folders -> clip records."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CLASS_NAMES: tuple[str, ...] = ("Positive", "Neutral", "Negative")
VGAF_CODES: dict[str, int] = {"1": 0, "2": 1, "3": 2}  # VGAF code -> class index
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class LabelFileError(ValueError):
    """A label file that cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset: where it is, which split it belongs to and its class index (None if unlabelled)."""

    name: str
    split: str
    path: Path
    label: int | None = None

    @property
    def key(self) -> str:
        """Unique key across splits, used for cache file names."""
        return f"{self.split}/{self.name}"


def read_vgaf_labels(path: str | Path) -> dict[str, int]:
    """Read an EmotiW VGAF label file (header ``Vid_name Label``; codes 1/2/3) -> {clip: class index}."""
    path = Path(path)
    labels: dict[str, int] = {}
    with path.open() as handle:
        header = handle.readline().split()
        if header[:2] != ["Vid_name", "Label"]:
            raise LabelFileError(f"{path}: first line must be 'Vid_name Label', found {' '.join(header)!r}")
        for line_number, line in enumerate(handle, start=2):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in VGAF_CODES:
                raise LabelFileError(
                    f"{path}:{line_number}: expected '<clip> <code>' with code 1 (Positive), 2 (Neutral) "
                    f"or 3 (Negative), found {line.strip()!r}"
                )
            labels[fields[0]] = VGAF_CODES[fields[1]]
    return labels


def label_index(name: str, where: str) -> int:
    """Class index of a label name (case-insensitive) or VGAF code; ``where`` names the source in errors."""
    text = name.strip()
    if text in VGAF_CODES:
        return VGAF_CODES[text]
    for index, class_name in enumerate(CLASS_NAMES):
        if text.lower() == class_name.lower():
            return index
    raise LabelFileError(f"{where}: unknown label {name!r}; use one of {', '.join(CLASS_NAMES)} (or codes 1/2/3)")


def read_csv_labels(path: str | Path) -> dict[str, int]:
    """Read a CSV with columns ``video,label`` (label names or codes) -> {video path as written: class index}."""
    path = Path(path)
    labels: dict[str, int] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"video", "label"} <= set(reader.fieldnames):
            raise LabelFileError(f"{path}: needs a header with columns 'video,label', found {reader.fieldnames}")
        for line_number, row in enumerate(reader, start=2):
            labels[row["video"].strip()] = label_index(row["label"] or "", f"{path}:{line_number}")
    return labels


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


@dataclass
class Dataset:
    """Clips found on disk plus the labelled clips that a label file names but that are missing on disk."""

    clips: list[ClipRecord]
    missing: dict[str, list[str]]

    def splits(self) -> list[str]:
        return sorted({clip.split for clip in self.clips})


def discover(source: str | Path) -> Dataset:
    """Find the clips of a dataset.

    ``source`` may be a VGAF root (split folders ``Train``/``Val``/``Test`` with ``<Split>_labels.txt``
    beside them), a CSV ``video,label`` (paths relative to the CSV; split ``all``), or a folder of videos
    (split = folder name, unlabelled).
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder; pass a VGAF root, a CSV video,label or a video folder")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise LabelFileError(f"{source}: a file source must be a CSV with columns video,label")
        return _discover_csv(source)
    split_dirs = sorted(p for p in source.iterdir() if p.is_dir() and _videos_in(p))
    label_files = sorted(source.glob("*_labels.txt"))
    if split_dirs or label_files:
        return _discover_vgaf(source, split_dirs, label_files)
    videos = _videos_in(source)
    if not videos:
        raise FileNotFoundError(f"{source}: no videos ({', '.join(VIDEO_EXTENSIONS)}) and no split folders found")
    return Dataset([ClipRecord(p.stem, source.name, p) for p in videos], {})


def _discover_vgaf(root: Path, split_dirs: list[Path], label_files: list[Path]) -> Dataset:
    clips: list[ClipRecord] = []
    missing: dict[str, list[str]] = {}
    labels_by_split = {f.name[: -len("_labels.txt")]: read_vgaf_labels(f) for f in label_files}
    for split, labels in labels_by_split.items():
        folder = root / split
        on_disk = {p.stem: p for p in _videos_in(folder)} if folder.is_dir() else {}
        for name, label in labels.items():
            if name in on_disk:
                clips.append(ClipRecord(name, split, on_disk[name], label))
            else:
                missing.setdefault(split, []).append(name)
        for name in sorted(set(on_disk) - set(labels)):
            clips.append(ClipRecord(name, split, on_disk[name], None))
    for folder in split_dirs:
        if folder.name not in labels_by_split:
            clips.extend(ClipRecord(p.stem, folder.name, p) for p in _videos_in(folder))
    return Dataset(clips, missing)


def _discover_csv(path: Path) -> Dataset:
    clips: list[ClipRecord] = []
    missing: list[str] = []
    for video, label in read_csv_labels(path).items():
        video_path = (path.parent / video).absolute()
        if video_path.is_file():
            clips.append(ClipRecord(video_path.stem, "all", video_path, label))
        else:
            missing.append(video)
    return Dataset(clips, {"all": missing} if missing else {})
