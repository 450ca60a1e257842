"""preprocess.pipeline.make_extractor: one extractor per modality name, and a clear error for any other name."""

from __future__ import annotations

import pytest

from gvs.core.errors import InputError
from gvs.core.vocabulary import MODALITIES
from preprocess.config import PreprocessConfig
from preprocess.pipeline import make_extractor


@pytest.mark.parametrize("name", ["fases", "", "Faces", "video"])
def test_an_unknown_modality_is_an_input_error_naming_it_and_the_choices(name: str) -> None:
    with pytest.raises(InputError) as raised:
        make_extractor(name, PreprocessConfig())
    message = str(raised.value)
    assert repr(name) in message
    assert all(modality in message for modality in MODALITIES)
