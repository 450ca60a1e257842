"""The layers hold: the core imports no stage, the stages never import the chain or the command, ensemble and
saliency import preprocessing only to decode media, and each layout file name is spelled in one module."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("preprocess", "modalities", "ensemble", "saliency")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Source file -> every module it imports (absolute names; relative imports are within its package)."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_core_imports_no_stage_and_nothing_above_it() -> None:
    for path, names in imported_modules(REPO / "gvs" / "core").items():
        assert not {n for n in names if n.split(".")[0] in STAGES or n in ("gvs.cli", "gvs.chain")}, path


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_prediction_the_chain_or_the_command(stage: str) -> None:
    for path, names in imported_modules(REPO / stage).items():
        assert not {
            n for n in names if n.startswith(("gvs.cli", "gvs.chain", "gvs.predict", "gvs.report", "gvs.serve"))
        }, path


def test_prediction_never_imports_the_chain_or_the_command() -> None:
    for path, names in imported_modules(REPO / "gvs" / "predict").items():
        assert not {n for n in names if n.startswith(("gvs.cli", "gvs.chain"))}, path


@pytest.mark.parametrize("stage", ("ensemble", "saliency"))
def test_ensemble_and_saliency_use_preprocessing_only_to_decode_media(stage: str) -> None:
    for path, names in imported_modules(REPO / stage).items():
        assert {n for n in names if n.startswith("preprocess")} <= {"preprocess.decode"}, path


@pytest.mark.parametrize(
    "name",
    [
        "model.keras",
        "predictions.csv",
        "clips.csv",
        "fusion.json",
        "partition.json",
        "scaler.npz",
        "config.json",
        "metrics.json",
        "current.json",
        "source.json",
    ],
)
def test_each_layout_file_name_is_spelled_in_one_module(name: str) -> None:
    spelled = [
        p
        for p in REPO.glob("**/*.py")
        if ".venv" not in p.parts and p != Path(__file__) and f'"{name}"' in p.read_text()
    ]
    assert [str(p.relative_to(REPO)) for p in spelled] == ["gvs/core/workspace.py"]


def test_every_cli_module_offers_examples() -> None:
    for path in [
        REPO / "preprocess" / "cli.py",
        REPO / "saliency" / "cli.py",
        REPO / "modalities" / "train.py",
        REPO / "gvs" / "predict" / "cli.py",
    ]:
        assert re.search(r"^examples:$", path.read_text(), re.M), path
