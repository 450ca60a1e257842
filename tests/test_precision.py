"""bfloat16 scene maps agree with float32 on real clips (issue 17's limits), FER stays float32; `auto` says what it
picked."""

from __future__ import annotations

import pytest

from gvs.core.errors import InputError
from preprocess.agreement import Agreement
from preprocess.config import PreprocessConfig
from preprocess.decode import decode_clip
from preprocess.faces import FaceExtractor
from preprocess.precision import PRECISIONS, cpu_bfloat16_flags, gpu_count, resolve_precision
from preprocess.scene import SceneExtractor

AGREEMENT_CLIPS = ("Val/1_1.mp4", "Test/Test_2.mp4")


@pytest.fixture(scope="module")
def agreement(vgaf_root) -> Agreement:
    """float32 against bfloat16 on two shared clips: scene maps."""
    totals = Agreement()
    scene = {p: SceneExtractor(PreprocessConfig(scene_weights="none", precision=p)) for p in ("float32", "bfloat16")}
    for name in AGREEMENT_CLIPS:
        clip = decode_clip(vgaf_root / name, sample_rate=None)
        maps = {p: extractor.extract(clip).arrays["features"][: clip.n_frames] for p, extractor in scene.items()}
        totals.add_scene(maps["float32"], maps["bfloat16"])
    return totals


@pytest.mark.slow
def test_bfloat16_scene_maps_agree_per_frame(agreement):
    figures = agreement.figures()
    assert figures["frames"] == 24
    assert figures["scene_cosine_min"] >= 0.999


def test_fer_runs_in_float32_whatever_the_precision(shared_dir):
    """bfloat16 FER kept the top expression of 0.956 of yuface's faces on the two agreement clips (limit 0.98)."""
    extractor = FaceExtractor(PreprocessConfig(precision="bfloat16"))
    assert extractor.resolved["precision"] == "float32"
    assert {layer.dtype_policy.compute_dtype for layer in extractor.fer_model.layers} == {"float32"}


def test_auto_precision_follows_the_cpu(monkeypatch):
    precision, why = resolve_precision("auto")
    expected = "bfloat16" if cpu_bfloat16_flags() or gpu_count() else "float32"
    assert precision == expected and why.startswith("auto")
    assert resolve_precision("float32") == ("float32", "asked for")
    with pytest.raises(InputError, match="unknown precision 'half'"):
        resolve_precision("half")
    assert set(PRECISIONS) == {"auto", "float32", "bfloat16", "int8"}
    assert resolve_precision("int8")[0] == "float32"  # TensorFlow models; int8 is for OpenVINO backbones


def test_precision_is_in_the_fingerprints_of_the_features_it_changes():
    from preprocess.config import fingerprint, modality_params

    def fingerprints(modality: str) -> set[str]:
        return {fingerprint(modality_params(PreprocessConfig(precision=p), modality)) for p in ("float32", "bfloat16")}

    assert len(fingerprints("scene")) == 2
    assert (
        len(fingerprints("pose")) == len(fingerprints("audio")) == len(fingerprints("faces")) == 1
    )  # computed in float32 whatever it says
