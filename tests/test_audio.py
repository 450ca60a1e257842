"""Audio extractor: real clips, mel filterbank on pure tones, the padding rule, steady energy up to the ends of the
track, silence, choosing and refusing openl3."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from preprocess.audio import (
    LOGMEL_DIM,
    N_MELS,
    NO_AUDIO_FLAG,
    AudioBackendError,
    AudioExtractor,
    logmel_embedding,
    mel_band_centres,
    mel_filterbank,
    resolve_backend,
    track_steps,
)
from preprocess.config import PreprocessConfig
from preprocess.decode import DecodedClip, decode_clip

SR = 16000
CONFIG = PreprocessConfig(audio_backend="logmel")
ENERGY_MEAN = 2 * N_MELS  # column of the mean frame log energy (natural log of the mean square)
DB = 10 / np.log(10)


@pytest.fixture(scope="module")
def extractor() -> AudioExtractor:
    return AudioExtractor(CONFIG)


def decode_audio(path, extractor: AudioExtractor) -> DecodedClip:
    return decode_clip(path, sample_rate=extractor.sample_rate, audio_seconds=CONFIG.audio_seconds)


def tone(frequency: float, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def test_real_clips_give_full_finite_grid(extractor, val_clip, test_clips):
    assert extractor.resolved["backend"] == "logmel" and extractor.sample_rate == SR
    results = [extractor.extract(decode_audio(path, extractor)) for path in (val_clip, test_clips[0])]
    for result in results:
        features, mask = result.arrays["features"], result.arrays["mask"]
        assert features.shape == (CONFIG.audio_steps, extractor.resolved["dim"]) == (11, LOGMEL_DIM)
        assert features.dtype == np.float32 and mask.dtype == bool
        assert np.isfinite(features).all() and mask.all()
        assert features[:, :N_MELS].std(axis=0).max() > 0.1  # the sound changes over the 5 s
        assert NO_AUDIO_FLAG not in result.flags
    assert not np.allclose(results[0].arrays["features"], results[1].arrays["features"])


def test_mel_filterbank_shape_and_coverage():
    filters = mel_filterbank(SR, 512, N_MELS)
    assert filters.shape == (N_MELS, 257) and filters.min() >= 0
    assert (filters.max(axis=1) > 0.5).all()  # no empty band at 16 kHz / 512-point FFT
    peak_hz = np.fft.rfftfreq(512, 1 / SR)[filters.argmax(axis=1)]
    assert np.all(np.diff(peak_hz) >= 0) and peak_hz[-1] > 7000


@pytest.mark.parametrize("frequency", [440.0, 3000.0])
def test_tone_peaks_in_band_around_its_frequency(frequency):
    features, _ = logmel_embedding(tone(frequency), SR)
    band = int(features[1, :N_MELS].argmax())  # step t = 0.5 s: its window holds only the tone
    centres = mel_band_centres(N_MELS, 0.0, SR / 2)
    assert centres[band - 1] < frequency < centres[band + 1]


def test_higher_tone_peaks_in_higher_band_with_higher_centroid():
    low, _ = logmel_embedding(tone(440.0), SR)
    high, _ = logmel_embedding(tone(3000.0), SR)
    assert high[1, :N_MELS].argmax() > low[1, :N_MELS].argmax() + 10
    centroid_mean = 2 * N_MELS + 2
    assert high[1, centroid_mean] > 2.0 > low[1, centroid_mean]  # kHz


@pytest.mark.parametrize("n_samples, n_real", [(2 * SR, 5), (2 * SR - 1, 4), (2 * SR + SR // 5, 5), (5 * SR, 11)])
def test_steps_real_while_centre_within_audio(n_samples, n_real):
    noise = np.random.default_rng(0).normal(0, 0.1, n_samples).astype(np.float32)
    features, mask = logmel_embedding(noise, SR, hop=0.5, steps=11)
    assert mask.tolist() == [True] * n_real + [False] * (11 - n_real)
    assert np.isfinite(features).all()
    assert not features[n_real:].any() and np.abs(features[:n_real]).sum(axis=1).min() > 0


def test_track_shorter_than_one_frame_has_no_real_step():
    features, mask = logmel_embedding(tone(440.0, 0.02), SR)  # 20 ms: less than one 25-ms analysis frame
    assert not mask.any() and not features.any() and track_steps(int(0.02 * SR), SR, 0.5) == 0


def test_steady_tone_has_the_same_energy_up_to_the_ends_of_the_track(extractor):
    """The first and last steps' windows reach 0.5 s beyond the track: they summarise only the audio inside it, so a
    steady tone (amplitude 0.5: mean square 1/8, -9.03 dB) reads the same energy there as in the middle."""
    no_frames = np.zeros((0, 1, 1, 3), np.uint8)
    clip = DecodedClip(Path("tone.mp4"), no_frames, [], 0.0, 12, audio=tone(440.0, 5.0), sample_rate=SR)
    result = extractor.extract(clip)
    track = extractor.embed_track(tone(440.0, 12.0))  # a whole track for gvs predict: steps at 0, 0.5, ..., 12 s
    assert result.arrays["mask"].all() and track.shape == (25, LOGMEL_DIM)
    for features in (result.arrays["features"], track):
        energy_db = features[:, ENERGY_MEAN] * DB
        first, middle, last = energy_db[0], energy_db[len(energy_db) // 2], energy_db[-1]
        assert abs(first - middle) < 0.5 and abs(last - middle) < 0.5
        assert np.allclose(energy_db, 10 * np.log10(0.125), atol=0.5)


def test_clip_without_audio_embeds_finite_silence(extractor, val_clip, tmp_path):
    silent_copy = tmp_path / "video_only.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(val_clip),
            "-t",
            "2",
            "-an",
            "-c:v",
            "copy",
            str(silent_copy),
        ],
        check=True,
    )
    clip = decode_audio(silent_copy, extractor)
    assert clip.audio is None
    result = extractor.extract(clip)
    features, mask = result.arrays["features"], result.arrays["mask"]
    assert mask.all() and np.isfinite(features).all()
    assert np.allclose(features, features[0])  # silence looks the same at every step
    assert NO_AUDIO_FLAG in result.flags


def test_wrong_sample_rate_names_clip(extractor, val_clip):
    clip = decode_clip(val_clip, sample_rate=8000, audio_seconds=1.0)
    with pytest.raises(ValueError, match="1_1.mp4.*sample_rate=extractor.sample_rate"):
        extractor.extract(clip)


def test_openl3_without_package_says_how_to_fix(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openl3", None)  # import openl3 fails as when it is not installed
    with pytest.raises(
        AudioBackendError,
        match=r"with internet, `pip install --force-reinstall --no-deps openl3==0.4.2`.*--audio-backend logmel",
    ):
        AudioExtractor(PreprocessConfig(audio_backend="openl3"))
    with caplog.at_level(logging.INFO, logger="preprocess.audio"):
        assert AudioExtractor(PreprocessConfig(audio_backend="auto")).resolved["backend"] == "logmel"
    assert "audio backend auto: logmel (audio backend 'openl3' needs the openl3 package" in caplog.text


def test_auto_takes_openl3_only_with_its_weight_file(monkeypatch, caplog, tmp_path):
    """An installed openl3 (here a stand-in module) whose weight file is missing leaves auto on logmel, saying why."""
    weights = tmp_path / "openl3_audio_mel256_music.h5"
    models = types.SimpleNamespace(get_audio_embedding_model_path=lambda input_repr, content_type: str(weights))
    monkeypatch.setitem(sys.modules, "openl3", types.SimpleNamespace(models=models))
    with caplog.at_level(logging.WARNING, logger="preprocess.audio"):
        assert resolve_backend("auto") == "logmel"
    assert f"installed without its weights ({weights} is missing)" in caplog.text
    weights.write_bytes(b"")
    assert resolve_backend("auto") == "openl3"


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown audio backend 'vggish'"):
        AudioExtractor(PreprocessConfig(audio_backend="vggish"))
