"""A `gvs predict` run into one output folder, written as it goes, so finished work survives an interruption.

The run holds OUT/.lock (a second run into the same folder is refused, naming this one's pid). Each video's record
(videos/<name>.json) and timeline are written (atomically) the moment it finishes, then the tables are rewritten
from every finished video of the run and run.json marks the video complete. A re-run reuses the complete videos
whose bundle, options and file are unchanged (``force`` predicts them again). During a long video the windows
predicted so far are written every CHECKPOINT_S seconds and on Ctrl-C, flagged "interrupted at T s" (state
"partial": the next run predicts the video again).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from gvs.core.io import atomic_write_json, clean_temporary
from gvs.core.workspace import PredictionsDir

from .manifest import RunManifest, output_names
from .outputs import save_timeline, video_from_record, video_record, write_emotiw, write_people, write_tables
from .predictor import FUSED, VideoPrediction, WindowPrediction, class_shares, pool_probabilities

CHECKPOINT_S = 60.0  # seconds between writes of a long video's windows so far


class PredictionRun:
    """The videos of one run, their output names, what an earlier run finished, and the writes.

    Parameters
    ----------
    folder : the output folder (held locked by the caller: ``with folder.lock():``)
    bundle : the loaded Bundle (its summary, modalities and classes make the tables)
    videos : (path, label index or None) per video, in input order (each path once)
    options : what changes the predictions: stride, pool, precision and backend as asked for
    notes : {path: why its label was dropped}, added to that video's flags
    force : predict every video again, even the complete ones
    blur_faces : blur the people's thumbnails (people/<name>/person-<id>.jpg)
    """

    def __init__(
        self,
        folder: PredictionsDir,
        bundle,
        videos: list[tuple[Path, int | None]],
        options: dict,
        notes: dict[Path, str] | None = None,
        force: bool = False,
        blur_faces: bool = False,
    ) -> None:
        self.folder = folder
        self.blur_faces = blur_faces
        clean_temporary(folder.root)  # what a killed run was writing (the caller holds the folder's lock)
        self.modalities = list(bundle.modalities)
        self.class_names = tuple(bundle.class_names)
        self.bundle_info = bundle.summary()
        self.videos = videos
        self.notes = notes or {}
        self.names = output_names([path for path, _ in videos])
        self.manifest = RunManifest(folder, self.bundle_info["manifest_sha256"], options)
        self.removed = self.manifest.keep_only(set(self.names.values()))
        self.results: dict[int, VideoPrediction] = {}
        self.records: dict[int, dict] = {}
        self.reused = 0
        for index, (path, label) in enumerate(videos):
            name = self.names[path]
            record = None if force else self.manifest.reusable(name, path)
            if record is None:  # an earlier run's files of it would sit beside this run's: gone until redone
                self.manifest.discard(name)
            else:
                self.results[index] = video_from_record(record, self.class_names, label)
                self.records[index] = record | {"label": video_record(self.results[index])["label"]}
                self.reused += 1
        self.manifest.save()
        self._write_tables()  # the folder's tables hold only this run's videos from the start

    def todo(self) -> list[tuple[int, Path, int | None]]:
        """(index, path, label) of each video to predict, in input order."""
        return [(i, path, label) for i, (path, label) in enumerate(self.videos) if i not in self.results]

    @property
    def settings(self) -> dict:
        """How the videos were predicted (Predictor.settings), as predictions.json records it."""
        return self.manifest.settings

    def set_settings(self, settings: dict) -> None:
        self.manifest.settings = dict(settings)

    def add(self, index: int, video: VideoPrediction, state: str | None = None) -> None:
        """Write video ``index``'s record and timeline, the tables, then mark it in run.json (``state`` default:
        "failed" for a failed video, else "complete"; "partial" for the windows before an interruption)."""
        path = self.videos[index][0]
        video = noted(_one_path(video), self.notes.get(path))
        state = state or ("failed" if video.status == "failed" else "complete")
        name = self.names[path]
        write_people(self.folder, name, video if state == "complete" else replace(video, people=[]), self.blur_faces)
        record = video_record(video)
        atomic_write_json(self.folder.record(name), record)
        if video.windows and state == "complete":
            save_timeline(video, self.folder.timeline(name))
        else:  # a timeline there is an earlier run's
            self.folder.timeline(name).unlink(missing_ok=True)
        self.results[index], self.records[index] = video, record
        self._write_tables()
        self.manifest.mark(name, path, state)

    def _write_tables(self) -> None:
        order = sorted(self.results)
        write_tables(
            self.folder,
            [self.results[i] for i in order],
            self.modalities,
            self.bundle_info,
            self.settings,
            [self.records[i] for i in order],
        )

    def finish(self, emotiw: bool) -> list[VideoPrediction]:
        """Write the EmotiW files (``emotiw``); every video's prediction, in input order."""
        videos = [self.results[i] for i in sorted(self.results)]
        if emotiw:
            write_emotiw(self.folder, videos, self.class_names, self.names)
        return videos

    def progress(self) -> str:
        """What is finished, for the line an interruption prints."""
        entries = self.manifest.videos
        finished = sum(e["state"] != "partial" for e in entries.values())
        partial = [name for name, e in entries.items() if e["state"] == "partial"]
        text = f"{finished} of {len(self.videos)} videos finished (outputs in {self.folder.root})"
        return text + (f", the windows of {partial[0]} predicted so far kept" if partial else "")


def predict_locally(
    run: PredictionRun, make_predictor: Callable[[], object], quiet: bool = False, checkpoint_s: float | None = None
) -> None:
    """Predict each video of ``run.todo()`` in this process (the models loaded by ``make_predictor()`` only when
    one is to be predicted), writing each as it finishes and a long one's windows every ``checkpoint_s`` seconds
    (default CHECKPOINT_S) and on Ctrl-C."""
    checkpoint_s = CHECKPOINT_S if checkpoint_s is None else checkpoint_s
    from tqdm import tqdm

    todo = run.todo()
    if not todo:
        return
    predictor = make_predictor()
    run.set_settings(predictor.settings())
    bar = tqdm(todo, unit="video", desc="predict", disable=quiet, dynamic_ncols=True)
    windows_bar = tqdm(unit="window", desc="windows", disable=quiet, dynamic_ncols=True, position=1, leave=False)
    try:
        for index, path, label in bar:
            progress = _Checkpoints(run, predictor, index, path, label, checkpoint_s)
            try:
                video = predictor.predict_video(path, label, windows_bar, progress.window)
            except KeyboardInterrupt:
                progress.write()
                raise
            run.add(index, video)
            bar.set_postfix(failed=sum(v.status == "failed" for v in run.results.values()), refresh=False)
    finally:
        windows_bar.close()
        bar.close()


class _Checkpoints:
    """The windows of one video as they are predicted, written as a partial prediction every ``seconds``."""

    def __init__(self, run: PredictionRun, predictor, index: int, path: Path, label: int | None, seconds: float):
        self.run, self.predictor, self.index, self.path, self.label = run, predictor, index, path, label
        self.seconds = seconds
        self.windows: list[WindowPrediction] = []
        self.written = time.monotonic()

    def window(self, features, prediction: WindowPrediction) -> None:
        """The predictor's ``on_window``: keep the window; write the windows so far when it is time."""
        self.windows.append(prediction)
        if time.monotonic() - self.written >= self.seconds:
            self.write()

    def write(self) -> None:
        """Write the windows so far (state "partial"); nothing before the first window."""
        if self.windows:
            partial = partial_prediction(self.predictor, self.path, self.label, self.windows)
            self.run.add(self.index, partial, "partial")
        self.written = time.monotonic()


def partial_prediction(predictor, path: Path, label: int | None, windows: list[WindowPrediction]) -> VideoPrediction:
    """The prediction of the windows of ``path`` predicted so far, flagged "interrupted at T s"."""
    fused = np.stack([w.probabilities[FUSED] for w in windows])
    info = predictor.stream.info
    duration = info.duration if info is not None and info.duration else None
    where = f"interrupted at {windows[-1].end_s:.1f} s" + (f" of {duration:.1f} s" if duration else "")
    return VideoPrediction(
        Path(path),
        "flagged",
        list(windows),
        pool_probabilities(fused, predictor.pool),
        class_shares(fused, predictor.class_names),
        [f"{where}; re-run to predict the rest"],
        duration_s=duration or windows[-1].end_s,
        label=label,
        class_names=predictor.class_names,
    )


def noted(video: VideoPrediction, note: str | None) -> VideoPrediction:
    """``video`` with ``note`` (why its label was dropped) among its flags: a done video becomes flagged."""
    if note is None:
        return video
    return replace(video, flags=[*video.flags, note], status="flagged" if video.status == "done" else video.status)


def _one_path(video: VideoPrediction) -> VideoPrediction:
    """``video`` with a failure reason that names its path once (the decoder's message names it already)."""
    doubled = f"{video.path}: {video.path}: "
    if not video.reason.startswith(doubled):
        return video
    return replace(video, reason=video.reason[len(f"{video.path}: ") :])


def unique_inputs(videos: list[tuple[Path, int | None]]) -> tuple[list[tuple[Path, int | None]], list[Path]]:
    """``videos`` with each file once (the first mention kept), and the paths left out as repeats."""
    seen: set[str] = set()
    kept, repeats = [], []
    for path, label in videos:
        key = os.path.realpath(path)
        if key in seen:
            repeats.append(path)
        else:
            seen.add(key)
            kept.append((path, label))
    return kept, repeats
