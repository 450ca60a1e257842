"""A small real bundle for tests that need real models: pose and audio trained on the demo (fast preset), soft
fusion. Building it takes a few minutes on 2 cores; test modules build it once in a module fixture."""

from __future__ import annotations

from pathlib import Path

from gvs.cli import main as gvs_main


def build_small_bundle(demo: Path, work: Path) -> Path:
    """Preprocess ``demo`` (pose and audio only), train both models, fit the soft fusion and export it to
    ``work/bundle``; the bundle's folder."""
    cache, runs = work / "cache", work / "runs"
    assert (
        gvs_main(
            ["preprocess", str(demo), "--cache", str(cache), "--only", "pose", "audio", "--preset", "fast", "--quiet"]
        )
        == 0
    )
    for modality in ("pose", "audio"):
        assert (
            gvs_main(["train", modality, "--cache", str(cache), "--runs", str(runs), "--epochs", "40", "--quiet"]) == 0
        )
    assert gvs_main(["fuse", "--cache", str(cache), "--runs", str(runs), "--fusion", "soft", "--ablation", "none"]) == 0
    assert gvs_main(["export", "--runs", str(runs), "--fusion", "soft-audio+pose", "--out", str(work / "bundle")]) == 0
    return work / "bundle"
