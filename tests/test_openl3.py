"""The real OpenL3 path (openl3 0.4.2 as install.sh installs it) on a real clip, with seeded random weights saved as
the file openl3 loads: the real weights need internet. Same time grid and mask as the log-mel backend."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pytest

from preprocess.audio import OPENL3_PARAMS, AudioBackendError, AudioExtractor
from preprocess.config import PreprocessConfig
from preprocess.decode import DecodedClip, decode_clip, read_audio

openl3 = pytest.importorskip("openl3", reason="openl3 is not installed (install.sh installs it from ../shared/src)")

pytestmark = pytest.mark.slow
SR = 48000
AUTO = PreprocessConfig(audio_backend="auto")


def use_weights(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make the installed openl3 look for its audio model weights at ``path``."""
    monkeypatch.setattr(openl3.models, "get_audio_embedding_model_path", lambda input_repr, content_type: str(path))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Seeded random weights of OpenL3's audio network (OPENL3_PARAMS), in a file openl3's loader reads."""
    keras.utils.set_random_seed(0)
    network = getattr(openl3.models, f"_construct_{OPENL3_PARAMS['input_repr']}_audio_network")()
    path = tmp_path_factory.mktemp("openl3") / "openl3_audio_mel256_music.weights.h5"
    network.save_weights(path)
    return path


@pytest.fixture(scope="module")
def extractor(weights: Path) -> AudioExtractor:
    """Backend auto with the weight file present: OpenL3, loaded by openl3 itself."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_weights(monkeypatch, weights)
        yield AudioExtractor(AUTO)


def clip_with(audio: np.ndarray | None, sample_rate: int) -> DecodedClip:
    return DecodedClip(Path("clip.mp4"), np.zeros((0, 1, 1, 3), np.uint8), [], 0.0, 12, audio, sample_rate)


def test_real_clip_on_the_logmel_grid(extractor, val_clip):
    assert extractor.resolved["backend"] == "openl3" and extractor.sample_rate == SR
    result = extractor.extract(decode_clip(val_clip, sample_rate=SR, audio_seconds=5.5))
    features, mask = result.arrays["features"], result.arrays["mask"]
    assert features.shape == (11, 6144) == (AUTO.audio_steps, extractor.resolved["dim"])
    assert features.dtype == np.float32 and np.isfinite(features).all() and mask.all()
    assert np.abs(np.diff(features, axis=0)).max(axis=1).min() > 0  # every step embeds different audio
    # A 2-s track: the same real steps (0 .. 2 s) and mask as the log-mel backend, zeros after.
    logmel = AudioExtractor(PreprocessConfig(audio_backend="logmel"))
    short = extractor.extract(clip_with(read_audio(val_clip, SR)[: 2 * SR], SR)).arrays
    short_logmel = logmel.extract(clip_with(read_audio(val_clip, 16000)[: 2 * 16000], 16000)).arrays
    assert short["mask"].tolist() == short_logmel["mask"].tolist() == [True] * 5 + [False] * 6
    assert not short["features"][5:].any() and np.abs(short["features"][:5]).min(axis=1).max() > 0
    assert np.allclose(short["features"][:4], features[:4], rtol=1e-4, atol=1e-4 * np.abs(features).max())


def test_step_k_embeds_the_second_centred_on_k_times_the_hop(extractor, weights, val_clip, monkeypatch):
    """Steps are 0.5 s apart, each the embedding of the 1-s window centred on it (zeros before the track)."""
    track = read_audio(val_clip, SR)
    features = extractor.extract(clip_with(track[: int(5.5 * SR)], SR)).arrays["features"]
    use_weights(monkeypatch, weights)
    model = openl3.models.load_audio_embedding_model(**OPENL3_PARAMS)  # a second copy of the same weights
    for step in (0, 3, 10):
        start = int((step * AUTO.audio_hop - 0.5) * SR)
        window = np.pad(track, (SR, SR))[start + SR : start + 2 * SR]
        expected = model.predict(window[None, None, :], verbose=0)[0]
        assert np.allclose(features[step], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()), step


def test_whole_track_agrees_with_extract(extractor, val_clip):
    track = read_audio(val_clip, SR)
    expected = extractor.extract(decode_clip(val_clip, sample_rate=SR, audio_seconds=5.5)).arrays["features"]
    embedded = extractor.embed_track(track, chunk_steps=4)
    assert embedded.shape == (11, 6144)
    assert np.allclose(embedded, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_missing_weights_keep_auto_on_logmel_and_stop_openl3(tmp_path, monkeypatch, caplog):
    missing = tmp_path / "openl3_audio_mel256_music.h5"
    use_weights(monkeypatch, missing)
    with caplog.at_level(logging.WARNING, logger="preprocess.audio"):
        assert AudioExtractor(AUTO).resolved["backend"] == "logmel"
    assert f"openl3 is installed without its weights ({missing} is missing)" in caplog.text
    with pytest.raises(
        AudioBackendError, match=rf"{missing} is missing.*pip install --force-reinstall --no-deps openl3"
    ):
        AudioExtractor(PreprocessConfig(audio_backend="openl3"))
