"""Fusions, ablation and the run_ensemble command on a synthetic cache where each modality carries a
different part of the class signal: scene tells Positive from the rest, pose Neutral, audio Negative,
faces nothing. No single modality can exceed about 2/3 accuracy; a fusion of them can reach 1."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from ensemble.ablation import run_ablation, run_comparison, subsets
from ensemble.fuse import run_fusion
from ensemble.fusions import FUSIONS, HardVote, WeightedVote, load_fusion
from ensemble.outputs import ModalityOutputs, align, compute_outputs, load_fusion_data
from gvs.core.errors import InputError
from gvs.core.workspace import RunFolder, RunsDir
from modalities.train import train_modality
from preprocess.pipeline import RunSummary
from tests.synthetic import make_synthetic_cache

pytestmark = pytest.mark.slow  # real models or training (`pytest -m 'not slow'` skips it)


MODALITIES = ["audio", "faces", "pose", "scene"]
TINY_SIZES = {
    "scene": {"heads": 1, "filters": 4, "reduce_channels": 8},
    "pose": {"units": 8},
    "audio": {"conv_filters": (8, 16, 16), "lstm_units": (8, 8), "dense": 8, "learning_rate": 1e-3},
    "faces": {"units": 8},
}
TRAIN_OPTIONS = {"epochs": 30, "patience": 8, "verbose": 0}
FUSION_OPTIONS = {"epochs": 60, "vae_epochs": 60, "patience": 15}
FC_MARGIN = 0.15  # fc accuracy must beat the best single modality by at least this much on the report part


def train_tiny(modality: str, cache: Path, runs: Path, **options) -> Path:
    return train_modality(modality, cache, runs, **(options | TRAIN_OPTIONS | TINY_SIZES[modality]))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ensemble")
    cache = make_synthetic_cache(
        root / "cache", 30, signal={"faces": 0.0}, seed=1, separates={"scene": 0, "pose": 1, "audio": 2}
    )
    runs = root / "runs"
    for modality in MODALITIES:
        train_tiny(modality, cache, runs)
    return {"cache": cache, "runs": runs, "data": load_fusion_data(runs, cache, MODALITIES, progress=False)}


@pytest.mark.parametrize("kind", list(FUSIONS))
def test_every_fusion_runs_end_to_end_and_reloads(synthetic, kind):
    data, runs = synthetic["data"], synthetic["runs"]
    result = run_fusion(data, kind, runs, FUSION_OPTIONS)
    saved = result.run.read_predictions()
    assert saved.keys.tolist() == data.keys and saved.class_names == ("Positive", "Neutral", "Negative")
    probabilities = saved.probabilities
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert {"train", "select", "report"} <= set(result.metrics)
    assert result.metrics["report"]["split"] == "Val" and result.metrics["report"]["n"] == 90
    reloaded = load_fusion(result.folder)
    np.testing.assert_allclose(reloaded.predict_proba(*data.inputs(reloaded.reads)), probabilities, atol=1e-5)
    assert result.metrics["report"]["accuracy"] > 0.5  # three informative modalities, chance is 1/3
    if kind in ("fc", "vae"):
        assert sorted(t.name for t in reloaded.model_.inputs) == sorted(
            [f"{m}_hidden" for m in MODALITIES] + ["presence"]
        )


def test_fc_fusion_beats_the_best_single_modality(synthetic):
    rows, markdown = run_comparison(synthetic["data"], ["soft", "fc"], synthetic["runs"], FUSION_OPTIONS)
    single = max(r["accuracy"] for r in rows if r["model"].endswith("alone"))
    fc = next(r for r in rows if r["model"] == "fc fusion")
    assert single < 0.8  # no modality alone sees all three classes
    assert fc["accuracy"] >= single + FC_MARGIN, markdown
    assert "report part (Val" in markdown


def test_scalers_are_fitted_on_the_train_part_only(synthetic):
    data = synthetic["data"]
    result = run_fusion(data, "fc", synthetic["runs"], FUSION_OPTIONS)
    model = load_fusion(result.folder).model_
    train_rows, all_rows = data.rows("train"), np.arange(len(data.keys))
    with np.load(result.run.scaler) as scaler:
        for modality in MODALITIES:
            hidden = data.outputs[modality].hidden.astype(np.float64)
            layer_mean = np.asarray(model.get_layer(f"{modality}_scale").mean).ravel()
            np.testing.assert_allclose(
                scaler[f"{modality}_mean"], hidden[train_rows].mean(axis=0), rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(layer_mean, hidden[train_rows].mean(axis=0), rtol=1e-4, atol=1e-5)
            assert not np.allclose(hidden[train_rows].mean(axis=0), hidden[all_rows].mean(axis=0), atol=1e-6)


def test_vae_has_a_20_dimensional_latent_and_a_picture(synthetic):
    result = run_fusion(synthetic["data"], "vae", synthetic["runs"], FUSION_OPTIONS)
    fusion = load_fusion(result.folder)
    assert fusion.latents(*synthetic["data"].inputs(fusion.reads)).shape == (len(synthetic["data"].keys), 20)
    assert result.run.latents.stat().st_size > 10_000
    loss = fusion.vae_loss_
    assert loss["measured_on"] == "select" and loss["reconstruction"] > 0 and loss["kl"] >= 0
    assert "val_loss" in fusion.vae_history_ and loss["epoch"] <= len(fusion.vae_history_["val_loss"])


def test_a_fusion_folder_appears_only_once_complete(synthetic, tmp_path, monkeypatch):
    import modalities.metrics

    data = synthetic["data"].without(["faces", "audio"])
    first = run_fusion(data, "hard", tmp_path)
    written = first.run.result.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("crashed while drawing")

    monkeypatch.setattr(modalities.metrics, "save_confusion_png", crash)
    with pytest.raises(OSError, match="crashed"):
        run_fusion(data, "hard", tmp_path, force=True)
    assert first.run.result.read_bytes() == written and load_fusion(first.folder).modalities_ == ["pose", "scene"]
    assert [p.name for p in RunsDir(tmp_path).fusion_root.iterdir()] == [first.name]  # no staging left behind
    with pytest.raises(OSError, match="crashed"):
        run_fusion(data, "soft", tmp_path)
    assert not RunsDir(tmp_path).fusion("soft-pose+scene").folder.exists()


def _recompute(predictions: Path) -> dict:
    report = RunFolder(predictions.parent).read_predictions().part("report").labelled()
    y, pred = report.labels, report.predicted
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    return {
        "accuracy": accuracy_score(y, pred),
        "macro_precision": precision,
        "macro_recall": recall,
        "macro_f1": f1,
        "n": len(y),
        "confusion": confusion_matrix(y, pred, labels=[0, 1, 2]).tolist(),
    }


def test_every_ablation_number_recomputes_from_the_saved_predictions(synthetic):
    runs = synthetic["runs"]
    rows, markdown = run_ablation(synthetic["data"], "hard", runs, "all")
    assert len(rows) == 15 and rows[0]["dropped"] == "—"
    stem = RunsDir(runs).ablation_stem("hard")
    with stem.with_suffix(".csv").open() as handle:
        table = list(csv.DictReader(handle))
    saved = json.loads(stem.with_suffix(".json").read_text())["rows"]
    assert len(table) == len(saved) == 15
    for csv_row, json_row in zip(table, saved):
        expected = _recompute(Path(json_row["predictions"]))
        for column in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
            assert float(csv_row[column]) == pytest.approx(expected[column], abs=1e-9)
            assert json_row[column] == pytest.approx(expected[column], abs=1e-9)
        assert int(csv_row["n"]) == expected["n"] == 90
        assert json_row["confusion"] == expected["confusion"]
    assert stem.with_suffix(".png").stat().st_size > 20_000
    assert "Val" in markdown and stem.with_suffix(".md").read_text().count("\n| hard |") == 15


def test_subsets():
    assert subsets(["scene", "pose"], "loo") == [["pose", "scene"], ["scene"], ["pose"]]
    assert len(subsets(MODALITIES, "all")) == 15
    assert subsets(["audio"], "loo") == [["audio"]]


def _outputs(probabilities: list[list[list[float]]]) -> dict[str, np.ndarray]:
    """The votes' input: {modality: probabilities (n_clips, n_classes)}."""
    names = ["audio", "pose", "scene"][: len(probabilities)]
    return {m: np.array(p, np.float32) for m, p in zip(names, probabilities)}


def test_hard_vote_majority_and_tie_rule():
    outputs = _outputs(
        [[[0.6, 0.3, 0.1], [0.4, 0.5, 0.1]], [[0.5, 0.4, 0.1], [0.1, 0.2, 0.7]], [[0.1, 0.8, 0.1], [0.5, 0.1, 0.4]]]
    )
    vote = HardVote().fit(outputs, np.array([0, 0]))
    np.testing.assert_allclose(vote.predict_proba(outputs), [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3]])
    # clip 0: two votes for Positive; clip 1: a three-way tie, Negative has the highest summed probability
    assert vote.predict(outputs).tolist() == [0, 2]


def test_weighted_vote_uses_given_weights_or_fits_them_on_select():
    outputs = _outputs([[[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]], [[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]])
    given = WeightedVote({"audio": 3, "pose": 1}).fit(outputs, np.array([0, 1]))
    np.testing.assert_allclose(given.predict_proba(outputs)[0], [0.7, 0.2375, 0.0625], atol=1e-6)
    with pytest.raises(InputError, match="no weight for"):
        WeightedVote({"audio": 1}).fit(outputs, np.array([0, 1]))
    select = _outputs([[[0.1, 0.8, 0.1]], [[0.9, 0.05, 0.05]]])  # only pose is right on the select clip
    fitted = WeightedVote().fit(outputs, np.array([0, 1]), validation=(select, np.array([0])))
    assert fitted.weights_["pose"] > fitted.weights_["audio"] and fitted.weights_from_ == "select"
    assert sum(fitted.weights_.values()) == pytest.approx(1.0)


def test_align_keeps_clips_lacking_a_modality_and_marks_them():
    full = ModalityOutputs("pose", ["Train/a", "Train/b", "Val/c"], np.ones((3, 2)), np.full((3, 3), 1 / 3))
    partial = ModalityOutputs("faces", ["Train/a", "Val/c"], np.full((2, 2), 5.0), np.full((2, 3), 1 / 3))
    data = align(
        {"pose": full, "faces": partial},
        {"Train/a": "train", "Train/b": "train", "Val/c": "report", "Test/d": "test"},
        {"Train/a": 0, "Train/b": 1, "Val/c": 2},
    )
    assert data.keys == ["Train/a", "Train/b", "Val/c"] and data.unfused == ["Test/d"]
    assert data.outputs["faces"].presence.tolist() == [True, False, True]
    assert data.outputs["faces"].hidden[1].tolist() == [0.0, 0.0] and data.missing() == {"faces": 1, "pose": 0}
    assert data.y.tolist() == [0, 1, 2] and data.parts.tolist() == ["train", "train", "report"]
    assert data.without(["faces"]).modalities == ["pose"]


def test_outputs_are_cached_until_the_model_changes(synthetic):
    cache, runs = synthetic["cache"], synthetic["runs"]
    stored = RunsDir(runs).outputs_path("pose")
    before = stored.stat().st_mtime_ns
    again = compute_outputs(runs, cache, "pose", progress=False)
    assert stored.stat().st_mtime_ns == before
    row = {key: i for i, key in enumerate(again.keys)}
    aligned = synthetic["data"].outputs["pose"]
    np.testing.assert_array_equal(again.hidden[[row[key] for key in aligned.keys]], aligned.hidden)
    assert again.hidden.shape == (270, 16) and again.probabilities.shape == (270, 3)


def test_run_ensemble_fc_drop_fer_removes_exactly_the_faces_input(synthetic, monkeypatch, capsys):
    """The users' command, wired through the whole chain (preprocessing stubbed: the cache is synthetic)."""
    import modalities.train
    import preprocess.pipeline
    import run_ensemble

    trained = []

    def fake_preprocess(source, cache, config, modalities, workers=1):
        assert Path(cache) == synthetic["cache"] and "faces" not in modalities
        return RunSummary(skipped=270)

    def tiny_training(modality, cache, runs, **options):
        trained.append(modality)
        return train_tiny(modality, cache, runs, seed=options["seed"])

    monkeypatch.setattr(preprocess.pipeline, "run_preprocess", fake_preprocess)
    monkeypatch.setattr(modalities.train, "train_modality", tiny_training)
    runs = synthetic["runs"]
    code = run_ensemble.main(
        [
            "unused-dataset",
            "--cache",
            str(synthetic["cache"]),
            "--runs",
            str(runs),
            "--fusion",
            "fc",
            "--drop",
            "fer",
            "--epochs",
            "60",
        ]
    )
    printed, errors = capsys.readouterr()
    assert code == 0, errors
    assert trained == ["scene", "pose", "audio"]
    model = load_fusion(RunsDir(runs).fusion("fc-audio+pose+scene")).model_
    assert sorted(t.name for t in model.inputs) == ["audio_hidden", "pose_hidden", "presence", "scene_hidden"]
    assert "Comparison" in printed and "Ablation: fc fusion (loo)" in printed
    ablation = json.loads(RunsDir(runs).ablation_stem("fc").with_suffix(".json").read_text())["rows"]
    assert [r["dropped"] for r in ablation] == ["—", "audio", "pose", "scene"]
    assert all("faces" not in r["modalities"] for r in ablation)


def test_command_line_explains_itself_and_names_bad_modalities(capsys):
    import run_ensemble

    with pytest.raises(SystemExit) as exit_info:
        run_ensemble.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert all(word in help_text for word in ("--drop", "'fer' = faces", "--weights", "--ablation", "select part"))
    from gvs.cli import build_parser

    args = build_parser().parse_args(["run", "--fusion", "weighted", "--weights", "scene=2,fer=1"])
    assert args.weights == {"scene": 2.0, "faces": 1.0}
    assert run_ensemble.main(["--drop", "ears"]) == 2
    assert "unknown modality ears" in capsys.readouterr().err
