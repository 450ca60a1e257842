"""A synthetic feature cache for tests: all four modalities, written through the workspace's FeatureStore.

Each clip has a class; each modality shows a class *pattern* in its features. ``signal[modality]`` is the
fraction of clips whose pattern in that modality is their true class (the others show the pattern of a
uniformly random class), so 1.0 makes the class fully recoverable from that modality and 0.0 not at all.
``separates[modality] = c`` makes that modality tell only class ``c`` from the rest (every other class
shows one shared "rest" pattern), so each modality can carry a different part of the class signal.

Feature formats follow the cache contract (padded frames all zeros, mask False there):

- scene  (T, h, w, C) non-negative "feature maps"; the pattern raises one third of the channels.
- pose   (12, 27) 13 averaged body keypoints as x,y in [0,1] (-1 missing) + person count; the pattern
         moves the arms. Raw arrays "keypoints" (P_total, 18, 3) pixels + conf and "people_per_frame".
- audio  (11, audio_dim) embeddings around a per-class direction.
- faces  (12, 22) per-frame min, max, mean of 7 FER scores + face count; the pattern raises one
         expression. Raw arrays "boxes" (F_total, 4), "scores" (F_total, 7), "faces_per_frame".

Train and Val are labelled; Test is unlabelled (its true class is in each clip's meta, "true_label").
``class_names`` sets the class set (default VGAF's three; any number works: 2 or 7 classes too), ``groups`` puts
that many consecutive Train/Val clips in one group (like VGAF clips cut from one source video), and ``missing``
maps a modality to the fraction of clips that have no features of it (as when a clip has no audio track).

``events=True`` makes a set where the class is carried only by the *order* of events across modalities: every
clip's scene has one flash (a frame whose first channel group lights up) and its audio one burst, at visual
steps a and a + EVENT_OFFSETS[class] on a 12-step ring (Positive: together, Neutral: the burst 3 steps = 1.2 s
after the flash, Negative: 3 steps before). a is uniform, so the flash alone, the burst alone, or any summary of
one modality says nothing about the class; pose and faces show random patterns. Clips have no padding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gvs.core.vocabulary import CLASS_NAMES, MODALITIES
from gvs.core.workspace import CacheDir, ClipRecord
from preprocess.config import fingerprint

UNLABELLED_SPLITS: tuple[str, ...] = ("Test",)
FRAME_WIDTH, FRAME_HEIGHT = 480, 320
FER_EXPRESSION_BY_PATTERN = (3, 6, 4, 5)  # 3 classes: happy, neutral, sad; "rest" -> surprise
_CHANGES_UNDER_PATTERN = (4, 7)  # pose keypoints (of the 18) the pattern moves: RWrist, LWrist
EVENT_OFFSETS = (0, 3, -3)  # events=True: audio burst step - scene flash step, per class (mod 12)
VISUAL_STEPS, AUDIO_STEPS = 12, 11


def make_synthetic_cache(
    root: Path,
    n_per_class: int,
    signal: dict[str, float] | None = None,
    seed: int = 0,
    splits=("Train", "Val", "Test"),
    scene_shape=(12, 4, 6, 16),
    audio_dim: int = 32,
    separates: dict[str, int] | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
    groups: int = 1,
    missing: dict[str, float] | None = None,
    events: bool = False,
) -> Path:
    """Write a cache with ``n_per_class`` clips per class in every split; returns ``root``.

    ``signal`` maps modality -> fraction of clips (0..1) whose pattern shows their class; modalities it
    leaves out get 1.0. ``separates`` maps modality -> the one class it tells from the rest.
    Deterministic in ``seed``; a different seed, size or signal gives a different fingerprint.
    """
    root = Path(root)
    if events:
        if len(class_names) != len(EVENT_OFFSETS):
            raise ValueError(f"events=True needs {len(EVENT_OFFSETS)} classes")
        signal = dict.fromkeys(MODALITIES, 0.0)
    strength = {m: 1.0 for m in MODALITIES} | dict(signal or {})
    separates = dict(separates or {})
    n_classes = len(class_names)
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_classes + 1, audio_dim)).astype(np.float32)
    records, labels_by_key = [], {}
    for split in splits:
        labels = np.tile(np.arange(n_classes), n_per_class)
        rng.shuffle(labels)
        for index, label in enumerate(labels, start=1):
            unlabelled = split in UNLABELLED_SPLITS
            name = f"Test_{index}" if unlabelled else f"{(index - 1) // groups + 1}_{(index - 1) % groups + 1}"
            known = None if unlabelled else int(label)
            group = "" if unlabelled else f"{split}-{(index - 1) // groups + 1}"
            records.append(ClipRecord(name, split, root / "videos" / split / f"{name}.mp4", known, group))
            labels_by_key[f"{split}/{name}"] = int(label)
    cache_dir = CacheDir(root)
    cache_dir.write_clips(records, tuple(class_names))
    fingerprints = {}
    for modality in MODALITIES:
        params = {
            "modality": modality,
            "synthetic": True,
            "seed": seed,
            "n_per_class": n_per_class,
            "signal": strength[modality],
            "separates": separates.get(modality),
            "scene_shape": list(scene_shape),
            "audio_dim": audio_dim,
            "splits": list(splits),
            **({"classes": list(class_names)} if tuple(class_names) != CLASS_NAMES else {}),
            **({"groups": groups} if groups > 1 else {}),
            **({"missing": (missing or {})[modality]} if (missing or {}).get(modality) else {}),
            **({"events": list(EVENT_OFFSETS)} if events else {}),
        }
        fingerprints[modality] = fingerprint(params)
        cache = cache_dir.store(modality, fingerprints[modality])
        cache.write_params(params)
        flashes = np.random.default_rng([seed, 7]).integers(0, VISUAL_STEPS, len(labels_by_key))
        for (key, label), flash in zip(labels_by_key.items(), flashes):
            pattern = _pattern(rng, label, strength[modality], separates.get(modality), n_classes)
            n_real = _real_steps(rng, scene_shape[0] if modality == "scene" else (11 if modality == "audio" else 12))
            arrays = _BUILDERS[modality](
                rng, pattern, n_real, scene_shape=scene_shape, directions=directions, n_patterns=n_classes + 1
            )
            if events and modality in _EVENTS:
                arrays = _EVENTS[modality](rng, flash, label, scene_shape=scene_shape, directions=directions)
            if rng.random() < (missing or {}).get(modality, 0.0):
                continue  # this clip has no features of this modality
            cache.write(key, arrays, {"synthetic": True, "true_label": label, "pattern": pattern, "flags": []})
    cache_dir.set_current_fingerprints(fingerprints)
    return root


def _pattern(rng: np.random.Generator, label: int, strength: float, separated: int | None, n_classes: int) -> int:
    """The pattern a clip shows: its class, a random one, or (one-vs-rest) the "rest" pattern ``n_classes``."""
    shown = label if rng.random() < strength else int(rng.integers(n_classes))
    if separated is None:
        return shown
    return separated if shown == separated else n_classes


def _real_steps(rng: np.random.Generator, steps: int) -> int:
    """About a quarter of clips are short: their last steps are padding."""
    return steps if rng.random() < 0.75 else int(rng.integers(steps // 2, steps))


def _mask(steps: int, n_real: int) -> np.ndarray:
    return np.arange(steps) < n_real


def _scene(rng, pattern, n_real, *, scene_shape, n_patterns, **_) -> dict[str, np.ndarray]:
    steps, height, width, channels = scene_shape
    maps = np.abs(rng.normal(0.0, 0.5, size=scene_shape)).astype(np.float32)
    groups = np.array_split(np.arange(channels), n_patterns)
    maps[..., groups[pattern]] += 1.0
    maps[n_real:] = 0.0
    return {"features": maps, "mask": _mask(steps, n_real)}


def _person(rng, pattern, n_patterns) -> np.ndarray:
    """One person's 18 COCO keypoints in pixels + confidence; some are missing (-1)."""
    centre = rng.uniform([0.2, 0.45], [0.8, 0.55])
    skeleton = np.array(
        [
            [0, -0.25],
            [0, -0.2],
            [-0.05, -0.2],
            [-0.08, -0.1],
            [-0.09, 0.0],
            [0.05, -0.2],
            [0.08, -0.1],
            [0.09, 0.0],
            [-0.04, 0.05],
            [-0.04, 0.17],
            [-0.04, 0.3],
            [0.04, 0.05],
            [0.04, 0.17],
            [0.04, 0.3],
            [-0.02, -0.27],
            [0.02, -0.27],
            [-0.03, -0.26],
            [0.03, -0.26],
        ]
    )
    heights = (-0.4, 0.0, 0.3, -0.2) if n_patterns == 4 else np.linspace(-0.4, 0.3, n_patterns)
    wrist_height = heights[pattern]  # 3 classes: arms up / down / hanging / half raised
    skeleton[list(_CHANGES_UNDER_PATTERN), 1] = wrist_height
    points = np.clip(centre + skeleton + rng.normal(0, 0.01, size=skeleton.shape), 0.0, 1.0)
    keypoints = np.concatenate([points * [FRAME_WIDTH, FRAME_HEIGHT], rng.uniform(0.3, 1.0, (18, 1))], axis=1)
    keypoints[rng.random(18) < 0.15] = -1.0
    return keypoints.astype(np.float32)


def _pose(rng, pattern, n_real, *, n_patterns, **_) -> dict[str, np.ndarray]:
    features = np.zeros((12, 27), np.float32)
    people_per_frame = np.zeros(12, np.int32)
    people = []
    for frame in range(n_real):
        count = int(rng.integers(1, 5)) if rng.random() < 0.9 else 0
        people_per_frame[frame] = count
        frame_people = [_person(rng, pattern, n_patterns) for _ in range(count)]
        people += frame_people
        features[frame] = _pose_vector(frame_people)
    keypoints = np.stack(people) if people else np.zeros((0, 18, 3), np.float32)
    return {
        "features": features,
        "mask": _mask(12, n_real),
        "keypoints": keypoints,
        "people_per_frame": people_per_frame,
    }


def _pose_vector(people: list[np.ndarray]) -> np.ndarray:
    """Body keypoints 1..13 averaged over the people who have them, x,y in [0,1] (-1 missing), + count."""
    vector = np.full(27, -1.0, np.float32)
    vector[26] = len(people)
    for slot, keypoint in enumerate(range(1, 14)):
        seen = [p[keypoint, :2] for p in people if p[keypoint, 2] >= 0]
        if seen:
            vector[2 * slot : 2 * slot + 2] = np.mean(seen, axis=0) / [FRAME_WIDTH, FRAME_HEIGHT]
    return vector


def _audio(rng, pattern, n_real, *, directions, **_) -> dict[str, np.ndarray]:
    steps = 11
    embeddings = directions[pattern] + rng.normal(0, 0.5, size=(steps, directions.shape[1]))
    embeddings = embeddings.astype(np.float32)
    embeddings[n_real:] = 0.0
    return {"features": embeddings, "mask": _mask(steps, n_real)}


def _faces(rng, pattern, n_real, *, n_patterns, **_) -> dict[str, np.ndarray]:
    """Pattern p raises one FER expression (two for p >= 7, so 7 classes + "rest" stay distinct)."""
    raised = (
        [FER_EXPRESSION_BY_PATTERN[pattern]]
        if n_patterns == 4
        else [pattern % 7, *([(pattern + 1) % 7] * (pattern >= 7))]
    )
    features = np.zeros((12, 22), np.float32)
    faces_per_frame = np.zeros(12, np.int32)
    boxes, scores = [], []
    for frame in range(n_real):
        count = int(rng.integers(0, 4))
        faces_per_frame[frame] = count
        if count == 0:
            continue
        logits = rng.normal(0, 1.0, size=(count, 7))
        logits[:, raised] += 2.0
        frame_scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        features[frame] = np.concatenate([frame_scores.min(0), frame_scores.max(0), frame_scores.mean(0), [count]])
        top = rng.integers(0, FRAME_HEIGHT - 60, size=count)
        left = rng.integers(0, FRAME_WIDTH - 60, size=count)
        side = rng.integers(40, 60, size=count)
        boxes.append(np.stack([top, left + side, top + side, left], axis=1))
        scores.append(frame_scores)
    return {
        "features": features,
        "mask": _mask(12, n_real),
        "boxes": np.concatenate(boxes).astype(np.int32) if boxes else np.zeros((0, 4), np.int32),
        "scores": np.concatenate(scores).astype(np.float32) if scores else np.zeros((0, 7), np.float32),
        "faces_per_frame": faces_per_frame,
    }


_BUILDERS = {"scene": _scene, "pose": _pose, "audio": _audio, "faces": _faces}


def _scene_flash(rng, flash, label, *, scene_shape, **_) -> dict[str, np.ndarray]:
    """Background maps with one flash: the first channel group lit at visual step ``flash``."""
    maps = np.abs(rng.normal(0.0, 0.5, size=scene_shape)).astype(np.float32)
    maps[flash, ..., : max(1, scene_shape[-1] // 4)] += 2.0
    return {"features": maps, "mask": np.ones(scene_shape[0], bool)}


def _audio_burst(rng, flash, label, *, directions, **_) -> dict[str, np.ndarray]:
    """Background embeddings with one burst at the audio step nearest visual step flash + offset (0.4 s per
    visual step, 0.5 s per audio step)."""
    burst = (flash + EVENT_OFFSETS[label]) % VISUAL_STEPS
    embeddings = directions[-1] + rng.normal(0, 0.5, size=(AUDIO_STEPS, directions.shape[1]))
    embeddings[min(AUDIO_STEPS - 1, int(np.floor(burst * 0.8 + 0.5)))] += 3.0 * directions[0]
    return {"features": embeddings.astype(np.float32), "mask": np.ones(AUDIO_STEPS, bool)}


_EVENTS = {"scene": _scene_flash, "audio": _audio_burst}
