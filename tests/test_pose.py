"""Pose modality: people found on real clips and images, PAF grouping on synthetic maps, feature rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from preprocess.config import PreprocessConfig
from preprocess.decode import DecodedClip, read_frames
from preprocess.paf import LIMB_PAF_CHANNELS, LIMBS, N_KEYPOINTS, group_people
from preprocess.pose import (
    BODY_KEYPOINTS,
    N_FEATURES,
    PoseExtractor,
    detect_people,
    drop_static,
    network_input,
    network_size,
    pose_features,
)

pytestmark = pytest.mark.slow  # real models or training (`pytest -m 'not slow'` skips it)

NECK, RIGHT_SHOULDER, LEFT_SHOULDER, RIGHT_HIP, LEFT_HIP = 1, 2, 5, 8, 11


@pytest.fixture(scope="module")
def extractor(shared_dir: Path) -> PoseExtractor:
    return PoseExtractor(PreprocessConfig())


@pytest.fixture(scope="module")
def real_results(extractor: PoseExtractor, val_clip: Path, test_clips: list[Path]) -> dict:
    """Pose results of the labelled clip and three test clips (decoded once)."""
    results = {}
    for path in [val_clip, *test_clips[:3]]:
        frames, indices, fps = read_frames(path)
        clip = DecodedClip(path, frames, indices, fps, n_frames=12)
        results[path.name] = (clip, extractor.extract(clip))
    return results


def test_real_clips_give_features_in_range(real_results: dict) -> None:
    for name, (clip, result) in real_results.items():
        features, counts = result.arrays["features"], result.arrays["people_per_frame"]
        assert features.shape == (12, N_FEATURES) and features.dtype == np.float32, name
        assert result.arrays["mask"].tolist() == clip.mask.tolist()
        coords = features[:, :-1]
        assert np.all((coords == -1) | ((coords >= 0) & (coords <= 1))), name
        assert features[:, -1].tolist() == counts.tolist()
        # Each person has one coordinate spanning its box: the feature means cannot all be tiny.
        assert coords[counts > 0].max() > 0.5, name
        keypoints = result.arrays["keypoints"]
        assert keypoints.shape == (counts.sum(), N_KEYPOINTS, 3) and keypoints.dtype == np.float32
        found = keypoints[..., 2] > 0
        height, width = clip.frames.shape[1:3]
        assert np.all((keypoints[..., 0][found] >= -1) & (keypoints[..., 0][found] <= width)), name
        assert np.all((keypoints[..., 1][found] >= -1) & (keypoints[..., 1][found] <= height)), name
        assert np.all(keypoints[..., :2][~found] == -1) and np.all(keypoints[..., 2][~found] == 0)


def test_group_clips_have_plausible_people_counts(real_results: dict) -> None:
    plausible = [
        name
        for name, (_, result) in real_results.items()
        if 1 <= np.median(result.arrays["people_per_frame"]) and result.arrays["people_per_frame"].max() < 40
    ]
    assert len(plausible) >= len(real_results) - 1, {
        n: r.arrays["people_per_frame"].tolist() for n, (_, r) in real_results.items()
    }


def test_skeletons_are_upright(real_results: dict) -> None:
    """Seated and standing people: the neck is above the hips and between the shoulders."""
    people = np.concatenate([result.arrays["keypoints"] for _, result in real_results.values()])
    with_hips = people[(people[:, NECK, 2] > 0) & (people[:, RIGHT_HIP, 2] > 0)]
    assert len(with_hips) >= 10
    assert np.mean(with_hips[:, NECK, 1] < with_hips[:, RIGHT_HIP, 1]) > 0.9
    with_shoulders = people[(people[:, [NECK, RIGHT_SHOULDER, LEFT_SHOULDER], 2] > 0).all(axis=1)]
    neck_x, right_x, left_x = (with_shoulders[:, part, 0] for part in (NECK, RIGHT_SHOULDER, LEFT_SHOULDER))
    # Facing the camera, the person's right shoulder is on the image's left.
    assert np.mean((right_x < neck_x) & (neck_x < left_x)) > 0.8


def test_astronaut_is_one_person(extractor: PoseExtractor) -> None:
    image = data.astronaut()
    people = detect_people(extractor.net, image[None], 368)[0]
    assert len(people) == 1
    neck = people[0, NECK]
    assert neck[2] > 0 and 150 < neck[0] < 300 and 100 < neck[1] < 300  # her neck, in the image's left half


def test_frames_without_people_count_zero(extractor: PoseExtractor) -> None:
    coffee = data.coffee()
    gray = np.full_like(coffee, 128)
    clip = DecodedClip(Path("no_people.mp4"), np.stack([coffee, gray]), [0, 10], 30.0, n_frames=4)
    result = extractor.extract(clip)
    features = result.arrays["features"]
    assert result.arrays["people_per_frame"].tolist() == [0, 0, 0, 0]
    assert np.all(features[:2, :-1] == -1) and np.all(features[:2, -1] == 0)
    assert np.all(features[2:] == 0)
    assert result.arrays["keypoints"].shape == (0, N_KEYPOINTS, 3)
    assert "no people" in result.flags


def test_a_still_picture_is_no_person_across_chunks_of_one_video(extractor: PoseExtractor) -> None:
    """The streaming path gives a video in chunks: the extractor compares each chunk with the frames before it."""
    image = data.astronaut()

    def counts(path: str, first: int) -> list[int]:
        clip = DecodedClip(Path(path), np.stack([image] * 3), [first, first + 10, first + 20], 30.0, n_frames=3)
        return extractor.extract(clip).arrays["people_per_frame"].tolist()

    assert counts("photo.mp4", 0) == [1, 1, 1]  # 2 other frames: too few to tell
    assert counts("photo.mp4", 30) == [0, 0, 0]  # the video goes on: 5 frames to compare, all the same
    assert counts("other.mp4", 60) == [1, 1, 1]  # another video: compared with its own frames only


def test_short_clip_is_zero_padded(extractor: PoseExtractor, real_results: dict, val_clip: Path) -> None:
    full_clip, full = real_results[val_clip.name]
    clip = DecodedClip(val_clip, full_clip.frames[:5], full_clip.frame_indices[:5], full_clip.fps, n_frames=12)
    result = extractor.extract(clip)
    features, counts = result.arrays["features"], result.arrays["people_per_frame"]
    assert features.shape == (12, N_FEATURES)
    assert result.arrays["mask"].tolist() == [True] * 5 + [False] * 7
    assert np.all(features[5:] == 0) and np.all(counts[5:] == 0) and counts.dtype == np.int32
    assert counts[:5].tolist() == full.arrays["people_per_frame"][:5].tolist()
    np.testing.assert_allclose(features[:5], full.arrays["features"][:5], atol=1e-5)


def test_network_size_keeps_aspect_and_budget() -> None:
    width, height = network_size(720, 1280, 368)
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width / height - 1280 / 720) < 0.1
    assert abs(width * height / 368**2 - 1) < 0.1
    assert network_size(512, 512, 368) == (368, 368)


def test_network_input_is_bgr_minus_mean() -> None:
    red = np.zeros((2, 90, 160, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    blob = network_input(red, 64)
    assert blob.shape == (2, *network_size(90, 160, 64)[::-1], 3) and blob.dtype == np.float32
    assert np.allclose(blob[..., 2], 127.5) and np.allclose(blob[..., :2], -127.5)


# --- grouping on synthetic network output ------------------------------------------------------------------


def _render_maps(people: list[np.ndarray], height: int = 46, width: int = 46) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (18, h, w) and fields (38, h, w) that a perfect network would output for ``people``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    heatmaps = np.zeros((N_KEYPOINTS, height, width), np.float32)
    pafs = np.zeros((38, height, width), np.float32)
    for person in people:
        for part, (x, y) in enumerate(person):
            if x >= 0:
                heatmaps[part] = np.maximum(heatmaps[part], np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2.0))
        for (part_a, part_b), (channel_x, channel_y) in zip(LIMBS, LIMB_PAF_CHANNELS):
            start, end = person[part_a], person[part_b]
            if start[0] < 0 or end[0] < 0:
                continue
            direction = (end - start) / np.linalg.norm(end - start)
            along = (xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]
            across = np.abs((xs - start[0]) * direction[1] - (ys - start[1]) * direction[0])
            on_limb = (along >= -1) & (along <= np.linalg.norm(end - start) + 1) & (across <= 1)
            pafs[channel_x][on_limb] = direction[0]
            pafs[channel_y][on_limb] = direction[1]
    return heatmaps, pafs


def _stick_figure(x: float, y: float) -> np.ndarray:
    """18 keypoints (x, y) of an upright person about 30 cells tall whose neck is at (x, y)."""
    offsets = [
        (0, -4),
        (0, 0),
        (-3, 0),
        (-4, 5),
        (-4, 10),
        (3, 0),
        (4, 5),
        (4, 10),
        (-2, 10),
        (-2, 17),
        (-2, 24),
        (2, 10),
        (2, 17),
        (2, 24),
        (-1, -5),
        (1, -5),
        (-2, -4),
        (2, -4),
    ]
    return np.array([(x + dx, y + dy) for dx, dy in offsets], dtype=np.float32)


def test_group_people_separates_two_people() -> None:
    truth = [_stick_figure(10, 8), _stick_figure(32, 12)]
    truth[1][[4, 7]] = -1  # the second person's wrists are hidden
    people = group_people(*_render_maps(truth), threshold=0.1)
    assert people.shape == (2, N_KEYPOINTS, 3)
    people = people[np.argsort(people[:, NECK, 0])]
    for found, expected in zip(people, truth):
        present = expected[:, 0] >= 0
        np.testing.assert_allclose(found[present, :2], expected[present], atol=0.3)
        assert np.all(found[~present] == [-1, -1, 0])


def test_group_people_without_fields_finds_nobody() -> None:
    heatmaps, _ = _render_maps([_stick_figure(20, 10)])
    assert group_people(heatmaps, np.zeros((38, 46, 46), np.float32)).shape == (0, N_KEYPOINTS, 3)


# --- static skeletons on hand-made frames ------------------------------------------------------------------


def test_drop_static_keeps_people_whose_pixels_change() -> None:
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 256, (1, 120, 160), dtype=np.uint8), 12, axis=0)  # a still textured scene
    grey[:, 60:, 80:] = np.clip(grey[:, 60:, 80:] + rng.integers(-3, 4, (12, 60, 80)), 0, 255)  # ~2 grey levels
    picture = _person({NECK: (20, 20), RIGHT_HIP: (20, 40)})  # on the still part
    alive = _person({NECK: (100, 80), RIGHT_HIP: (100, 100)})  # on the part that changes
    people = [np.stack([picture, alive])] * 12
    kept = drop_static(people, grey)
    assert all(len(frame) == 1 and frame[0, NECK, 0] == 100 for frame in kept)
    # Earlier frames only serve for comparison; with fewer than 5 others nothing is dropped.
    assert [len(frame) for frame in drop_static(people[:2], grey)] == [1, 1]
    assert [len(frame) for frame in drop_static(people[:5], grey[:5])] == [2] * 5
    # Unchanged in 5 of 11 other frames (a cut after the 6th): not static across the clip.
    grey[6:, :60, :80] = 255 - grey[6:, :60, :80]
    assert [len(frame) for frame in drop_static(people, grey)] == [2] * 12
    assert drop_static([np.zeros((0, N_KEYPOINTS, 3), np.float32)], grey[:1])[0].shape == (0, N_KEYPOINTS, 3)


# --- features from hand-made people ------------------------------------------------------------------------


def _person(points: dict[int, tuple[float, float]]) -> np.ndarray:
    person = np.tile(np.array([-1.0, -1.0, 0.0], np.float32), (N_KEYPOINTS, 1))
    for part, (x, y) in points.items():
        person[part] = (x, y, 0.9)
    return person


def _column(part: int) -> int:
    return 2 * BODY_KEYPOINTS.index(part)


def test_features_normalise_in_own_box_keeping_proportions() -> None:
    # Box 200 wide x 100 tall: x spans [0, 1], y only [0, 0.5].
    person = _person({NECK: (300, 400), RIGHT_SHOULDER: (200, 400), LEFT_SHOULDER: (400, 400), RIGHT_HIP: (250, 500)})
    row = pose_features([person[None]], n_frames=1)[0]
    assert row[_column(RIGHT_SHOULDER)] == pytest.approx(0.0) and row[_column(LEFT_SHOULDER)] == pytest.approx(1.0)
    assert row[_column(NECK) : _column(NECK) + 2] == pytest.approx([0.5, 0.0])
    assert row[_column(RIGHT_HIP) : _column(RIGHT_HIP) + 2] == pytest.approx([0.25, 0.5])
    # Same person, shifted and three times larger: same features.
    moved = person.copy()
    moved[..., :2] = np.where(moved[..., 2:] > 0, moved[..., :2] * 3 + 17, -1)
    np.testing.assert_allclose(pose_features([moved[None]], 1), pose_features([person[None]], 1), atol=1e-6)


def test_features_ignore_face_keypoints_and_mark_missing() -> None:
    person = _person({0: (0, 0), 14: (1000, 1000), NECK: (10, 10), RIGHT_HIP: (10, 30)})
    row = pose_features([person[None]], n_frames=1)[0]
    assert row[_column(NECK) : _column(NECK) + 2] == pytest.approx([0.0, 0.0])
    assert row[_column(RIGHT_HIP) : _column(RIGHT_HIP) + 2] == pytest.approx([0.0, 1.0])
    others = [
        c for c in range(N_FEATURES - 1) if c // 2 not in (BODY_KEYPOINTS.index(NECK), BODY_KEYPOINTS.index(RIGHT_HIP))
    ]
    assert np.all(row[others] == -1) and row[-1] == 1


def test_features_average_only_people_who_have_the_keypoint() -> None:
    first = _person({NECK: (0, 0), RIGHT_HIP: (0, 10), LEFT_HIP: (10, 10)})  # hips at (0, 1) and (1, 1)
    second = _person({NECK: (10, 0), RIGHT_HIP: (0, 10)})  # no left hip
    row = pose_features([np.stack([first, second])], n_frames=1)[0]
    assert row[_column(NECK) : _column(NECK) + 2] == pytest.approx([0.5, 0.0])
    assert row[_column(LEFT_HIP) : _column(LEFT_HIP) + 2] == pytest.approx([1.0, 1.0])  # first person only
    assert row[_column(RIGHT_SHOULDER)] == -1
    assert row[-1] == 2


def test_features_empty_frames_and_padding() -> None:
    people = [np.zeros((0, N_KEYPOINTS, 3), np.float32), _person({NECK: (5, 5), RIGHT_HIP: (5, 9)})[None]]
    features = pose_features(people, n_frames=4)
    assert features.shape == (4, N_FEATURES) and features.dtype == np.float32
    assert np.all(features[0, :-1] == -1) and features[0, -1] == 0
    assert features[1, -1] == 1
    assert np.all(features[2:] == 0)
