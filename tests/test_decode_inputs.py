"""Inputs that deserve better than index sampling (issue 9): long, variable-frame-rate and portrait clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gvs.core.errors import InputError
from preprocess import decode
from preprocess.config import PreprocessConfig
from preprocess.decode import ClipDecodeError, StreamInfo, decode_clip, nominal_rate, parse_stream_header, read_frames
from preprocess.scene import SceneExtractor, squash_flag
from tests.media import ffmpeg

EVERY_10TH = list(range(0, 120, 10))


def decoded_times(path: Path) -> np.ndarray:
    """Seconds of every frame as OpenCV decodes them (to check that a derived clip is what it claims)."""
    capture = cv2.VideoCapture(str(path))
    stamps = []
    while capture.grab():
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
    capture.release()
    return np.array(stamps)


@pytest.fixture(scope="module")
def derived(tmp_path_factory, val_clip: Path) -> Path:
    """Clips made from the real Val clip (600x360, 30 fps, 5 s, 150 frames)."""
    folder = tmp_path_factory.mktemp("derived")
    source = str(val_clip)
    # Every 3rd frame during the first 4 s (10 fps), then all of them (30 fps): 70 frames in 5 s.
    ffmpeg(
        "-i", source, "-an", "-vf", r"select='not(mod(n\,3))+gte(t\,4)'", "-fps_mode", "vfr", str(folder / "vfr.mp4")
    )
    # Nothing between 1 s and 2.5 s: a 1.5-s gap in the timestamps.
    ffmpeg("-i", source, "-an", "-vf", r"select='lt(t\,1)+gte(t\,2.5)'", "-fps_mode", "vfr", str(folder / "gap.mp4"))
    ffmpeg("-stream_loop", "11", "-i", source, "-c", "copy", str(folder / "long.mp4"))  # 60 s, no re-encoding
    ffmpeg("-i", source, "-t", "1", str(folder / "short.mp4"))
    ffmpeg("-i", source, "-an", "-t", "1", "-vf", "transpose=1", str(folder / "portrait.mp4"))
    return folder


@pytest.fixture
def no_probe(monkeypatch):
    """Fail the test if decoding runs ffmpeg to read the header (constant-frame-rate clips never need it)."""

    def probe(path):
        raise AssertionError(f"{path}: header probed for a constant-frame-rate clip")

    monkeypatch.setattr(decode, "probe_stream", probe)


def test_constant_frame_rate_clips_keep_every_10th_frame_without_probing(val_clip, test_clips, no_probe) -> None:
    clip = decode_clip(val_clip, sample_rate=None)
    assert clip.frame_indices == EVERY_10TH and clip.fps == 30.0
    assert np.allclose(clip.frame_times, np.array(EVERY_10TH) / 30.0)
    assert clip.duration == pytest.approx(5.0, abs=0.01)
    assert clip.flags == []  # 12 frames every 10th at 30 fps span 3.7 s of 5.0 s: within LONG_TOLERANCE_S
    frames, indices, fps = read_frames(val_clip)
    assert frames.shape == (12, 360, 600, 3) and indices == EVERY_10TH and fps == 30.0
    assert np.array_equal(frames, clip.frames)
    for path in test_clips:  # 25, 30 and 29.97 fps
        _, indices, _ = read_frames(path)
        assert indices == EVERY_10TH, path.name


def test_missing_timestamps_fall_back_to_frame_counts(val_clip, monkeypatch, no_probe) -> None:
    open_capture = cv2.VideoCapture

    class NoTimestamps:
        """OpenCV's capture with every timestamp 0 (what it returns when frames carry none)."""

        def __init__(self, path: str) -> None:
            self.capture = open_capture(path)

        def get(self, prop: int) -> float:
            return 0.0 if prop == cv2.CAP_PROP_POS_MSEC else self.capture.get(prop)

        def __getattr__(self, name: str):
            return getattr(self.capture, name)

    monkeypatch.setattr(decode.cv2, "VideoCapture", NoTimestamps)
    clip = decode_clip(val_clip, sample_rate=None)
    assert clip.frame_indices == EVERY_10TH
    assert np.allclose(clip.frame_times, np.array(EVERY_10TH) / 30.0)


def test_variable_frame_rate_clip_is_sampled_by_time_not_index(derived) -> None:
    path = derived / "vfr.mp4"
    stamps = decoded_times(path)
    gaps = np.round(np.diff(stamps), 3)
    assert len(stamps) < 111  # every 10th frame by index would come out short (7 of 12)
    assert {0.1, 0.033} <= set(gaps) and stamps[-1] > 4.9  # really variable: 10 fps, then 30 fps, for 5 s
    clip = decode_clip(path, sample_rate=None)
    assert clip.fps == 30.0  # the nominal rate, not the 14-fps average
    assert len(clip.frames) == 12 and clip.mask.all()
    assert not any(flag.startswith("short") for flag in clip.flags)
    times = np.array(clip.frame_times)
    targets = np.arange(12) * 10 / 30.0
    assert np.all(times >= targets - 1 / 60) and np.all(times < targets + 0.1)  # first frame at or after the target
    assert np.all((np.diff(times) > 0.25) & (np.diff(times) < 0.45))  # about 1/3 s apart
    assert np.allclose(times, stamps[clip.frame_indices])  # indices and times name the same frames
    assert clip.frame_indices == sorted(set(clip.frame_indices))


def test_a_gap_in_timestamps_repeats_the_frame_after_it(derived) -> None:
    clip = decode_clip(derived / "gap.mp4", sample_rate=None)
    assert len(clip.frames) == 12
    assert clip.frame_times[:8] == pytest.approx([0, 1 / 3, 2 / 3] + [2.5] * 5, abs=1e-3)  # targets 1.0 .. 2.33 s
    assert clip.frame_indices[3:8] == [30] * 5 and np.array_equal(clip.frames[3], clip.frames[7])
    assert "4 of 12 frames repeated (gaps in the video's timestamps)" in clip.flags


def test_long_clip_says_how_much_was_read(derived) -> None:
    clip = decode_clip(derived / "long.mp4", sample_rate=None)
    assert clip.frame_indices == EVERY_10TH
    assert clip.duration == pytest.approx(60.0, abs=0.5)
    assert f"read the first 3.7 s of {clip.duration:.1f} s" in clip.flags


def test_short_clip_is_short_not_long(derived) -> None:
    clip = decode_clip(derived / "short.mp4", sample_rate=None)
    assert clip.frame_indices == [0, 10, 20]
    assert clip.flags == ["short: 3 of 12 frames"]
    assert clip.duration == pytest.approx(1.0, abs=0.05)


def test_portrait_frames_are_flagged_as_squashed(derived) -> None:
    clip = decode_clip(derived / "portrait.mp4", sample_rate=None)
    assert clip.frames.shape[1:] == (600, 360, 3)
    extractor = SceneExtractor(PreprocessConfig(scene_width=96, scene_height=64, scene_weights="none"))
    result = extractor.extract(clip)
    assert result.arrays["features"].shape == (12, 2, 3, 2048)
    assert result.flags == ["frames 360x600 squashed to 96x64 (aspect 0.60 -> 1.50)"]


def test_squash_flag_threshold() -> None:
    assert squash_flag(480, 320, 480, 320) is None
    assert squash_flag(500, 320, 480, 320) is None  # 4% wider
    assert squash_flag(1280, 720, 480, 320) is None  # 16:9 into 3:2 is the paper's own setting
    assert squash_flag(720, 720, 480, 320) == "frames 720x720 squashed to 480x320 (aspect 1.00 -> 1.50)"
    assert squash_flag(720, 1280, 480, 320) == "frames 720x1280 squashed to 480x320 (aspect 0.56 -> 1.50)"


HEADER = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'vfr.mp4':
  Duration: 00:09:56.04, start: 0.000000, bitrate: 663 kb/s
  Stream #0:0[0x1](und): Video: mjpeg (Baseline), yuvj420p, 300x300, 90k tbr, 90k tbn (attached pic)
  Stream #0:1[0x2](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 600x360 [SAR 1:1 DAR 5:3], \
529 kb/s, 19.48 fps, 30 tbr, 15360 tbn (default)
  Stream #0:2[0x3](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s (default)
"""


def test_header_parsing_and_nominal_rate() -> None:
    info = parse_stream_header(HEADER)
    assert (info.nominal_fps, info.average_fps, info.duration) == (30.0, 19.48, pytest.approx(596.04))
    assert parse_stream_header("Duration: N/A, bitrate: N/A\n  Stream #0:0: Video: vp9, 1k tbr, 1k tbn") == StreamInfo(
        1000.0, None, None, video=True
    )
    assert nominal_rate(19.48, info) == 30.0  # variable frame rate: nominal
    assert nominal_rate(30000 / 1001, StreamInfo(29.97)) == 30000 / 1001  # header rounding: OpenCV's exact rate
    assert nominal_rate(25.0, StreamInfo(50.0)) == 25.0  # field rate of interlaced video
    assert nominal_rate(25.0, StreamInfo(1000.0)) == 25.0  # a time base, not a rate
    assert nominal_rate(0.0, StreamInfo(30.0)) == 30.0
    assert nominal_rate(0.0, StreamInfo()) == 0.0  # unknown: sample by index


def test_decode_errors_are_input_errors(tmp_path: Path) -> None:
    assert issubclass(ClipDecodeError, InputError)
    with pytest.raises(InputError, match="missing.mp4: file not found"):
        decode_clip(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video\n")
    with pytest.raises(ClipDecodeError, match="text.mp4"):
        read_frames(tmp_path / "text.mp4")
