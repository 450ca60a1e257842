"""Test videos made from the real clips with the ffmpeg binary that imageio-ffmpeg ships."""

import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg


def ffmpeg(*arguments: str) -> None:
    """Run ffmpeg with ``arguments`` (overwriting outputs, quiet, no stdin); raises if it fails."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-nostdin", *arguments], check=True)


def common_bad_copies(folder: Path, clip: Path) -> None:
    """Write into ``folder`` a good copy of ``clip`` and the bad files every batch must survive: good.mp4,
    empty.mp4 (0 bytes), text.mp4 (a text file), truncated.mp4 (its first third), noaudio.mp4 (video stream only)."""
    shutil.copy(clip, folder / "good.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video\n")
    (folder / "truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    ffmpeg("-i", str(clip), "-an", "-c:v", "copy", str(folder / "noaudio.mp4"))
