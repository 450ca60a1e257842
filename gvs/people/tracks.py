"""Person tracks: the faces of consecutive sampled frames linked by box overlap, then tracks of one person merged
across gaps by face encoding distance.

Linking (while the video streams): each face of a frame joins the track whose last box, seen at most
``MAX_LINK_GAP`` sampled frames before, lies nearest (centres at most ``link_distance`` face heights apart,
heights within a factor ``MAX_SIZE_CHANGE``), nearest pairs first, one face per track; a face that joins none
starts a track; a second box whose centre lies inside a larger box of the frame goes with that box's face (yuface
sometimes boxes one face twice). Sampled frames are a third of a second apart in the paper preset, so box overlap alone broke
every track of a panning camera. Merging (once, at the end): two tracks that never share a frame and whose
largest faces lie within ``same_person`` of each other in face_recognition's 128-d encoding space become one
person, closest pairs first, never merging two tracks seen on one frame. Each track is encoded once, on its
largest face, and only when some other track could be the same person and its face is at least
``MIN_ENCODED_HEIGHT`` px tall: an encoding costs ~0.11 s here, ten times detecting a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from preprocess.faces import face_encodings

LINK_DISTANCE = 1.0  # face heights: how far a face's centre may be from the track's last one to continue it
MAX_SIZE_CHANGE = 1.6  # a face continues a track only if their heights differ by less than this factor
MIN_ENCODED_HEIGHT = 24  # px: smaller faces are not encoded (dlib's encodings of them do not tell people apart)
MAX_LINK_GAP = 1  # sampled frames: a track continues only from the frame before (a gap of 2 chained a panned
# camera's new face into the track of the one it replaced: bench_people.py, 20 against 18 of 22 people in one track)
SAME_PERSON = 0.55  # encoding distance under which two tracks are one person (bench_people.py measures it)
CROP_MARGIN = 0.5  # share of the face box kept around it in a track's face crops (encodings, thumbnails)
HEAD_KEYPOINTS = (0, 14, 15, 16, 17)  # COCO nose, eyes, ears: where a skeleton's face is
HEAD_MARGIN = 0.25  # share of the face box added on each side when looking for a skeleton's head keypoints


@dataclass
class Sighting:
    """One face on one sampled frame.

    position : the sampled frame's index in the video (0, 1, ...); time : its seconds from the first frame
    box : (4,) int ``(top, right, bottom, left)`` in source-frame pixels; scores : (7,) FER probabilities in
    preprocess.faces.EXPRESSIONS order; track : index of the track it joined; skeleton : (18, 3) the COCO keypoints
    (x, y, confidence) of the skeleton whose head lies in this face, None when no skeleton's does
    """

    position: int
    time: float
    box: np.ndarray
    scores: np.ndarray
    track: int
    skeleton: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.box[2] - self.box[0])


@dataclass
class FaceCrop:
    """A face cut from its frame with CROP_MARGIN around it: ``image`` (h, w, 3) uint8 RGB, ``box`` (4,) the face
    ``(top, right, bottom, left)`` within the image."""

    image: np.ndarray
    box: np.ndarray

    @classmethod
    def cut(cls, frame: np.ndarray, box: np.ndarray) -> FaceCrop:
        top, right, bottom, left = (int(v) for v in box)
        pad_y, pad_x = int((bottom - top) * CROP_MARGIN), int((right - left) * CROP_MARGIN)
        y0, x0 = max(0, top - pad_y), max(0, left - pad_x)
        y1, x1 = min(frame.shape[0], bottom + pad_y), min(frame.shape[1], right + pad_x)
        return cls(frame[y0:y1, x0:x1].copy(), np.array([top - y0, right - x0, bottom - y0, left - x0]))


@dataclass
class _Track:
    sightings: list[Sighting] = field(default_factory=list)
    largest: FaceCrop | None = None  # the crop of its tallest face (encoding, thumbnail)
    largest_height: int = -1

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def positions(self) -> set[int]:
        return {s.position for s in self.sightings}

    def add(self, sighting: Sighting, frame: np.ndarray) -> None:
        if sighting.height > self.largest_height:
            self.largest, self.largest_height = FaceCrop.cut(frame, sighting.box), sighting.height
        self.sightings.append(sighting)


@dataclass
class Person:
    """One person of one video: ``id`` from 1 in order of first appearance, every ``sightings`` (by position),
    ``tracks`` (the linked tracks merged into them) and ``thumbnail``, their largest face."""

    id: int
    sightings: list[Sighting]
    tracks: list[int]
    thumbnail: FaceCrop

    @property
    def positions(self) -> np.ndarray:
        """(frames_seen,) sampled positions where the person's face was found."""
        return np.unique([s.position for s in self.sightings])

    @property
    def frames_seen(self) -> int:
        return len(self.positions)

    @property
    def skeleton_frames(self) -> int:
        """Sampled frames where a skeleton joined the person's face."""
        return len({s.position for s in self.sightings if s.skeleton is not None})

    @property
    def first_s(self) -> float:
        return self.sightings[0].time

    @property
    def last_s(self) -> float:
        return self.sightings[-1].time

    @property
    def mean_height(self) -> float:
        """Mean face box height, source-frame pixels."""
        return float(np.mean([s.height for s in self.sightings]))

    @property
    def scores(self) -> np.ndarray:
        """(n_sightings, 7) FER probabilities, in time order."""
        return np.stack([s.scores for s in self.sightings])

    def mean_scores(self) -> np.ndarray:
        """(7,) expression probabilities averaged over the sightings."""
        return self.scores.mean(axis=0)

    def trend(self) -> np.ndarray:
        """(7,) the mean of the second half of the sightings minus that of the first half (0 when seen once)."""
        scores = self.scores
        if len(scores) < 2:
            return np.zeros(scores.shape[1])
        half = len(scores) // 2
        return scores[len(scores) - half :].mean(axis=0) - scores[:half].mean(axis=0)


def link_distances(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) distance between ``(top, right, bottom, left)`` box centres in units of their mean height;
    infinite where the heights differ by MAX_SIZE_CHANGE or more."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)[None]
    height_a, height_b = a[..., 2] - a[..., 0], b[..., 2] - b[..., 0]
    distance = np.linalg.norm(_centres(a) - _centres(b), axis=-1) / np.maximum((height_a + height_b) / 2, 1.0)
    ratio = np.maximum(height_a, height_b) / np.maximum(np.minimum(height_a, height_b), 1.0)
    return np.where(ratio < MAX_SIZE_CHANGE, distance, np.inf)


def _centres(boxes: np.ndarray) -> np.ndarray:
    """(..., 2) ``(x, y)`` centres of (..., 4) ``(top, right, bottom, left)`` boxes."""
    return np.stack([boxes[..., 1] + boxes[..., 3], boxes[..., 0] + boxes[..., 2]], -1) / 2


def duplicates(boxes: np.ndarray) -> np.ndarray:
    """(F,) for each ``(top, right, bottom, left)`` box of one frame, the index of the largest other box of the
    frame its centre lies inside and that is larger than it, else -1: the detector's second box on one face (yuface
    sometimes puts two on one face, which then made two tracks that, sharing frames, could never merge)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, int)
    top, right, bottom, left = boxes.T
    area = (bottom - top) * (right - left)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    holds = (
        (cx[:, None] >= left[None])
        & (cx[:, None] <= right[None])
        & (cy[:, None] >= top[None])
        & (cy[:, None] <= bottom[None])
    )
    holds &= area[None] > area[:, None]  # box j holds box i's centre and is larger
    parent = np.where(holds.any(axis=1), np.where(holds, area[None], -1).argmax(axis=1), -1)
    for face in range(len(parent)):  # a box inside a box inside another goes with the outermost
        while parent[face] >= 0 and parent[parent[face]] >= 0:
            parent[face] = parent[parent[face]]
    return parent


def skeleton_faces(boxes: np.ndarray, skeletons: np.ndarray) -> np.ndarray:
    """(F,) for each face box of a frame, the index of the skeleton whose head lies in it, or -1.

    A skeleton's head is its confident nose, eye and ear keypoints (HEAD_KEYPOINTS); it lies in the face whose box,
    grown by HEAD_MARGIN on each side, holds most of them (at least one), most held pairs first, one skeleton per
    face and one face per skeleton.

    Parameters
    ----------
    boxes : ndarray of shape (F, 4)
        ``(top, right, bottom, left)`` source-frame pixels.
    skeletons : ndarray of shape (P, 18, 3)
        COCO keypoints (x, y, confidence; confidence 0 where not found), source-frame pixels.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    heads = np.asarray(skeletons, np.float64).reshape(-1, 18, 3)[:, HEAD_KEYPOINTS]
    if not len(boxes) or not len(heads):
        return np.full(len(boxes), -1)
    top, right, bottom, left = boxes.T
    pad_y, pad_x = (bottom - top) * HEAD_MARGIN, (right - left) * HEAD_MARGIN
    x, y, seen = heads[..., 0][:, None], heads[..., 1][:, None], heads[..., 2][:, None] > 0  # (P, 1, 5)
    inside = (
        (x >= (left - pad_x)[None, :, None]) & (x <= (right + pad_x)[None, :, None])
        & (y >= (top - pad_y)[None, :, None]) & (y <= (bottom + pad_y)[None, :, None])
    )  # fmt: skip
    held = (inside & seen).sum(axis=2)  # (P, F) head keypoints of skeleton p in face f
    joined = np.full(len(boxes), -1)
    for skeleton, face in _nearest_pairs(-held.astype(float), -1.0):
        joined[face] = skeleton
    return joined


def _nearest_pairs(distance: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs of a distance matrix, nearest first, each at most ``limit``."""
    pairs, rows, columns = [], set(), set()
    for flat in np.argsort(distance, axis=None):
        row, column = np.unravel_index(flat, distance.shape)
        if not distance[row, column] <= limit:
            break
        if row not in rows and column not in columns:
            pairs.append((int(row), int(column)))
            rows.add(row)
            columns.add(column)
    return pairs


class PeopleTracker:
    """Links one video's faces frame by frame (:meth:`add`), then merges tracks into people (:meth:`finish`).

    Parameters
    ----------
    same_person : encoding distance under which two tracks that never share a frame are one person
    link_distance : face heights a face's centre may lie from a track's last one to continue it
    max_link_gap : sampled frames a track may skip and still continue
    """

    def __init__(
        self, same_person: float = SAME_PERSON, link_distance: float = LINK_DISTANCE, max_link_gap: int = MAX_LINK_GAP
    ):
        self.same_person = same_person
        self.link_distance = link_distance
        self.max_link_gap = max_link_gap
        self.tracks: list[_Track] = []
        self.encodings_computed = 0
        self._person_of_track: np.ndarray | None = None

    def add(
        self,
        position: int,
        time: float,
        frame: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        skeletons: np.ndarray | None = None,
    ) -> np.ndarray:
        """Link the faces of one sampled frame; returns (F,) the track index each face joined.

        Parameters
        ----------
        position : the frame's sampled position, increasing from call to call
        time : its seconds from the first frame
        frame : (H, W, 3) uint8 RGB
        boxes : (F, 4) ``(top, right, bottom, left)`` source-frame pixels
        scores : (F, 7) FER probabilities
        skeletons : (P, 18, 3) the frame's COCO skeletons (x, y, confidence); each joins the face its head lies in
        """
        boxes = np.asarray(boxes).reshape(-1, 4)
        inside = duplicates(boxes)
        with_skeleton = skeleton_faces(boxes, skeletons) if skeletons is not None else np.full(len(boxes), -1)
        open_tracks = [i for i, t in enumerate(self.tracks) if position - t.last.position <= self.max_link_gap]
        open_tracks = [i for i in open_tracks if self.tracks[i].last.position < position]
        joined = np.full(len(boxes), -1)
        if open_tracks and len(boxes):
            distance = link_distances(np.stack([self.tracks[i].last.box for i in open_tracks]), boxes)
            distance[:, inside >= 0] = np.inf
            for row, face in _nearest_pairs(distance, self.link_distance):
                joined[face] = open_tracks[row]
        for face in np.flatnonzero((joined < 0) & (inside < 0)):
            self.tracks.append(_Track())
            joined[face] = len(self.tracks) - 1
        joined[inside >= 0] = joined[inside[inside >= 0]]
        for face, track in enumerate(joined):
            if inside[face] >= 0:
                continue  # a second box on a face that has one: it goes with that face's track, not a sighting
            skeleton = skeletons[with_skeleton[face]] if with_skeleton[face] >= 0 else None
            sighting = Sighting(
                position, float(time), boxes[face].astype(np.int32), np.asarray(scores[face]), int(track), skeleton
            )
            self.tracks[track].add(sighting, frame)
        return joined

    def finish(self) -> list[Person]:
        """The people: tracks merged across gaps (see the module doc), ids from 1 by first appearance."""
        clusters = self._merged()
        order = sorted(clusters, key=lambda members: min(self.tracks[t].sightings[0].position for t in members))
        self._person_of_track = np.zeros(len(self.tracks), int)
        people = []
        for number, members in enumerate(order, start=1):
            self._person_of_track[members] = number
            sightings = sorted((s for t in members for s in self.tracks[t].sightings), key=lambda s: s.position)
            largest = max(members, key=lambda t: self.tracks[t].largest_height)
            people.append(Person(number, sightings, sorted(members), self.tracks[largest].largest))
        return people

    def person_ids(self, tracks: np.ndarray) -> np.ndarray:
        """(n,) person id of each track index (after :meth:`finish`)."""
        if self._person_of_track is None:
            raise RuntimeError("person ids are known once finish() has merged the tracks")
        return self._person_of_track[np.asarray(tracks, int)]

    def _merged(self) -> list[list[int]]:
        """Groups of track indices, one per person."""
        positions = [t.positions() for t in self.tracks]
        candidates = [
            (a, b)
            for a in range(len(self.tracks))
            for b in range(a + 1, len(self.tracks))
            if not positions[a] & positions[b]
        ]
        if not candidates:
            return [[t] for t in range(len(self.tracks))]
        encodings = self._encodings(sorted({t for pair in candidates for t in pair}))
        distances = sorted(
            (float(np.min(np.linalg.norm(encodings[a][:, None] - encodings[b][None], axis=2))), a, b)
            for a, b in candidates
            if len(encodings[a]) and len(encodings[b])
        )
        group = list(range(len(self.tracks)))
        members = {t: [t] for t in group}
        seen = {t: set(positions[t]) for t in group}
        for distance, a, b in distances:
            if distance > self.same_person:
                break
            root_a, root_b = group[a], group[b]
            if root_a == root_b or seen[root_a] & seen[root_b]:
                continue
            for track in members[root_b]:
                group[track] = root_a
            members[root_a] += members.pop(root_b)
            seen[root_a] |= seen.pop(root_b)
        return list(members.values())

    def _encodings(self, tracks: list[int]) -> dict[int, np.ndarray]:
        """{track: (1, 128) encoding of its largest face, or (0, 128) when that is under MIN_ENCODED_HEIGHT}."""
        result = {}
        for track in tracks:
            crop = self.tracks[track].largest
            if crop.box[2] - crop.box[0] < MIN_ENCODED_HEIGHT:
                result[track] = np.zeros((0, 128))
                continue
            result[track] = face_encodings(crop.image, crop.box[None])
            self.encodings_computed += 1
        return result
