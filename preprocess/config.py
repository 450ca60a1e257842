"""Preprocessing parameters, presets and the per-modality fingerprint that keys the feature cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from importlib import metadata

from gvs.core.errors import InputError
from gvs.core.io import digest_of
from gvs.core.vocabulary import AUDIO_HOP, AUDIO_SECONDS, FRAME_STEP, N_FRAMES

from .face_detector_names import FACE_DETECTORS

AUDIO_BACKENDS: tuple[str, ...] = ("auto", "openl3", "logmel")  # preprocess.audio.resolve_backend resolves "auto"

# Parameters each modality's features depend on (besides decoding, which all share).
_DECODE_FIELDS = ("frame_step", "n_frames")
_MODALITY_FIELDS: dict[str, tuple[str, ...]] = {
    "scene": ("scene_width", "scene_height", "scene_weights", "precision", "backend"),
    "pose": ("pose_input_size", "pose_threshold", "backend"),
    "audio": ("audio_backend", "audio_hop", "audio_seconds"),
    "faces": ("face_detector", "min_face", "face_detect_width", "face_upsample", "face_every"),
}
# Version of each modality's feature code: bump it when the features change for the same parameters (a new
# encoding, a fixed bug), so caches made by the old code get a new fingerprint instead of mixing with new ones.
FEATURE_VERSIONS: dict[str, int] = {"scene": 1, "pose": 2, "audio": 2, "faces": 2}
_MODALITY_PACKAGES: dict[str, tuple[str, ...]] = {
    "scene": ("tensorflow", "keras", "opencv-python-headless", "openvino", "nncf"),
    "pose": ("tensorflow", "opencv-python-headless", "openvino", "nncf"),
    "audio": ("numpy", "scipy", "imageio-ffmpeg", "openl3"),
    "faces": ("yuface", "mtcnn", "dlib-bin", "face-recognition", "keras", "tensorflow", "opencv-python-headless"),
}


@dataclass(frozen=True)
class PreprocessConfig:
    """Every parameter of preprocessing; defaults follow the reference paper."""

    frame_step: int = FRAME_STEP
    n_frames: int = N_FRAMES
    scene_width: int = 480
    scene_height: int = 320
    scene_weights: str = "auto"  # auto (imagenet, else seeded random with a warning) | imagenet | none | FILE
    pose_input_size: int = 368
    pose_threshold: float = 0.1
    audio_backend: str = AUDIO_BACKENDS[0]  # auto (openl3 if installed with its weights, else logmel) | openl3 | logmel
    audio_hop: float = AUDIO_HOP
    audio_seconds: float = AUDIO_SECONDS
    face_detector: str = FACE_DETECTORS[0]  # face_detector_names.py; benchmarks/bench_faces.py compares them
    # Faces less than min_face px tall in the SOURCE frame (the decoded video frame, at whatever resolution the
    # clip has; not the 480-px scene frame, not the detection image) are neither detected, counted nor scored.
    # The paper drops faces under 40 x 40; at 40 MTCNN keeps 0.76 of the faces a person counts, at 28 0.89.
    min_face: int = 28
    face_detect_width: int = 0  # wider frames are downscaled to this width for detection (boxes map back); 0: the
    # detector's own (face_detector_names.DETECT_WIDTHS: yuface 320, the others 640); mtcnn's cost is set by
    # min_face, not by this; hog/cnn find faces from ~80 px of it: use 1280 with them
    face_upsample: int = 0  # hog/cnn upsampling passes; 1 finds faces half as large but costs ~4x
    face_every: int = 1  # detect faces on every Nth sampled frame; frames between reuse the last frame's boxes
    precision: str = "auto"  # the scene backbone: auto (bfloat16 where the CPU has it or on a GPU) | float32 | bfloat16
    # | int8 (OpenVINO); resolved: TensorFlow's precision, the backbones' own in ``backend`` (preprocess/engine.py)
    backend: str = "auto"  # scene and pose: auto | tensorflow | openvino; resolved: a plan "scene=openvino/int8,..."

    def fields_for(self, modality: str) -> dict:
        """The parameters one modality's features depend on.

        Parameters
        ----------
        modality : str

        Returns
        -------
        fields : dict
            Field name -> value.
        """
        values = asdict(self)
        if "=" in self.backend:  # a resolved plan: this modality's own entry, so the others' never change its cache
            values["backend"] = f"{modality}={modality_backend(self.backend, modality)}"
        return {name: values[name] for name in _DECODE_FIELDS + _MODALITY_FIELDS[modality]}

    @property
    def audio_steps(self) -> int:
        """Number of audio embedding steps: one every hop, both ends included (11 for 5 s at 0.5 s)."""
        return int(round(self.audio_seconds / self.audio_hop)) + 1


def modality_backend(backend: str, modality: str) -> str:
    """One modality's entry of a resolved backend plan ("scene=openvino/int8,pose=tensorflow/float32" -> for scene
    "openvino/int8"); an unresolved choice (auto, tensorflow, openvino) is every modality's.

    Parameters
    ----------
    backend : str
        A backend choice or a resolved plan.
    modality : str

    Returns
    -------
    backend : str
    """
    if "=" not in backend:
        return backend
    entries = dict(entry.split("=", 1) for entry in backend.split(","))
    return entries.get(modality, "auto")


def merge_backends(first: str, second: str) -> str:
    """Two modalities' backend records ("scene=openvino/int8" and "pose=openvino/float32") as one plan; an
    unresolved value (auto, tensorflow, openvino) gives way to a plan.

    Parameters
    ----------
    first, second : str
        Backend records or plans.

    Returns
    -------
    backend : str
    """
    if "=" not in first or "=" not in second:
        return second if "=" in second else first
    return ",".join(dict.fromkeys(first.split(",") + second.split(",")))


PRESETS: dict[str, PreprocessConfig] = {
    "paper": PreprocessConfig(),
    # Chosen from a table (benchmarks/bench_presets.py, docs/presets.md): the fastest setting that keeps >= 95 % of
    # the paper preset's people and >= 90 % of its faces on the 11 shared clips. Pose input 336 keeps 95.7 % of the
    # people (320: 94.1 %, 256: 86.5 %); faces stay on every sampled frame (every second one keeps 87.9 %); the
    # scene size is in no rule: 240x160, the smallest offered, 3.5x faster than 480x320 (int8 OpenVINO).
    "fast": PreprocessConfig(scene_width=240, scene_height=160, pose_input_size=336),
}


def preset(name: str, **overrides) -> PreprocessConfig:
    """A named preset with some fields overridden (None values are ignored).

    Parameters
    ----------
    name : str
        A name of PRESETS.
    **overrides
        PreprocessConfig fields.

    Returns
    -------
    config : PreprocessConfig
    """
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the given distributions ('absent' when not installed).

    Parameters
    ----------
    names : tuple of str
        Distribution names.

    Returns
    -------
    versions : dict of str to str
    """
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def modality_params(config: PreprocessConfig, modality: str, resolved: dict | None = None) -> dict:
    """Everything that determines a modality's features: parameters, what they resolved to, package versions.

    Parameters
    ----------
    config : PreprocessConfig
    modality : str
    resolved : dict or None
        What the extractor resolved its configuration to (weights, backend, model sha256).

    Returns
    -------
    params : dict
        ``modality``, ``feature_version``, ``params``, ``resolved`` and ``versions``.
    """
    return {
        "modality": modality,
        "feature_version": FEATURE_VERSIONS[modality],
        "params": config.fields_for(modality),
        "resolved": resolved or {},
        "versions": package_versions(_MODALITY_PACKAGES[modality]),
    }


def fingerprint(params: dict) -> str:
    """Short stable hash of a params dict; features made with different params land in different folders.

    Parameters
    ----------
    params : dict
        JSON-serialisable, e.g. from modality_params.

    Returns
    -------
    fingerprint : str
    """
    return digest_of(params)
