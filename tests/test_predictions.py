"""The predictions record: one writer and one reader of predictions.csv, byte-compatible with the files runs hold."""

from __future__ import annotations

import numpy as np
import pytest

from gvs.core.errors import CorruptFileError, RunError
from gvs.core.io import csv_text
from gvs.core.predictions import Predictions, prediction_columns
from gvs.core.workspace import RunFolder

# Written by `gvs train audio` before the record existed (rows of each part of a synthetic cache's run).
SAMPLE = """key,split,part,label,p_Positive,p_Neutral,p_Negative,pred
Train/11_1,Train,train,0,0.332247,0.335133,0.332620,1
Train/12_1,Train,train,2,0.332207,0.335005,0.332788,1
Train/10_1,Train,select,1,0.332246,0.335196,0.332558,1
Val/1_1,Val,report,1,0.332153,0.335035,0.332812,1
Val/17_1,Val,report,2,0.000000,0.500000,0.500000,1
Test/Test_1,Test,test,-1,0.332001,0.335596,0.332403,1
"""


def _old_rows(keys, splits, parts, labels, probabilities, predicted) -> list[list]:
    """The predictions rows as modalities/train.py and ensemble/fuse.py built them before the record."""
    return [
        [key, split, part, int(label), *(f"{v:.6f}" for v in p), int(pred)]
        for key, split, part, label, p, pred in zip(keys, splits, parts, labels, probabilities, predicted)
    ]


def test_a_file_written_before_the_record_reads_and_writes_back_byte_identical(tmp_path) -> None:
    path = RunFolder(tmp_path).predictions
    path.write_text(SAMPLE)
    saved = Predictions.read(path)
    assert saved.class_names == ("Positive", "Neutral", "Negative")
    assert saved.keys.tolist()[:2] == ["Train/11_1", "Train/12_1"] and len(saved) == 6
    assert saved.labels.tolist() == [0, 2, 1, 1, 2, -1]
    assert saved.parts.tolist() == ["train", "train", "select", "report", "report", "test"]
    assert saved.splits.tolist() == ["Train", "Train", "Train", "Val", "Val", "Test"]
    assert saved.predicted.tolist() == [1] * 6
    np.testing.assert_array_equal(saved.probabilities[4], [0.0, 0.5, 0.5])
    again = tmp_path / "again.csv"
    saved.write(again)
    assert again.read_bytes() == path.read_bytes()
    assert RunFolder(tmp_path).read_predictions() == saved


def test_write_read_round_trip_keeps_every_field(tmp_path) -> None:
    written = Predictions(
        ["Val/a", "Val/b,c", "Test/x"],
        [2, 0, -1],
        [[0.1, 0.2, 0.7], [0.45, 0.45, 0.1], [0.333333, 0.333334, 0.333333]],
        ["report", "", "test"],
        ("Happy", "Calm", "Angry"),
        predicted=[2, 1, 1],  # a vote may break a tie against the argmax
    )
    assert written.splits.tolist() == ["Val", "Val", "Test"]
    path = RunFolder(tmp_path).predictions
    written.write(path)
    assert path.read_text().splitlines()[0].split(",") == prediction_columns(("Happy", "Calm", "Angry"))
    assert Predictions.read(path) == written
    empty = written.take(np.zeros(3, bool))
    empty.write(path)
    assert Predictions.read(path) == empty and Predictions.read(path).class_names == ("Happy", "Calm", "Angry")


def test_written_bytes_match_the_rows_built_before_the_record(tmp_path) -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=20).astype(np.float32)  # what model.predict returns
    keys = [f"{'Train' if i < 12 else 'Val'}/{i}_1" for i in range(20)]
    splits = [key.split("/")[0] for key in keys]
    parts = ["train"] * 8 + ["select"] * 4 + ["report"] * 8
    labels = rng.integers(-1, 3, size=20)
    predicted = probabilities.argmax(axis=1)
    record = Predictions(keys, labels, probabilities, parts, ("Positive", "Neutral", "Negative"))
    record.write(tmp_path / "new.csv")
    old = csv_text(prediction_columns(), _old_rows(keys, splits, parts, labels, probabilities, predicted))
    assert (tmp_path / "new.csv").read_text() == old


def test_selections(tmp_path) -> None:
    path = RunFolder(tmp_path).predictions
    path.write_text(SAMPLE)
    saved = Predictions.read(path)
    assert saved.part("report").keys.tolist() == ["Val/1_1", "Val/17_1"]
    assert saved.part("test").labelled().keys.tolist() == []
    assert saved.of_split("Train").keys.tolist() == ["Train/11_1", "Train/12_1", "Train/10_1"]
    assert saved.of_split("select").keys.tolist() == ["Train/10_1"]
    assert saved.labelled().split_names() == "Train+Val"


def test_a_file_that_is_not_predictions_says_so(tmp_path) -> None:
    path = RunFolder(tmp_path).predictions
    path.write_text("video,label\na.mp4,Positive\n")
    with pytest.raises(CorruptFileError, match="key, label and p_<class> columns"):
        Predictions.read(path)
    path.write_text(SAMPLE.replace("0.332247", "n/a"))
    with pytest.raises(CorruptFileError, match="not a predictions file"):
        Predictions.read(path)
    with pytest.raises(RunError, match="no predictions"):
        RunFolder(tmp_path / "missing").read_predictions()
