"""python -m preprocess: the same as `gvs preprocess`."""

import sys

from gvs.core.command import run_module

from .cli import DESCRIPTION, EPILOG, add_arguments, run

sys.exit(run_module("python -m preprocess", DESCRIPTION, EPILOG, add_arguments, run))
