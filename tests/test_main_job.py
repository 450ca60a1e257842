"""The main job on the real demo videos: real extractors, real training, fusion and ablation, then a resume."""
import csv
from pathlib import Path

import pytest

import run_ensemble
from preprocess.demo import make_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory, shared_dir: Path) -> Path:  # shared_dir: the pose model file comes from there offline
    return make_demo(tmp_path_factory.mktemp("demo") / "demo")


def test_demo_chain_ends_with_tables_and_resumes_without_redoing_work(demo: Path, tmp_path: Path, capsys) -> None:
    arguments = [str(demo), "--cache", str(tmp_path / "cache"), "--runs", str(tmp_path / "runs"), "--preset", "fast",
                 "--fusion", "fc", "--drop", "fer", "--train-epochs", "15", "--epochs", "40"]
    assert run_ensemble.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "### Comparison" in printed and "### Ablation: fc fusion (loo)" in printed
    assert "30 clips: 30 done" in printed and "0 failed" in printed
    with (tmp_path / "runs" / "ablation" / "fc.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["dropped"] for r in rows] == ["—", "audio", "pose", "scene"]
    assert all(r["split"] == "Val" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert not (tmp_path / "runs" / "faces").exists()  # --drop fer: the faces model is never trained
    for modality in ("scene", "pose", "audio"):
        assert (tmp_path / "runs" / modality / "model.keras").is_file()
    models_before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("model.keras")}

    assert run_ensemble.main(arguments) == 0  # a re-run reuses features, models and fusions
    printed = capsys.readouterr().out
    assert "30 skipped (already cached)" in printed and "already trained" in printed
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("model.keras")} == models_before
