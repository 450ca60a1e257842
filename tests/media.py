"""Test videos made from the real clips with the ffmpeg binary that imageio-ffmpeg ships."""

import subprocess

import imageio_ffmpeg


def ffmpeg(*arguments: str) -> None:
    """Run ffmpeg with ``arguments`` (overwriting outputs, quiet, no stdin); raises if it fails."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-nostdin", *arguments], check=True)
