"""End to end: figures for clips and splits of a synthetic cache, explained with models of the real architectures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import matplotlib.image
import numpy as np
import pytest

from ensemble.fusions import FCFusion, SoftVote
from gvs.core.errors import InputError, RunError
from gvs.core.predictions import Predictions
from gvs.core.vocabulary import CLASS_NAMES, MODALITIES
from gvs.core.workspace import CacheDir, ClipRecord, RunsDir
from modalities.architectures import build_model
from saliency import maps
from saliency.explain import Explainer, ExplainError, default_fusion, explain, pick_clips, read_clip_frames
from tests.synthetic import make_synthetic_cache

pytestmark = pytest.mark.slow  # real models or training (`pytest -m 'not slow'` skips it)


SMALL_SIZES = {
    "scene": {"heads": 2, "filters": 2, "reduce_channels": 4},
    "pose": {"units": 4},
    "audio": {"conv_filters": (8, 8, 8), "lstm_units": (4, 4), "dense": 4},
    "faces": {"units": 4, "dense": 4},
}
PART_OF_SPLIT = {"Train": "train", "Val": "report", "Test": "test"}
FUSION = "fc-test"
REPO = Path(__file__).resolve().parents[1]


def _write_predictions(path: Path, keys: list[str], labels: list[int], probabilities: np.ndarray) -> None:
    parts = [PART_OF_SPLIT[key.split("/")[0]] for key in keys]
    Predictions(keys, labels, probabilities, parts, CLASS_NAMES).write(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A synthetic cache, one untrained model per modality saved in RUNS/<modality>/ with its predictions, an fc
    fusion (fitted for two epochs on the hidden vectors) and a soft-vote fusion (no fused model) in RUNS/fusion/."""
    root = tmp_path_factory.mktemp("saliency")
    cache = CacheDir(make_synthetic_cache(root / "cache", n_per_class=2, splits=("Train", "Val", "Test")))
    runs = RunsDir(root / "runs")
    clips = cache.clips()
    keys = [c.key for c in clips]
    labels = [-1 if c.label is None else c.label for c in clips]
    outputs = {}
    keras.utils.set_random_seed(0)
    for modality in MODALITIES:
        store = cache.current(modality)
        x = np.stack([store.read(key)[0]["features"] for key in keys]).astype(np.float32)
        model = build_model(modality, x.shape[1:], **SMALL_SIZES[modality])
        run = runs.modality(modality)
        run.folder.mkdir(parents=True)
        model.save(run.model)
        hidden, probabilities = maps.hidden_and_probabilities(model, x)
        _write_predictions(run.predictions, keys, labels, probabilities)
        outputs[modality] = {"hidden": hidden, "probabilities": probabilities}
    labelled = np.flatnonzero(np.array(labels) >= 0)
    y = np.array(labels)[labelled]
    hidden = {m: o["hidden"] for m, o in outputs.items()}
    fc = FCFusion(units=16, epochs=2, patience=1).fit({m: h[labelled] for m, h in hidden.items()}, y, n_classes=3)
    fc.save(runs.fusion(FUSION).folder)
    _write_predictions(runs.fusion(FUSION).predictions, keys, labels, fc.predict_proba(hidden))
    SoftVote().fit({m: o["probabilities"][labelled] for m, o in outputs.items()}, y).save(
        runs.fusion("soft-test").folder
    )
    return {"cache": cache.root, "runs": runs.root, "root": root}


def _image(path: Path) -> np.ndarray:
    assert path.is_file(), path
    return matplotlib.image.imread(path)


def test_pick_clips_orders_confident_correct_and_confidently_wrong():
    def predictions(*rows):
        keys, labels, probabilities, parts = zip(*rows)
        return Predictions(keys, labels, probabilities, parts, CLASS_NAMES)

    rows = predictions(
        ("Val/a", 0, (0.6, 0.3, 0.1), "report"),
        ("Val/b", 0, (0.9, 0.05, 0.05), "report"),
        ("Val/c", 1, (0.1, 0.1, 0.8), "report"),
        ("Val/d", 2, (0.5, 0.4, 0.1), "report"),
        ("Val/e", 1, (0.2, 0.7, 0.1), "select"),
    )
    assert pick_clips(rows, "Val", 2) == [
        ("Val/b", "confident"),
        ("Val/e", "confident"),
        ("Val/c", "wrong"),
        ("Val/d", "wrong"),
    ]
    assert pick_clips(rows, "select", 3) == [("Val/e", "confident")]
    unlabelled = predictions(("Test/x", -1, (0.2, 0.3, 0.5), "test"), ("Test/y", -1, (0.1, 0.8, 0.1), "test"))
    assert pick_clips(unlabelled, "Test", 1) == [("Test/y", "confident")]
    with pytest.raises(ExplainError, match="Train"):
        pick_clips(rows, "Train", 1)


def test_default_fusion_is_the_fitted_fc_one_and_votes_have_no_fused_model(workspace):
    runs = RunsDir(workspace["runs"])
    assert runs.fusion_names() == [FUSION, "soft-test"]
    assert default_fusion(runs) == FUSION
    explainer = Explainer(workspace["cache"], runs.root, workspace["root"] / "unused")
    with pytest.raises(ExplainError, match="no fused Keras model"):
        explainer.fusion("soft-test")
    with pytest.raises(ExplainError, match=f"fitted: {FUSION}, soft-test"):
        explainer.fusion("vae-missing")
    assert isinstance(ExplainError("x"), RunError)


def test_split_figures_exist_for_every_modality_and_the_fusion(workspace):
    out = workspace["root"] / "split"
    runs = RunsDir(workspace["runs"])
    written = explain(
        workspace["cache"], workspace["runs"], out, [*MODALITIES, "fusion"], split="Val", top=1, smooth_samples=4
    )
    for modality in (*MODALITIES, "fusion"):
        run = runs.fusion(FUSION) if modality == "fusion" else runs.modality(modality)
        for key, pick in pick_clips(run.read_predictions(), "Val", 1):
            assert out / modality / f"{pick}-1-{key.replace('/', '_')}.png" in written
    assert out / "audio" / "projection-Val.png" in written
    assert len(list((out / "fusion").glob("*.png"))) >= 1
    for path in written:
        image = _image(path)
        assert image.shape[0] >= 250 and image.shape[1] >= 500, path
        assert image[..., :3].std() > 0.05, f"{path} looks blank"
    scene = _image(next(p for p in written if p.parent.name == "scene"))
    assert scene.shape[1] > 3 * scene.shape[0]  # one strip: a column per frame


def test_one_clip_on_real_frames_and_audio(workspace, val_clip):
    """A cache row pointing at the real clip: scene maps and skeletons are drawn over its decoded frames."""
    cache = CacheDir(workspace["cache"])
    cache.write_clips([ClipRecord("1_1", "Val", val_clip, 2)])
    explainer = Explainer(cache.root, workspace["runs"], workspace["root"] / "clip", smooth_samples=4)
    clip = explainer.read_clip("scene", "Val/1_1")
    assert clip.label == 2 and clip.path == val_clip
    frames = read_clip_frames(clip)
    assert frames is not None and frames.shape[0] == 12 and frames.shape[-1] == 3
    for modality in MODALITIES:
        path = explainer.explain_clip(modality, "Val/1_1")
        assert path == workspace["root"] / "clip" / modality / "Val_1_1.png"
        assert _image(path)[..., :3].std() > 0.05
    fusion = explainer.explain_fusion(FUSION, "Val/1_1")
    assert fusion.is_file()


def test_fer_names_faces_and_missing_models_say_what_to_run(workspace):
    out = workspace["root"] / "aliases"
    written = explain(workspace["cache"], workspace["runs"], out, ["pose", "fer"], clip="Test/Test_1", method="vanilla")
    assert written == [out / "pose" / "Test_Test_1.png", out / "faces" / "Test_Test_1.png"]
    with pytest.raises(RunError, match="no trained audio model.*gvs train audio"):
        explain(workspace["cache"], workspace["root"] / "no-runs", out, ["audio"], clip="Val/1_1")
    with pytest.raises(InputError, match="unknown modality video"):
        explain(workspace["cache"], workspace["runs"], out, ["video"], clip="Val/1_1")
    with pytest.raises(InputError, match="exactly one"):
        explain(workspace["cache"], workspace["runs"], out, ["pose"])
    with pytest.raises(InputError, match="smoothgrad or vanilla"):
        Explainer(workspace["cache"], workspace["runs"], out, method="gradcam")


def test_a_fresh_process_loads_models_with_custom_layers(workspace):
    """The saved models hold custom layers (StepMasking, PooledStepMask); importing saliency registers them."""
    code = (
        "import sys; from saliency.explain import Explainer; "
        "print(Explainer(sys.argv[1], sys.argv[2], sys.argv[3]).model('audio').name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(workspace["cache"]), str(workspace["runs"]), str(workspace["root"] / "fresh")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "audio_model"


def test_split_picks_come_from_the_cache_being_explained(workspace):
    """Models trained elsewhere: picks are predicted on the explained cache, not read from the runs' CSV."""
    other = make_synthetic_cache(workspace["root"] / "other", n_per_class=3, seed=1, splits=("Val",))
    out = workspace["root"] / "other-split"
    written = explain(other, workspace["runs"], out, ["pose"], split="Val", top=2, smooth_samples=2)
    live = Explainer(other, workspace["runs"], out).predictions("pose")
    assert set(live.keys.tolist()) == {c.key for c in CacheDir(other).clips()}
    expected = pick_clips(live, "Val", 2)
    assert len(written) == len(expected) > 0
    for (key, pick), path in zip(expected, written):
        assert path.name.startswith(pick) and path.name.endswith(f"{key.replace('/', '_')}.png")
