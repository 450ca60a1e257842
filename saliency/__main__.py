"""python -m saliency: the same as `gvs explain`."""

import sys

from gvs.core.command import run_module

from .cli import DESCRIPTION, EPILOG, add_arguments, run

sys.exit(run_module("python -m saliency", DESCRIPTION, EPILOG, add_arguments, run))
