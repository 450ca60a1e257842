"""python -m modalities MODALITY --cache CACHE ...: the same as python -m modalities.train."""

import sys

from .train import main

sys.exit(main())
