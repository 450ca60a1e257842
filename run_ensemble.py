"""Fuse the four modality models and ablate them: the whole chain, from videos to comparison tables.

    python run_ensemble.py                          demo: preprocess, train, fuse, ablate, print tables
    python run_ensemble.py DATASET                  the same on your data
    python run_ensemble.py --fusion fc --drop fer   fc fusion without the faces (FER) modality

The same as `gvs run` (see `gvs run --help`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from gvs.cli import main as gvs_main

    return gvs_main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
