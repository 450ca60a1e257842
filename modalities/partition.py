"""Which clips train, select (early stopping, best checkpoint), report and test: RUNS/partition.json.

Made once from the cache's clips.csv, stratified and deterministic in the seed, then reused by every
modality and fusion so they all train and select on the same clips.

Default (a labelled ``Train`` and a labelled ``Val`` split): train = Train minus a stratified hold-out of
``select_fraction``, select = that hold-out, report = Val. With only one labelled split, select and report
are both held out of it. test = the ``Test`` split plus every unlabelled clip.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gvs.core.errors import PartitionError
from gvs.core.io import atomic_write_text, read_json
from gvs.core.workspace import CacheDir, RunsDir

TEST_SPLIT = "Test"


@dataclass
class Partition:
    """Clip keys per part, where each part comes from, and how the partition was made."""

    parts: dict[str, list[str]]
    sources: dict[str, str]
    seed: int
    select_fraction: float
    clips: int  # clips in clips.csv when the partition was made

    def part_by_key(self) -> dict[str, str]:
        return {key: part for part, keys in self.parts.items() for key in keys}


def make_partition(
    rows: list[dict[str, str]],
    seed: int = 0,
    select_fraction: float = 0.2,
    train_split: str = "Train",
    report_split: str = "Val",
) -> Partition:
    """Partition clips.csv ``rows`` (key, split, label; label "" when unknown)."""
    if not 0 < select_fraction < 1:
        raise PartitionError(f"select_fraction must be between 0 and 1, got {select_fraction}")
    rng = np.random.default_rng(seed)
    labelled = [r for r in rows if r["label"] != "" and r["split"] != TEST_SPLIT]
    test = [r["key"] for r in rows if r["split"] == TEST_SPLIT or r["label"] == ""]
    labelled_splits = sorted({r["split"] for r in labelled})
    if train_split in labelled_splits and report_split in labelled_splits:
        train_rows = [r for r in labelled if r["split"] == train_split]
        select, train = _stratified_hold_out(train_rows, select_fraction, rng)
        report = [r["key"] for r in labelled if r["split"] == report_split]
        others = sorted(set(labelled_splits) - {train_split, report_split})
        sources = {
            "train": f"{train_split} minus the select hold-out",
            "select": f"{select_fraction:.0%} of {train_split}, stratified (never trained on)",
            "report": f"{report_split} (never used for training or selection)",
        }
        if others:
            sources["ignored"] = f"labelled splits {others} are not used"
    elif labelled_splits:
        source = train_split if train_split in labelled_splits else labelled_splits[0]
        source_rows = [r for r in labelled if r["split"] == source]
        report, rest = _stratified_hold_out(source_rows, select_fraction, rng)
        rest_rows = [r for r in source_rows if r["key"] in set(rest)]
        select, train = _stratified_hold_out(rest_rows, select_fraction / (1 - select_fraction), rng)
        sources = {
            "train": f"{source} minus the select and report hold-outs",
            "select": f"{select_fraction:.0%} of {source}, stratified (only one labelled split)",
            "report": f"{select_fraction:.0%} of {source}, stratified (only one labelled split; "
            f"never used for training or selection)",
        }
    else:
        train, select, report = [], [], []
        sources = {"train": "no labelled clips", "select": "no labelled clips", "report": "no labelled clips"}
    sources["test"] = f"{TEST_SPLIT} split and unlabelled clips"
    parts = {"train": train, "select": select, "report": report, "test": test}
    return Partition(parts, sources, seed, select_fraction, len(rows))


def _stratified_hold_out(
    rows: list[dict[str, str]], fraction: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """(held out, kept) keys: ``fraction`` of each class, at least one of a class with two or more clips."""
    held, kept = [], []
    for label in sorted({r["label"] for r in rows}):
        keys = [r["key"] for r in rows if r["label"] == label]
        rng.shuffle(keys)
        n_held = max(1, round(fraction * len(keys))) if len(keys) >= 2 else 0
        held += keys[:n_held]
        kept += keys[n_held:]
    return sorted(held), sorted(kept)


def ensure_partition(
    runs: Path,
    cache: Path,
    seed: int = 0,
    select_fraction: float = 0.2,
    train_split: str = "Train",
    report_split: str = "Val",
) -> Partition:
    """RUNS/partition.json, made from CACHE/clips.csv on first use and reused (checked) afterwards."""
    path = RunsDir(runs).partition_path
    cache_dir = CacheDir(cache)
    rows = cache_dir.clip_rows()
    if not rows:
        raise PartitionError(f"{cache_dir.clips_path}: no clips; run `gvs preprocess DATASET --cache {cache}` first")
    if not path.is_file():
        partition = make_partition(rows, seed, select_fraction, train_split, report_split)
        atomic_write_text(path, json.dumps(asdict(partition), indent=1))
        return partition
    partition = load_partition(runs)
    if (partition.seed, partition.select_fraction) != (seed, select_fraction):
        raise PartitionError(
            f"{path} was made with seed {partition.seed} and select_fraction {partition.select_fraction}, "
            f"not {seed} and {select_fraction}; pass those, or use another --runs folder"
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
