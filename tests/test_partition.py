"""The partition: select drawn by whole source videos (no leak), the paper protocol, and what it records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gvs.core.errors import PartitionError
from gvs.core.workspace import CacheDir, ClipRecord, RunsDir
from modalities.partition import PER_CLIP_RULE, ensure_partition, groups_of, load_partition, make_partition
from preprocess.labels import GROUP_RULES, read_vgaf_labels, vgaf_group


@pytest.fixture(scope="module")
def vgaf_rows(vgaf_root: Path) -> list[dict[str, str]]:
    """Every clip the real VGAF label files list (Train 2,661, Val 766), grouped by source video."""
    rows = []
    for split in ("Train", "Val"):
        for name, label in read_vgaf_labels(vgaf_root / f"{split}_labels.txt").items():
            rows.append(
                {"key": f"{split}/{name}", "split": split, "name": name, "label": str(label), "group": vgaf_group(name)}
            )
    return rows


def _groups_by_part(partition, rows) -> dict[str, set[str]]:
    group_of = dict(zip((r["key"] for r in rows), groups_of(rows)))
    return {part: {group_of[k] for k in keys} for part, keys in partition.parts.items()}


def test_no_source_video_spans_train_and_select_on_the_real_vgaf_labels(vgaf_rows) -> None:
    partition = make_partition(vgaf_rows, seed=0, group_rule=GROUP_RULES["vgaf"])
    groups = _groups_by_part(partition, vgaf_rows)
    parts = ("train", "select", "report")
    for i, first in enumerate(parts):
        for second in parts[i + 1 :]:
            assert not groups[first] & groups[second], f"{first} and {second} share source videos"
    train_clips = [r for r in vgaf_rows if r["split"] == "Train"]
    assert 0.15 <= len(partition.parts["select"]) / len(train_clips) <= 0.25
    label_of = {r["key"]: r["label"] for r in vgaf_rows}
    select = np.array([label_of[k] for k in partition.parts["select"]])
    everything = np.array([r["label"] for r in train_clips])
    for label in sorted(set(everything)):
        assert abs((select == label).mean() - (everything == label).mean()) < 0.08
    assert partition.groups == {part: len(groups[part]) for part in partition.parts}
    assert partition.group_rule == GROUP_RULES["vgaf"] and partition.protocol == "ours"
    again, other = make_partition(vgaf_rows, seed=0), make_partition(vgaf_rows, seed=1)
    assert again.parts == partition.parts and other.parts["select"] != partition.parts["select"]


def test_the_old_per_clip_draw_would_have_leaked(vgaf_rows) -> None:
    """The same rows with every clip its own group (what the old partition did): siblings land on both sides."""
    alone = [dict(r, group="") for r in vgaf_rows]
    partition = make_partition(alone, seed=0)
    groups = _groups_by_part(partition, vgaf_rows)
    assert len(groups["train"] & groups["select"]) > 100  # 153 of the select part's 154 videos
    group_of = {r["key"]: r["group"] for r in vgaf_rows}
    with_sibling = [k for k in partition.parts["select"] if group_of[k] in groups["train"]]
    assert len(with_sibling) / len(partition.parts["select"]) > 0.95  # the README's 99.8 %
    assert len(partition.parts["select"]) == pytest.approx(0.2 * 2661, abs=5)


def test_paper_protocol_trains_on_all_of_train_and_selects_on_val(vgaf_rows) -> None:
    partition = make_partition(vgaf_rows, protocol="paper")
    val = sorted(r["key"] for r in vgaf_rows if r["split"] == "Val")
    assert partition.parts["train"] == sorted(r["key"] for r in vgaf_rows if r["split"] == "Train")
    assert sorted(partition.parts["select"]) == val == sorted(partition.parts["report"])
    assert "paper protocol" in partition.sources["select"] and "optimistic" in partition.sources["report"]
    with pytest.raises(PartitionError, match="unknown protocol 'theirs'"):
        make_partition(vgaf_rows, protocol="theirs")


def test_one_labelled_split_holds_out_report_and_select_by_groups() -> None:
    rows = [
        {"key": f"all/{v}_{c}", "split": "all", "label": str((v + c) % 3), "group": f"video{v}"}
        for v in range(30)
        for c in range(4)
    ]
    partition = make_partition(rows, seed=3)
    groups = _groups_by_part(partition, rows)
    assert not groups["train"] & groups["select"] and not groups["train"] & groups["report"]
    assert not groups["select"] & groups["report"] and partition.parts["select"] and partition.parts["report"]


def _cache(root: Path, shared_groups: bool) -> Path:
    clips = [
        ClipRecord(f"{v}_{c}", split, root / f"{v}_{c}.mp4", (v + c) % 3, f"{v}" if shared_groups else "")
        for split, videos in (("Train", range(12)), ("Val", range(12, 16)))
        for v in videos
        for c in range(3)
    ]
    cache = CacheDir(root / "cache")
    cache.write_clips(clips)
    cache.claim_source({"path": str(root), "kind": "vgaf", "group_rule": GROUP_RULES["vgaf"]})
    return cache.root


def test_ensure_partition_records_its_rule_and_refuses_other_settings(tmp_path: Path) -> None:
    cache, runs = _cache(tmp_path, True), tmp_path / "runs"
    made = ensure_partition(runs, cache, seed=0)
    saved = json.loads(RunsDir(runs).partition_path.read_text())
    assert saved["protocol"] == "ours" and saved["group_rule"] == GROUP_RULES["vgaf"] and saved["groups"]["select"]
    assert ensure_partition(runs, cache, seed=0).parts == made.parts
    with pytest.raises(PartitionError, match="protocol ours.*another --runs"):
        ensure_partition(runs, cache, seed=0, protocol="paper")


def test_an_old_per_clip_partition_is_refused_when_clips_share_videos(tmp_path: Path) -> None:
    cache, runs = _cache(tmp_path, True), tmp_path / "runs"
    old = make_partition(CacheDir(cache).clip_rows())
    record = {"parts": old.parts, "sources": old.sources, "seed": 0, "select_fraction": 0.2, "clips": old.clips}
    RunsDir(runs).partition_path.parent.mkdir(parents=True)
    RunsDir(runs).partition_path.write_text(json.dumps(record))
    assert load_partition(runs).group_rule == PER_CLIP_RULE  # still readable
    with pytest.raises(PartitionError, match="drawn per clip by an older version.*leak"):
        ensure_partition(runs, cache)
    alone = _cache(tmp_path / "alone", False)
    RunsDir(tmp_path / "runs2").partition_path.parent.mkdir(parents=True)
    fresh = make_partition(CacheDir(alone).clip_rows())
    RunsDir(tmp_path / "runs2").partition_path.write_text(
        json.dumps({"parts": fresh.parts, "sources": fresh.sources, "seed": 0, "select_fraction": 0.2, "clips": 48})
    )
    assert ensure_partition(tmp_path / "runs2", alone).parts == fresh.parts  # no shared videos: nothing leaks
