"""python -m modalities MODALITY --cache CACHE ...: the same as python -m modalities.train."""

import sys

from gvs.core.command import set_up_process

set_up_process()
from .cli import main  # noqa: E402

sys.exit(main())
