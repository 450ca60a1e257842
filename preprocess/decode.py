"""Decode a clip once: the kept frames (every ``frame_step``-th, at most ``n_frames``) and the mono audio track."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


class ClipDecodeError(RuntimeError):
    """A clip that cannot be decoded; the message names the clip and what is wrong with it."""


@dataclass
class DecodedClip:
    """What every extractor reads: kept RGB frames at full resolution, the mask of real frames, the audio."""

    path: Path
    frames: np.ndarray             # (n_kept, H, W, 3) uint8 RGB, only real frames (n_kept <= n_frames)
    frame_indices: list[int]       # index of each kept frame in the video
    fps: float
    n_frames: int                  # requested length; features are padded to it
    audio: np.ndarray | None = None  # mono float32 in [-1, 1]; None when the clip has no audio track
    sample_rate: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        """(n_frames,) bool: True for positions that hold a real frame."""
        mask = np.zeros(self.n_frames, dtype=bool)
        mask[: len(self.frames)] = True
        return mask


def read_frames(path: str | Path, frame_step: int = 10, n_frames: int = 12) -> tuple[np.ndarray, list[int], float]:
    """Read every ``frame_step``-th frame (first ``n_frames`` of them) as RGB; skipped frames are only grabbed."""
    path = Path(path)
    if not path.is_file():
        raise ClipDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ClipDecodeError(f"{path}: file is empty (0 bytes)")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ClipDecodeError(f"{path}: not a readable video (OpenCV could not open it)")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        frames, indices = [], []
        index = 0
        last_needed = frame_step * (n_frames - 1)
        while index <= last_needed:
            if index % frame_step == 0:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                indices.append(index)
            elif not capture.grab():
                break
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ClipDecodeError(f"{path}: no frame could be decoded (truncated or not a video)")
    return np.stack(frames), indices, fps


def read_audio(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray | None:
    """Mono float32 audio resampled to ``sample_rate`` via the ffmpeg binary of imageio-ffmpeg; None if no audio."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1",
               "-ar", str(sample_rate), "-f", "f32le"]
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


def decode_clip(path: str | Path, frame_step: int = 10, n_frames: int = 12,
                sample_rate: int | None = 16000, audio_seconds: float | None = None) -> DecodedClip:
    """Decode the kept frames and (if ``sample_rate``) the audio of one clip, each exactly once."""
    frames, indices, fps = read_frames(path, frame_step, n_frames)
    clip = DecodedClip(Path(path), frames, indices, fps, n_frames)
    if len(frames) < n_frames:
        clip.flags.append(f"short: {len(frames)} of {n_frames} frames")
    if sample_rate:
        clip.audio = read_audio(path, sample_rate, audio_seconds)
        clip.sample_rate = sample_rate
        if clip.audio is None:
            clip.flags.append("no audio track")
    return clip
