"""The partition: select drawn by whole source videos (no leak), the paper protocol, and what it records."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gvs.core.errors import PartitionError
from gvs.core.workspace import CacheDir, ClipRecord, RunsDir
from modalities.partition import (
    PER_CLIP_RULE,
    PROTOCOL_TEXT,
    PROTOCOLS,
    ensure_partition,
    groups_of,
    load_partition,
    make_partition,
)
from preprocess.labels import GROUP_RULES, read_vgaf_labels, vgaf_group


@pytest.fixture(scope="module")
def vgaf_rows(vgaf_root: Path) -> list[dict[str, str]]:
    """Every clip the real VGAF label files list (Train 2,661, Val 766), grouped by source video."""
    return [
        {
            "key": f"{split}/{name}",
            "split": split,
            "name": name,
            "label": str(label),
            "path": "",
            "group": vgaf_group(name),
        }
        for split in ("Train", "Val")
        for name, label in read_vgaf_labels(vgaf_root / f"{split}_labels.txt").items()
    ]


def _groups_by_part(partition, rows) -> dict[str, set[str]]:
    group_of = dict(zip((r["key"] for r in rows), groups_of(rows)))
    return {part: {group_of[k] for k in keys} for part, keys in partition.parts.items()}


def _no_group_spans_two_parts(partition, rows) -> None:
    groups = _groups_by_part(partition, rows)
    parts = sorted(groups)
    for i, first in enumerate(parts):
        for second in parts[i + 1 :]:
            if {first, second} != {"select", "report"} or partition.protocol != "paper":
                assert not groups[first] & groups[second], f"{first} and {second} share groups"


def _shares(keys: list[str], label_of: dict[str, str]) -> dict[str, float]:
    counts = Counter(label_of[k] for k in keys)
    return {label: n / len(keys) for label, n in counts.items()}


def test_no_source_video_spans_two_parts_on_the_real_vgaf_labels(vgaf_rows) -> None:
    partition = make_partition(vgaf_rows, seed=0, group_rule=GROUP_RULES["vgaf"])
    _no_group_spans_two_parts(partition, vgaf_rows)
    train_clips = [r for r in vgaf_rows if r["split"] == "Train"]
    assert len(train_clips) == 2661 and len({r["group"] for r in train_clips}) == 195
    assert 0.15 <= len(partition.parts["select"]) / len(train_clips) <= 0.25
    assert sorted(partition.parts["train"] + partition.parts["select"]) == sorted(r["key"] for r in train_clips)
    label_of = {r["key"]: r["label"] for r in vgaf_rows}
    select, train = _shares(partition.parts["select"], label_of), _shares(partition.parts["train"], label_of)
    assert sorted(select) == sorted(train) == ["0", "1", "2"]  # every class is in select
    for label in train:
        assert abs(select[label] - train[label]) < 0.02, (select, train)  # within 0.6 points for seeds 0-5
    groups = _groups_by_part(partition, vgaf_rows)
    assert partition.groups == {part: len(groups[part]) for part in partition.parts}
    assert partition.groups["select"] + partition.groups["train"] == 195
    assert partition.group_rule == GROUP_RULES["vgaf"] and partition.protocol == "ours"
    assert "ours protocol" in partition.sources["select"] and "by groups" in partition.sources["select"]


def test_the_draw_is_deterministic_in_the_seed(vgaf_rows) -> None:
    first, again, other = (make_partition(vgaf_rows, seed=s) for s in (0, 0, 1))
    assert again == first and other.parts["select"] != first.parts["select"]
    _no_group_spans_two_parts(other, vgaf_rows)


def test_val_shares_no_source_video_with_train(vgaf_rows) -> None:
    train = {r["group"] for r in vgaf_rows if r["split"] == "Train"}
    val = {r["group"] for r in vgaf_rows if r["split"] == "Val"}
    assert len(val) == 65 and not train & val


def test_the_old_per_clip_draw_would_have_leaked(vgaf_rows) -> None:
    """The same rows with every clip its own group (what the old partition did): siblings land on both sides."""
    alone = [dict(r, group="") for r in vgaf_rows]
    partition = make_partition(alone, seed=0)
    groups = _groups_by_part(partition, vgaf_rows)
    assert len(groups["train"] & groups["select"]) > 100
    group_of = {r["key"]: r["group"] for r in vgaf_rows}
    with_sibling = [k for k in partition.parts["select"] if group_of[k] in groups["train"]]
    assert len(with_sibling) / len(partition.parts["select"]) > 0.95  # the README's 99.8 %
    assert len(partition.parts["select"]) == pytest.approx(0.2 * 2661, abs=5)


def test_empty_groups_make_each_clip_its_own_group() -> None:
    rows = [{"key": f"Train/{i}", "split": "Train", "label": str(i % 3), "group": ""} for i in range(150)]
    rows += [{"key": f"Val/{i}", "split": "Val", "label": str(i % 3), "group": ""} for i in range(9)]
    partition = make_partition(rows, seed=4)
    label_of = {r["key"]: r["label"] for r in rows}
    assert Counter(label_of[k] for k in partition.parts["select"]) == {"0": 10, "1": 10, "2": 10}
    assert partition.groups == {"train": 120, "select": 30, "report": 9, "test": 0}
    assert groups_of(rows[:2]) == ["Train/0", "Train/1"]


def test_one_labelled_split_per_clip_is_stratified_like_before() -> None:
    """Rows without a group column, one labelled split: report and select each get 20 % of every class."""
    rows = [{"key": f"all/{i}", "split": "all", "label": str(i % 3)} for i in range(30)]
    rows += [{"key": f"all/u{i}", "split": "all", "label": ""} for i in range(2)]
    partition = make_partition(rows, seed=1)
    assert make_partition(rows, seed=1) == partition and make_partition(rows, seed=2) != partition
    labels = {r["key"]: r["label"] for r in rows}
    for part in ("select", "report"):
        assert sorted(labels[k] for k in partition.parts[part]) == ["0", "0", "1", "1", "2", "2"]
        assert "only one labelled split" in partition.sources[part]
    assert len(partition.parts["train"]) == 18 and partition.parts["test"] == ["all/u0", "all/u1"]


def test_csv_groups_are_respected_and_clips_without_one_stand_alone() -> None:
    rows = [
        {"key": f"Train/s{g}_{c}", "split": "Train", "label": str((g + c) % 3), "group": f"scene{g}"}
        for g in range(20)
        for c in range(5)
    ]
    rows += [{"key": f"Train/loose{i}", "split": "Train", "label": str(i % 3), "group": ""} for i in range(30)]
    rows += [{"key": f"Val/v{i}", "split": "Val", "label": str(i % 3), "group": ""} for i in range(6)]
    rows += [{"key": f"Test/t{i}", "split": "Test", "label": "", "group": ""} for i in range(3)]
    rows += [{"key": f"Extra/e{i}", "split": "Extra", "label": "1", "group": ""} for i in range(2)]
    partition = make_partition(rows, seed=2, group_rule=GROUP_RULES["csv"])
    _no_group_spans_two_parts(partition, rows)
    select = partition.parts["select"]
    assert any(k.startswith("Train/s") for k in select) and any(k.startswith("Train/loose") for k in select)
    assert 0.15 <= len(select) / 130 <= 0.25
    assert partition.parts["test"] == [f"Test/t{i}" for i in range(3)]
    assert "Extra" in partition.sources["ignored"]
    assert not any(k.startswith("Extra/") for k in partition.part_by_key())


def test_one_labelled_split_holds_out_report_and_select_by_groups() -> None:
    rows = [
        {"key": f"all/{v}_{c}", "split": "all", "label": str((v + c) % 3), "group": f"video{v}"}
        for v in range(30)
        for c in range(4)
    ]
    partition = make_partition(rows, seed=3)
    _no_group_spans_two_parts(partition, rows)
    assert partition.groups["report"] == 6 and partition.groups["select"] == 6 and partition.groups["train"] == 18
    assert "only one labelled split" in partition.sources["report"]
    paper = make_partition(rows, seed=3, protocol="paper")
    assert paper.parts["select"] == paper.parts["report"] == partition.parts["report"]
    assert sorted(paper.parts["train"]) == sorted(partition.parts["train"] + partition.parts["select"])
    assert "paper protocol" in paper.sources["select"] and "optimistic" in paper.sources["report"]


def test_too_few_groups_to_fold_hold_out_whole_groups() -> None:
    rows = [
        {"key": f"Train/{v}_{c}", "split": "Train", "label": str(c % 2), "group": str(v)}
        for v in range(3)
        for c in range(4)
    ]
    rows += [{"key": "Train/lone", "split": "Train", "label": "2", "group": "9"}]  # a class only one group has
    rows += [{"key": "Val/0", "split": "Val", "label": "0", "group": ""}]
    for seed in range(5):
        partition = make_partition(rows, seed=seed)
        _no_group_spans_two_parts(partition, rows)
        assert partition.groups["select"] == 1 and len(partition.parts["select"]) == 4  # one video: both classes
        assert "Train/lone" in partition.parts["train"]  # never held out: it would never be trained on
    one_video = [r for r in rows if r["group"] == "0"] + rows[-1:]
    alone = make_partition(one_video)
    assert alone.parts["select"] == [] and len(alone.parts["train"]) == 4  # one group cannot be split


def test_a_class_the_fold_would_take_entirely_stays_in_train() -> None:
    rows = [
        {"key": f"Train/{v}_{c}", "split": "Train", "label": str(c % 2), "group": str(v)}
        for v in range(40)
        for c in range(3)
    ]
    rows.append({"key": "Train/lone", "split": "Train", "label": "2", "group": "7"})  # the only clip of class 2
    rows.append({"key": "Val/0", "split": "Val", "label": "0", "group": ""})
    for seed in range(10):
        partition = make_partition(rows, seed=seed)
        assert "Train/lone" in partition.parts["train"] and partition.groups["select"] == 8
        _no_group_spans_two_parts(partition, rows)


def test_paper_protocol_trains_on_all_of_train_and_selects_on_val(vgaf_rows) -> None:
    partition = make_partition(vgaf_rows, protocol="paper")
    val = sorted(r["key"] for r in vgaf_rows if r["split"] == "Val")
    assert partition.parts["train"] == sorted(r["key"] for r in vgaf_rows if r["split"] == "Train")
    assert sorted(partition.parts["select"]) == val == sorted(partition.parts["report"])
    assert "paper protocol" in partition.sources["train"]
    assert "selection sees the report part" in partition.sources["select"] and "Val" in partition.sources["select"]
    assert "optimistic" in partition.sources["report"]
    assert partition.protocol == "paper" and partition.groups["train"] == 195 and partition.groups["select"] == 65
    assert PROTOCOLS == ("ours", "paper") and set(PROTOCOL_TEXT) == set(PROTOCOLS)
    assert all(text and "\n" not in text for text in PROTOCOL_TEXT.values())


def test_unknown_protocol_names_the_choices(vgaf_rows) -> None:
    with pytest.raises(PartitionError, match="unknown protocol 'theirs'; choose from ours, paper"):
        make_partition(vgaf_rows, protocol="theirs")


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
    assert saved["protocol"] == "ours" and saved["group_rule"] == GROUP_RULES["vgaf"]
    assert saved["groups"]["train"] + saved["groups"]["select"] == 12 and saved["groups"]["report"] == 4
    assert saved["groups"]["select"] >= 1 and saved["groups"] == made.groups
    _no_group_spans_two_parts(made, CacheDir(cache).clip_rows())
    assert ensure_partition(runs, cache, seed=0) == made == load_partition(runs)
    with pytest.raises(PartitionError, match="protocol ours, not .* paper.*another --runs.*delete"):
        ensure_partition(runs, cache, seed=0, protocol="paper")
    with pytest.raises(PartitionError, match="seed 0.*partition.json"):
        ensure_partition(runs, cache, seed=1)
    paper = ensure_partition(tmp_path / "paper", cache, protocol="paper")
    assert paper.protocol == "paper" and paper.parts["select"] == paper.parts["report"]


def test_an_old_per_clip_partition_is_refused_when_clips_share_videos(tmp_path: Path) -> None:
    cache, runs = _cache(tmp_path, True), tmp_path / "runs"
    old = make_partition([dict(r, group="") for r in CacheDir(cache).clip_rows()])
    record = {"parts": old.parts, "sources": old.sources, "seed": 0, "select_fraction": 0.2, "clips": old.clips}
    RunsDir(runs).partition_path.parent.mkdir(parents=True)
    RunsDir(runs).partition_path.write_text(json.dumps(record))
    loaded = load_partition(runs)  # still readable
    assert loaded.group_rule == PER_CLIP_RULE and loaded.protocol == "ours" and loaded.groups == {}
    with pytest.raises(PartitionError, match="partition.json was drawn per clip by an older version.*leak"):
        ensure_partition(runs, cache)
    alone = _cache(tmp_path / "alone", False)
    fresh = make_partition(CacheDir(alone).clip_rows())
    record = {"parts": fresh.parts, "sources": fresh.sources, "seed": 0, "select_fraction": 0.2, "clips": 48}
    RunsDir(tmp_path / "runs2").partition_path.parent.mkdir(parents=True)
    RunsDir(tmp_path / "runs2").partition_path.write_text(json.dumps(record))
    assert ensure_partition(tmp_path / "runs2", alone).parts == fresh.parts  # no shared videos: nothing leaks
