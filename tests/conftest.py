"""Shared fixtures: the real VGAF clips and model files beside the checkout (../shared, or $GVS_SHARED)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GVS_SHARED", REPO.parent / "shared"))
# Bundles exported by tests (and the "last exported bundle" pointer) go to a temporary home, not the user's.
os.environ["GVS_HOME"] = tempfile.mkdtemp(prefix="gvs-home-")
if (SHARED / "models").is_dir():
    os.environ.setdefault("GVS_MODEL_DIR", str(SHARED / "models"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder; tests that need real clips or model files skip (saying why) without it."""
    if not (SHARED / "data" / "vgaf").is_dir():
        pytest.skip(f"real clips not found at {SHARED}; set GVS_SHARED to the shared folder")
    return SHARED


@pytest.fixture(scope="session")
def vgaf_root(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vgaf"


@pytest.fixture(scope="session")
def val_clip(vgaf_root: Path) -> Path:
    """The one labelled real clip (Val/1_1.mp4, Negative)."""
    return vgaf_root / "Val" / "1_1.mp4"


@pytest.fixture(scope="session")
def test_clips(vgaf_root: Path) -> list[Path]:
    return sorted((vgaf_root / "Test").glob("*.mp4"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory, shared_dir: Path) -> Path:
    """The demo dataset, written once per session (shared_dir: the pose model file comes from there offline)."""
    from preprocess.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo") / "demo")


@pytest.fixture(scope="session")
def demo_workspace(demo: Path, tmp_path_factory):
    """The one trained demo workspace of a test run: the main job on the demo (fast preset, fc fusion, faces
    dropped), run once (tests/bundles.py). Its cache holds the demo's scene, pose and audio features."""
    from tests.bundles import run_demo_main_job

    return run_demo_main_job(demo, tmp_path_factory.mktemp("demo-workspace"))


@pytest.fixture(scope="session")
def small_bundle(demo_workspace, tmp_path_factory) -> Path:
    """Pose and audio models trained on the demo workspace's features (fast preset), soft fusion, exported as a
    bundle (tests/bundles.py)."""
    from tests.bundles import build_small_bundle

    return build_small_bundle(demo_workspace.cache, tmp_path_factory.mktemp("small-bundle"))


DEMO_FIXTURES = {"demo", "demo_workspace", "small_bundle"}


def pytest_collection_modifyitems(config, items) -> None:
    """For `pytest -n 2` (pytest-xdist, `--dist loadgroup`): each file's tests run on one worker, so module
    fixtures are built once; every file that uses the trained demo workspace runs on the same worker, so the
    session's most expensive fixture is built once."""
    demo_files = {item.path for item in items if DEMO_FIXTURES & set(getattr(item, "fixturenames", ()))}
    for item in items:
        group = "demo-workspace" if item.path in demo_files else item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
