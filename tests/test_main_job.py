"""The main job on the real demo videos: real extractors, real training, fusion and ablation, then a resume."""

import csv
from pathlib import Path

import pytest

import run_ensemble
from gvs.cli import main as gvs_main
from gvs.core.workspace import RunsDir
from preprocess.demo import make_demo

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, shared_dir: Path) -> Path:  # shared_dir: the pose model file comes from there offline
    return make_demo(tmp_path_factory.mktemp("demo") / "demo")


def tables(printed: str) -> str:
    return printed[printed.index("### Comparison") :]


def test_demo_chain_ends_with_tables_and_resumes_without_redoing_work(demo: Path, tmp_path: Path, capsys) -> None:
    arguments = [
        str(demo),
        "--cache",
        str(tmp_path / "cache"),
        "--runs",
        str(tmp_path / "runs"),
        "--preset",
        "fast",
        "--fusion",
        "fc",
        "--drop",
        "fer",
        "--train-epochs",
        "15",
        "--epochs",
        "40",
    ]
    assert run_ensemble.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "### Comparison" in printed and "### Ablation: fc fusion (loo)" in printed
    assert "30 clips: 30 done" in printed and "0 failed" in printed
    runs = RunsDir(tmp_path / "runs")
    with runs.ablation_stem("fc").with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["dropped"] for r in rows] == ["—", "audio", "pose", "scene"]
    assert all(r["split"] == "Val" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert not runs.modality("faces").folder.exists()  # --drop fer: the faces model is never trained
    for modality in ("scene", "pose", "audio"):
        assert runs.modality(modality).model.is_file()
    models_before = {m: runs.modality(m).model.stat().st_mtime_ns for m in ("scene", "pose", "audio")}

    assert gvs_main(["run", *arguments]) == 0  # `gvs run` is the same job: it reuses features, models and fusions
    again = capsys.readouterr().out
    assert "30 skipped (already cached)" in again and "already trained" in again
    assert {m: runs.modality(m).model.stat().st_mtime_ns for m in models_before} == models_before
    assert tables(again) == tables(printed)
