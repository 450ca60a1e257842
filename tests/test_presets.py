"""The fast preset is the one benchmarks/bench_presets.py chose, and docs/presets.md says so."""

from __future__ import annotations

from pathlib import Path

from preprocess.config import PRESETS, PreprocessConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "presets.md"


def test_fast_preset_is_the_row_the_table_chose():
    fast, paper = PRESETS["fast"], PRESETS["paper"]
    assert paper == PreprocessConfig()
    assert (fast.pose_input_size, fast.face_every, fast.scene_width, fast.scene_height) == (336, 1, 240, 160)
    # Everything else (sampling, faces, audio) is the paper preset's.
    assert fast == PreprocessConfig(scene_width=240, scene_height=160, pose_input_size=336)
    text = DOC.read_text(encoding="utf-8")
    assert "**fast = pose input 336, faces on every sampled frame, scene 240x160.**" in text
    assert "| 336 | every frame | 240x160 | 95.7% | 100.0% |" in text
