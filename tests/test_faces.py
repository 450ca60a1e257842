"""Faces extractor: detection on real faces and hand counts, aligned FER crops, size rule, the no-face encoding."""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from preprocess import faces as faces_module
from preprocess.cli import add_arguments
from preprocess.config import PreprocessConfig
from preprocess.decode import DecodedClip, decode_clip
from preprocess.face_detector_names import FACE_DETECTORS
from preprocess.face_matching import Tally, boxes_xywh, load_face_counts, match, score_frame
from preprocess.faces import (
    DETECTORS,
    EXPRESSIONS,
    NO_FACE,
    FaceExtractor,
    aligned_crop,
    detect_faces,
    face_features,
    find_faces,
    score_faces,
)

FACE_COUNTS = Path(__file__).parent / "data" / "face_counts.json"
MAX_FALSE_POSITIVES = {"yuface": 11, "mtcnn": 14}  # measured 9 and 11: yuface no more than MTCNN (bench_faces.py)
NO_FACE_ROW = [NO_FACE] * 21 + [0.0]


@pytest.fixture(scope="module")
def extractor(shared_dir) -> FaceExtractor:
    return FaceExtractor(PreprocessConfig())


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()  # 512x512 RGB, one smiling face


@pytest.fixture(scope="module")
def astronaut_face(astronaut) -> tuple[np.ndarray, np.ndarray]:
    """Her face's box (4,) and eyes (2, 2): the largest face MTCNN finds (it also takes a helmet reflection,
    36 px tall at score 0.89, for a face)."""
    faces = find_faces(astronaut[None], "mtcnn")[0]
    largest = int(np.argmax(faces.boxes[:, 2] - faces.boxes[:, 0]))
    return faces.boxes[largest], faces.eyes[largest]


def clip_of(frames: np.ndarray, n_frames: int = 12) -> DecodedClip:
    return DecodedClip(
        path=skimage.data.__file__, frames=frames, frame_indices=list(range(len(frames))), fps=25.0, n_frames=n_frames
    )


def shifted(box: np.ndarray, dx: float, dy: float, grow: float) -> np.ndarray:
    """(4,) int32 box (top, right, bottom, left) moved by dx, dy of its size and scaled by 1 + grow."""
    top, right, bottom, left = box.astype(float)
    height, width = (bottom - top) * (1 + grow), (right - left) * (1 + grow)
    x, y = (left + right) / 2 + dx * (right - left), (top + bottom) / 2 + dy * (bottom - top)
    return np.round([y - height / 2, x + width / 2, y + height / 2, x - width / 2]).astype(np.int32)


@pytest.mark.slow
def test_astronaut_face_is_found_and_scored_happy(extractor, astronaut, astronaut_face):
    boxes = detect_faces(astronaut[None])
    assert boxes[0].dtype == np.int32 and boxes[0].shape[1] == 4 and 1 <= len(boxes[0]) <= 2
    top, right, bottom, left = astronaut_face[0]
    # Her face lies in the upper middle of the picture, roughly 60-150 px across.
    assert 40 < top < bottom < 260 and 120 < left < right < 330
    assert 60 <= bottom - top <= 150 and 60 <= right - left <= 150
    # The eyes MTCNN marks lie inside the box, in its upper half, image-left eye first.
    (x_left, y_left), (x_right, y_right) = astronaut_face[1]
    assert left < x_left < x_right < right and top < min(y_left, y_right) < max(y_left, y_right) < (top + bottom) / 2
    scores = score_faces(extractor.fer_model, astronaut[None], [astronaut_face[0][None]], [astronaut_face[1][None]])
    assert scores[0].shape == (1, 7) and scores[0].dtype == np.float32
    assert scores[0].sum() == pytest.approx(1.0, abs=5e-3)  # softmax, in bfloat16 where the CPU has it
    # She smiles broadly: 'happy' must be the top expression.
    assert EXPRESSIONS[int(scores[0][0].argmax())] == "happy"


@pytest.mark.slow
@pytest.mark.parametrize("eyes_from", ["detector", "dlib landmarks of each shifted box"])
def test_box_shifts_keep_the_top_expression(extractor, astronaut, astronaut_face, eyes_from):
    # +-5 % of the box size in x and y, +-5 % in scale: 27 boxes around her face.
    box, eyes = astronaut_face
    grid = list(itertools.product((-0.05, 0.0, 0.05), repeat=3))
    boxes = [shifted(box, *step)[None] for step in grid]
    eyes_per_frame = [eyes[None]] * len(grid) if eyes_from == "detector" else None
    frames = np.repeat(astronaut[None], len(grid), axis=0)
    scores = np.concatenate(score_faces(extractor.fer_model, frames, boxes, eyes_per_frame))
    assert {EXPRESSIONS[i] for i in scores.argmax(1)} == {"happy"}
    centre = scores[grid.index((0.0, 0.0, 0.0))]
    assert 0.5 * np.abs(scores - centre).sum(1).max() < 0.02  # total variation: the scores barely move


@pytest.mark.slow
def test_crop_turns_a_tilted_face_upright(astronaut, astronaut_face):
    upright = aligned_crop(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), *astronaut_face).astype(np.float64)
    turn = cv2.getRotationMatrix2D((256, 256), 20, 1.0)  # 20 degrees counter-clockwise
    tilted = cv2.warpAffine(astronaut, turn, (512, 512), borderMode=cv2.BORDER_REFLECT)
    faces = find_faces(tilted[None], "mtcnn")[0]
    box, eyes = faces.boxes[0], faces.eyes[0]
    gray = cv2.cvtColor(tilted, cv2.COLOR_RGB2GRAY)
    aligned = aligned_crop(gray, box, eyes).astype(np.float64)
    not_turned = aligned_crop(gray, box, np.full((2, 2), np.nan)).astype(np.float64)

    def similarity(crop: np.ndarray) -> float:
        return float(np.corrcoef(upright.ravel(), crop.ravel())[0, 1])

    assert aligned.shape == (64, 64)
    assert similarity(aligned) > 0.9 and similarity(not_turned) < 0.6


@pytest.mark.slow
def test_extract_on_astronaut_frames_pads_and_marks_frames_without_faces(extractor, astronaut):
    frames = np.stack([astronaut, np.full_like(astronaut, 128), astronaut])
    result = extractor.extract(clip_of(frames, n_frames=5))
    arrays = result.arrays
    counts = arrays["faces_per_frame"]
    assert result.flags == []
    assert arrays["features"].shape == (5, 22) and arrays["features"].dtype == np.float32
    assert arrays["mask"].tolist() == [True, True, True, False, False]
    assert counts[[1, 3, 4]].tolist() == [0, 0, 0] and counts[0] == counts[2] >= 1
    assert len(arrays["boxes"]) == len(arrays["scores"]) == counts.sum()
    # Frame 0's statistics pool its faces' scores; the count is last.
    first = arrays["scores"][: counts[0]]
    np.testing.assert_allclose(arrays["features"][0, :21], np.concatenate([first.min(0), first.max(0), first.mean(0)]))
    assert arrays["features"][0, 21] == counts[0]
    # The flat frame is real but has no face: -1 statistics, count 0. Padding stays all zeros.
    assert arrays["features"][1].tolist() == NO_FACE_ROW
    assert not arrays["features"][3:].any()
    # No random step: the same frames give the same features twice.
    np.testing.assert_array_equal(extractor.extract(clip_of(frames, n_frames=5)).arrays["features"], arrays["features"])


@pytest.mark.slow
def test_flat_image_has_no_faces(extractor):
    flat = np.full((2, 360, 640, 3), 90, dtype=np.uint8)
    result = extractor.extract(clip_of(flat))
    assert result.flags == ["no faces"]
    assert result.arrays["features"][:2].tolist() == [NO_FACE_ROW] * 2
    assert not result.arrays["features"][2:].any()
    assert result.arrays["boxes"].shape == (0, 4) and result.arrays["scores"].shape == (0, 7)
    assert result.arrays["faces_per_frame"].sum() == 0


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["yuface", "mtcnn", "hog"])
def test_min_size_counts_box_height_in_source_pixels(astronaut, detector):
    # Twice the size, detected in a frame downscaled to 512 px: the face is ~230 px tall in the source frame.
    large = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)[None]
    found = detect_faces(large, detector, min_size=100, detect_width=512)[0]
    assert found.shape == (1, 4)
    height = found[0, 2] - found[0, 0]
    assert height > 170  # mapped back to source pixels, not the 512-px detection image's ~100
    if detector != "mtcnn":  # their boxes do not depend on min_size (MTCNN's pyramid does): test the cut exactly
        assert detect_faces(large, detector, min_size=height, detect_width=512)[0].shape == (1, 4)
        assert detect_faces(large, detector, min_size=height + 1, detect_width=512)[0].shape == (0, 4)


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["yuface", "mtcnn"])
def test_faces_below_min_face_are_not_returned(astronaut, detector):
    # At 160 px the face is ~33 px tall: kept by the default min_face (28), not by 40.
    small = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)[None]
    kept = detect_faces(small, detector)[0]
    assert len(kept) == 1 and 28 <= kept[0, 2] - kept[0, 0] < 40
    assert detect_faces(small, detector, min_size=40)[0].shape == (0, 4)


def test_face_features_pool_min_max_mean_count_and_mark_frames_without_faces():
    two_faces = np.array([[0.1, 0.0, 0.2, 0.5, 0.1, 0.0, 0.1], [0.3, 0.1, 0.0, 0.1, 0.2, 0.2, 0.1]], dtype=np.float32)
    one_face = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    no_face = np.zeros((0, 7), dtype=np.float32)
    features = face_features([two_faces, no_face, one_face], n_frames=5)
    assert features.shape == (5, 22) and features.dtype == np.float32
    np.testing.assert_allclose(features[0, 0:7], two_faces.min(0))
    np.testing.assert_allclose(features[0, 7:14], two_faces.max(0))
    np.testing.assert_allclose(features[0, 14:21], two_faces.mean(0))
    assert features[0, 21] == 2
    assert features[1].tolist() == NO_FACE_ROW
    np.testing.assert_allclose(features[2], np.concatenate([one_face[0]] * 3 + [[1.0]]))
    assert not features[3:].any()


@pytest.mark.slow
def test_real_clip_with_padding_tells_no_face_frames_from_padding(extractor, test_clips):
    # Test_9: a funeral procession; the middle frames show only legs and the coffin.
    decoded = decode_clip(next(p for p in test_clips if p.name == "Test_9.mp4"), sample_rate=None)
    clip = clip_of(decoded.frames, n_frames=14)  # two padded positions after the 12 real frames
    arrays = extractor.extract(clip).arrays
    features, counts, mask = arrays["features"], arrays["faces_per_frame"], arrays["mask"]
    assert mask.tolist() == [True] * 12 + [False] * 2
    without = mask & (counts == 0)
    assert without.sum() >= 3 and counts[mask].max() >= 5  # the last frames show the officers' faces
    assert (features[without] == NO_FACE_ROW).all()
    assert ((features[counts > 0, :21] >= 0) & (features[counts > 0, :21] <= 1)).all()
    assert not features[~mask].any()
    # What the faces model's Masking layer (mask value 0) sees: every real frame, no padded one.
    assert (features != 0).any(axis=1).tolist() == mask.tolist()


@pytest.mark.slow
def test_real_clip_shapes_and_counts(extractor, test_clips):
    # Test_7: three people sit facing the camera through the whole clip.
    clip = decode_clip(next(p for p in test_clips if p.name == "Test_7.mp4"), sample_rate=None)
    arrays = extractor.extract(clip).arrays
    counts = arrays["faces_per_frame"]
    assert arrays["features"].shape == (12, 22) and arrays["mask"].tolist() == clip.mask.tolist()
    assert counts.dtype == np.int32 and counts.sum() == len(arrays["boxes"]) == len(arrays["scores"])
    assert counts.tolist() == [3] * 12
    np.testing.assert_array_equal(arrays["features"][:, 21], counts)
    np.testing.assert_allclose(arrays["scores"].sum(1), 1.0, atol=5e-3)  # bfloat16 where the CPU has it
    boxes = arrays["boxes"]
    height, width = clip.frames.shape[1:3]
    assert (boxes[:, 2] - boxes[:, 0] >= PreprocessConfig().min_face).all()
    assert (boxes[:, [0, 2]] <= height).all() and (boxes[:, [1, 3]] <= width).all() and (boxes >= 0).all()


@pytest.mark.slow
def test_mtcnn_networks_run_as_graphs_on_fixed_batches_with_the_package_stages_results(test_clips, monkeypatch):
    # Memory and speed (see faces._in_batches, faces._compiled): RNet and ONet get zero-padded batches of one
    # size whatever the proposal count, every network runs as a traced graph, and the boxes and landmarks stay
    # those of mtcnn's own stages (eager, each network once on all proposals).
    frames = decode_clip(next(p for p in test_clips if p.name == "Test_7.mp4"), sample_rate=None).frames[:6]
    images = np.stack([cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames])
    pnet, rnet, onet = faces_module._mtcnn_stages()
    normalized = faces_module._normalized(images)
    with monkeypatch.context() as eager:  # our pyramid on the eager PNet, then the package's RNet and ONet stages
        eager.setattr(faces_module, "_compiled", lambda network, batch=None: pnet.model)
        proposals = faces_module._pnet_proposals(images, 14.0)
    refined = rnet(images_normalized=normalized, bboxes_batch=proposals.copy())
    expected = onet(
        images_normalized=normalized, bboxes_batch=refined.copy(), threshold_onet=faces_module.ONET_THRESHOLD
    )
    compiled, seen = faces_module._compiled, []

    def recording(network, batch=None):
        run = compiled(network, batch)

        def call(images):
            seen.append((network, images.shape))
            return run(images)

        return call

    monkeypatch.setattr(faces_module, "_compiled", recording)
    monkeypatch.setattr(faces_module, "RNET_BATCH", 64)
    monkeypatch.setattr(faces_module, "ONET_BATCH", 8)
    assert len(proposals) > 2 * 64 and len(refined) > 8  # several batches, the last one padded
    found = faces_module._mtcnn(images, 14.0)
    assert {shape for network, shape in seen if network == "rnet"} == {(64, 24, 24, 3)}
    assert {shape for network, shape in seen if network == "onet"} == {(8, 48, 48, 3)}
    assert sum(network == "pnet" for network, _ in seen) == len(faces_module._pyramid((360, 640), 14.0))
    assert found.shape == expected.shape and len(found) >= 6 * 3
    np.testing.assert_allclose(found, expected, atol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["yuface", "mtcnn"])
def test_detectors_find_the_hand_counted_faces(vgaf_root, detector):
    # Scored by the benchmark's rule (preprocess/face_matching.py) on the counted frames; the figures of
    # benchmarks/bench_faces.py (docs/presets.md), with a margin: recall 0.893 for both.
    counts = load_face_counts(FACE_COUNTS)
    tally, clips_missed = Tally(), []
    for name, entry in counts["clips"].items():
        frames = decode_clip(vgaf_root / name, sample_rate=None).frames
        indices = sorted(int(k) for k in entry["frames"])
        clip_tally = Tally()
        for index, boxes in zip(indices, detect_faces(frames[indices], detector)):
            counted = entry["frames"][str(index)]
            faces, unsure = (np.asarray(counted[key], float).reshape(-1, 4) for key in ("faces", "unsure"))
            clip_tally.add(score_frame(boxes_xywh(boxes), faces, unsure))
        tally.frames.extend(clip_tally.frames)
        if clip_tally.faces and not clip_tally.hits:
            clips_missed.append(name)
    assert tally.faces == 122
    assert tally.recall >= 0.87, f"{detector}: recall {tally.recall:.3f} of the counted faces"
    assert tally.false_positives <= MAX_FALSE_POSITIVES[detector]
    assert not clips_missed, f"no counted face found on {clips_missed}"


def test_matching_rule_needs_each_centre_inside_the_other_box():
    faces = np.array([[100, 100, 40, 50], [200, 100, 40, 50]], float)  # x, y, w, h
    on_first = [[105, 104, 36, 46]]
    over_both = [[90, 80, 160, 90]]  # its centre falls between the faces
    huge = [[0, 0, 400, 400]]  # contains the first face's centre, but its own centre is outside that face
    assert match(on_first, faces)[0].tolist() == [True, False]
    assert match(over_both, faces)[0].tolist() == [False, False]
    assert match(huge, faces)[0].tolist() == [False, False]
    # One detection per face, one face per detection: a duplicate is a false positive.
    score = score_frame(np.array(on_first * 2, float), faces, np.zeros((0, 4)))
    assert score.hit.tolist() == [True, False] and score.false_positives == 1
    # A detection on an "unsure" face is neither a hit nor a false positive.
    score = score_frame(np.array([[300, 100, 30, 30]], float), faces, np.array([[298, 95, 35, 40]], float))
    assert score.hit.tolist() == [False, False] and score.false_positives == 0
    np.testing.assert_allclose(boxes_xywh(np.array([[10, 50, 40, 20]])), [[20, 10, 30, 30]])


def test_face_counts_file_describes_itself_and_every_shared_clip():
    counts = load_face_counts(FACE_COUNTS)
    assert "source-frame pixels" in counts["about"] and "eye" in counts["about"]
    assert len(counts["clips"]) == 11
    for name, entry in counts["clips"].items():
        width, height = entry["frame_size"]
        assert set(entry["frames"]) >= {"0", "4", "8", "11"}, name
        for frame in entry["frames"].values():
            for x, y, w, h in frame["faces"] + frame["unsure"]:
                assert 0 <= x and 0 <= y and x + w <= width and y + h <= height and w > 0 and h > 0, name


def test_cli_offers_every_detector_from_the_one_list():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "face_detector")
    assert tuple(action.choices) == DETECTORS == FACE_DETECTORS
    assert FACE_DETECTORS[0] == PreprocessConfig().face_detector == "yuface"
    assert {"mtcnn", "hog", "cnn"} <= set(FACE_DETECTORS)
    assert "source video frame" in next(a for a in parser._actions if a.dest == "min_face").help
    assert parser.parse_args(["src", "--face-every", "2"]).face_every == 2


def test_cli_reads_the_detector_list_without_loading_opencv():
    code = "import sys, preprocess.cli; print(sorted({'cv2', 'tensorflow'} & set(sys.modules)))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"


def test_unknown_detector_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="yuface, mtcnn, hog, cnn"):
        FaceExtractor(PreprocessConfig(face_detector="retinaface"))
    with pytest.raises(ValueError, match="yuface, mtcnn, hog, cnn"):
        detect_faces(np.zeros((1, 64, 64, 3), np.uint8), detector="haar")
    with pytest.raises(ValueError, match="every 0 frames"):
        detect_faces(np.zeros((1, 64, 64, 3), np.uint8), every=0)


def test_missing_yuface_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "yuface", None)  # import yuface raises ImportError
    with pytest.raises(ValueError, match=r"pip install -r requirements.txt.*--face-detector mtcnn"):
        faces_module._yuface.__wrapped__()


def test_yuface_finds_the_astronaut_and_dlib_gives_her_eyes(astronaut):
    faces = find_faces(astronaut[None], "yuface")[0]
    assert faces.boxes.shape == (1, 4) and faces.boxes.dtype == np.int32
    top, right, bottom, left = faces.boxes[0]
    assert 40 < top < bottom < 260 and 120 < left < right < 330  # her face, as MTCNN's test above
    assert 60 <= bottom - top <= 150 and 60 <= right - left <= 150
    (x_left, y_left), (x_right, y_right) = faces.eyes[0]  # dlib's landmarks: yuface's own stay level when turned
    assert left < x_left < x_right < right and top < min(y_left, y_right) < max(y_left, y_right) < (top + bottom) / 2


def test_yuface_eyes_follow_a_turned_face(astronaut):
    turn = cv2.getRotationMatrix2D((256, 256), 20, 1.0)  # 20 degrees counter-clockwise: the right eye rises
    tilted = cv2.warpAffine(astronaut, turn, (512, 512), borderMode=cv2.BORDER_REFLECT)
    (x_left, y_left), (x_right, y_right) = find_faces(tilted[None], "yuface")[0].eyes[0]
    angle = np.degrees(np.arctan2(y_left - y_right, x_right - x_left))
    assert 12 < angle < 28


def test_face_every_second_frame_reuses_the_last_detected_frame(astronaut):
    flat = np.full_like(astronaut, 128)
    frames = np.stack([astronaut, flat, flat, astronaut, astronaut])
    every = find_faces(frames, "yuface", every=2)
    each = find_faces(frames, "yuface")
    assert [len(f.boxes) for f in each] == [1, 0, 0, 1, 1]
    assert [len(f.boxes) for f in every] == [1, 1, 0, 0, 1]  # frames 1 and 3 carry frames 0 and 2
    np.testing.assert_array_equal(every[1].boxes, each[0].boxes)
    np.testing.assert_array_equal(every[1].eyes, each[0].eyes)
    assert [len(b) for b in detect_faces(frames, "yuface", every=9)] == [1] * 5  # only frame 0 is detected
