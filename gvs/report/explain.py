"""One report per video: predict it once, pick the window to explain, compute each section, write the page.

Python API::

    from gvs.report.explain import explain_video
    report = explain_video("wedding.mp4", "runs/demo/bundle")
    report.sections[1].arrays["drops_fused"]      # the numbers behind each figure
    report.write_html("reports/")                  # reports/wedding.html, self-contained
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gvs.predict.predictor import Predictor, VideoPrediction

from . import attention_section, audio_section, lime_frame, modality_shares, occlusion, people, persons, pixels
from .faithfulness import faithfulness_section
from .sections import Section
from .verdict import verdict_section
from .window import ExplainedWindow, explained_window

KEY_FRAMES = 3  # key frames drawn for pixel saliency and people: the middle frame of the top sections
QUICK_SAMPLES = 4  # SmoothGrad copies with --quick


@dataclass
class ReportOptions:
    """What a report computes.

    quick : occlusion and gradients only (no LIME), pixel saliency on the top key frame only, and SmoothGrad over
        QUICK_SAMPLES noisy copies instead of ``smooth_samples``
    lime_samples : perturbed copies of the key frame LIME scores (each one backbone pass)
    segments : SLIC superpixels of the key frame
    blur_faces : blur every detected face in every image of the report
    explain_class : a class name (of the bundle's classes) to explain instead of the verdict
    seed : for LIME's samples, SmoothGrad's noise and the random deletion orders
    smooth_samples : noisy copies per SmoothGrad map (pose, faces, audio; pixels use half as many)
    """

    quick: bool = False
    lime_samples: int = 200
    segments: int = 40
    blur_faces: bool = False
    explain_class: str | None = None
    seed: int = 0
    smooth_samples: int = 16

    @property
    def samples(self) -> int:
        """Noisy copies per SmoothGrad map for this report."""
        return QUICK_SAMPLES if self.quick else self.smooth_samples


@dataclass
class Report:
    """The explanation of one video: its prediction, the window explained and the page's sections.

    ``seconds``: time each section took. A video that could not be read has ``video.status == "failed"`` and
    no sections.
    """

    video: VideoPrediction
    window: ExplainedWindow | None
    sections: list[Section] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    options: ReportOptions = field(default_factory=ReportOptions)

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def summary(self) -> dict[str, str]:
        """Label -> text for the page's header."""
        video = self.video
        if self.window is None:
            return {"status": f"failed: {video.reason}"}
        probabilities = ", ".join(f"{c} {p:.2f}" for c, p in zip(video.class_names, video.probabilities))
        return {
            "verdict": f"{video.verdict} ({probabilities})",
            "explained": f"{self.window.class_name}, window {self.window.prediction.start_s:.1f}"
            f"-{self.window.prediction.end_s:.1f} s of {video.duration_s:.1f} s",
            "model": _model_line(self.window.predictor.bundle),
            "faces": "blurred in every image" if self.options.blur_faces else "not blurred (--blur-faces blurs them)",
            "report took": f"{sum(self.seconds.values()):.1f} s",
        }

    def write_html(self, out_dir: str | Path, stem: str | None = None, embed: bool = True) -> Path:
        """Write the self-contained page ``out_dir/<stem>.html`` (default stem: the video's file name)."""
        from .html import page_stem, write_page

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = stem or page_stem(self.video.path, set())
        return write_page(out, stem, self.video.path.name, self.summary(), self.sections, self.video.class_names, embed)


class ReportMaker:
    """Loads a bundle once (with raw frames kept) and writes reports video after video."""

    def __init__(
        self,
        model,
        options: ReportOptions | None = None,
        stride: int | None = None,
        precision: str = "auto",
        backend: str = "auto",
        people: bool = True,
    ) -> None:
        self.options = options or ReportOptions()
        self.predictor = Predictor(model, stride, precision=precision, keep_raw=True, backend=backend, people=people)
        check_class(self.options.explain_class, self.predictor.class_names)

    def explain(
        self,
        path: str | Path,
        progress: Callable[[str], None] | None = None,
        options: ReportOptions | None = None,
        on_prediction: Callable[[VideoPrediction], None] | None = None,
        name: str | None = None,
    ) -> Report:
        """The report of one video (``options`` default: the maker's); a video that cannot be read gives a Report
        with a failed prediction. ``progress(stage)`` is called as each section starts; ``on_prediction(video)``
        once the whole-video prediction is done (failed or not), before any section, so a caller can show the
        verdict while the sections are computed. ``name``: the video's name on the page, its timeline and
        ``report.video.path`` (default: its file's name; `gvs serve` passes the uploaded file's name)."""
        options = options or self.options
        check_class(options.explain_class, self.predictor.class_names)
        started = time.perf_counter()
        video, window = explained_window(self.predictor, path, options.explain_class, options.blur_faces)
        if name is not None:
            video = dataclasses.replace(video, path=Path(name))
        if on_prediction is not None:
            on_prediction(video)
        report = Report(video, window, options=options, seconds={"predict": time.perf_counter() - started})
        if window is None:
            return report

        def timed(name: str, make: Callable[[], object]):
            if progress is not None:
                progress(name)
            begin = time.perf_counter()
            result = make()
            report.seconds[name] = report.seconds.get(name, 0.0) + time.perf_counter() - begin
            return result

        moments = timed("sections", lambda: occlusion.occlusion(window, seed=options.seed))
        keys = key_frames(moments, KEY_FRAMES)
        curves = {"key moments": moments.curve}
        sections = [
            verdict_section(video, window),
            timed("sections", lambda: occlusion.section(moments, window)),
        ]
        if not options.quick and "scene" in window.modalities:
            found = timed(
                "lime",
                lambda: lime_frame.lime_frame(window, keys[0], options.lime_samples, options.segments, options.seed),
            )
            sections.append(timed("lime", lambda: lime_frame.section(found, window)))
            curves["superpixels (LIME, fused)"] = found.curve
        if "scene" in window.modalities:
            pixel_keys = keys[:1] if options.quick else keys
            maps = timed(
                "pixels",
                lambda: pixels.pixel_saliency(window, pixel_keys, max(1, options.samples // 2), seed=options.seed),
            )
            sections.append(timed("pixels", lambda: pixels.section(maps, window)))
        if {"pose", "faces"} & set(window.modalities):
            sections.append(timed("people", lambda: people.people_section(window, keys, options.samples)))
        sections.append(timed("persons", lambda: persons.persons_section(video, options.blur_faces)))
        if "audio" in window.modalities:
            sections.append(timed("audio", lambda: audio_section.audio_section(window, options.samples)))
        shares = timed("modalities", lambda: modality_shares.modality_shares(window))
        sections.append(timed("modalities", lambda: modality_shares.section(shares, window)))
        weights = timed("attention", lambda: attention_section.attention_weights(window))
        if weights is not None:
            sections.append(timed("attention", lambda: attention_section.section(weights, window)))
        sections.append(faithfulness_section(curves, window.class_name))
        report.sections = sections
        return report


def check_class(name: str | None, class_names: tuple[str, ...]) -> None:
    """InputError naming the choices unless ``name`` (a class to explain) is None or one of ``class_names``, the
    bundle's classes (known only once it is loaded)."""
    if name is not None and name not in class_names:
        from gvs.core.errors import InputError

        raise InputError(f"--explain-class {name!r}: choose one of this bundle's classes, {', '.join(class_names)}")


def key_frames(moments: occlusion.Occlusion, count: int) -> list[int]:
    """The middle frame of each of the ``count`` sections whose removal lowers the fused probability most."""
    return [int((moments.sections[i][0] + moments.sections[i][1] - 1) // 2) for i in moments.ranking[:count]]


def explain_video(path: str | Path, model, options: ReportOptions | None = None, **option_values) -> Report:
    """The report of one video with ``model`` (a Bundle, or a bundle / RUNS path); loads the models for this call
    only — use :class:`ReportMaker` for many videos. ``option_values`` set ReportOptions fields."""
    options = options or ReportOptions(**option_values)
    return ReportMaker(model, options).explain(path)


def _model_line(bundle) -> str:
    """'fc-audio+faces+pose+scene, trained on demo (15 train clips) — runs/demo/bundle' from a Bundle's summary."""
    info = bundle.summary()
    data = info.get("training_data") or {}
    train = (data.get("clips") or {}).get("train", "?")
    trained = f", trained on {data.get('name', '?')} ({train} train clips)" if data else ""
    return f"{info['fusion']}{trained} — {info['path']}"
