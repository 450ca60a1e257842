"""Which clips train, select (early stopping, best checkpoint), report and test: RUNS/partition.json.

Made once from the cache's clips.csv, stratified and deterministic in the seed, then reused by every
modality and fusion so they all train and select on the same clips.

Hold-outs are drawn by whole groups (clips cut from one source video share a group: VGAF's ``<video>_<clip>``
names, a CSV's ``group`` column; otherwise each clip is its own group), so sibling clips never sit on both sides.

Protocols (a labelled ``Train`` and a labelled ``Val`` split):

- ``ours`` (default): train = Train minus a stratified group-wise hold-out of ``select_fraction``, select = that
  hold-out, report = Val, which selection never sees.
- ``paper``: the reference paper's: train = all of Train, select = report = Val (selection sees the reported
  clips: optimistic, only to compare with published numbers).

With only one labelled split, the report (and, for ``ours``, the select) hold-out is drawn from it the same way.
test = the ``Test`` split plus every unlabelled clip.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gvs.core.errors import PartitionError
from gvs.core.io import atomic_write_text, read_json
from gvs.core.workspace import CacheDir, RunsDir

TEST_SPLIT = "Test"
PROTOCOLS: tuple[str, ...] = ("ours", "paper")
PROTOCOL_TEXT: dict[str, str] = {
    "ours": "train on Train minus a group-wise hold-out, select on that hold-out, report on Val (never selected on)",
    "paper": "train on all of Train, select and report on Val, as the reference paper (optimistic)",
}
PER_CLIP_RULE = "none: made per clip by an older version (select may share source videos with train)"


@dataclass
class Partition:
    """Clip keys per part, where each part comes from, and how the partition was made."""

    parts: dict[str, list[str]]
    sources: dict[str, str]
    seed: int
    select_fraction: float
    clips: int  # clips in clips.csv when the partition was made
    protocol: str = "ours"
    group_rule: str = PER_CLIP_RULE
    groups: dict[str, int] = field(default_factory=dict)  # distinct groups per part

    def part_by_key(self) -> dict[str, str]:
        return {key: part for part, keys in self.parts.items() for key in keys}


def groups_of(rows: list[dict[str, str]]) -> list[str]:
    """Each row's group: its ``group`` field, or its key when that is empty (the clip is its own group)."""
    return [row.get("group") or row["key"] for row in rows]


def make_partition(
    rows: list[dict[str, str]],
    seed: int = 0,
    select_fraction: float = 0.2,
    train_split: str = "Train",
    report_split: str = "Val",
    protocol: str = "ours",
    group_rule: str = "the clip itself",
) -> Partition:
    """Partition clips.csv ``rows`` (key, split, label ("" when unknown), group)."""
    if not 0 < select_fraction < 1:
        raise PartitionError(f"select_fraction must be between 0 and 1, got {select_fraction}")
    if protocol not in PROTOCOLS:
        raise PartitionError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    labelled = [r for r in rows if r["label"] != "" and r["split"] != TEST_SPLIT]
    test = [r["key"] for r in rows if r["split"] == TEST_SPLIT or r["label"] == ""]
    labelled_splits = sorted({r["split"] for r in labelled})
    held = f"{select_fraction:.0%} hold-out by groups ({group_rule}), stratified"
    if train_split in labelled_splits and report_split in labelled_splits:
        train_rows = [r for r in labelled if r["split"] == train_split]
        report = [r["key"] for r in labelled if r["split"] == report_split]
        if protocol == "paper":
            train, select = sorted(r["key"] for r in train_rows), list(report)
            sources = {
                "train": f"all of {train_split} (paper protocol)",
                "select": f"{report_split} (paper protocol: selection sees the report part)",
                "report": f"{report_split} (paper protocol: also the select part; optimistic)",
            }
        else:
            select, train = _grouped_hold_out(train_rows, select_fraction, seed)
            sources = {
                "train": f"{train_split} minus the select hold-out",
                "select": f"{train_split}, {held} (never trained on)",
                "report": f"{report_split} (never used for training or selection)",
            }
        others = sorted(set(labelled_splits) - {train_split, report_split})
        if others:
            sources["ignored"] = f"labelled splits {others} are not used"
    elif labelled_splits:
        source = train_split if train_split in labelled_splits else labelled_splits[0]
        source_rows = [r for r in labelled if r["split"] == source]
        report, rest = _grouped_hold_out(source_rows, select_fraction, seed)
        if protocol == "paper":
            train, select = rest, list(report)
            sources = {
                "train": f"{source} minus the report hold-out (paper protocol)",
                "select": "the report hold-out (paper protocol: selection sees the report part)",
                "report": f"{source}, {held} (only one labelled split; also the select part: optimistic)",
            }
        else:
            rest_rows = [r for r in source_rows if r["key"] in set(rest)]
            select, train = _grouped_hold_out(rest_rows, select_fraction / (1 - select_fraction), seed)
            sources = {
                "train": f"{source} minus the select and report hold-outs",
                "select": f"{source}, {held} (only one labelled split)",
                "report": f"{source}, {held} (only one labelled split; never used for training or selection)",
            }
    else:
        train, select, report = [], [], []
        sources = {"train": "no labelled clips", "select": "no labelled clips", "report": "no labelled clips"}
    sources["test"] = f"{TEST_SPLIT} split and unlabelled clips"
    parts = {"train": train, "select": select, "report": report, "test": test}
    group_of = dict(zip((r["key"] for r in rows), groups_of(rows)))
    groups = {part: len({group_of[k] for k in keys}) for part, keys in parts.items()}
    return Partition(parts, sources, seed, select_fraction, len(rows), protocol, group_rule, groups)


def _grouped_hold_out(rows: list[dict[str, str]], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(held out, kept) keys: about ``fraction`` of the clips, whole groups only, stratified by class.

    scikit-learn's StratifiedGroupKFold with round(1 / fraction) folds gives the held-out fold. With fewer groups
    (or clips of the largest class) than folds, whole groups are held out one at a time in a seeded order until each class with two or more
    clips has one held out (or the fraction is reached)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if len(rows) < 2:
        return [], sorted(r["key"] for r in rows)
    keys = np.array([r["key"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    groups = np.array(groups_of(rows))
    folds = max(2, round(1 / fraction))
    if len(set(groups)) >= folds and np.unique(labels, return_counts=True)[1].max() >= folds:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        _, held = next(splitter.split(keys, labels, groups))
        held_mask = np.zeros(len(keys), bool)
        held_mask[held] = True
    else:
        held_mask = _few_groups(labels, groups, fraction, seed)
    return sorted(keys[held_mask].tolist()), sorted(keys[~held_mask].tolist())


def _few_groups(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Held-out mask over rows when there are too few groups for K folds (see :func:`_grouped_hold_out`)."""
    order = np.random.default_rng(seed).permutation(sorted(set(groups)))
    held = np.zeros(len(labels), bool)
    wanted = {c for c, n in zip(*np.unique(labels, return_counts=True)) if n >= 2}
    for group in order[: max(1, len(order) - 1)]:  # always keep at least one group for training
        covered = set(labels[held])
        if wanted <= covered or held.mean() >= fraction:
            break
        members = groups == group
        if set(labels[members]) - covered:
            held |= members
    return held


def ensure_partition(
    runs: Path,
    cache: Path,
    seed: int = 0,
    select_fraction: float = 0.2,
    train_split: str = "Train",
    report_split: str = "Val",
    protocol: str = "ours",
) -> Partition:
    """RUNS/partition.json, made from CACHE/clips.csv on first use and reused (checked) afterwards."""
    path = RunsDir(runs).partition_path
    cache_dir = CacheDir(cache)
    rows = cache_dir.clip_rows()
    if not rows:
        raise PartitionError(f"{cache_dir.clips_path}: no clips; run `gvs preprocess DATASET --cache {cache}` first")
    if not path.is_file():
        shared = len(set(groups_of(rows))) < len(rows)
        rule = cache_dir.source().get("group_rule") or ("clips.csv's group column" if shared else "the clip itself")
        partition = make_partition(rows, seed, select_fraction, train_split, report_split, protocol, rule)
        atomic_write_text(path, json.dumps(asdict(partition), indent=1))
        return partition
    partition = load_partition(runs)
    made = (partition.seed, partition.select_fraction, partition.protocol)
    if made != (seed, select_fraction, protocol):
        raise PartitionError(
            f"{path} was made with seed {partition.seed}, select_fraction {partition.select_fraction} and protocol "
            f"{partition.protocol}, not {seed}, {select_fraction} and {protocol}; pass those, or use another --runs "
            "folder"
        )
    shared = len(set(groups_of(rows))) < len(rows)
    if partition.group_rule == PER_CLIP_RULE and shared:
        raise PartitionError(
            f"{path} was drawn per clip by an older version, but clips of {cache_dir.clips_path} share source "
            "videos: its select part may hold siblings of training clips (a leak). Use another --runs folder, or "
            f"delete {path} and retrain every model"
        )
    known = set(partition.part_by_key())
    current = {r["key"] for r in rows}
    if known != current:
        raise PartitionError(
            f"{path} covers {len(known)} clips but {cache_dir.clips_path} now lists {len(current)} "
            f"({len(current - known)} new, {len(known - current)} gone); use a new --runs folder "
            f"(or delete {path} and retrain every model) so all models share one partition"
        )
    return partition


def load_partition(runs: Path) -> Partition:
    path = RunsDir(runs).partition_path
    if not path.is_file():
        raise PartitionError(f"{path}: no partition; train a modality first (`gvs train ...`)")
    return Partition(**read_json(path))
