"""The words every stage shares: classes, modalities, parts, video file extensions."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("Positive", "Neutral", "Negative")
VGAF_CODES: dict[str, int] = {"1": 0, "2": 1, "3": 2}  # VGAF label code -> class index
MODALITIES: tuple[str, ...] = ("scene", "pose", "audio", "faces")
MODALITY_ALIASES: dict[str, str] = {"fer": "faces", "face": "faces"}  # "fer" as in the reference paper
PARTS: tuple[str, ...] = ("train", "select", "report", "test")  # roles of clips in RUNS/partition.json
# OpenPose COCO-18 keypoints and its skeleton's limbs in tree order from the neck (the pose graph's layout; the
# pose features keep body keypoints 1..13, Neck .. LAnkle).
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)  # fmt: skip
COCO_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0),
    (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# Preprocessing defaults (the reference paper's) that later stages fall back on for features whose parameters lack
# them: preprocess.config.PreprocessConfig, modalities.sequence.TimeGrid and saliency read these.
FRAME_STEP = 10  # keep every 10th frame
N_FRAMES = 12  # keep 12 frames; fewer -> zero padding and a mask
AUDIO_HOP = 0.5  # seconds between audio embeddings
AUDIO_SECONDS = 5.0  # audio embeddings cover this many seconds (11 steps at hop 0.5)
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def canonical_modality(name: str) -> str:
    """The modality a user-facing name means ("fer" and "face" are the faces modality)."""
    return MODALITY_ALIASES.get(name.strip().lower(), name.strip().lower())


def check_modalities(names: list[str] | tuple[str, ...], what: str = "modality") -> list[str]:
    """Canonical names in MODALITIES order; raises InputError naming the unknown ones."""
    from .errors import InputError

    canonical = {canonical_modality(n) for n in names}
    unknown = sorted(canonical - set(MODALITIES))
    if unknown:
        raise InputError(
            f"{what}: unknown modality {', '.join(unknown)}; choose from {', '.join(MODALITIES)} "
            "('fer' also names faces)"
        )
    return [m for m in MODALITIES if m in canonical]
