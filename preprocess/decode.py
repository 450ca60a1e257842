"""Decode a clip once: the kept frames (one every ``frame_step`` nominal frames, at most ``n_frames``) and the audio.

Frames are sampled by timestamp: frame k is the first decoded frame whose time reaches ``k * frame_step / fps``
(half a frame of tolerance), ``fps`` being the stream's nominal rate. For a constant-frame-rate clip that is
exactly every ``frame_step``-th frame; a variable-frame-rate clip gets frames evenly spaced in time instead of
coming out short. Each frame is grabbed once and only kept frames are retrieved (converted to RGB).
``FrameSampler`` streams the same sampling over a whole video (``gvs predict``); ``sample_frames`` keeps its
first ``n_frames`` targets.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gvs.core.errors import InputError

MAX_NOMINAL_FPS = 240.0  # a larger "tbr" is a time base guessed by ffmpeg (1k, 90k), not a frame rate
PROBE_TIMEOUT_S = 30.0
VFR_TOLERANCE = 0.002  # a frame interval off 1 / fps by more than this (relative) means a variable frame rate


class ClipDecodeError(InputError):
    """A clip that cannot be decoded; the message names the clip and what is wrong with it."""


@dataclass
class DecodedClip:
    """What every extractor reads: kept RGB frames at full resolution, the mask of real frames, the audio."""

    path: Path
    frames: np.ndarray  # (n_kept, H, W, 3) uint8 RGB, only real frames (n_kept <= n_frames)
    frame_indices: list[int]  # (n_kept,) index of each kept frame in the video (decode order)
    fps: float  # nominal frame rate the sampling used (0.0 when unknown: sampled by index)
    n_frames: int  # requested length; features are padded to it
    audio: np.ndarray | None = None  # mono float32 in [-1, 1]; None when the clip has no audio track
    sample_rate: int = 0
    flags: list[str] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)  # (n_kept,) seconds of each kept frame from the first
    duration: float | None = None  # seconds of video; None when neither the container nor OpenCV tells

    @property
    def mask(self) -> np.ndarray:
        """(n_frames,) bool: True for positions that hold a real frame."""
        mask = np.zeros(self.n_frames, dtype=bool)
        mask[: len(self.frames)] = True
        return mask


@dataclass
class StreamInfo:
    """What ffmpeg's header says about the first video stream (None where it says nothing usable)."""

    nominal_fps: float | None = None  # "tbr": ffmpeg's guess of the stream's real (nominal) frame rate
    average_fps: float | None = None  # "fps": frames / duration
    duration: float | None = None  # container duration, seconds
    video: bool = False  # the header lists a video stream (an attached picture is none)


@dataclass
class FrameSample:
    """The kept frames of one clip and how they were picked."""

    frames: np.ndarray  # (n_kept, H, W, 3) uint8 RGB
    indices: list[int]  # (n_kept,) decode index of each kept frame (repeated when a gap spans two targets)
    times: list[float]  # (n_kept,) seconds from the first frame; NaN when neither timestamps nor fps exist
    fps: float  # nominal rate used for the targets (0.0: unknown, sampled every frame_step frames)
    duration: float | None  # seconds of video, checked against what decoding saw
    ran_out: bool  # the video ended before n_frames targets were reached
    repeated: int  # kept positions that reuse the previous kept frame (gaps in VFR timestamps)


def _rate(text: str) -> float:
    """'29.97' -> 29.97, '1k' -> 1000.0 (ffmpeg's header notation)."""
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def parse_stream_header(text: str) -> StreamInfo:
    """Nominal rate, average rate and duration from the stderr of ``ffmpeg -i FILE`` (first video stream).

    Parameters
    ----------
    text : str

    Returns
    -------
    info : StreamInfo
    """
    info = StreamInfo()
    duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    if duration:
        hours, minutes, seconds = duration.groups()
        info.duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video = next(
        (
            line
            for line in text.splitlines()
            if re.match(r"\s*Stream #", line) and " Video: " in line and "attached pic" not in line
        ),
        None,
    )
    info.video = video is not None
    if video:
        nominal = re.search(r"([\d.]+k?) tbr", video)
        average = re.search(r"([\d.]+k?) fps", video)
        info.nominal_fps = _rate(nominal.group(1)) if nominal else None
        info.average_fps = _rate(average.group(1)) if average else None
    return info


def probe_stream(path: str | Path) -> StreamInfo:
    """Read the container header with the ffmpeg binary of imageio-ffmpeg (about 10 ms); empty info on failure.

    Parameters
    ----------
    path : str or Path
        A video file.

    Returns
    -------
    info : StreamInfo
    """
    try:
        import imageio_ffmpeg

        result = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            check=False,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, RuntimeError, subprocess.SubprocessError):  # no ffmpeg binary or a hung probe: use OpenCV's
        return StreamInfo()
    return parse_stream_header(result.stderr.decode(errors="replace"))


def _sane(rate: float | None) -> bool:
    return rate is not None and math.isfinite(rate) and 0.0 < rate <= MAX_NOMINAL_FPS


def nominal_rate(opencv_fps: float, probed: StreamInfo) -> float:
    """The rate frames are sampled at: OpenCV's (average) rate unless ffmpeg's nominal rate ("tbr") is higher.

    A variable-frame-rate clip averages below its nominal rate (a 30-fps phone clip that drops to 10 fps in the
    dark); sampling at the average would stretch the sampled span past the clip's end. A "tbr" within the rounding
    of ffmpeg's header (2 decimals) is the average itself; one of exactly twice the average is a field rate
    (interlaced video), not the frame rate. 0.0 when no rate is usable (frames are then sampled by index).

    Parameters
    ----------
    opencv_fps : float
        OpenCV's CAP_PROP_FPS.
    probed : StreamInfo
        From probe_stream.

    Returns
    -------
    fps : float
    """
    nominal = probed.nominal_fps
    if _sane(opencv_fps):
        higher = _sane(nominal) and nominal - opencv_fps > max(0.001 * opencv_fps, 0.006)
        if higher and abs(nominal / opencv_fps - 2.0) > 0.01:
            return float(nominal)
        return float(opencv_fps)
    return float(nominal) if _sane(nominal) else 0.0


@dataclass
class SampledFrame:
    """One frame the sampler keeps, and the sampled positions it fills."""

    rgb: np.ndarray  # (H, W, 3) uint8
    index: int  # decode index in the video
    time: float  # seconds from the first frame; NaN when neither timestamps nor fps exist
    position: int  # the first sampled position (target k) it fills
    count: int  # positions it fills: more than 1 when it follows a gap in the timestamps (repeated)


class FrameSampler:
    """Stream the frames kept at ``k * frame_step / fps``, k = 0, 1, ... (``limit`` targets, or the whole video).

    One pass: each frame is grabbed once and only kept frames are retrieved (converted to RGB). A frame is kept
    for target k when its time, in nominal frames, reaches ``k * frame_step - 0.5``. Times come from the
    decoder's timestamps (CAP_PROP_POS_MSEC after grab, relative to the first frame); a missing or
    non-increasing timestamp is replaced by the previous time plus one nominal frame (count-based). ``fps``
    starts as OpenCV's (average) rate; the header is probed for the nominal rate only when the frames before
    the second target are not spaced one average frame apart (variable frame rate), or when OpenCV gives no rate.

    The file is checked when the sampler is made (missing, empty) and opened when iterated; iterating raises
    ClipDecodeError when not one frame decodes. While and after iterating, the attributes say what was seen.
    """

    def __init__(self, path: str | Path, frame_step: int = 10, limit: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ClipDecodeError(f"{self.path}: file not found")
        if self.path.stat().st_size == 0:
            raise ClipDecodeError(f"{self.path}: file is empty (0 bytes)")
        self.frame_step = frame_step
        self.limit = limit
        self.fps = 0.0  # nominal rate of the targets (0.0: unknown, sampled every frame_step frames)
        self.opencv_fps = 0.0
        self.opencv_count = 0.0
        self.probed: StreamInfo | None = None
        self.decoded = 0  # frames grabbed
        self.kept = 0  # sampled positions filled
        self.repeated = 0  # positions that reuse the previous kept frame (gaps in the timestamps)
        self.irregular = 0  # frame intervals off one nominal frame by more than half a frame (VFR, dropped frames)
        self.last_time = math.nan  # seconds of the last grabbed frame
        self.ran_out = False  # the video ended before ``limit`` targets were reached

    def __iter__(self) -> Iterator[SampledFrame]:
        path = self.path
        self.decoded = self.kept = self.repeated = self.irregular = 0  # each iteration is a new pass
        self.last_time, self.ran_out = math.nan, False
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                probed = probe_stream(path)
                if probed.duration is not None and not probed.video:  # a container ffmpeg reads, with no picture
                    raise ClipDecodeError(f"{path}: no video stream (audio only?); give a file with a picture")
                raise ClipDecodeError(f"{path}: not a readable video (OpenCV could not open it)")
            self.opencv_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.opencv_count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
            self.probed = None if _sane(self.opencv_fps) else probe_stream(path)
            self.fps = nominal_rate(self.opencv_fps, self.probed or StreamInfo())
            index, first_ms, previous = -1, 0.0, math.nan
            last, checked = None, False  # the last kept frame; whether a repeat of it was checked
            while (self.limit is None or self.kept < self.limit) and capture.grab():
                index += 1
                self.decoded = index + 1
                fps = self.fps
                stamp = float(capture.get(cv2.CAP_PROP_POS_MSEC))
                if index == 0:
                    first_ms, seconds = (stamp if math.isfinite(stamp) else 0.0), 0.0
                elif math.isfinite(stamp) and (stamp - first_ms) / 1000.0 > previous:
                    seconds = (stamp - first_ms) / 1000.0
                else:  # no usable timestamp: one nominal frame after the previous one
                    seconds = previous + 1.0 / fps if fps else math.nan
                if self.probed is None and self.kept == 1 and abs((seconds - previous) * fps - 1.0) > VFR_TOLERANCE:
                    self.probed = probe_stream(path)  # frames not one average frame apart: variable frame rate
                    self.fps = fps = nominal_rate(self.opencv_fps, self.probed)
                if index and fps and abs((seconds - previous) * fps - 1.0) > 0.5:
                    self.irregular += 1
                previous = self.last_time = seconds
                position = seconds * fps if fps else float(index)  # time in nominal frames; the index if fps unknown
                room = math.inf if self.limit is None else self.limit - self.kept
                reached = 0  # targets this frame reaches (more than one when it follows a gap in the timestamps)
                while reached < room and position >= (self.kept + reached) * self.frame_step - 0.5:
                    reached += 1
                if not reached:
                    continue
                ok, frame = capture.retrieve()
                if not ok:
                    break
                if not checked and last is not None and np.array_equal(frame, last):  # stale, or a still picture
                    checked = True
                    _check_size(path, first_ms / 1000.0 + seconds, frame.shape)
                last = frame
                kept = SampledFrame(
                    cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), index, seconds if fps else math.nan, self.kept, reached
                )
                self.kept += reached
                self.repeated += reached - 1
                yield kept
            self.ran_out = self.limit is None or self.kept < self.limit
        finally:
            capture.release()
        if not self.kept:
            raise ClipDecodeError(f"{path}: no frame could be decoded (truncated or not a video)")

    def duration(self) -> float | None:
        """Seconds of video: what decoding saw when it reached the end, else the header's estimate (see _duration)."""
        return _duration(
            self.path, self.opencv_fps, self.opencv_count, self.probed, self.fps, self.last_time, self.ran_out
        )


def _check_size(path: Path, seconds: float, shape: tuple[int, ...]) -> None:
    """ClipDecodeError when ffmpeg decodes the frame at ``seconds`` at another size than OpenCV's ``shape``: the
    picture size changed mid-stream (two videos joined with -c copy), and OpenCV repeats its last frame of the first
    size from there on (its scaler keeps that size). A still picture decodes at the same size and passes."""
    try:
        import imageio_ffmpeg

        result = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-ss", f"{max(seconds, 0.0):.3f}", "-i",
             str(path), "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"],
            capture_output=True,
            check=False,
            timeout=PROBE_TIMEOUT_S,
        )  # fmt: skip
    except (OSError, RuntimeError, subprocess.SubprocessError):  # no ffmpeg binary or a hung probe: nothing to say
        return
    size = re.search(r" s:(\d+)x(\d+)", result.stderr.decode(errors="replace"))
    height, width = shape[:2]
    if size and (int(size.group(1)), int(size.group(2))) != (width, height):
        raise ClipDecodeError(
            f"{path}: the picture size changes from {width}x{height} to {size.group(1)}x{size.group(2)} near "
            f"{seconds:.1f} s (videos joined with -c copy?), and OpenCV repeats its last {width}x{height} frame from "
            f"there; re-encode it to one size: ffmpeg -i VIDEO -vf scale={width}:{height} fixed.mp4"
        )


def sample_frames(path: str | Path, frame_step: int = 10, n_frames: int = 12) -> FrameSample:
    """Keep frame k at time ``k * frame_step / fps`` (k < n_frames); one pass, only kept frames retrieved.

    See ``FrameSampler`` for how frames are picked; this keeps the first ``n_frames`` targets.

    Parameters
    ----------
    path : str or Path
        A video file.
    frame_step : int
        Frames of the nominal rate between kept frames.
    n_frames : int
        Most frames kept.

    Returns
    -------
    sample : FrameSample
        ``frames`` (n_kept, H, W, 3) uint8 RGB, n_kept <= n_frames, with their indices and times.
    """
    sampler = FrameSampler(path, frame_step, n_frames)
    frames: list[np.ndarray] = []
    indices: list[int] = []
    times: list[float] = []
    for kept in sampler:
        frames += [kept.rgb] * kept.count
        indices += [kept.index] * kept.count
        times += [kept.time] * kept.count
    return FrameSample(
        np.stack(frames), indices, times, sampler.fps, sampler.duration(), sampler.ran_out, sampler.repeated
    )


def _duration(
    path: Path,
    opencv_fps: float,
    opencv_count: float,
    probed: StreamInfo | None,
    fps: float,
    last_time: float,
    ran_out: bool,
) -> float | None:
    """Seconds of video: what decoding saw when it reached the end, else the shorter of OpenCV's frame count /
    fps and the container's duration (probed only when needed), never less than the last decoded frame."""
    seen_end = last_time + 1.0 / fps if fps and math.isfinite(last_time) else None  # the last frame lasts 1/fps
    if ran_out and seen_end is not None:
        return seen_end
    estimates = [opencv_count / opencv_fps] if _sane(opencv_fps) and opencv_count > 0 else []
    if probed is None and not estimates:
        probed = probe_stream(path)
    if probed is not None and probed.duration:
        estimates.append(probed.duration)
    estimates = [d for d in estimates if math.isfinite(d) and d > 0]
    if not estimates:
        return None
    return max(min(estimates), seen_end or 0.0)


def read_frames(path: str | Path, frame_step: int = 10, n_frames: int = 12) -> tuple[np.ndarray, list[int], float]:
    """(n_kept, H, W, 3) RGB frames, their indices and the nominal fps; see ``sample_frames``.

    Parameters
    ----------
    path : str or Path
    frame_step : int
    n_frames : int
        See sample_frames.

    Returns
    -------
    frames : ndarray of shape (n_kept, H, W, 3), uint8 RGB
    indices : list of int
    fps : float
    """
    sample = sample_frames(path, frame_step, n_frames)
    return sample.frames, sample.indices, sample.fps


# VGAF clips run about 5 s and the paper's 12 frames every 10th cover 3.7-4.4 s of them: only a clip with more
# than this many seconds unread is flagged as long, so the flag means "most of this video was not seen".
LONG_TOLERANCE_S = 2.0


def sampling_flags(sample: FrameSample, frame_step: int, n_frames: int) -> list[str]:
    """Notes on the sampling: a short clip, frames repeated over timestamp gaps, a long clip read in part.

    Parameters
    ----------
    sample : FrameSample
    frame_step : int
    n_frames : int
        What the sample was asked for.

    Returns
    -------
    flags : list of str
    """
    flags = []
    if len(sample.frames) < n_frames:
        flags.append(f"short: {len(sample.frames)} of {n_frames} frames")
    if sample.repeated:
        flags.append(f"{sample.repeated} of {n_frames} frames repeated (gaps in the video's timestamps)")
    if sample.fps and sample.duration is not None and not sample.ran_out:
        step = frame_step / sample.fps
        span = (n_frames - 1) * step
        if sample.duration > span + LONG_TOLERANCE_S:
            flags.append(f"read the first {span:.1f} s of {sample.duration:.1f} s")
    return flags


def read_audio(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray | None:
    """Mono float32 audio resampled to ``sample_rate`` via the ffmpeg binary of imageio-ffmpeg; None if no audio.

    Parameters
    ----------
    path : str or Path
    sample_rate : int
        In Hz.
    max_seconds : float or None
        Read no more than this; None for the whole track.

    Returns
    -------
    audio : ndarray of shape (n_samples,), float32, or None
        Mono, in [-1, 1].
    """
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
    ]
    if max_seconds is not None:
        command += ["-t", f"{max_seconds:.3f}"]
    result = subprocess.run(command + ["pipe:1"], capture_output=True, check=False)
    samples = np.frombuffer(result.stdout, dtype=np.float32)
    if result.returncode != 0 and samples.size == 0:
        message = result.stderr.decode(errors="replace").strip()
        if "does not contain any stream" in message or "matches no streams" in message or not message:
            return None
        raise ClipDecodeError(f"{path}: audio could not be decoded: {message.splitlines()[-1]}")
    return samples.copy() if samples.size else None


def decode_clip(
    path: str | Path,
    frame_step: int = 10,
    n_frames: int = 12,
    sample_rate: int | None = 16000,
    audio_seconds: float | None = None,
) -> DecodedClip:
    """Decode the kept frames and (if ``sample_rate``) the audio of one clip, each exactly once.

    Parameters
    ----------
    path : str or Path
    frame_step : int
    n_frames : int
        See sample_frames.
    sample_rate : int or None
        Audio rate in Hz; None decodes no audio.
    audio_seconds : float or None
        Most seconds of audio; None for the whole track.

    Returns
    -------
    clip : DecodedClip
    """
    sample = sample_frames(path, frame_step, n_frames)
    clip = DecodedClip(
        Path(path),
        sample.frames,
        sample.indices,
        sample.fps,
        n_frames,
        frame_times=sample.times,
        duration=sample.duration,
    )
    clip.flags.extend(sampling_flags(sample, frame_step, n_frames))
    if sample_rate:
        clip.audio = read_audio(path, sample_rate, audio_seconds)
        clip.sample_rate = sample_rate
        if clip.audio is None:
            clip.flags.append("no audio track")
    return clip
