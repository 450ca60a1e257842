"""Every stage a report is made in has one name and one label, in gvs/report/stages.py, and gvs serve shows them."""

from __future__ import annotations

import ast
from pathlib import Path

from gvs.report.stages import REPORT_STAGES
from gvs.serve.jobs import STAGE_LABELS

ROOT = Path(__file__).resolve().parents[1]


def emitted_stages(source: str) -> set[str]:
    """The names ``timed("name", ...)`` is called with in ``source`` (how ReportMaker.explain reports its stages)."""
    return {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "timed"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_stage_the_report_emits_has_a_label_in_its_one_home() -> None:
    emitted = emitted_stages((ROOT / "gvs" / "report" / "explain.py").read_text(encoding="utf-8"))
    assert {"sections", "modalities", "attention"} <= emitted  # the check sees the calls
    assert emitted <= set(REPORT_STAGES), (
        f"stages without a label in gvs/report/stages.py: {emitted - set(REPORT_STAGES)}"
    )
    assert all(REPORT_STAGES[stage] for stage in emitted)


def test_serve_labels_the_report_stages_from_that_home() -> None:
    assert {stage: STAGE_LABELS[stage] for stage in REPORT_STAGES} == REPORT_STAGES
    assert {"queued", "predict", "writing", "done", "failed"} <= set(STAGE_LABELS)
