"""Faces extractor: detection on a real face, FER scores, size filtering, per-frame pooling, a real clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from preprocess.config import PreprocessConfig
from preprocess.decode import DecodedClip, decode_clip
from preprocess.faces import EXPRESSIONS, FaceExtractor, detect_faces, face_features, score_faces

pytestmark = pytest.mark.slow  # real models or training (`pytest -m 'not slow'` skips it)


@pytest.fixture(scope="module")
def extractor(shared_dir) -> FaceExtractor:
    return FaceExtractor(PreprocessConfig())


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()  # 512x512 RGB, one smiling face


def clip_of(frames: np.ndarray, n_frames: int = 12) -> DecodedClip:
    return DecodedClip(
        path=skimage.data.__file__, frames=frames, frame_indices=list(range(len(frames))), fps=25.0, n_frames=n_frames
    )


def test_astronaut_face_is_found_and_scored_happy(extractor, astronaut):
    boxes = detect_faces(astronaut[None])
    assert len(boxes) == 1 and boxes[0].shape == (1, 4) and boxes[0].dtype == np.int32
    top, right, bottom, left = boxes[0][0]
    # Her face lies in the upper middle of the picture, roughly 60-150 px across.
    assert 40 < top < bottom < 260 and 120 < left < right < 330
    assert 60 <= bottom - top <= 150 and 60 <= right - left <= 150
    scores = score_faces(extractor.fer_model, astronaut[None], boxes)[0]
    assert scores.shape == (1, 7) and scores.dtype == np.float32
    assert scores.sum() == pytest.approx(1.0, abs=1e-4)
    # She smiles broadly: 'happy' must be the top expression.
    assert EXPRESSIONS[int(scores[0].argmax())] == "happy"


def test_extract_on_astronaut_frames_pads_and_counts(extractor, astronaut):
    frames = np.stack([astronaut, np.full_like(astronaut, 128), astronaut])
    result = extractor.extract(clip_of(frames, n_frames=5))
    arrays = result.arrays
    assert result.flags == []
    assert arrays["features"].shape == (5, 22) and arrays["features"].dtype == np.float32
    assert arrays["mask"].tolist() == [True, True, True, False, False]
    assert arrays["faces_per_frame"].tolist() == [1, 0, 1, 0, 0]
    assert arrays["boxes"].shape == (2, 4) and arrays["scores"].shape == (2, 7)
    # One face per frame: min = max = mean = its scores; the flat frame and padding are zeros.
    np.testing.assert_allclose(arrays["features"][0, :21], np.tile(arrays["scores"][0], 3), rtol=1e-6)
    assert arrays["features"][0, 21] == 1
    assert not arrays["features"][[1, 3, 4]].any()
    # No random step: the same frames give the same features twice.
    np.testing.assert_array_equal(extractor.extract(clip_of(frames, n_frames=5)).arrays["features"], arrays["features"])


def test_flat_image_has_no_faces(extractor):
    flat = np.full((2, 360, 640, 3), 90, dtype=np.uint8)
    result = extractor.extract(clip_of(flat))
    assert result.flags == ["no faces"]
    assert not result.arrays["features"].any()
    assert result.arrays["boxes"].shape == (0, 4) and result.arrays["scores"].shape == (0, 7)
    assert result.arrays["faces_per_frame"].sum() == 0


def test_min_size_counts_full_resolution_pixels(astronaut):
    # Twice the size: the face is ~170 px in the frame but ~85 px in the 512-px-wide detection image.
    large = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)[None]
    found = detect_faces(large, min_size=40, detect_width=512)[0]
    assert found.shape == (1, 4)
    height, width = found[0, 2] - found[0, 0], found[0, 1] - found[0, 3]
    assert min(height, width) > 120  # mapped back to full resolution
    assert detect_faces(large, min_size=min(height, width), detect_width=512)[0].shape == (1, 4)
    assert detect_faces(large, min_size=min(height, width) + 1, detect_width=512)[0].shape == (0, 4)


def test_face_smaller_than_min_face_is_not_returned(astronaut):
    # Face ~27 px, below min_face (and below what HOG finds without upsampling, ~65 px).
    small = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)[None]
    assert detect_faces(small, min_size=40)[0].shape == (0, 4)
    assert detect_faces(astronaut[None], min_size=40)[0].shape == (1, 4)


def test_face_features_pool_min_max_mean_count():
    two_faces = np.array([[0.1, 0.0, 0.2, 0.5, 0.1, 0.0, 0.1], [0.3, 0.1, 0.0, 0.1, 0.2, 0.2, 0.1]], dtype=np.float32)
    one_face = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    no_face = np.zeros((0, 7), dtype=np.float32)
    features = face_features([two_faces, no_face, one_face], n_frames=5)
    assert features.shape == (5, 22) and features.dtype == np.float32
    np.testing.assert_allclose(features[0, 0:7], two_faces.min(0))
    np.testing.assert_allclose(features[0, 7:14], two_faces.max(0))
    np.testing.assert_allclose(features[0, 14:21], two_faces.mean(0))
    assert features[0, 21] == 2
    assert not features[1].any()
    np.testing.assert_allclose(features[2], np.concatenate([one_face[0]] * 3 + [[1.0]]))
    assert not features[3:].any()


def test_real_clip_shapes_and_counts(extractor, test_clips):
    # Test_7: three people sit facing the camera through the whole clip.
    clip = decode_clip(next(p for p in test_clips if p.name == "Test_7.mp4"), sample_rate=None)
    arrays = extractor.extract(clip).arrays
    counts = arrays["faces_per_frame"]
    assert arrays["features"].shape == (12, 22) and arrays["mask"].tolist() == clip.mask.tolist()
    assert counts.dtype == np.int32 and counts.sum() == len(arrays["boxes"]) == len(arrays["scores"])
    assert counts.min() >= 2 and counts.max() <= 4
    np.testing.assert_array_equal(arrays["features"][:, 21], counts)
    np.testing.assert_allclose(arrays["scores"].sum(1), 1.0, atol=1e-4)
    boxes = arrays["boxes"]
    height, width = clip.frames.shape[1:3]
    assert (boxes[:, 2] - boxes[:, 0] >= 40).all() and (boxes[:, 1] - boxes[:, 3] >= 40).all()
    assert (boxes[:, [0, 2]] <= height).all() and (boxes[:, [1, 3]] <= width).all() and (boxes >= 0).all()


def test_unknown_detector_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="hog, cnn"):
        FaceExtractor(PreprocessConfig(face_detector="mtcnn"))
    with pytest.raises(ValueError, match="hog, cnn"):
        detect_faces(np.zeros((1, 64, 64, 3), np.uint8), detector="haar")
