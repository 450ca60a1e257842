"""Label files and dataset discovery: VGAF label files, CSV lists and folders of videos -> clip records.

Rules (each one keeps a user's data from being mixed, lost or misfiled):

- a source is resolved to an absolute path first, so ``.`` names the folder it is, never the file-system root;
- a folder is a VGAF root when it holds ``<Split>_labels.txt`` files (any case), else a folder of videos whose
  top-level videos form one split (named after the folder) and whose sub-folders' videos form one split each;
- clip keys (``<split>/<name>``) are unique within a source: a CSV's clips are named by their path relative to
  the CSV without the extension, and two videos that would share a key (``clip.mp4`` + ``clip.mkv``) are an error
  that lists them;
- videos that are not taken (a broken symlink, a video at the root of a VGAF layout, a deeper folder) are
  reported with the reason, never dropped silently; a clip listed twice with different labels is an error that
  names both lines.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from gvs.core.errors import InputError, LabelFileError
from gvs.core.vocabulary import CLASS_NAMES, VGAF_CODES, VIDEO_EXTENSIONS
from gvs.core.workspace import ClipRecord

log = logging.getLogger(__name__)
LABEL_FILE_SUFFIX = "_labels.txt"


def _clip_name(text: str) -> str:
    """A clip name as written in a label file, without a video extension (``1_1.mp4`` -> ``1_1``)."""
    path = Path(text)
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else text


def _add_label(
    labels: dict[str, int],
    lines: dict[str, int],
    name: str,
    label: int,
    where: Path,
    line: int,
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> None:
    """Record ``name``'s label; the same label twice warns, two different labels are an error naming both lines."""
    if name in labels:
        if labels[name] != label:
            raise LabelFileError(
                f"{where}:{lines[name]} and line {line}: clip {name!r} is labelled both "
                f"{class_names[labels[name]]} and {class_names[label]}; keep one of the two lines"
            )
        log.warning("%s:%d: clip %r is listed again (line %d) with the same label", where, line, name, lines[name])
        return
    labels[name], lines[name] = label, line


def read_vgaf_labels(path: str | Path) -> dict[str, int]:
    """Read an EmotiW VGAF label file (header ``Vid_name Label``; codes 1/2/3) -> {clip name: class index}.

    A UTF-8 byte-order mark is accepted; names written with a video extension (``1_1.mp4``) mean the clip ``1_1``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    labels : dict of str to int
    """
    path = Path(path)
    labels: dict[str, int] = {}
    lines: dict[str, int] = {}
    with path.open(encoding="utf-8-sig") as handle:
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
            _add_label(labels, lines, _clip_name(fields[0]), VGAF_CODES[fields[1]], path, line_number)
    return labels


def label_index(name: str, where: str, class_names: tuple[str, ...] = CLASS_NAMES) -> int:
    """Class index of a label name (case-insensitive) among ``class_names``, or a VGAF code when those are VGAF's
    classes; ``where`` names the source in errors.

    Parameters
    ----------
    name : str
        A label as written.
    where : str
        The file and line, for errors.
    class_names : tuple of str

    Returns
    -------
    index : int
    """
    text = name.strip()
    if tuple(class_names) == CLASS_NAMES and text in VGAF_CODES:
        return VGAF_CODES[text]
    for index, class_name in enumerate(class_names):
        if text.lower() == class_name.lower():
            return index
    codes = " (or codes 1/2/3)" if tuple(class_names) == CLASS_NAMES else ""
    raise LabelFileError(f"{where}: unknown label {name!r}; use one of {', '.join(class_names)}{codes}")


def class_set(label_texts: list[str]) -> tuple[str, ...]:
    """The classes a list of labels names: VGAF's three (in their order) when every label is one of their names
    or codes, else the distinct labels (case-insensitive, first spelling kept) sorted case-insensitively.

    Parameters
    ----------
    label_texts : list of str

    Returns
    -------
    class_names : tuple of str
    """
    texts = [t.strip() for t in label_texts if t.strip()]
    vgaf = {c.lower() for c in CLASS_NAMES} | set(VGAF_CODES)
    if all(t.lower() in vgaf for t in texts):
        return CLASS_NAMES
    spelling: dict[str, str] = {}
    for text in texts:
        spelling.setdefault(text.lower(), text)
    return tuple(spelling[k] for k in sorted(spelling))


@dataclass(frozen=True)
class ListingRow:
    """One row of a CSV listing videos: its line number, the video path as written, its label text and group (""
    where the CSV has no such column or leaves it empty)."""

    line: int
    video: str
    label: str
    group: str


def read_listing(path: str | Path, label_required: bool = True) -> list[ListingRow]:
    """The rows of a CSV listing videos, ``video[,label][,group]``: header names are matched ignoring case and
    spaces, a UTF-8 byte-order mark (as Excel writes) is accepted. The one reader of the format: every command
    that takes such a CSV reads it here.

    Raises LabelFileError naming the file when the header lacks ``video`` (or ``label``, when
    ``label_required``), and naming the line when a row has no video path.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    label_required : bool
        Whether the header must name a ``label`` column.

    Returns
    -------
    rows : list of ListingRow
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        found = ",".join(reader.fieldnames or []) or "nothing"
        columns = [(f or "").strip().lower() for f in reader.fieldnames or []]
        if label_required and not {"video", "label"} <= set(columns):
            raise LabelFileError(
                f"{path}: needs a header with columns 'video,label' (and optionally 'group'), found {found}; "
                "rename the column of video paths to 'video' and that of their labels to 'label'"
            )
        if "video" not in columns:
            raise LabelFileError(
                f"{path}: needs a header with a 'video' column (and optionally 'label'), found {found}; "
                "rename the column of video paths to 'video'"
            )
        reader.fieldnames = columns
        rows = []
        for line, row in enumerate(reader, start=2):
            video = (row.get("video") or "").strip()
            if not video:
                raise LabelFileError(f"{path}:{line}: empty video path; give a path or remove the line")
            rows.append(ListingRow(line, video, (row.get("label") or "").strip(), (row.get("group") or "").strip()))
    return rows


@dataclass
class CsvLabels:
    """A CSV ``video,label[,group]``: labels by video path as written, the class set they name, and groups."""

    labels: dict[str, int]
    classes: tuple[str, ...]
    groups: dict[str, str]  # video -> its group ("" when the CSV has no group column or leaves it empty)


def read_csv_labels(path: str | Path) -> CsvLabels:
    """Read a CSV with columns ``video,label`` and optionally ``group`` (clips cut from one source video share a
    group, so they are never split between train and select). The classes are the labels' (see
    :func:`class_set`).

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    labels : CsvLabels
    """
    path = Path(path)
    rows = read_listing(path)
    classes = class_set([row.label for row in rows])
    labels: dict[str, int] = {}
    lines: dict[str, int] = {}
    groups: dict[str, str] = {}
    for row in rows:
        label = label_index(row.label, f"{path}:{row.line}", classes)
        _add_label(labels, lines, row.video, label, path, row.line, classes)
        groups[row.video] = row.group
    return CsvLabels(labels, classes, groups)


GROUP_RULES: dict[str, str] = {
    "vgaf": "the clip name before its last '_' (the source video VGAF cut it from)",
    "csv": "the CSV's group column (the clip itself where it has none)",
    "folder": "the clip itself",
}


def vgaf_group(name: str) -> str:
    """The source video of a VGAF clip: its name before the last ``_`` (``12_3`` -> ``12``).

    Parameters
    ----------
    name : str
        A clip name.

    Returns
    -------
    group : str
    """
    return name.rsplit("_", 1)[0] if "_" in name else name


@dataclass
class Dataset:
    """Clips found on disk, labelled clips missing on disk (per split), and videos not taken (with reasons)."""

    source: Path
    kind: str  # vgaf | csv | folder
    clips: list[ClipRecord]
    classes: tuple[str, ...] = CLASS_NAMES
    missing: dict[str, list[str]] = field(default_factory=dict)
    not_taken: dict[str, str] = field(default_factory=dict)  # path -> why it was not taken

    def splits(self) -> list[str]:
        return sorted({clip.split for clip in self.clips})

    def source_record(self) -> dict:
        """What identifies this dataset in a cache's source.json."""
        return {"path": str(self.source), "kind": self.kind, "group_rule": GROUP_RULES[self.kind]}


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _videos_in(folder: Path, not_taken: dict[str, str]) -> list[Path]:
    """Video files directly in ``folder``; broken symlinks go to ``not_taken``."""
    videos = []
    for path in sorted(folder.iterdir()):
        if not _is_video(path):
            continue
        if path.is_symlink() and not path.exists():
            not_taken[str(path)] = "a symlink to a missing file"
        elif path.is_file():
            videos.append(path)
    return videos


def _check_unique(clips: list[ClipRecord], where: Path) -> None:
    by_key: dict[str, list[Path]] = {}
    for clip in clips:
        by_key.setdefault(clip.key, []).append(clip.path)
    clashes = {key: paths for key, paths in by_key.items() if len(paths) > 1}
    if clashes:
        listed = "; ".join(f"{key}: {', '.join(str(p) for p in paths)}" for key, paths in sorted(clashes.items()))
        raise InputError(
            f"{where}: videos that would share one clip key (clips are named by path without the "
            f"extension): {listed}. Rename or remove one of each"
        )


def discover(source: str | Path) -> Dataset:
    """Find the clips of a dataset.

    ``source`` may be a VGAF root (``<Split>_labels.txt`` files beside split folders ``Train``/``Val``/``Test``),
    a CSV ``video,label`` (paths relative to the CSV; split ``all``), or a folder of videos (unlabelled: its own
    videos form a split named after it, each sub-folder's videos a split named after the sub-folder).

    Parameters
    ----------
    source : str or Path

    Returns
    -------
    dataset : Dataset
    """
    given = Path(source)
    source = given.expanduser().resolve()
    if not source.exists():
        raise InputError(f"{given}: no such file or folder; pass a VGAF root, a CSV video,label or a video folder")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise InputError(
                f"{given}: a file source must be a CSV with columns video,label "
                "(to predict on a single video, use `gvs predict`)"
            )
        dataset = _discover_csv(source)
    else:
        label_files = sorted(p for p in source.iterdir() if p.is_file() and p.name.lower().endswith(LABEL_FILE_SUFFIX))
        dataset = _discover_vgaf(source, label_files) if label_files else _discover_folder(source)
    _check_unique(dataset.clips, given)
    return dataset


def _discover_vgaf(root: Path, label_files: list[Path]) -> Dataset:
    dataset = Dataset(root, "vgaf", [])
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    labelled = set()
    for label_file in label_files:
        split_name = label_file.name[: -len(LABEL_FILE_SUFFIX)]
        folder = folders.get(split_name.lower())
        split = folder.name if folder is not None else split_name
        labelled.add(split.lower())
        labels = read_vgaf_labels(label_file)
        videos = _videos_in(folder, dataset.not_taken) if folder is not None else []
        _check_unique([ClipRecord(p.stem, split, p) for p in videos], folder)  # 1_1.mp4 + 1_1.mkv: an error
        on_disk = {p.stem: p for p in videos}
        for name, label in labels.items():
            if name in on_disk:
                dataset.clips.append(ClipRecord(name, split, on_disk[name], label, vgaf_group(name)))
            else:
                dataset.missing.setdefault(split, []).append(name)
        dataset.clips.extend(
            ClipRecord(n, split, on_disk[n], None, vgaf_group(n)) for n in sorted(set(on_disk) - set(labels))
        )
    for name, folder in sorted(folders.items()):
        if name not in labelled:
            dataset.clips.extend(
                ClipRecord(p.stem, folder.name, p, None, vgaf_group(p.stem))
                for p in _videos_in(folder, dataset.not_taken)
            )
    for video in _videos_in(root, dataset.not_taken):
        dataset.not_taken[str(video)] = "a video at the root of a VGAF layout; put it in a split folder"
    return dataset


def _discover_folder(folder: Path) -> Dataset:
    dataset = Dataset(folder, "folder", [])
    split = folder.name or "videos"
    dataset.clips.extend(ClipRecord(p.stem, split, p) for p in _videos_in(folder, dataset.not_taken))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        dataset.clips.extend(ClipRecord(p.stem, sub.name, p) for p in _videos_in(sub, dataset.not_taken))
        for deeper in sorted(p for p in sub.rglob("*") if _is_video(p) and p.parent != sub):
            dataset.not_taken[str(deeper)] = "nested deeper than one folder; list it in a CSV video,label instead"
    if not dataset.clips and not dataset.not_taken:
        raise InputError(
            f"{folder}: no videos ({', '.join(VIDEO_EXTENSIONS)}) here or in its sub-folders, and no "
            "<Split>_labels.txt label files"
        )
    return dataset


def _discover_csv(path: Path) -> Dataset:
    listing = read_csv_labels(path)
    dataset = Dataset(path, "csv", [], listing.classes)
    for video, label in listing.labels.items():
        video_path = Path(os.path.normpath(path.parent / video))  # ../x.mp4 is outside the CSV's folder
        if video_path.is_file():
            try:
                name = video_path.relative_to(path.parent).with_suffix("").as_posix()
            except ValueError:  # a video outside the CSV's folder: named by its absolute path
                name = video_path.with_suffix("").as_posix().lstrip("/")
            dataset.clips.append(ClipRecord(name, "all", video_path, label, listing.groups[video]))
        elif video_path.is_symlink():
            dataset.not_taken[str(video_path)] = "a symlink to a missing file"
        else:
            dataset.missing.setdefault("all", []).append(video)
    return dataset
