"""People tracks on a synthetic video where two known faces (scikit-image's astronaut, who smiles, and
matplotlib's Grace Hopper, who does not) enter, leave and come back; and how much each one carries a faces model
built to read smiles."""

from __future__ import annotations

import cv2
import keras
import matplotlib.cbook
import numpy as np
import pytest
import skimage

from gvs.people.summary import carried, faces_without, window_group
from gvs.people.tracks import PeopleTracker, link_distances, skeleton_faces
from gvs.predict.stream import WindowStream
from preprocess.config import PreprocessConfig
from preprocess.faces import EXPRESSIONS, FEATURES_PER_FRAME

FPS = 25
STEP = PreprocessConfig().frame_step  # video frames per sampled position
SIZE = (360, 640)
# Sampled positions each face is on screen, and where (left edge, px): both leave once and come back elsewhere.
ON_SCREEN = {
    "astronaut": [(range(0, 8), 40), (range(14, 26), 140)],
    "hopper": [(range(0, 16), 400), (range(20, 26), 330)],
}
HAPPY_MAX = 3 * 0 + len(EXPRESSIONS) + EXPRESSIONS.index("happy")  # the faces input's column of max p(happy)


def _portrait(image: np.ndarray, height: int = 200) -> np.ndarray:
    return cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return {
        "astronaut": _portrait(skimage.data.astronaut()[0:260, 110:370]),
        "hopper": _portrait(cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)[20:330, 110:420]),
    }


@pytest.fixture(scope="module")
def enter_leave_return(portraits, tmp_path_factory):
    """An mp4 of 26 sampled positions (10.4 s) following ON_SCREEN, on a grey background."""
    path = tmp_path_factory.mktemp("people") / "enter_leave_return.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE[::-1])
    for position in range(26):
        frame = np.full((*SIZE, 3), 120, np.uint8)
        for name, spans in ON_SCREEN.items():
            for positions, left in spans:
                if position in positions:
                    image = portraits[name]
                    frame[80 : 80 + image.shape[0], left : left + image.shape[1]] = image
        for _ in range(STEP):
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def streamed(enter_leave_return):
    """The video's windows (faces only, people tracked) and what the stream saw."""
    stream = WindowStream(PreprocessConfig(), ("faces",), people=True)
    windows = stream.windows(enter_leave_return)
    listed = list(windows)
    return listed, windows.info


def test_faces_that_leave_and_come_back_are_one_person_each(streamed):
    windows, info = streamed
    people = info.people
    assert len(people) == 2
    # Each came back somewhere else after a gap the linking cannot bridge: two tracks each, merged by encodings.
    assert [len(p.tracks) for p in people] == [2, 2]
    expected = {name: sorted(p for positions, _ in spans for p in positions) for name, spans in ON_SCREEN.items()}
    seen = sorted(p.positions.tolist() for p in people)
    assert seen == sorted(expected.values())
    assert info.tracker.encodings_computed <= len(info.tracker.tracks)  # one per track at most


def test_with_a_strict_threshold_the_returns_stay_separate(streamed):
    """The merge is what joins the returns: a threshold nothing passes leaves four tracks, four people."""
    _, info = streamed
    strict = PeopleTracker(same_person=0.0)
    strict.tracks = info.tracker.tracks
    assert len(strict.finish()) == 4


def test_window_group_figures_count_the_people_and_their_agreement(streamed):
    windows, info = streamed
    rows = [[(scores, info.tracker.person_ids(tracks)) for scores, tracks in w.face_rows] for w in windows]
    n_frames = PreprocessConfig().n_frames
    for window, window_rows in zip(windows, rows):
        span = range(window.position, window.position + n_frames)
        on_screen = [name for name, spans in ON_SCREEN.items() if any(set(span) & set(p) for p, _ in spans)]
        group = window_group(window_rows)
        assert group.people == len(on_screen) == 2
        assert group.agreement == pytest.approx(0.5)  # the astronaut looks happy, Hopper neutral
        assert group.dominant in {"happy", "neutral"}
    assert window_group([(np.zeros((0, 7)), np.zeros(0, int))]).people == 0


def smile_reader() -> keras.Model:
    """A faces model that reads smiles: p(Positive) rises with the highest p(happy) of the window past 0.5."""
    inputs = keras.Input((PreprocessConfig().n_frames, FEATURES_PER_FRAME))
    happy = keras.layers.Lambda(lambda x: x[..., HAPPY_MAX : HAPPY_MAX + 1])(inputs)
    dense = keras.layers.Dense(3, activation="softmax")
    outputs = dense(keras.layers.GlobalMaxPooling1D()(happy))
    dense.set_weights([np.array([[20.0, 0.0, -20.0]]), np.array([-10.0, 0.0, 10.0])])
    return keras.Model(inputs, outputs)


def test_taking_out_the_one_smiling_person_flips_a_smile_reader(streamed):
    windows, info = streamed
    model = smile_reader()
    rows = [[(scores, info.tracker.person_ids(tracks)) for scores, tracks in w.face_rows] for w in windows]
    n_frames = PreprocessConfig().n_frames
    first_rows, features = rows[0], windows[0].features["faces"]
    np.testing.assert_allclose(faces_without(first_rows, person=-1, n_frames=n_frames), features, atol=1e-6)
    astronaut, hopper = (p.id for p in sorted(info.people, key=lambda p: -p.mean_scores()[EXPRESSIONS.index("happy")]))
    probabilities = np.asarray(model(np.stack([features])))
    assert probabilities.argmax() == 0  # Positive with both
    without = np.asarray(model(np.stack([faces_without(first_rows, p, n_frames) for p in (astronaut, hopper)])))
    assert without[0].argmax() != 0 and without[1].argmax() == 0

    def score(x, faces_left, window_indices):
        p = np.asarray(model(x))
        return {"faces": p, "fused": p}

    all_probabilities = np.asarray(model(np.stack([w.features["faces"] for w in windows])))
    drops = carried(rows, all_probabilities, all_probabilities, 0, n_frames, score, lambda p: p.mean(axis=0))
    assert set(drops) == {astronaut, hopper}
    assert drops[astronaut][0] > 0.3 and abs(drops[hopper][0]) < 0.05
    assert drops[astronaut][1] > 0.3


def test_link_distances_follow_a_moving_face_not_a_new_size():
    box = np.array([[100, 150, 150, 100]])  # 50 px tall
    moved = np.array([[110, 180, 160, 130], [100, 300, 250, 150]])  # 30 px to the right; three times the size
    distance = link_distances(box, moved)[0]
    assert distance[0] == pytest.approx(np.hypot(30, 10) / 50)
    assert np.isinf(distance[1])


def _skeleton(nose_x: float, nose_y: float) -> np.ndarray:
    """(18, 3) a COCO skeleton with a confident nose and eyes around (nose_x, nose_y) and a neck below."""
    keypoints = np.zeros((18, 3), np.float32)
    keypoints[0] = (nose_x, nose_y, 0.9)  # nose
    keypoints[14] = (nose_x - 8, nose_y - 8, 0.8)  # right eye
    keypoints[15] = (nose_x + 8, nose_y - 8, 0.8)  # left eye
    keypoints[1] = (nose_x, nose_y + 60, 0.9)  # neck
    return keypoints


def test_a_skeleton_joins_the_face_its_head_lies_in():
    faces = np.array([[100, 160, 160, 100], [100, 360, 160, 300]])  # (top, right, bottom, left): left and right
    skeletons = np.stack([_skeleton(330, 135), _skeleton(600, 135), _skeleton(130, 140)])
    assert skeleton_faces(faces, skeletons).tolist() == [2, 0]  # the third skeleton's head is in face 0
    assert skeleton_faces(faces, skeletons[1:2]).tolist() == [-1, -1]  # a head far from every face joins none
    unseen = skeletons.copy()
    unseen[..., 2] = 0.0  # nothing confident: no head
    assert skeleton_faces(faces, unseen).tolist() == [-1, -1]
    tracker = PeopleTracker()
    frame = np.zeros((240, 400, 3), np.uint8)
    for position in range(3):
        tracker.add(position, position / 3, frame, faces, np.full((2, 7), 1 / 7), skeletons if position < 2 else None)
    people = tracker.finish()
    assert [p.skeleton_frames for p in people] == [2, 2] and people[0].frames_seen == 3
    np.testing.assert_array_equal(people[0].sightings[0].skeleton, skeletons[2])


def test_skeletons_of_a_real_clip_join_its_people(test_clips):
    """Test_4's two people, with pose and faces streamed: each of them gets their skeleton on some frames."""
    clip = next(path for path in test_clips if path.name == "Test_4.mp4")
    stream = WindowStream(PreprocessConfig(), ("pose", "faces"), people=True)
    windows = stream.windows(clip)
    list(windows)
    seen = [p for p in windows.info.people if p.frames_seen >= 3]
    assert len(seen) == 2 and all(p.skeleton_frames >= 1 for p in seen)
    for person in seen:
        for sighting in person.sightings:
            if sighting.skeleton is not None:
                nose = sighting.skeleton[0]
                top, right, bottom, left = sighting.box
                height = bottom - top
                assert nose[2] == 0 or (left - height <= nose[0] <= right + height)
