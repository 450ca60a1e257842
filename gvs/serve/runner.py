"""What a worker does with one job: predict the whole video, show the verdict at once, explain it, write the files.

A worker's maker has ``explain(path, progress=, on_prediction=, on_window=) -> Report`` (ReportMaker's, plus
``on_window(features, prediction)`` per predicted window) and ``describe() -> (bundle summary, prediction
settings)`` for predictions.json. :class:`ServeReportMaker` is the real one; tests pass a fast fake.

Right after the prediction pass the job gets its verdict, probabilities, timeline.png, predictions.json and the
three people whose faces carried the verdict most (:func:`top_people`, thumbnails as data: URIs, blurred when the
maker's report options blur faces); the report's sections follow, then report.html. A video that fails (or any
error) fails the job with the reason, with the server's paths replaced by the video's name.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gvs.core.errors import GVSError
from gvs.core.privacy import blurred_thumbnail
from gvs.core.workspace import PredictionsDir
from gvs.predict.outputs import save_timeline, write_json
from gvs.predict.predictor import FUSED, VideoPrediction, pool_probabilities
from gvs.report.explain import Report, ReportMaker, ReportOptions
from gvs.report.movement import MIN_CHANGE
from gvs.report.persons import drop_sentence, ranked

from .jobs import Job, JobBoard
from .settings import ServeSettings
from .storage import PREDICTIONS, REPORT, TIMELINE

log = logging.getLogger(__name__)
TOP_PEOPLE = 3  # people shown on the job's page
THUMBNAIL_PX = 112  # the longer side of a thumbnail on the page


class _WindowTap:
    """A Predictor that also calls ``listener(features, prediction)`` (when set) for each window it predicts; all
    else is the wrapped predictor's (models, stream, scoring)."""

    def __init__(self, predictor) -> None:
        self._predictor = predictor
        self.listener: Callable | None = None

    def __getattr__(self, name: str):
        return getattr(self._predictor, name)

    def predict_video(self, path, label=None, progress=None, on_window=None) -> VideoPrediction:
        def both(features, prediction) -> None:
            if on_window is not None:
                on_window(features, prediction)
            if self.listener is not None:
                self.listener(features, prediction)

        return self._predictor.predict_video(path, label, progress, both)


class ServeReportMaker(ReportMaker):
    """A ReportMaker (models loaded once) whose ``explain`` also reports each predicted window.

    The tap on its predictor is made once: report sections cache compiled functions per predictor object
    (report.pixels.compiled_gradients), so a new wrapper per job would retrace them and hold each trace forever.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.predictor = _WindowTap(self.predictor)

    def explain(self, path, progress=None, options=None, on_prediction=None, on_window=None, name=None) -> Report:
        self.predictor.listener = on_window
        try:
            return super().explain(path, progress, options, on_prediction, name)
        finally:
            self.predictor.listener = None

    def describe(self) -> tuple[dict, dict]:
        """The bundle's summary and the prediction settings, as predictions.json records them."""
        return self.predictor.bundle.summary(), self.predictor.settings()


def maker_factory(settings: ServeSettings) -> Callable[[], ServeReportMaker]:
    """What each worker calls once to load its models: quick reports unless ``settings.full_report``."""
    options = ReportOptions(quick=not settings.full_report, blur_faces=settings.blur_faces)
    return lambda: ServeReportMaker(
        settings.model, options, precision=settings.precision, backend=settings.backend, people=settings.people
    )


def modality_probabilities(video: VideoPrediction) -> dict[str, dict[str, float]]:
    """{modality: {class: p}}: each modality's window probabilities pooled like the video's (mean), keyed by the
    video's classes."""
    names = [name for name in video.windows[0].probabilities if name != FUSED]
    return {
        name: _by_class(pool_probabilities(np.stack([w.probabilities[name] for w in video.windows])), video.class_names)
        for name in names
    }


def _by_class(probabilities, class_names: tuple[str, ...]) -> dict[str, float]:
    """{class: p} in the order of ``class_names`` (the bundle's)."""
    return {c: round(float(p), 4) for c, p in zip(class_names, probabilities)}


def thumbnail_uri(image: np.ndarray, blur: bool = False) -> str:
    """A person's thumbnail (h, w, 3) uint8 RGB as a JPEG data: URI, its longer side at most THUMBNAIL_PX (blurred
    whole first with ``blur``)."""
    import base64

    import cv2

    image = blurred_thumbnail(image) if blur else np.ascontiguousarray(image)
    scale = THUMBNAIL_PX / max(image.shape[:2])
    if scale < 1:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii") if ok else ""


def top_people(video: VideoPrediction, blur: bool = False, count: int = TOP_PEOPLE) -> tuple[list[dict], str]:
    """The ``count`` people (seen on PERSON_MIN_FRAMES sampled frames or more) whose faces carried the video's
    verdict most, largest drop_fused first: [{id, top_expression, drop_fused, frames_seen, sentence, thumbnail,
    blurred}], and a note for the page: why nobody is shown (not tracked, no face, no removal moved p(verdict) by
    MIN_CHANGE), or, when no drop is known (no faces model), that these are the people seen on most frames; else ""."""
    from gvs.predict.timeline import PERSON_MIN_FRAMES

    verdict = video.verdict
    if not video.people:
        tracked = any(w.people is not None for w in video.windows)
        return [], "No face was found in this video." if tracked else ""
    order, change = ranked([p for p in video.people if p.get("frames_seen", 0) >= PERSON_MIN_FRAMES])
    if not order:
        return [], f"Nobody's face was seen on {PERSON_MIN_FRAMES} sampled frames or more."
    note = ""
    if change is None:  # a bundle without a faces model: people tracked, nobody's drop known
        order = sorted(order, key=lambda p: (-p["frames_seen"], p["id"]))
        note = (
            "How much each person carried the verdict is measured only with a faces model: these are the people "
            "seen on most frames."
        )
    elif change < MIN_CHANGE:
        return [], (
            f"Taking any one person's faces out moved p({verdict}) by at most {change:.3f}, less than {MIN_CHANGE}: "
            "nobody carried the verdict more than the others."
        )
    people = []
    for record in order[:count]:
        image = video.thumbnails.get(record["id"])
        people.append(
            {
                "id": record["id"],
                "top_expression": record["top_expression"],
                "drop_fused": record["drop_fused"],
                "frames_seen": record["frames_seen"],
                "sentence": "" if change is None else drop_sentence(verdict, record["drop_fused"], record["id"]),
                "thumbnail": thumbnail_uri(image, blur) if image is not None else "",
                "blurred": blur,
            }
        )
    return people, note


class _JobProgress:
    """The callbacks of one job's explain: each window, the prediction, each report section."""

    def __init__(self, job: Job, maker, board: JobBoard) -> None:
        self.job, self.maker, self.board = job, maker, board
        self.windows = 0

    def window(self, features, prediction) -> None:
        self.windows += 1
        self.board.update(
            self.job.id,
            save=False,
            windows=self.windows,
            detail=f"{self.windows} window(s), up to {prediction.end_s:.1f} s of the video",
        )

    def prediction(self, video: VideoPrediction) -> None:
        if video.status == "failed":
            return
        named = dataclasses.replace(video, path=Path(self.job.name))  # the name shown, never a path on disk
        save_timeline(named, self.job.folder / TIMELINE)
        bundle, settings = self.maker.describe()
        write_json(PredictionsDir(self.job.folder), [named], bundle, settings)
        people, people_note = top_people(video, _blurs_faces(self.maker))
        self.board.update(
            self.job.id,
            stage="sections",
            detail="",
            verdict=video.verdict,
            probabilities=_by_class(video.probabilities, video.class_names),
            class_names=list(video.class_names),
            modalities=modality_probabilities(video),
            flags=list(video.flags),
            familiarity=video.familiarity,
            unfamiliar=list(video.unfamiliar),
            notes=list(bundle.get("notes", [])),
            people=people,
            people_note=people_note,
            duration_s=round(video.duration_s, 2),
            windows=len(video.windows),
            verdict_at=time.time(),
            files=[TIMELINE, PREDICTIONS],
        )

    def stage(self, name: str) -> None:
        if name != self.job.stage:
            self.board.update(self.job.id, stage=name)


def _blurs_faces(maker) -> bool:
    """Whether the maker's report options blur faces (then the page's thumbnails are blurred too)."""
    return bool(getattr(getattr(maker, "options", None), "blur_faces", False))


def run_job(job: Job, maker, board: JobBoard) -> None:
    """Run one job to its end (done or failed); never raises."""
    board.update(job.id, status="running", stage="predict", started=time.time())
    progress = _JobProgress(job, maker, board)
    try:
        report = maker.explain(
            job.video,
            progress=progress.stage,
            on_prediction=progress.prediction,
            on_window=progress.window,
            name=job.name,  # the page's and its timeline's title, not the file on disk ("upload")
        )
        if report.video.status == "failed":
            _fail(job, board, report.video.reason)
            return
        board.update(job.id, stage="writing")
        report.write_html(job.folder, Path(REPORT).stem)
        board.update(job.id, status="done", stage="done", files=[TIMELINE, PREDICTIONS, REPORT], finished=time.time())
    except (GVSError, OSError, ValueError) as error:
        _fail(job, board, str(error))
    except Exception as error:  # a bug: the job says so, the worker goes on with the next one
        log.exception("job %s failed", job.id)
        _fail(job, board, f"internal error ({type(error).__name__}: {error}); see the server's log")


def _fail(job: Job, board: JobBoard, reason: str) -> None:
    reason = reason.replace(str(job.video), job.name).replace(str(job.folder), "")
    board.update(job.id, status="failed", stage="failed", error=reason, finished=time.time())
