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
A hold-out is one fold of a StratifiedGroupKFold; with too few groups to fold, one whole group per class instead.
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
    """Each row's group: its ``group`` field, or its key when that is empty (the clip is its own group).

    Parameters
    ----------
    rows : list of dict
        clips.csv rows.

    Returns
    -------
    groups : list of str
    """
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
    """Partition clips.csv ``rows`` (key, split, label ("" when unknown), group).

    Parameters
    ----------
    rows : list of dict
    seed : int
    select_fraction : float
        Share of the train split's groups held out to select with (ours protocol), in (0, 1).
    train_split, report_split : str
    protocol : str
        One of PROTOCOLS.
    group_rule : str
        How groups were made, recorded in the partition.

    Returns
    -------
    partition : Partition
    """
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
                "train": f"{train_split} minus the select hold-out (ours protocol)",
                "select": f"{train_split}, {held} (ours protocol: never trained on)",
                "report": f"{report_split} (ours protocol: never used for training or selection)",
            }
        used = {train_split, report_split}
    elif labelled_splits:
        source = train_split if train_split in labelled_splits else labelled_splits[0]
        source_rows = [r for r in labelled if r["split"] == source]
        used = {source}
        report, rest = _grouped_hold_out(source_rows, select_fraction, seed)
        if protocol == "paper":
            train, select = rest, list(report)
            sources = {
                "train": f"{source} minus the report hold-out (paper protocol)",
                "select": "the report hold-out (paper protocol: selection sees the report part)",
                "report": f"{source}, {held} (only one labelled split; also the select part: optimistic)",
            }
        else:
            kept = set(rest)
            rest_rows = [r for r in source_rows if r["key"] in kept]
            select, train = _grouped_hold_out(rest_rows, min(0.5, select_fraction / (1 - select_fraction)), seed)
            sources = {
                "train": f"{source} minus the select and report hold-outs (ours protocol)",
                "select": f"{source}, {held} (ours protocol; only one labelled split)",
                "report": f"{source}, {held} (ours protocol; only one labelled split; never used for training or "
                "selection)",
            }
    else:
        train, select, report, used = [], [], [], set()
        sources = {"train": "no labelled clips", "select": "no labelled clips", "report": "no labelled clips"}
    others = sorted(set(labelled_splits) - used)
    if others:
        sources["ignored"] = f"labelled splits {others} are not used"
    sources["test"] = f"{TEST_SPLIT} split and unlabelled clips"
    parts = {"train": train, "select": select, "report": report, "test": test}
    group_of = dict(zip((r["key"] for r in rows), groups_of(rows)))
    groups = {part: len({group_of[k] for k in keys}) for part, keys in parts.items()}
    return Partition(parts, sources, seed, select_fraction, len(rows), protocol, group_rule, groups)


def _grouped_hold_out(rows: list[dict[str, str]], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(held out, kept) keys: about ``fraction`` of the clips, whole groups only, stratified by class.

    The held-out part is the first fold of scikit-learn's StratifiedGroupKFold(max(2, round(1 / fraction)),
    shuffle=True, random_state=seed); groups holding the only clips of a class go back to training. With fewer
    groups than folds (or fewer clips in every class than folds), or when that fold comes out empty or everything,
    :func:`_few_groups` holds out whole groups instead."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    keys = np.array([r["key"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    groups = np.array(groups_of(rows))
    if len(set(groups)) < 2:  # one group (or none) cannot be split: it all stays for training
        return [], sorted(keys.tolist())
    folds = max(2, round(1 / fraction))
    held_mask = np.zeros(len(keys), bool)
    if len(set(groups)) >= folds and np.unique(labels, return_counts=True)[1].max() >= folds:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has only N members": stratified as far as can be
            warnings.simplefilter("ignore", UserWarning)
            _, held = next(splitter.split(keys, labels, groups))
        held_mask[held] = True
        alone = held_mask & ~np.isin(labels, labels[~held_mask])  # clips of a class the fold took entirely
        held_mask &= ~np.isin(groups, groups[alone])  # go back to training with their whole groups
    if not 0 < held_mask.sum() < len(keys):
        held_mask = _few_groups(labels, groups, seed)
    return sorted(keys[held_mask].tolist()), sorted(keys[~held_mask].tolist())


def _few_groups(labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Held-out mask for too few groups to fold: in a seeded order, hold out a whole group whenever it brings a
    class not yet held out, until every class found in two or more groups is held out once. A group is skipped
    when holding it would leave a class of its clips (or anything at all) without a clip to train on."""
    held = np.zeros(len(labels), bool)
    wanted = {c for c in set(labels.tolist()) if len(set(groups[labels == c].tolist())) >= 2}
    for group in np.random.default_rng(seed).permutation(sorted(set(groups.tolist()))):
        covered = set(labels[held].tolist())
        if wanted <= covered:
            break
        members = groups == group
        brings = set(labels[members].tolist())
        if (brings - covered) & wanted and brings <= set(labels[~(held | members)].tolist()):
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
    """RUNS/partition.json, made from CACHE/clips.csv on first use (group rule from CACHE/source.json) and reused
    afterwards; PartitionError when it was made with another seed, select_fraction or protocol, for other clips, or
    per clip by an older version while clips share groups (a possible leak).

    Parameters
    ----------
    runs, cache : Path
    seed : int
    select_fraction : float
    train_split, report_split : str
    protocol : str
        See make_partition.

    Returns
    -------
    partition : Partition
    """
    path = RunsDir(runs).partition_path
    cache_dir = CacheDir(cache)
    rows = cache_dir.clip_rows()
    if not rows:
        raise PartitionError(f"{cache_dir.clips_path}: no clips; run `gvs preprocess DATASET --cache {cache}` first")
    shared = len(set(groups_of(rows))) < len(rows)  # some group holds two or more clips
    if not path.is_file():
        rule = cache_dir.source().get("group_rule") or ("clips.csv's group column" if shared else "the clip itself")
        partition = make_partition(rows, seed, select_fraction, train_split, report_split, protocol, rule)
        atomic_write_text(path, json.dumps(asdict(partition), indent=1))
        return partition
    partition = load_partition(runs)
    made = (partition.seed, partition.select_fraction, partition.protocol)
    if made != (seed, select_fraction, protocol):
        raise PartitionError(
            f"{path} was made with seed {partition.seed}, select_fraction {partition.select_fraction} and protocol "
            f"{partition.protocol}, not {seed}, {select_fraction} and {protocol}; pass those, use another --runs "
            f"folder, or delete {path} and retrain every model"
        )
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
    """RUNS/partition.json as made (older files, without protocol, group rule and groups, load with defaults).

    Parameters
    ----------
    runs : Path

    Returns
    -------
    partition : Partition
    """
    path = RunsDir(runs).partition_path
    if not path.is_file():
        raise PartitionError(f"{path}: no partition; train a modality first (`gvs train ...`)")
    return Partition(**read_json(path))
