"""Features of every window of a whole video, decoded in one streaming pass: what ``gvs predict`` feeds the models.

A window is what the models were trained on: ``n_frames`` sampled frames (one every ``frame_step`` frame periods,
picked by timestamp exactly as preprocessing picks them, see ``preprocess.decode.FrameSampler``) and
``audio_steps`` audio embeddings ``audio_hop`` s apart. Windows start every ``stride`` sampled frames (default
half a window): the first at the first frame, then one per stride; when the last stride does not end on the
last sampled frame, one more window ends there (its stride is shorter), so windows reach the end of the video.
A video with fewer sampled frames than a window gives one window padded with zero rows, as preprocessing pads,
and flagged. A window's audio is the ``audio_steps`` steps of the whole track's hop grid from the step nearest
its first frame's time: steps past the end of the track are zero rows (mask False), as preprocessing pads.

One pass: every frame is grabbed once; each sampled frame goes through each backbone once (in chunks of
``stride`` sampled frames) and its per-frame feature rows sit in a rolling buffer of one window; the audio
track is decoded once and embedded once. The faces of a chunk are found in a second thread while scene and pose
run on it (the detector releases the GIL); decoding stays in the calling thread. Memory holds the rolling buffer,
one chunk of frames, and the audio track with its embeddings, whatever the video's length. Scene and faces rows
depend only on their own frame (ResNet-50 in inference mode; faces are found and pooled per frame), and pose rows
on their frame and the few sampled frames before it (static skeletons such as logos are dropped by comparing
frames, see preprocess/pose.py), so a window's features equal, or for pose nearly equal, those preprocessing
computes for a clip of the same frames.

Measurements (the faces thread, decoding ahead): docs/speed.md#predicting
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gvs.core.errors import InputError
from gvs.core.vocabulary import MODALITIES, check_modalities
from gvs.people.tracks import PeopleTracker, Person
from preprocess.audio import NO_AUDIO_FLAG
from preprocess.config import PreprocessConfig
from preprocess.decode import DecodedClip, FrameSampler, SampledFrame, read_audio
from preprocess.pipeline import make_extractor

THUMBNAIL_HEIGHT = 90  # pixels; thumbnails keep the frame's aspect ratio
FRAME_MODALITIES: tuple[str, ...] = ("scene", "pose", "faces")  # one feature row per sampled frame
# Run in a second thread beside the others (its detector releases the GIL and uses one core, where the scene and
# pose networks use all); its stage time is then what the stream waited for it after them.
BESIDE: tuple[str, ...] = ("faces",)
# Per-frame counts an extractor reports, and what a window where they are all zero lacks.
COUNTS: dict[str, tuple[str, str]] = {
    "pose": ("people_per_frame", "no people"),
    "faces": ("faces_per_frame", "no faces"),
}
LATE_S = 1.0  # a video that decodes, or an audio track that lasts, this much less than expected is flagged


@dataclass
class WindowRaw:
    """What one window's features were computed from, kept when the stream is asked to (``keep_raw``).

    frames : (n_real, H, W, 3) uint8 RGB, one per real sampled position (a repeated frame appears again)
    times : (n_real,) seconds of each frame from the first frame of the video
    keypoints : per frame, (people, 18, 3) x, y (source-frame pixels), confidence of each COCO keypoint
    face_boxes : per frame, (faces, 4) int (top, right, bottom, left) in source-frame pixels
    face_scores : per frame, (faces, 7) FER probabilities in preprocess.faces.EXPRESSIONS order
    audio : mono float32 samples from ``audio_start_s`` for the window's audio span; None without a track
    """

    frames: np.ndarray
    times: np.ndarray
    keypoints: list[np.ndarray] = field(default_factory=list)
    face_boxes: list[np.ndarray] = field(default_factory=list)
    face_scores: list[np.ndarray] = field(default_factory=list)
    audio: np.ndarray | None = None
    sample_rate: int = 0
    audio_start_s: float = 0.0


@dataclass
class WindowFeatures:
    """One window's model inputs.

    ``features``: {modality: float32 array of the shape one clip has in the feature cache}, i.e. the models'
    input; ``masks``: {modality: bool per step, True = real} (frames for scene/pose/faces, audio steps).
    ``empty``: {modality: reason} for modalities with nothing in this window ("no people", "no faces",
    "no audio track", ...). ``start_s`` / ``end_s``: times of its first and last sampled frame (seconds from the
    first frame; NaN when the video gives no time); its audio covers ``audio_start_s`` .. + audio_seconds.
    """

    index: int
    position: int  # sampled position of its first frame: frame k is the one at k * frame_step / fps
    start_s: float
    end_s: float
    features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    empty: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # (~90, W, 3) uint8 RGB of the first frame
    frame_indices: list[int] = field(default_factory=list)  # decode index of each real frame
    audio_start_s: float | None = None  # centre of the first audio step; None without audio
    raw: WindowRaw | None = field(default=None, repr=False)  # only when the stream keeps raw data
    # with people tracking: per real frame, its faces' (F, 7) FER scores and (F,) track indices (VideoInfo.tracker)
    face_rows: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)


@dataclass
class VideoInfo:
    """What the stream saw of one video, updated while it streams (``finished`` once the last window is out)."""

    path: Path
    fps: float = 0.0  # nominal rate the sampling used (0.0: unknown, sampled by index)
    duration: float | None = None  # seconds; the header's estimate until the end is reached
    width: int = 0
    height: int = 0
    frames_decoded: int = 0  # frames grabbed (every frame of the video once finished)
    frames_sampled: int = 0  # sampled positions (targets k * frame_step / fps)
    frames_extracted: int = 0  # distinct sampled frames run through the backbones (each once)
    windows: int = 0
    audio_seconds: float | None = None  # length of the audio track; None when there is none (or not asked)
    flags: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage: decode, audio, scene, pose, faces, people
    finished: bool = False
    tracker: PeopleTracker | None = field(default=None, repr=False)  # with people tracking: the video's tracks
    people: list[Person] | None = None  # with people tracking, once finished: the tracks merged into people

    def add_flag(self, flag: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)

    def timed(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


@dataclass
class _Row:
    """One sampled position: its frame's feature rows, per-frame counts and thumbnail."""

    position: int
    time: float
    index: int
    features: dict[str, np.ndarray]
    counts: dict[str, int]
    thumbnail: np.ndarray
    repeated: bool  # the same frame as the previous position (a gap in the video's timestamps)
    raw: dict | None = None  # with keep_raw: "frame", "keypoints", "face_boxes", "face_scores" of this frame
    faces: tuple[np.ndarray, np.ndarray] | None = None  # with people tracking: (F, 7) scores, (F,) track indices


class _AudioTrack:
    """The whole track's embeddings on the hop grid, and each window's slice of them."""

    def __init__(
        self,
        embeddings: np.ndarray | None,
        silence: np.ndarray | None,
        config: PreprocessConfig,
        seconds: float,
        samples: np.ndarray | None = None,
        sample_rate: int = 0,
    ):
        self.embeddings = embeddings  # (track steps, dim); None when the video has no audio track
        self.samples = samples  # the decoded track, kept only when the stream keeps raw data
        self.sample_rate = sample_rate
        self.silence = silence  # what preprocessing gives a clip without audio: its features, every step real
        self.hop = config.audio_hop
        self.steps = config.audio_steps
        self.seconds = seconds  # length of the track

    def window(self, start_s: float) -> tuple[np.ndarray, np.ndarray, str | None, str | None, float | None]:
        """Features, mask, empty reason, flag and first step's time of the window whose first frame is at start_s."""
        if self.embeddings is None:
            return self.silence.copy(), np.ones(self.steps, dtype=bool), NO_AUDIO_FLAG, None, None
        first = int(round(start_s / self.hop)) if math.isfinite(start_s) else 0
        rows = self.embeddings[first : first + self.steps]
        features = np.zeros((self.steps, self.embeddings.shape[1]), dtype=np.float32)
        features[: len(rows)] = rows
        mask = np.zeros(self.steps, dtype=bool)
        mask[: len(rows)] = True
        empty = flag = None
        if not len(rows):
            empty = f"no audio (the track ends at {self.seconds:.1f} s)"
        elif len(rows) < self.steps:
            flag = f"audio: {len(rows)} of {self.steps} steps (the track ends at {self.seconds:.1f} s)"
        return features, mask, empty, flag, first * self.hop

    def clip(self, start_s: float) -> np.ndarray | None:
        """The kept samples of the window's audio span (``audio_steps * audio_hop`` s from ``start_s``)."""
        if self.samples is None:
            return None
        first = max(0, int(round(start_s * self.sample_rate)))
        return self.samples[first : first + int(round(self.steps * self.hop * self.sample_rate))]


class VideoWindows:
    """The windows of one video, as an iterator; ``info`` is updated as they come (see ``WindowStream.windows``)."""

    def __init__(self, generator: Iterator[WindowFeatures], info: VideoInfo) -> None:
        self._generator = generator
        self.info = info

    def __iter__(self) -> VideoWindows:
        return self

    def __next__(self) -> WindowFeatures:
        return next(self._generator)

    def close(self) -> None:
        """Stop early and release the video file."""
        self._generator.close()

    def __enter__(self) -> VideoWindows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WindowStream:
    """Loads each modality's extractor once, then streams the windows of video after video.

    Parameters
    ----------
    config : the PreprocessConfig the models were trained with (frame_step, n_frames, audio grid, backbones)
    modalities : which of scene, pose, audio, faces to compute
    stride : sampled frames between window starts, 1 .. n_frames (default n_frames // 2: half a window)
    thumbnail_height : pixels of each window's thumbnail
    keep_raw : attach to each window what its features were computed from (frames, keypoints, face boxes and
        scores, audio samples: ``WindowFeatures.raw``), for explanations; holds one window of frames more
    people : link the faces into person tracks (gvs.people.tracks; faces are found for it even when ``modalities``
        lacks them): each window gets its ``face_rows`` and the video's ``info.people`` is set once it finishes
    """

    def __init__(
        self,
        config: PreprocessConfig = PreprocessConfig(),
        modalities: Iterable[str] = MODALITIES,
        stride: int | None = None,
        thumbnail_height: int = THUMBNAIL_HEIGHT,
        keep_raw: bool = False,
        people: bool = False,
    ) -> None:
        modalities = check_modalities(list(modalities))
        if not modalities:
            raise InputError(f"no modality to compute; choose from {', '.join(MODALITIES)}")
        stride = max(1, config.n_frames // 2) if stride is None else stride
        if not 1 <= stride <= config.n_frames:
            raise InputError(f"stride {stride}: windows start every 1 to {config.n_frames} sampled frames")
        self.config = config
        self.modalities = modalities
        self.stride = stride
        self.thumbnail_height = thumbnail_height
        self.keep_raw = keep_raw
        self.people = people
        self.extractors = {m: make_extractor(m, config) for m in (*modalities, *(["faces"] if people else []))}
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="gvs-beside")
        self.info: VideoInfo | None = None  # the last video's (set when its windows are asked for)
        self._silence: np.ndarray | None = None

    def windows(self, path: str | Path) -> VideoWindows:
        """Every window of the video at ``path``, in time order, decoded in one pass (see the module doc).

        Raises ClipDecodeError naming the file when it is missing or empty (now) or has no decodable frame
        (on the first ``next``, before any window); a video without an audio track is not an error.
        """
        sampler = FrameSampler(path, self.config.frame_step)  # checks that the file exists and is not empty
        self.info = VideoInfo(Path(path), tracker=PeopleTracker() if self.people else None)
        return VideoWindows(self._stream(sampler, self.info), self.info)

    # The stream: decode, extract chunk by chunk, emit windows from the rolling buffer.

    def _stream(self, sampler: FrameSampler, info: VideoInfo) -> Iterator[WindowFeatures]:
        n, stride = self.config.n_frames, self.stride
        frames = iter(sampler)
        first = self._next_frame(frames, info)  # raises ClipDecodeError when no frame decodes
        info.height, info.width = first.rgb.shape[:2]
        self._update(sampler, info)
        if sampler.opencv_count > 0 and sampler.fps:
            info.duration = sampler.opencv_count / sampler.fps
        audio = self._audio(sampler.path, info) if "audio" in self.extractors else None
        buffer: deque[_Row] = deque(maxlen=n)  # the last n sampled positions
        next_start, last_end = 0, -1  # first position of the next window; last position of the last window
        for chunk in self._chunks(first, frames, info):
            for row in self._extract(chunk, sampler, info):
                buffer.append(row)
                if row.position == next_start + n - 1:
                    yield self._window(list(buffer), info, audio, [])
                    next_start, last_end = next_start + stride, row.position
        self._update(sampler, info)
        self._video_flags(sampler, info)
        total = sampler.kept
        if total < n:
            flag = f"short video: {total} of {n} frames (padded)"
            info.add_flag(flag)
            yield self._window(list(buffer), info, audio, [flag])
        elif last_end < total - 1:  # the stride missed the last frames: one more window ends on the last one
            shift = total - 1 - last_end
            yield self._window(
                list(buffer), info, audio, [f"last window: {shift} of {stride} frames after the one before"]
            )
        if info.tracker is not None:
            started = time.perf_counter()
            info.people = info.tracker.finish()
            info.timed("people", started)
        info.finished = True

    def _chunks(
        self, first: SampledFrame, frames: Iterator[SampledFrame], info: VideoInfo
    ) -> Iterator[list[SampledFrame]]:
        """Sampled frames in chunks of at least ``stride`` positions (the last chunk may be shorter)."""
        chunk, positions, frame = [], 0, first
        while frame is not None:
            chunk.append(frame)
            positions += frame.count
            if positions >= self.stride:
                yield chunk
                chunk, positions = [], 0
            frame = self._next_frame(frames, info)
        if chunk:
            yield chunk

    def _next_frame(self, frames: Iterator[SampledFrame], info: VideoInfo) -> SampledFrame | None:
        started = time.perf_counter()
        frame = next(frames, None)
        info.timed("decode", started)
        return frame

    @staticmethod
    def _update(sampler: FrameSampler, info: VideoInfo) -> None:
        info.fps = sampler.fps
        info.frames_decoded = sampler.decoded
        info.frames_sampled = sampler.kept

    def _extract(self, frames: list[SampledFrame], sampler: FrameSampler, info: VideoInfo) -> list[_Row]:
        """Run each frame of the chunk through each per-frame extractor once; one row per sampled position."""
        clip = DecodedClip(
            sampler.path,
            np.stack([f.rgb for f in frames]),
            [f.index for f in frames],
            sampler.fps,
            len(frames),
            frame_times=[f.time for f in frames],
        )
        features: dict[str, np.ndarray] = {}
        counts: dict[str, np.ndarray] = {}
        skeletons: list[np.ndarray] | None = None  # per frame (P, 18, 3), for the people tracks
        raw: list[dict] = [{"frame": f.rgb} for f in frames] if self.keep_raw else []
        beside = {m: self._beside.submit(self.extractors[m].extract, clip) for m in BESIDE if m in self.extractors}
        for modality in FRAME_MODALITIES:
            if modality not in self.extractors:
                continue
            started = time.perf_counter()
            result = beside[modality].result() if modality in beside else self.extractors[modality].extract(clip)
            info.timed(modality, started)
            features[modality] = result.arrays["features"]
            if modality in COUNTS:
                counts[modality] = result.arrays[COUNTS[modality][0]]
                if raw:
                    _split_details(modality, result.arrays, counts[modality][: len(frames)], raw)
            if modality == "pose":
                skeletons = _per_frame(result.arrays["keypoints"], counts[modality][: len(frames)])
            if modality == "faces" and info.tracker is not None:
                tracked = self._track(frames, result.arrays, skeletons, info)
            if modality == "scene":
                for flag in result.flags:  # the squashed-aspect note: the same for every chunk
                    info.add_flag(flag)
        info.frames_extracted += len(frames)
        self._update(sampler, info)
        rows = []
        for i, frame in enumerate(frames):
            thumbnail = self._thumbnail(frame.rgb)
            for repeat in range(frame.count):
                rows.append(
                    _Row(
                        frame.position + repeat,
                        frame.time,
                        frame.index,
                        {m: f[i] for m, f in features.items()},
                        {m: int(c[i]) for m, c in counts.items()},
                        thumbnail,
                        repeat > 0,
                        raw[i] if raw else None,
                        tracked[i] if info.tracker is not None else None,
                    )
                )
        return rows

    @staticmethod
    def _track(
        frames: list[SampledFrame], arrays: dict[str, np.ndarray], skeletons: list[np.ndarray] | None, info: VideoInfo
    ) -> list[tuple]:
        """Each frame's faces (and skeletons, when pose ran) linked into the video's tracks: per frame, (F, 7)
        scores and (F,) track indices."""
        started = time.perf_counter()
        counts = arrays["faces_per_frame"][: len(frames)]
        boxes, scores = _per_frame(arrays["boxes"], counts), _per_frame(arrays["scores"], counts)
        tracked = []
        for index, (frame, frame_boxes, frame_scores) in enumerate(zip(frames, boxes, scores)):
            frame_skeletons = skeletons[index] if skeletons is not None else None
            tracks = info.tracker.add(frame.position, frame.time, frame.rgb, frame_boxes, frame_scores, frame_skeletons)
            tracked.append((frame_scores, tracks))
        info.timed("people", started)
        return tracked

    def _thumbnail(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        size = (max(1, round(width * self.thumbnail_height / height)), self.thumbnail_height)
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)

    def _window(self, rows: list[_Row], info: VideoInfo, audio: _AudioTrack | None, flags: list[str]) -> WindowFeatures:
        n = self.config.n_frames
        frame_mask = np.zeros(n, dtype=bool)
        frame_mask[: len(rows)] = True
        features: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        empty: dict[str, str] = {}
        for modality in FRAME_MODALITIES:
            if modality not in self.extractors:
                continue
            stacked = np.stack([row.features[modality] for row in rows])
            padded = np.zeros((n, *stacked.shape[1:]), dtype=np.float32)
            padded[: len(rows)] = stacked  # float16 scene rows (as the cache stores them) become float32
            features[modality], masks[modality] = padded, frame_mask.copy()
            if modality in COUNTS and not any(row.counts[modality] for row in rows):
                empty[modality] = COUNTS[modality][1]
        flags = list(flags)
        repeated = sum(row.repeated for row in rows)
        if repeated:
            flags.append(f"{repeated} of {n} frames repeated (gaps in the video's timestamps)")
        audio_start = None
        if audio is not None:
            features["audio"], masks["audio"], reason, flag, audio_start = audio.window(rows[0].time)
            if reason:
                empty["audio"] = reason
            if flag:
                flags.append(flag)
        raw = self._raw(rows, audio) if self.keep_raw else None
        window = WindowFeatures(
            info.windows,
            rows[0].position,
            rows[0].time,
            rows[-1].time,
            features,
            masks,
            empty,
            flags,
            rows[0].thumbnail,
            [row.index for row in rows],
            audio_start,
            raw,
            [row.faces for row in rows] if info.tracker is not None else None,
        )
        info.windows += 1
        return window

    @staticmethod
    def _raw(rows: list[_Row], audio: _AudioTrack | None) -> WindowRaw:
        details = [row.raw for row in rows]
        start = rows[0].time if math.isfinite(rows[0].time) else 0.0
        return WindowRaw(
            np.stack([d["frame"] for d in details]),
            np.array([row.time for row in rows], dtype=np.float64),
            [d["keypoints"] for d in details if "keypoints" in d],
            [d["face_boxes"] for d in details if "face_boxes" in d],
            [d["face_scores"] for d in details if "face_scores" in d],
            audio.clip(start) if audio is not None else None,
            audio.sample_rate if audio is not None else 0,
            start,
        )

    # Audio: the whole track, decoded and embedded once.

    def _audio(self, path: Path, info: VideoInfo) -> _AudioTrack:
        extractor = self.extractors["audio"]
        started = time.perf_counter()
        track = read_audio(path, extractor.sample_rate)
        info.timed("audio decode", started)
        started = time.perf_counter()
        if track is None:
            info.add_flag(NO_AUDIO_FLAG)
            result = _AudioTrack(None, self._no_audio_features(path), self.config, 0.0)
        else:
            info.audio_seconds = track.size / extractor.sample_rate
            samples = track if self.keep_raw else None
            result = _AudioTrack(
                extractor.embed_track(track), None, self.config, info.audio_seconds, samples, extractor.sample_rate
            )
        info.timed("audio", started)
        return result

    def _no_audio_features(self, path: Path) -> np.ndarray:
        """What preprocessing gives a clip without an audio track (silence, every step real); computed once."""
        if self._silence is None:
            clip = DecodedClip(path, np.zeros((0, 1, 1, 3), np.uint8), [], 0.0, self.config.n_frames)
            self._silence = self.extractors["audio"].extract(clip).arrays["features"].astype(np.float32)
        return self._silence

    def _video_flags(self, sampler: FrameSampler, info: VideoInfo) -> None:
        """Video-level notes once the end is reached: variable frame rate, repeated frames, a short audio track."""
        info.duration = sampler.duration()
        if sampler.irregular or (sampler.opencv_fps and sampler.fps and abs(sampler.fps - sampler.opencv_fps) > 0.01):
            info.add_flag(
                f"variable frame rate or timestamp jumps: {sampler.irregular} of {max(0, sampler.decoded - 1)} "
                f"frame intervals off 1/{sampler.fps:.4g} s by over half a frame; frames sampled by timestamp"
            )
        if sampler.repeated:
            info.add_flag(f"{sampler.repeated} of {sampler.kept} sampled frames repeated (gaps in the timestamps)")
        expected = sampler.opencv_count / sampler.opencv_fps if sampler.opencv_fps and sampler.opencv_count else None
        if expected and info.duration and expected > info.duration + LATE_S:
            info.add_flag(f"decoding stopped at {info.duration:.1f} s of {expected:.1f} s (truncated file?)")
        if info.audio_seconds is not None and info.duration and info.audio_seconds < info.duration - LATE_S:
            info.add_flag(f"audio track ends at {info.audio_seconds:.1f} s of {info.duration:.1f} s")


def _per_frame(rows: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """A chunk's rows of every frame (an extractor's concatenated boxes, scores or keypoints) split per frame by
    ``counts`` (n_frames,)."""
    return np.split(rows, np.cumsum(counts)[:-1]) if len(counts) else []


def _split_details(modality: str, arrays: dict[str, np.ndarray], counts: np.ndarray, raw: list[dict]) -> None:
    """Per-frame slices of an extractor's chunk-level keypoints (pose) or face boxes and scores (faces)."""
    names = {"pose": {"keypoints": "keypoints"}, "faces": {"face_boxes": "boxes", "face_scores": "scores"}}[modality]
    for key, name in names.items():
        for details, part in zip(raw, _per_frame(arrays[name], counts)):
            details[key] = part
