"""python -m preprocess: the same as `gvs preprocess`."""

import sys

from gvs.core.command import run_module, set_up_process

set_up_process()
from .cli import DESCRIPTION, EPILOG, add_arguments, run  # noqa: E402

sys.exit(run_module("python -m preprocess", DESCRIPTION, EPILOG, add_arguments, run))
