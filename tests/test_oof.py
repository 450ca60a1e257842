"""Out-of-fold hidden vectors: each train clip's outputs come from a fold model that never trained on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensemble.oof import fold_assignment, out_of_fold_outputs, with_out_of_fold
from ensemble.outputs import compute_outputs, load_fusion_data
from gvs.core.errors import InputError
from gvs.core.io import read_json
from gvs.core.workspace import CacheDir, RunsDir
from modalities.partition import groups_of, load_partition
from modalities.train import train_modality
from tests.synthetic import make_synthetic_cache

OPTIONS = {"epochs": 3, "patience": 2, "units": 8}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("oof")
    cache = make_synthetic_cache(work / "cache", 8, seed=4, groups=3)
    runs = work / "runs"
    train_modality("pose", cache, runs, verbose=0, **OPTIONS)
    return cache, runs


def test_fold_assignment_keeps_groups_whole_and_classes_spread() -> None:
    labels = np.tile(np.arange(3), 20)
    groups = [f"video{i // 4}" for i in range(60)]
    folds = fold_assignment(labels, groups, 3, seed=0)
    for group in set(groups):
        assert len({f for f, g in zip(folds, groups) if g == group}) == 1
    for fold in range(3):
        assert set(labels[folds == fold]) == {0, 1, 2}
    with pytest.raises(InputError, match="only 15 groups .* fewer than 20 folds"):
        fold_assignment(labels, groups, 20, seed=0)


@pytest.mark.slow  # trains a pose model and its three fold models
def test_every_train_clip_is_predicted_by_a_model_that_never_saw_it(trained) -> None:
    cache, runs = trained
    oof = out_of_fold_outputs(runs, cache, "pose", 3, OPTIONS, progress=False)
    partition = load_partition(runs)
    assert sorted(oof.keys) == sorted(partition.parts["train"])
    rows = {r["key"]: r for r in CacheDir(cache).clip_rows()}
    seen: set[str] = set()
    for fold in range(3):
        fold_partition = load_partition(RunsDir(runs).oof_fold(3, fold).root)
        held = set(fold_partition.parts["report"])
        assert not held & set(fold_partition.parts["train"]) and not held & seen
        assert fold_partition.parts["select"] == partition.parts["select"]
        held_groups = set(groups_of([rows[k] for k in held]))
        trained_groups = set(groups_of([rows[k] for k in fold_partition.parts["train"]]))
        assert not held_groups & trained_groups  # a source video is never on both sides of a fold
        seen |= held
    assert seen == set(partition.parts["train"])
    main = compute_outputs(runs, cache, "pose", progress=False)
    index = {k: i for i, k in enumerate(main.keys)}
    in_sample = main.probabilities[[index[k] for k in oof.keys]]
    assert not np.allclose(in_sample, oof.probabilities, atol=1e-3)

    model_files = [RunsDir(runs).oof_fold(3, f).modality("pose").model for f in range(3)]
    before = [p.stat().st_mtime_ns for p in model_files]
    again = out_of_fold_outputs(runs, cache, "pose", 3, OPTIONS, progress=False)
    assert [p.stat().st_mtime_ns for p in model_files] == before  # nothing trained again
    np.testing.assert_array_equal(again.probabilities, oof.probabilities)
    assert read_json(RunsDir(runs).oof_fold(3, 0).modality("pose").config)["options"]["epochs"] == 3

    data = load_fusion_data(runs, cache, ["pose"], progress=False)
    swapped = with_out_of_fold(data, {"pose": oof})
    changed = np.flatnonzero(np.any(swapped.outputs["pose"].hidden != data.outputs["pose"].hidden, axis=1))
    assert set(changed) <= set(np.flatnonzero(data.parts == "train")) and len(changed) > 0
    assert swapped.outputs["pose"].stamp != data.outputs["pose"].stamp
