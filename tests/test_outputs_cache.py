"""A corrupt cache of model outputs is computed again, and says so."""

import logging
from pathlib import Path

from ensemble.outputs import _stored_outputs


def test_a_corrupt_outputs_cache_is_named_in_a_warning(tmp_path: Path, caplog) -> None:
    stored = tmp_path / "pose.npz"
    stored.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="ensemble.outputs"):
        assert _stored_outputs(stored, "pose", "stamp") is None
    assert str(stored) in caplog.text and "computing them again" in caplog.text


def test_an_absent_outputs_cache_is_computed_without_a_warning(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="ensemble.outputs"):
        assert _stored_outputs(tmp_path / "pose.npz", "pose", "stamp") is None
    assert not caplog.text
