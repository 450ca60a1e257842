"""A clip named `party, 2019 é.mp4` (a comma, a space, an accent) goes through preprocess, train, fuse and explain."""

import csv
import shutil
from pathlib import Path

import pytest

from gvs.cli import main as gvs_main
from gvs.core.workspace import CacheDir, RunsDir

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ODD_NAME = "party, 2019 é"
CLIPS_PER_CLASS = 4


@pytest.fixture(scope="module")
def listing(tmp_path_factory, demo: Path) -> Path:
    """A CSV dataset of twelve of the demo's labelled clips (4 per class: enough to train on once 20 % are held out
    to select and 20 % to report), one of them renamed to ODD_NAME."""
    folder = tmp_path_factory.mktemp("odd")
    rows = []
    with (demo / "Train_labels.txt").open() as handle:
        for name, code in (line.split() for line in list(handle)[1:]):
            if int(name.split("_")[0]) > CLIPS_PER_CLASS:
                continue
            target = folder / "videos" / f"Train-{name}.mp4"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(demo / "Train" / f"{name}.mp4", target)
            rows.append([f"videos/{target.name}", code])
    assert len(rows) == 3 * CLIPS_PER_CLASS
    (folder / rows[0][0]).rename(folder / "videos" / f"{ODD_NAME}.mp4")
    rows[0][0] = f"videos/{ODD_NAME}.mp4"
    path = folder / "listing.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["video", "label"], *rows])
    return path


def test_clip_with_comma_and_accent_goes_through_every_stage(listing: Path, tmp_path: Path) -> None:
    cache, runs, figures = tmp_path / "cache", tmp_path / "runs", tmp_path / "figures"
    key = f"all/videos/{ODD_NAME}"
    assert (
        gvs_main(
            [
                "preprocess",
                str(listing),
                "--cache",
                str(cache),
                "--only",
                "pose",
                "audio",
                "--preset",
                "fast",
                "--quiet",
            ]
        )
        == 0
    )
    clip = next(c for c in CacheDir(cache).clips() if c.key == key)
    assert clip.path == listing.parent / "videos" / f"{ODD_NAME}.mp4" and clip.label is not None
    for modality in ("pose", "audio"):
        assert (
            gvs_main(["train", modality, "--cache", str(cache), "--runs", str(runs), "--epochs", "3", "--quiet"]) == 0
        )
        assert key in RunsDir(runs).modality(modality).read_predictions().keys.tolist()
    assert gvs_main(["fuse", "--cache", str(cache), "--runs", str(runs), "--fusion", "soft", "--ablation", "none"]) == 0
    fused = RunsDir(runs).fusion(RunsDir(runs).fusion_names()[0]).read_predictions()
    assert key in fused.keys.tolist()
    assert (
        gvs_main(
            [
                "explain",
                "--cache",
                str(cache),
                "--runs",
                str(runs),
                "--clip",
                key,
                "--modality",
                "pose",
                "audio",
                "--out",
                str(figures),
            ]
        )
        == 0
    )
    assert len(list(figures.rglob("*.png"))) == 2
