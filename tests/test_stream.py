"""Windows over whole videos (issue 10): one streaming pass, the same features as preprocessing, every frame covered."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gvs.core.errors import InputError
from gvs.predict.stream import VideoInfo, WindowStream
from preprocess.audio import NO_AUDIO_FLAG, AudioExtractor, logmel_embedding, track_steps
from preprocess.config import PreprocessConfig
from preprocess.decode import ClipDecodeError, decode_clip, read_audio
from tests.media import ffmpeg

SMALL = PreprocessConfig(scene_width=96, scene_height=64, scene_weights="none", pose_input_size=128)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, val_clip: Path) -> Path:
    """Videos made from the real Val clip (600x360, 30 fps, 5 s, 150 frames, audio)."""
    folder = tmp_path_factory.mktemp("videos")
    source = str(val_clip)
    # 30 s at 25 fps: the clip 6 times, timestamps made regular (a stream copy leaves jumps where the loops join).
    ffmpeg(
        "-stream_loop", "5", "-i", source, "-vf", "setpts=N/(30*TB)", "-af", "asetpts=N/SR/TB", "-r", "25", "-frames:v", "750",
        "-c:v", "libx264", "-preset", "ultrafast", str(folder / "looped30.mp4"),
    )  # fmt: skip
    ffmpeg("-i", source, "-t", "1", str(folder / "short.mp4"))
    # Every 3rd frame during the first 4 s (10 fps), then all of them (30 fps): 70 frames in 5 s.
    ffmpeg("-i", source, "-vf", r"select='not(mod(n\,3))+gte(t\,4)'", "-fps_mode", "vfr", str(folder / "vfr.mp4"))
    ffmpeg("-i", source, "-an", "-c:v", "copy", str(folder / "noaudio.mp4"))
    ffmpeg("-i", source, "-vn", "-c:a", "copy", str(folder / "audio_only.mp4"))  # no video stream
    ffmpeg("-i", source, "-c", "copy", "-movflags", "+faststart", str(folder / "faststart.mp4"))
    data = (folder / "faststart.mp4").read_bytes()
    (folder / "no_frame.mp4").write_bytes(data[: data.find(b"mdat") + 200])  # header, then nothing to decode
    (folder / "half.mp4").write_bytes(data[: len(data) // 2])  # frames up to about 2.4 s
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n")
    (folder / "truncated.mp4").write_bytes(val_clip.read_bytes()[: val_clip.stat().st_size // 3])  # moov at the end
    return folder


@pytest.fixture(scope="module")
def pose_audio() -> WindowStream:
    return WindowStream(SMALL, ("pose", "audio"))


@pytest.fixture(scope="module")
def audio_only() -> WindowStream:
    return WindowStream(SMALL, ("audio",))


def count_calls(monkeypatch, extractor) -> list[int]:
    """Record the number of frames of every extract() call of ``extractor``."""
    calls: list[int] = []
    extract = extractor.extract

    def counting(clip):
        calls.append(len(clip.frames))
        return extract(clip)

    monkeypatch.setattr(extractor, "extract", counting)
    return calls


@pytest.mark.slow
def test_first_window_has_the_features_preprocessing_computes(val_clip) -> None:
    stream = WindowStream(SMALL)  # all four modalities
    windows = list(stream.windows(val_clip))
    # What ClipProcessor decodes and extracts for the clip: its first 12 sampled frames, 5.5 s of audio.
    clip = decode_clip(
        val_clip,
        SMALL.frame_step,
        SMALL.n_frames,
        stream.extractors["audio"].sample_rate,
        SMALL.audio_seconds + SMALL.audio_hop,
    )
    first = windows[0]
    assert first.index == 0 and first.start_s == 0.0 and first.audio_start_s == 0.0
    assert first.frame_indices == clip.frame_indices and first.end_s == pytest.approx(clip.frame_times[-1])
    for modality, extractor in stream.extractors.items():
        expected = extractor.extract(clip).arrays
        assert first.features[modality].dtype == np.float32
        assert first.features[modality].shape == expected["features"].shape, modality
        assert np.allclose(first.features[modality], expected["features"].astype(np.float32), atol=1e-5), modality
        assert np.array_equal(first.masks[modality], expected["mask"]), modality
    assert first.empty == {} and first.flags == []
    assert first.thumbnail.dtype == np.uint8 and first.thumbnail.shape == (90, 150, 3)
    # 15 sampled frames: the window at 0 and one more ending on the last sampled frame (a 3-frame stride).
    assert [w.frame_indices[0] for w in windows] == [0, 30]
    assert windows[-1].frame_indices[-1] == 140 and windows[-1].flags[0].startswith("last window: 3 of 6")
    info = stream.info
    assert info.finished and info.windows == 2 and info.frames_decoded == 150 and info.frames_extracted == 15
    assert set(info.seconds) >= {"decode", "audio", "scene", "pose", "faces"}


def test_windows_cover_a_long_video_extracting_each_sampled_frame_once(videos, pose_audio, monkeypatch) -> None:
    path = videos / "looped30.mp4"
    calls = count_calls(monkeypatch, pose_audio.extractors["pose"])
    stream = pose_audio.windows(path)
    windows = list(stream)
    info = stream.info
    assert info is pose_audio.info and isinstance(info, VideoInfo) and info.finished
    assert info.fps == 25.0 and info.duration == pytest.approx(30.0, abs=0.05) and info.frames_decoded == 750
    # 75 sampled frames (every 10th), each through the pose network exactly once, in chunks of the stride.
    assert info.frames_sampled == 75 == info.frames_extracted and calls == [6] * 12 + [3]
    # A window every 6 sampled frames (2.4 s at 25 fps), each 12 consecutive sampled frames, then one more that
    # ends on the last sampled frame (3 frames after the one before): within one sampling step of the end.
    assert [w.index for w in windows] == list(range(12)) and info.windows == 12
    assert [w.position for w in windows] == [*range(0, 61, 6), 63]
    assert [w.start_s for w in windows] == pytest.approx([p * 0.4 for p in [*range(0, 61, 6), 63]], abs=1e-3)
    for window in windows:
        assert window.frame_indices == list(range(10 * window.position, 10 * window.position + 120, 10))
        assert window.end_s - window.start_s == pytest.approx(11 * 0.4, abs=1e-3)
        assert window.features["pose"].shape == (12, 27) and window.masks["pose"].all()
    assert windows[-1].flags[0] == "last window: 3 of 6 frames after the one before"
    assert windows[-1].frame_indices[-1] == 740 and windows[-1].end_s == pytest.approx(29.6, abs=1e-3)
    assert windows[-1].end_s >= info.duration - (SMALL.frame_step + 1) / info.fps
    # Audio: the whole track embedded once; each window's 11 steps start at the step nearest its first frame.
    track = read_audio(path, 16000)
    embedded, _ = logmel_embedding(track, 16000, SMALL.audio_hop, track_steps(track.size, 16000, SMALL.audio_hop))
    assert [w.audio_start_s for w in windows] == [0.0, 2.5, 5.0, 7.0, 9.5, 12.0, 14.5, 17.0, 19.0, 21.5, 24.0, 25.0]
    for window in windows:
        first = round(window.audio_start_s / SMALL.audio_hop)
        rows = embedded[first : first + 11]
        assert np.array_equal(window.features["audio"][: len(rows)], rows)
        assert window.masks["audio"].sum() == len(rows) and not window.features["audio"][len(rows) :].any()
        assert "audio" not in window.empty
        partial = [f for f in window.flags if f.startswith("audio:")]  # the track ends within the window's audio
        assert partial == ([] if len(rows) == 11 else [f"audio: {len(rows)} of 11 steps (the track ends at 30.0 s)"])


def test_short_video_gives_one_padded_flagged_window(videos, pose_audio) -> None:
    path = videos / "short.mp4"
    windows = list(pose_audio.windows(path))
    assert len(windows) == 1
    window = windows[0]
    assert window.flags[0] == "short video: 3 of 12 frames (padded)"
    assert pose_audio.info.flags == ["short video: 3 of 12 frames (padded)"]
    clip = decode_clip(path, SMALL.frame_step, SMALL.n_frames, 16000, SMALL.audio_seconds + SMALL.audio_hop)
    for modality in ("pose", "audio"):
        expected = pose_audio.extractors[modality].extract(clip).arrays
        assert np.allclose(window.features[modality], expected["features"]), modality  # padded as preprocessing pads
        assert np.array_equal(window.masks[modality], expected["mask"]), modality
    assert window.masks["pose"].sum() == 3 and not window.features["pose"][3:].any()
    assert window.start_s == 0.0 and window.end_s == pytest.approx(2 / 3)


def test_a_video_without_audio_track_is_no_error(videos, audio_only, val_clip) -> None:
    windows = list(audio_only.windows(videos / "noaudio.mp4"))
    assert len(windows) == 2
    # What preprocessing gives a clip without audio track: silence, every step real, flagged.
    expected = audio_only.extractors["audio"].extract(decode_clip(videos / "noaudio.mp4", sample_rate=16000))
    assert expected.flags == [NO_AUDIO_FLAG]
    for window in windows:
        assert window.empty == {"audio": NO_AUDIO_FLAG} and window.audio_start_s is None
        assert np.array_equal(window.features["audio"], expected.arrays["features"])
        assert np.array_equal(window.masks["audio"], expected.arrays["mask"])
    assert audio_only.info.flags == [NO_AUDIO_FLAG] and audio_only.info.audio_seconds is None
    # The same clip with its audio: nothing empty.
    assert all(w.empty == {} for w in audio_only.windows(val_clip))


@pytest.mark.parametrize(
    "name", ["empty.mp4", "text.mp4", "truncated.mp4", "no_frame.mp4", "audio_only.mp4", "gone.mp4"]
)
def test_undecodable_files_raise_naming_the_file(videos, audio_only, name) -> None:
    path = videos / name
    with pytest.raises(ClipDecodeError, match=re.escape(str(path))):
        next(audio_only.windows(path))  # before any window


def test_a_video_cut_short_streams_what_decodes_and_says_so(videos, audio_only) -> None:
    windows = list(audio_only.windows(videos / "half.mp4"))
    info = audio_only.info
    assert (
        info.frames_sampled == 8 and len(windows) == 1 and windows[0].flags[0] == "short video: 8 of 12 frames (padded)"
    )
    assert any(re.fullmatch(r"decoding stopped at 2\.\d s of 5\.0 s \(truncated file\?\)", f) for f in info.flags)


def test_variable_frame_rate_video_is_sampled_by_time_and_flagged(videos, audio_only) -> None:
    windows = list(audio_only.windows(videos / "vfr.mp4"))
    info = audio_only.info
    assert info.fps == 30.0 and info.frames_decoded == 70 and info.frames_sampled == 15
    assert [w.position for w in windows] == [0, 3]
    times = np.array([windows[0].start_s, *[w.end_s for w in windows]])
    assert times == pytest.approx([0.0, 11 / 3, 14 / 3], abs=0.1)  # by time, not every 10th decoded frame
    assert any(f.startswith("variable frame rate or timestamp jumps: ") for f in info.flags)


def test_stride_outside_a_window_is_refused() -> None:
    for stride in (0, 13):
        with pytest.raises(InputError, match=f"stride {stride}"):
            WindowStream(SMALL, ("audio",), stride)
    with pytest.raises(InputError, match="unknown modality"):
        WindowStream(SMALL, ("sound",))


def test_whole_track_embedding_matches_the_clip_embedding_chunk_by_chunk(val_clip, monkeypatch) -> None:
    """AudioExtractor.embed_track (both backends): chunks give the rows one pass gives, and the first rows are
    what extract() gives the clip. OpenL3 is a stand-in that frames audio exactly as openl3 0.4.2 does."""
    track16 = read_audio(val_clip, 16000)
    logmel = AudioExtractor(PreprocessConfig(audio_backend="logmel"))
    whole = logmel.embed_track(track16)
    assert whole.shape == (track_steps(track16.size, 16000, 0.5), 132) == (11, 132)
    # Equal up to float32 rounding: an STFT over a shorter span may sum in another order (1 ulp on AVX2 CPUs).
    np.testing.assert_allclose(logmel.embed_track(track16, chunk_steps=3), whole, rtol=1e-6, atol=1e-5)
    long = np.tile(track16, 7)
    np.testing.assert_allclose(
        logmel.embed_track(long, chunk_steps=5), logmel_embedding(long, 16000, 0.5, 71)[0], rtol=1e-6, atol=1e-5
    )

    def get_audio_embedding(audio, sr, model=None, hop_size=0.1, center=True, verbose=True):
        frame_len, hop_len = sr, int(hop_size * sr)  # openl3.core._preprocess_audio_batch at 48 kHz
        if center:
            audio = np.pad(audio, (frame_len // 2, 0))
        pad = frame_len - audio.size if audio.size < frame_len else -(audio.size - frame_len) % hop_len
        audio = np.pad(audio, (0, max(0, pad)))
        n_frames = 1 + (audio.size - frame_len) // hop_len
        frames = np.stack([audio[i * hop_len : i * hop_len + frame_len] for i in range(n_frames)])
        stats = np.stack([frames[:, k::8].sum(axis=1) for k in range(8)], axis=1)  # depends on every sample
        return np.tile(stats, 768), np.arange(n_frames) * hop_size

    fake = types.ModuleType("openl3")
    fake.get_audio_embedding = get_audio_embedding
    fake.models = types.SimpleNamespace(load_audio_embedding_model=lambda **kwargs: None)
    monkeypatch.setitem(sys.modules, "openl3", fake)
    openl3 = AudioExtractor(PreprocessConfig(audio_backend="openl3"))
    track48 = read_audio(val_clip, 48000)
    clip = decode_clip(val_clip, sample_rate=48000, audio_seconds=5.5)
    expected = openl3.extract(clip).arrays["features"]
    embedded = openl3.embed_track(track48, chunk_steps=4)
    assert embedded.shape == (11, 6144)
    assert np.allclose(embedded, expected, atol=1e-5)
    assert np.array_equal(openl3.embed_track(np.tile(track48, 3), chunk_steps=7)[:10], embedded[:10])
