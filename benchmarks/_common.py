"""What the benchmark scripts share, imported before anything of the project: the repository on sys.path, the
process set up as a command's (gvs.core.command.set_up_process), the shared folder and the clips they time."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from any folder
from gvs.core.command import set_up_process  # noqa: E402

set_up_process()
SHARED = Path(os.environ.get("GVS_SHARED") or REPO.parent / "shared")
CLIPS = ["Val/1_1.mp4", *(f"Test/Test_{i}.mp4" for i in range(1, 11))]  # the shared clips the benchmarks time


def use_shared_models() -> None:
    """Read the model files from SHARED/models unless GVS_MODEL_DIR names other ones (before Ray: actors get it)."""
    os.environ.setdefault("GVS_MODEL_DIR", str(SHARED / "models"))
