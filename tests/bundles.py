"""The trained demo workspace and a small real bundle, each made once per test run (session fixtures in
conftest.py): tests that need real models on real-looking videos share them instead of training their own.

- :func:`run_demo_main_job`: the main job on the demo dataset (fast preset, fc fusion, faces dropped): it
  preprocesses the demo's 30 clips (scene, pose, audio), trains the three models, fuses, ablates and exports.
- :func:`build_small_bundle`: pose and audio trained (40 epochs) on that workspace's features, soft fusion, exported;
  cheap to predict with (no scene backbone), accurate enough to tell the demo's classes apart.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from gvs.cli import main as gvs_main


@dataclass(frozen=True)
class DemoWorkspace:
    """The main job's command-line arguments, what it printed, and its CACHE and RUNS folders."""

    arguments: list[str]
    printed: str
    cache: Path
    runs: Path


def run_demo_main_job(demo: Path, work: Path) -> DemoWorkspace:
    """Run the main job (``run_ensemble.main``, as ``python run_ensemble.py``) once on ``demo`` under ``work``."""
    import run_ensemble

    arguments = [
        str(demo),
        "--cache",
        str(work / "cache"),
        "--runs",
        str(work / "runs"),
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
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_ensemble.main(arguments) == 0
    return DemoWorkspace(arguments, printed.getvalue(), work / "cache", work / "runs")


def build_small_bundle(cache: Path, work: Path) -> Path:
    """Train pose and audio on ``cache`` (the demo's features, fast preset) into ``work/runs``, fit the soft fusion
    and export it to ``work/bundle``; the bundle's folder."""
    runs = work / "runs"
    for modality in ("pose", "audio"):
        assert (
            gvs_main(["train", modality, "--cache", str(cache), "--runs", str(runs), "--epochs", "40", "--quiet"]) == 0
        )
    assert gvs_main(["fuse", "--cache", str(cache), "--runs", str(runs), "--fusion", "soft", "--ablation", "none"]) == 0
    assert gvs_main(["export", "--runs", str(runs), "--fusion", "soft-audio+pose", "--out", str(work / "bundle")]) == 0
    return work / "bundle"
