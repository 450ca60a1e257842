"""Label files and dataset discovery on the real VGAF label files and hand-made variants."""

from pathlib import Path

import pytest

from gvs.core.errors import InputError
from preprocess.labels import LabelFileError, discover, read_csv_labels, read_vgaf_labels


def test_real_vgaf_label_files_parse_with_their_class_counts(vgaf_root: Path) -> None:
    train = read_vgaf_labels(vgaf_root / "Train_labels.txt")
    val = read_vgaf_labels(vgaf_root / "Val_labels.txt")
    assert len(train) == 2661 and len(val) == 766
    assert [list(train.values()).count(c) for c in range(3)] == [806, 923, 932]
    assert [list(val.values()).count(c) for c in range(3)] == [299, 281, 186]
    assert val["1_1"] == 2  # code 3 = Negative = index 2


def test_discover_reports_listed_clips_missing_on_disk(vgaf_root: Path) -> None:
    dataset = discover(vgaf_root)
    by_split = {s: [c for c in dataset.clips if c.split == s] for s in dataset.splits()}
    assert len(by_split["Val"]) == 1 and by_split["Val"][0].label == 2
    assert len(by_split["Test"]) == 10 and all(c.label is None for c in by_split["Test"])
    assert "Train" not in by_split
    assert len(dataset.missing["Train"]) == 2661 and len(dataset.missing["Val"]) == 765


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("Vid_name Label\n1_1 4\n", ":2:"),
        ("Vid_name Label\n1_1\n", ":2:"),
        ("name label\n1_1 1\n", "first line"),
    ],
)
def test_bad_vgaf_label_files_name_the_file_and_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "Train_labels.txt"
    path.write_text(content)
    with pytest.raises(LabelFileError, match=fragment) as error:
        read_vgaf_labels(path)
    assert str(path) in str(error.value)


def test_csv_labels_accept_names_and_codes_and_reject_unknown(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("video,label\na.mp4,positive\nb.mp4,Negative\nc.mp4,2\n")
    listing = read_csv_labels(good)
    assert listing.labels == {"a.mp4": 0, "b.mp4": 2, "c.mp4": 1}
    assert listing.classes == ("Positive", "Neutral", "Negative") and listing.groups == dict.fromkeys(
        listing.labels, ""
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("video,label\na.mp4,happy\nb.mp4,\n")
    with pytest.raises(LabelFileError, match="bad.csv:3: unknown label ''"):
        read_csv_labels(bad)


def test_csv_labels_name_their_own_classes_and_groups(tmp_path: Path) -> None:
    listing_path = tmp_path / "moods.csv"
    listing_path.write_text(
        "video,label,group\na.mp4,Excited,party\nb.mp4,calm,party\nc.mp4,excited,talk\nd.mp4,Bored,\n"
    )
    listing = read_csv_labels(listing_path)
    assert listing.classes == ("Bored", "calm", "Excited")  # sorted case-insensitively, first spelling kept
    assert listing.labels == {"a.mp4": 2, "b.mp4": 1, "c.mp4": 2, "d.mp4": 0}
    assert listing.groups == {"a.mp4": "party", "b.mp4": "party", "c.mp4": "talk", "d.mp4": ""}


def test_csv_dataset_resolves_paths_and_reports_missing(tmp_path: Path, val_clip: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "x.mp4").symlink_to(val_clip)
    listing = tmp_path / "mine.csv"
    listing.write_text("video,label\nclips/x.mp4,Negative\nclips/gone.mp4,Positive\n")
    dataset = discover(listing)
    assert [(c.name, c.split, c.label) for c in dataset.clips] == [("clips/x", "all", 2)]  # unique per source
    assert dataset.missing == {"all": ["clips/gone.mp4"]}


def test_plain_folder_is_an_unlabelled_split(test_clips: list[Path]) -> None:
    dataset = discover(test_clips[0].parent)
    assert len(dataset.clips) == 10 and {c.split for c in dataset.clips} == {"Test"}


def test_missing_source_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="VGAF root"):
        discover(tmp_path / "nowhere")


def test_one_csv_reader_serves_training_and_prediction(tmp_path: Path) -> None:
    from gvs.predict.inputs import expand_inputs
    from preprocess.labels import read_listing

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("file,label\na.mp4,Positive\n")
    for read in (lambda: read_listing(wrong, label_required=False), lambda: expand_inputs([wrong], ("Positive",))):
        with pytest.raises(LabelFileError, match="wrong.csv: needs a header with a 'video' column.*found file,label"):
            read()
    with pytest.raises(LabelFileError, match="wrong.csv: needs a header with columns 'video,label'"):
        read_csv_labels(wrong)

    spaced = tmp_path / "spaced.csv"
    spaced.write_text(" Video , LABEL \nclips/a.mp4,negative\nb.mp4,\n")
    videos, _ = expand_inputs([spaced], ("Positive", "Negative"))
    assert videos == [((tmp_path / "clips" / "a.mp4").absolute(), 1), ((tmp_path / "b.mp4").absolute(), None)]
    empty = tmp_path / "empty.csv"
    empty.write_text("video\na.mp4\n ,\n")
    with pytest.raises(LabelFileError, match="empty.csv:3: empty video path"):
        read_listing(empty, label_required=False)
