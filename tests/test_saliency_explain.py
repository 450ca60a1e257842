"""End to end: figures for clips and splits of a synthetic cache, explained with models of the real architectures."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import matplotlib.image
import numpy as np
import pytest

from modalities.architectures import build_model
from preprocess.cache import read_clip_index, write_clip_index
from preprocess.labels import CLASS_NAMES, ClipRecord
from saliency import explain as explain_module
from saliency.__main__ import main
from saliency.explain import Explainer, explain, pick_clips
from tests.synthetic import make_synthetic_cache

MODALITIES = ("scene", "pose", "audio", "faces")
SMALL_SIZES = {"scene": {"heads": 2, "filters": 2, "reduce_channels": 4}, "pose": {"units": 4},
               "audio": {"conv_filters": (8, 8, 8), "lstm_units": (4, 4), "dense": 4},
               "faces": {"units": 4, "dense": 4}}
PART_OF_SPLIT = {"Train": "train", "Val": "report", "Test": "test"}


def _write_predictions(path: Path, keys: list[str], labels: list[int], probabilities: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "split", "part", "label", *(f"p_{c}" for c in CLASS_NAMES), "pred"])
        for key, label, p in zip(keys, labels, probabilities):
            split = key.split("/")[0]
            writer.writerow([key, split, PART_OF_SPLIT[split], label, *p, CLASS_NAMES[int(np.argmax(p))]])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A synthetic cache, one untrained model per modality saved as RUNS/<modality>/model.keras with its
    predictions.csv, and an fc-like fused model on the hidden vectors in RUNS/fusion/fc-test/."""
    root = tmp_path_factory.mktemp("saliency")
    cache = make_synthetic_cache(root / "cache", n_per_class=2, splits=("Train", "Val", "Test"))
    runs = root / "runs"
    rows = read_clip_index(cache)
    keys = [r["key"] for r in rows]
    labels = [int(r["label"]) if r["label"] else -1 for r in rows]
    hidden = {}
    keras.utils.set_random_seed(0)
    for modality in MODALITIES:
        clips = [explain_module.read_clip(cache, modality, key) for key in keys]
        x = np.stack([c.arrays["features"] for c in clips]).astype(np.float32)
        model = build_model(modality, x.shape[1:], **SMALL_SIZES[modality])
        (runs / modality).mkdir(parents=True)
        model.save(runs / modality / "model.keras")
        _write_predictions(runs / modality / "predictions.csv", keys, labels, model.predict(x, verbose=0))
        hidden[modality] = keras.Model(model.input, model.get_layer("hidden").output).predict(x, verbose=0)
    inputs = {f"{m}_hidden": keras.Input((h.shape[1],), name=f"{m}_hidden") for m, h in hidden.items()}
    joined = keras.layers.Concatenate()(list(inputs.values()))
    fused = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probabilities")(joined))
    folder = runs / "fusion" / "fc-test"
    folder.mkdir(parents=True)
    fused.save(folder / "model.keras")
    (folder / "fusion.json").write_text(json.dumps({"kind": "fc", "modalities": list(MODALITIES)}))
    np.savez(folder / "scaler.npz", **{f"{m}_mean": h.mean(axis=0) for m, h in hidden.items()})
    fused_inputs = {f"{m}_hidden": h for m, h in hidden.items()}
    _write_predictions(folder / "predictions.csv", keys, labels, fused.predict(fused_inputs, verbose=0))
    return {"cache": cache, "runs": runs, "root": root}


def _image(path: Path) -> np.ndarray:
    assert path.is_file(), path
    return matplotlib.image.imread(path)


def test_pick_clips_orders_confident_correct_and_confidently_wrong():
    def row(key, label, p, part="report"):
        return {"key": key, "split": key.split("/")[0], "part": part, "label": str(label),
                **{f"p_{c}": str(v) for c, v in zip(CLASS_NAMES, p)}, "pred": "ignored"}

    rows = [row("Val/a", 0, (0.6, 0.3, 0.1)), row("Val/b", 0, (0.9, 0.05, 0.05)), row("Val/c", 1, (0.1, 0.1, 0.8)),
            row("Val/d", 2, (0.5, 0.4, 0.1)), row("Val/e", 1, (0.2, 0.7, 0.1), part="select")]
    assert pick_clips(rows, "Val", 2) == [("Val/b", "confident"), ("Val/e", "confident"),
                                          ("Val/c", "wrong"), ("Val/d", "wrong")]
    assert pick_clips(rows, "select", 3) == [("Val/e", "confident")]
    unlabelled = [row("Test/x", -1, (0.2, 0.3, 0.5), "test"), row("Test/y", -1, (0.1, 0.8, 0.1), "test")]
    assert pick_clips(unlabelled, "Test", 1) == [("Test/y", "confident")]
    with pytest.raises(explain_module.ExplainError, match="Train"):
        pick_clips(rows, "Train", 1)


def test_split_figures_exist_for_every_modality_and_the_fusion(workspace):
    out = workspace["root"] / "split"
    written = explain(workspace["cache"], workspace["runs"], out, list(MODALITIES) + ["fusion"], split="Val", top=1,
                      smooth_samples=4)
    for modality in MODALITIES:
        folder = "fusion/fc-test" if modality == "fusion" else modality
        rows = explain_module.read_predictions(workspace["runs"] / folder / "predictions.csv")
        for key, pick in pick_clips(rows, "Val", 1):
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
    cache = workspace["cache"]
    write_clip_index(cache, [ClipRecord("1_1", "Val", val_clip, 2)])
    clip = explain_module.read_clip(cache, "scene", "Val/1_1")
    frames = explain_module.read_clip_frames(clip)
    assert frames is not None and frames.shape[0] == 12 and frames.shape[-1] == 3
    explainer = Explainer(cache, workspace["runs"], workspace["root"] / "clip", smooth_samples=4)
    for modality in MODALITIES:
        path = explainer.explain_clip(modality, "Val/1_1")
        assert path == workspace["root"] / "clip" / modality / "Val_1_1.png"
        assert _image(path)[..., :3].std() > 0.05
    fusion = explainer.explain_fusion("fc-test", "Val/1_1")
    assert fusion.is_file()


def test_command_line_writes_figures_and_reports_missing_models(workspace, capsys):
    out = workspace["root"] / "cli"
    assert main(["--cache", str(workspace["cache"]), "--runs", str(workspace["runs"]), "--clip", "Test/Test_1",
                 "--modality", "pose", "faces", "--method", "vanilla", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "pose" / "Test_Test_1.png"), str(out / "faces" / "Test_Test_1.png")]
    assert main(["--cache", str(workspace["cache"]), "--runs", str(workspace["root"] / "no-runs"), "--clip",
                 "Val/1_1", "--modality", "audio", "--out", str(out)]) == 2
    assert "no trained audio model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--smooth-samples" in capsys.readouterr().out


def test_split_picks_come_from_the_cache_being_explained(workspace):
    """Models trained elsewhere: picks are predicted on the explained cache, not read from the runs' CSV."""
    other = make_synthetic_cache(workspace["root"] / "other", n_per_class=3, seed=1, splits=("Val",))
    out = workspace["root"] / "other-split"
    written = explain(other, workspace["runs"], out, ["pose"], split="Val", top=2, smooth_samples=2)
    live = explain_module.Explainer(other, workspace["runs"], out).predictions("pose")
    assert {r["key"] for r in live} == {r["key"] for r in read_clip_index(other)}
    expected = pick_clips(live, "Val", 2)
    assert len(written) == len(expected) > 0
    for (key, pick), path in zip(expected, written):
        assert path.name.startswith(pick) and path.name.endswith(f"{key.replace('/', '_')}.png")
