"""The contract every modality extractor follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .config import PreprocessConfig
from .decode import DecodedClip


@dataclass
class ModalityResult:
    """One clip's output for one modality.

    ``arrays`` always holds ``features`` (the model input, padded to a fixed length) and ``mask``
    (bool per time step, True = real). Extra arrays (boxes, raw keypoints, scores) are kept for figures.
    ``flags`` are notes such as "no faces" that do not make the clip fail.
    """

    arrays: dict[str, np.ndarray]
    flags: list[str] = field(default_factory=list)


class Extractor(Protocol):
    """Loads its models once in ``__init__`` (once per worker process), then extracts clip after clip."""

    modality: str
    resolved: dict  # what the configuration resolved to (weights used, backend, model sha256), recorded in the cache

    def __init__(self, config: PreprocessConfig) -> None: ...

    def extract(self, clip: DecodedClip) -> ModalityResult:
        """One clip's features for this modality.

        Parameters
        ----------
        clip : DecodedClip
            The decoded frames (n_kept, H, W, 3) uint8 RGB and audio.

        Returns
        -------
        result : ModalityResult
            ``features`` padded to ``clip.n_frames`` steps and ``mask`` (n_frames,) bool, with any extra arrays.
        """
        ...
