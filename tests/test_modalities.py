"""The four modality models: names, masking, learning, run outputs, seeds, skipping and errors."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, recall_score

from gvs.core.errors import CacheError, PartitionError, StaleModelError
from gvs.core.vocabulary import CLASS_NAMES
from gvs.core.workspace import CacheDir, RunFolder, RunsDir
from modalities.architectures import PooledStepMask, build_model, compile_model
from modalities.data import open_features
from modalities.metrics import classification_metrics, save_confusion_png
from modalities.train import load_modality_model, main, predict_proba, train_modality
from tests.synthetic import make_synthetic_cache

pytestmark = pytest.mark.slow  # real models or training (`pytest -m 'not slow'` skips it)


MODALITIES = ("scene", "pose", "audio", "faces")
SCENE_SHAPE = (12, 3, 4, 8)
SHAPES = {"scene": SCENE_SHAPE, "pose": (12, 27), "audio": (11, 16), "faces": (12, 22)}
# Small sizes and a faster audio learning rate (the paper's 4e-5 suits 2,661 clips, not 24) keep tests quick.
FAST = {
    "scene": {"heads": 2, "filters": 4},
    "pose": {"units": 16},
    "audio": {"conv_filters": (16, 32, 32), "lstm_units": (16, 16), "learning_rate": 1e-2},
    "faces": {},
}
TRAINING = {"epochs": 15, "patience": 15, "batch_size": 12}
ACCURACY_BAR = 0.9  # report-part accuracy when the class is fully recoverable from the modality


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_synthetic_cache(tmp_path_factory.mktemp("cache"), n_per_class=10, scene_shape=SCENE_SHAPE, audio_dim=16)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache):
    """Every modality trained once on the synthetic cache (class fully recoverable from each)."""
    folder = tmp_path_factory.mktemp("runs")
    for modality in MODALITIES:
        train_modality(modality, cache, folder, verbose=0, **TRAINING, **FAST[modality])
    return folder


def _padded_batch(modality: str, n: int = 3) -> np.ndarray:
    x = np.random.default_rng(1).uniform(0.1, 1.0, size=(n, *SHAPES[modality])).astype(np.float32)
    x[:, 8:] = 0.0
    return x


@pytest.mark.parametrize("modality", MODALITIES)
def test_model_names_sizes_and_save_load(modality, tmp_path):
    model = build_model(modality, SHAPES[modality], **{k: v for k, v in FAST[modality].items() if k != "learning_rate"})
    assert model.layers[0].name == f"{modality}_input" and len(model.inputs) == 1
    assert model.get_layer("probabilities").output.shape[-1] == len(CLASS_NAMES)
    assert model.get_layer("hidden").output.shape[0] is None
    assert model.get_layer(f"{modality}_mask")
    expected = {
        "scene": ["scene_convlstm_0", "scene_convlstm_1"],
        "pose": ["pose_bilstm"],
        "faces": ["faces_bilstm"],
        "audio": ["audio_bilstm_0", "audio_bilstm_1"],
    }[modality]
    assert all(model.get_layer(name) for name in expected)
    x = _padded_batch(modality)
    before = predict_proba(model, x)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "roundtrip.keras")
    np.testing.assert_array_equal(predict_proba(keras.models.load_model(tmp_path / "roundtrip.keras"), x), before)


def test_sizes_come_from_the_data():
    small, large = build_model("scene", (12, 2, 3, 8)), build_model("scene", (6, 5, 7, 100), heads=1)
    assert small.input.shape[1:] == (12, 2, 3, 8) and large.input.shape[1:] == (6, 5, 7, 100)
    assert large.get_layer("scene_reduce") and "scene_reduce" not in [layer.name for layer in small.layers]
    assert build_model("scene", (12, 2, 3, 8), heads=3, filters=5).get_layer("hidden").output.shape[-1] == 15
    with pytest.raises(ValueError, match="unknown size"):
        build_model("pose", (12, 27), filters=3)


@pytest.mark.parametrize("modality", ["scene", "pose", "faces"])
def test_padded_frames_are_skipped(modality):
    """Masked steps are skipped: where the padding sits does not matter, the order of real frames does."""
    model = build_model(modality, SHAPES[modality])
    x = _padded_batch(modality)
    padding_moved = np.concatenate([x[:, :4], x[:, 8:], x[:, 4:8]], axis=1)
    real_reordered = np.concatenate([x[:, 4:8], x[:, :4], x[:, 8:]], axis=1)
    np.testing.assert_allclose(predict_proba(model, padding_moved), predict_proba(model, x), atol=1e-6)
    assert np.abs(predict_proba(model, real_reordered) - predict_proba(model, x)).max() > 1e-6


def test_audio_mask_follows_pooling():
    x = np.ones((2, 11, 4), np.float32)
    x[0, 5:] = 0.0  # 5 real steps -> pooled 3 times by 2 ('same'): 11 -> 6 -> 3 -> 2 steps
    mask = keras.ops.convert_to_numpy(PooledStepMask(2, 3)(x))
    assert mask.tolist() == [[True, False], [True, True]]


@pytest.mark.parametrize("modality", MODALITIES)
def test_overfits_a_tiny_batch(modality, tmp_path):
    """Nine clips whose labels the features do not carry (signal 0) are memorised (training-mode accuracy 1)."""
    noise = make_synthetic_cache(
        tmp_path, 3, signal={m: 0.0 for m in MODALITIES}, splits=("Train",), scene_shape=SCENE_SHAPE, audio_dim=16
    )
    features = open_features(noise, modality)
    x, y = features.load(range(len(features.keys))), features.labels
    keras.utils.set_random_seed(0)
    sizes = {k: v for k, v in FAST[modality].items() if k != "learning_rate"}
    model = compile_model(build_model(modality, features.shape, **sizes), modality, learning_rate=1e-2)
    stop_when_memorised = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", logs["accuracy"] == 1.0)
    )
    history = model.fit(x, y, epochs=200, batch_size=len(y), verbose=0, callbacks=[stop_when_memorised]).history
    assert history["accuracy"][-1] == 1.0 and history["loss"][-1] < history["loss"][0] / 2


@pytest.mark.parametrize("modality", MODALITIES)
def test_learns_a_recoverable_class_and_writes_its_run(modality, runs, cache):
    run = RunsDir(runs).modality(modality)
    metrics = json.loads(run.metrics.read_text())
    assert metrics["report"]["accuracy"] >= ACCURACY_BAR, metrics["report"]
    assert metrics["report"]["split"].startswith("Val") and metrics["select"]["split"].startswith(
        "Train, 20% hold-out by groups"
    )
    predictions = run.read_predictions()
    assert set(predictions.parts.tolist()) == {"train", "select", "report", "test"}
    assert predictions.class_names == CLASS_NAMES
    for part in ("train", "select", "report"):
        picked = predictions.part(part)
        assert metrics[part]["n"] == len(picked)
        confusion = confusion_matrix(picked.labels, picked.predicted, labels=[0, 1, 2])
        assert metrics[part]["confusion"] == confusion.tolist()
    test = predictions.part("test")
    assert (test.labels == -1).all()
    for key, predicted in zip(test.keys.tolist(), test.predicted):
        name = key.split("/", 1)[1]
        assert (run.submission / f"{name}.txt").read_text().strip() == CLASS_NAMES[predicted]
    # The saved checkpoint reproduces the written probabilities.
    model = load_modality_model(runs, modality, cache)
    features = open_features(cache, modality)
    report = predictions.part("report")
    rows_of = [features.keys.index(key) for key in report.keys.tolist()]
    np.testing.assert_allclose(predict_proba(model, features.load(rows_of)), report.probabilities, atol=2e-6)
    assert run.confusion.stat().st_size > 1000


def test_same_seed_gives_the_same_metrics(cache, tmp_path):
    first = train_modality("faces", cache, tmp_path / "a", verbose=0, epochs=4, seed=3)
    second = train_modality("faces", cache, tmp_path / "b", verbose=0, epochs=4, seed=3)
    first, second = RunFolder(first), RunFolder(second)
    assert first.metrics.read_text() == second.metrics.read_text()
    assert first.predictions.read_text() == second.predictions.read_text()


def test_skips_identical_runs_and_retrains_changed_ones(cache, runs):
    model_file = RunsDir(runs).modality("pose").model
    trained_at = model_file.stat().st_mtime_ns
    train_modality("pose", cache, runs, verbose=0, **TRAINING, **FAST["pose"])
    assert model_file.stat().st_mtime_ns == trained_at
    train_modality("pose", cache, runs, verbose=0, **(TRAINING | {"epochs": 2}), **FAST["pose"])
    assert model_file.stat().st_mtime_ns != trained_at
    assert RunsDir(runs).modality("pose").read_config()["options"]["epochs"] == 2


def test_clear_errors(cache, runs, tmp_path):
    with pytest.raises(CacheError, match="no scene features"):
        train_modality("scene", tmp_path / "empty", runs)
    tiny = make_synthetic_cache(tmp_path / "tiny", 1, splits=("Train", "Val"))
    with pytest.raises(CacheError, match="too few labelled pose clips"):
        train_modality("pose", tiny, tmp_path / "tiny_runs", verbose=0)
    with pytest.raises(PartitionError, match="seed"):
        train_modality("pose", cache, runs, seed=5)
    # Features re-made with other parameters: the old model refuses them.
    CacheDir(tiny).set_current_fingerprints({"faces": "0123456789ab"})
    with pytest.raises(StaleModelError, match="fingerprint 0123456789ab"):
        load_modality_model(runs, "faces", tiny)


def test_metrics_agree_with_scikit_learn(tmp_path):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 50)
    for y_pred in (rng.integers(0, 3, 50), np.where(y_true == 2, 0, y_true)):  # second: class 2 never predicted
        ours = classification_metrics(y_true, y_pred, "Val")
        precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
        assert ours["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
        assert (ours["macro_precision"], ours["macro_recall"], ours["macro_f1"]) == pytest.approx(
            (precision, recall, f1)
        )
        assert list(ours["per_class_recall"].values()) == pytest.approx(recall_score(y_true, y_pred, average=None))
        assert ours["confusion"] == confusion_matrix(y_true, y_pred).tolist() and ours["split"] == "Val"
    image = save_confusion_png(ours["confusion"], tmp_path / "c.png", "test")
    import matplotlib.image

    assert matplotlib.image.imread(image).ndim == 3


def test_command_line_help_and_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in (
        "--cache",
        "--epochs",
        "--seed",
        "--class-weight",
        "--patience",
        "--select-fraction",
        "--reduce-channels",
        "--filters",
    ):
        assert option in text
    assert main(["audio", "--cache", str(tmp_path)]) == 2
    assert "no audio features" in capsys.readouterr().err
