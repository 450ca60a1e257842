"""The backbones' engine (issue 25): OpenVINO agrees with TensorFlow float32 within the limits on two shared clips,
for each backend and precision `auto` can choose; `auto` falls back to TensorFlow without openvino and says so."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest

from gvs.core.errors import InputError
from preprocess import engine
from preprocess.agreement import Agreement
from preprocess.config import PreprocessConfig, fingerprint, merge_backends, modality_params
from preprocess.engine import Plan, plan_backbone, plan_of, resolve_backends

AGREEMENT_CLIPS = ("Val/1_1.mp4", "Test/Test_2.mp4")
TRAINING_CLIPS = ("Test/Test_3.mp4", "Test/Test_4.mp4", "Test/Test_5.mp4", "Test/Test_6.mp4")
# (backend, precision) of each scene / pose run compared with TensorFlow float32, and its cosine limit.
SCENE_RUNS = {("openvino", "float32"): 0.999, ("openvino", "int8"): 0.99}
POSE_RUNS = (("openvino", "float32"),)


@pytest.fixture
def without_openvino(monkeypatch):
    """`import openvino` fails, as on a machine where it is not installed."""
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    engine.openvino_available.cache_clear()
    engine._say_openvino_missing.cache_clear()
    yield
    engine.openvino_available.cache_clear()
    engine._say_openvino_missing.cache_clear()


def test_auto_falls_back_to_tensorflow_without_openvino_and_says_so_once(without_openvino, caplog):
    with caplog.at_level(logging.WARNING, logger="preprocess.engine"):
        plans = [plan_backbone(b, "auto", "auto") for b in ("scene", "pose", "scene")]
    assert [p.backend for p in plans] == ["tensorflow"] * 3
    assert all("openvino is not installed" in p.why for p in plans)
    notices = [r.getMessage() for r in caplog.records if "openvino is not installed" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0] and "pip install openvino" in notices[0]
    with pytest.raises(InputError, match="pip install openvino"):
        plan_backbone("scene", "openvino", "auto")


def test_plans_follow_the_measured_tables(monkeypatch):
    monkeypatch.setattr(engine, "openvino_available", lambda: True)
    monkeypatch.setattr(engine, "gpu_count", lambda: 0)
    monkeypatch.setattr(engine, "INT8_HOLDS", {"scene": True, "pose": False})
    monkeypatch.setattr(engine, "OPENVINO_FASTER", {"scene": True, "pose": False})
    assert str(plan_backbone("scene")) == "openvino/int8"
    assert str(plan_backbone("pose")) == "tensorflow/float32"  # not measured faster: TensorFlow keeps it
    assert str(plan_backbone("pose", "openvino", "int8")) == "openvino/float32"  # int8 moved its keypoints
    assert str(plan_backbone("scene", "auto", "float32")) == "openvino/float32"
    assert str(plan_backbone("scene", "tensorflow")).startswith("tensorflow/")
    with pytest.raises(InputError, match="int8 runs on OpenVINO"):
        plan_backbone("scene", "tensorflow", "int8")
    with pytest.raises(InputError, match="unknown backend 'onnx'"):
        plan_backbone("scene", "onnx")
    monkeypatch.setattr(engine, "gpu_count", lambda: 1)
    assert plan_backbone("scene").backend == "tensorflow"  # a GPU keeps TensorFlow


def test_a_resolved_plan_is_recorded_per_backbone_in_the_fingerprints(monkeypatch):
    monkeypatch.setattr(engine, "openvino_available", lambda: True)
    monkeypatch.setattr(engine, "gpu_count", lambda: 0)
    resolved = resolve_backends(PreprocessConfig(precision="int8"))
    assert resolved.precision in ("float32", "bfloat16")  # what FER and other TensorFlow models use
    assert plan_of(resolved, "scene") == Plan("openvino", "int8", "resolved")
    assert plan_of(resolved, "pose").precision == "float32"
    assert resolved.fields_for("scene")["backend"] == "scene=openvino/int8"
    # A bundle joins its modalities' records into one plan (gvs/predict/bundle.py).
    joined = merge_backends(resolved.fields_for("scene")["backend"], resolved.fields_for("pose")["backend"])
    assert joined == resolved.backend and plan_of(PreprocessConfig(backend=joined), "pose") == plan_of(resolved, "pose")

    def prints(config: PreprocessConfig, modality: str) -> str:
        return fingerprint(modality_params(config, modality))

    as_float = resolve_backends(PreprocessConfig(precision="float32"))
    on_tensorflow = resolve_backends(PreprocessConfig(backend="tensorflow", precision="float32"))
    assert prints(resolved, "scene") != prints(as_float, "scene") != prints(on_tensorflow, "scene")
    assert prints(resolved, "pose") == prints(as_float, "pose") != prints(on_tensorflow, "pose")


# Slow: the real backbones on real clips.


@pytest.fixture(scope="module")
def clips(vgaf_root):
    from preprocess.decode import decode_clip

    return {name: decode_clip(vgaf_root / name, sample_rate=None) for name in AGREEMENT_CLIPS + TRAINING_CLIPS}


@pytest.fixture(scope="module")
def scene_maps(clips) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Scene maps (n, 10, 15, 2048) per run and clip; TensorFlow float32 on every clip, the others on the two."""
    from preprocess.scene import SceneExtractor

    maps = {}
    for backend, precision in [("tensorflow", "float32"), *SCENE_RUNS]:
        extractor = SceneExtractor(PreprocessConfig(scene_weights="none", backend=backend, precision=precision))
        names = clips if backend == "tensorflow" else AGREEMENT_CLIPS
        maps[backend, precision] = {
            n: extractor.extract(clips[n]).arrays["features"][: clips[n].n_frames].astype(np.float32) for n in names
        }
    return maps


@pytest.mark.slow
@pytest.mark.parametrize("run", list(SCENE_RUNS), ids="/".join)
def test_scene_maps_agree_with_tensorflow_float32_per_frame(scene_maps, run):
    totals = Agreement()
    for name in AGREEMENT_CLIPS:
        totals.add_scene(scene_maps["tensorflow", "float32"][name], scene_maps[run][name])
    figures = totals.figures()
    assert figures["frames"] == 24
    assert figures["scene_cosine_min"] >= SCENE_RUNS[run], figures


@pytest.mark.slow
def test_int8_keeps_a_trained_scene_models_probabilities_within_002(scene_maps):
    """A scene model (the toolkit's ConvLSTM head) trained on TensorFlow float32 maps of four other clips gives
    the two agreement clips probabilities within 0.02 from float32 and from int8 maps."""
    import keras

    from modalities.architectures import build_model, compile_model

    reference = scene_maps["tensorflow", "float32"]
    keras.utils.set_random_seed(0)
    x = np.stack([reference[n] for n in TRAINING_CLIPS])
    model = compile_model(build_model("scene", x.shape[1:], 3), "scene")
    model.fit(x, np.array([0, 1, 2, 0]), epochs=15, batch_size=2, verbose=0)
    for name in AGREEMENT_CLIPS:
        float32 = model.predict(reference[name][None], verbose=0)
        int8 = model.predict(scene_maps["openvino", "int8"][name][None], verbose=0)
        assert np.abs(float32 - int8).max() <= 0.02, (name, float32, int8)


@pytest.mark.slow
@pytest.mark.parametrize("run", POSE_RUNS, ids="/".join)
def test_pose_keypoints_and_people_counts_agree_with_tensorflow(clips, run):
    from preprocess import model_files
    from preprocess.openvino_backbones import pose_network
    from preprocess.pose import PoseNet, detect_people

    path = model_files.resolve("openpose")
    nets = [PoseNet(path), pose_network(path, model_files.MODEL_FILES["openpose"].sha256, run[1])]
    totals = Agreement()
    for name in AGREEMENT_CLIPS:
        frames = clips[name].frames[: clips[name].n_frames]
        totals.add_pose(*(detect_people(net, frames) for net in nets))
    figures = totals.figures()
    assert figures["pose_frames"] == 24 and figures["keypoints"] > 100
    assert figures["keypoints_within_2px"] >= 0.99, figures
    assert figures["people_count_equal"] >= 0.99, figures


def test_predictor_models_are_traced_once_and_give_the_models_outputs():
    """gvs predict's models keep one traced function whatever a video's last batch holds: no retracing warnings."""
    import keras

    from gvs.predict.predictor import TracedModel

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, activation="relu")(inputs)
    model = keras.Model(inputs, [hidden, keras.layers.Dense(2, activation="softmax")(hidden)])
    traced = TracedModel(model)
    rng = np.random.default_rng(0)
    for rows in (3, 8, 11, 1, 5):
        x = rng.normal(size=(rows, 4)).astype(np.float32)
        hidden_out, probabilities = traced.predict_on_batch(x)
        assert hidden_out.shape == (rows, 3) and probabilities.shape == (rows, 2)
        np.testing.assert_allclose(probabilities, model(x)[1].numpy(), rtol=1e-5, atol=1e-6)
    assert traced._call.experimental_get_tracing_count() == 1
