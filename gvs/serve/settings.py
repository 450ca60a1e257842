"""What a `gvs serve` server is configured with: its model, its limits and its job folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gvs.core.workspace import gvs_home

MB = 1_000_000


def default_store() -> Path:
    """Where jobs (uploads and their results) are kept: ``$GVS_HOME/serve``, else
    ``~/.cache/group-video-sentiment/serve``."""
    return gvs_home() / "serve"


@dataclass
class ServeSettings:
    """A server's settings (``gvs serve`` options).

    model : a bundle folder or .zip, or a RUNS folder (None for a test's fake worker)
    store : folder of the job folders
    max_upload_bytes, max_seconds : the largest upload and the longest video taken
    workers : worker threads, each with its own models
    queue_size : jobs that may wait; one more is refused (503)
    keep_seconds, store_bytes : finished jobs older than this, or the oldest ones while the folder holds more than
        this, are deleted (at start and on each new job)
    full_report : LIME and every key frame (slower); default the quick report
    precision : the backbones' arithmetic (auto, float32, bfloat16, int8)
    backend : the backbones' engine (auto, tensorflow, openvino)
    people : track the people whose faces the videos show (the job page's top three, the report's people)
    blur_faces : blur every face in the report's images and the people's thumbnails on the job page
    """

    model: Path | None = None
    store: Path = None  # type: ignore[assignment]  # filled in by __post_init__
    max_upload_bytes: int = 200 * MB
    max_seconds: float = 600.0
    workers: int = 1
    queue_size: int = 16
    keep_seconds: float = 24 * 3600.0
    store_bytes: int = 5000 * MB
    full_report: bool = False
    precision: str = "auto"
    backend: str = "auto"
    people: bool = True
    blur_faces: bool = False

    def __post_init__(self) -> None:
        self.store = Path(self.store) if self.store is not None else default_store()
