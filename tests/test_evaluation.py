"""Research-grade evaluation on synthetic caches: every clip counted (missing modalities), intervals and seeds
recomputed independently from the saved predictions, class sets other than three, experiment files that re-run.

Every test here runs the whole chain (training included), so all are ``slow``. Each chain trains two modalities, the
fewest a fusion needs (audio and pose where a clip misses its audio, else the two cheapest, faces and pose), with a
few epochs: what is checked is how the chain counts, records and re-runs, not how well it learns."""

from __future__ import annotations

import statistics as stdlib_statistics
import tomllib
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ensemble.fuse import read_part
from ensemble.fusions import FUSIONS
from gvs.chain import ChainSettings, run_chain
from gvs.core.io import read_json
from gvs.core.workspace import CacheDir, RunFolder, RunsDir
from tests.synthetic import make_synthetic_cache

pytestmark = pytest.mark.slow  # each test trains models through the whole chain (tens of seconds)

FAST = {"epochs": 3, "patience": 2}
FUSION_FAST = {"epochs": 15, "vae_epochs": 15, "patience": 5}


def _settings(cache: Path, runs: Path, **changes) -> ChainSettings:
    values = dict(
        cache=cache,
        runs=runs,
        drop=["scene", "faces"],
        ablation="none",
        bootstrap=300,
        train_options=FAST,
        fusion_options=FUSION_FAST,
    )
    return ChainSettings(**(values | changes))


def _comparison(runs: Path) -> list[dict]:
    return read_json(RunsDir(runs).comparison_stem().with_suffix(".json"))["rows"]


@pytest.fixture(scope="module")
def no_audio(tmp_path_factory) -> tuple[Path, Path, str]:
    """A 3-class cache where about a quarter of the clips have no audio features, run through the chain (audio and
    pose, every fusion, calibrated)."""
    work = tmp_path_factory.mktemp("no-audio")
    cache = make_synthetic_cache(work / "cache", 10, seed=3, groups=2, missing={"audio": 0.25})
    runs = work / "runs"
    text = run_chain(_settings(cache, runs, calibrate=True))
    return cache, runs, text


def test_a_clip_without_audio_gets_a_fused_prediction_from_every_fusion(no_audio) -> None:
    cache, runs, text = no_audio
    store = CacheDir(cache).current("audio")
    report_keys = {r["key"] for r in CacheDir(cache).clip_rows() if r["split"] == "Val"}
    silent = sorted(k for k in report_keys if not store.path(k).is_file())
    assert silent, "the synthetic cache should leave some Val clips without audio"
    rows = _comparison(runs)
    assert {r["n"] for r in rows} == {len(report_keys)}  # every row scored on every report clip
    for kind in FUSIONS:
        run = RunsDir(runs).fusion(f"{kind}-audio+pose")
        saved = run.read_predictions()
        row_of = {key: row for row, key in enumerate(saved.keys.tolist())}
        for key in silent:
            probabilities = saved.probabilities[row_of[key]]
            assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-3
    audio_alone = RunsDir(runs).fusion("soft-audio").read_predictions().keys.tolist()
    assert set(silent) <= set(audio_alone)  # audio alone falls back to the class shares, still counted
    assert f"audio {len(silent)}" in text  # the note counts the clips missing each modality


def test_table_intervals_recompute_from_the_saved_predictions(no_audio) -> None:
    _, runs, _ = no_audio
    rows = {r["model"]: r for r in _comparison(runs)}
    fc = rows["fc fusion"]
    saved = read_part(RunFolder(Path(fc["predictions"]).parent), "report")
    rng = np.random.default_rng(0)  # the table's bootstrap seed is the chain's seed, 0
    draws = rng.integers(0, len(saved.labels), size=(300, len(saved.labels)))
    accuracy = [accuracy_score(saved.labels[d], saved.predicted[d]) for d in draws]
    f1 = [
        f1_score(
            saved.labels[d], saved.predicted[d], labels=np.union1d(saved.labels[d], saved.predicted[d]), average="macro"
        )
        for d in draws
    ]
    assert fc["accuracy"] == pytest.approx(accuracy_score(saved.labels, saved.predicted))
    assert [fc["accuracy_low"], fc["accuracy_high"]] == pytest.approx(np.percentile(accuracy, [2.5, 97.5]))
    assert [fc["macro_f1_low"], fc["macro_f1_high"]] == pytest.approx(np.percentile(f1, [2.5, 97.5]))
    assert 0 <= fc["p_mcnemar"] <= 1 and 0 <= fc["p_bootstrap"] <= 1 and fc["compared_with"].endswith("alone")
    assert fc["temperature"] > 0 and "ece_calibrated" in fc
    assert (runs / "fusion" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeds_table_is_the_mean_and_std_of_each_seed_s_table(tmp_path: Path) -> None:
    cache = make_synthetic_cache(tmp_path / "cache", 6, seed=5)
    runs = tmp_path / "runs"
    run_chain(_settings(cache, runs, drop=["scene", "audio"], seeds=[0, 1], fusion="soft"))
    per_seed = [{r["model"]: r for r in _comparison(RunsDir(runs).seed_runs(s).root)} for s in (0, 1)]
    table = read_json(RunsDir(runs).seeds_stem().with_suffix(".json"))["rows"]
    assert [r["model"] for r in table] == list(per_seed[0])
    for row in table:
        for metric in ("accuracy", "macro_f1", "ece"):
            values = [seed_rows[row["model"]][metric] for seed_rows in per_seed]
            assert row[f"{metric}_mean"] == pytest.approx(stdlib_statistics.mean(values))
            assert row[f"{metric}_std"] == pytest.approx(stdlib_statistics.stdev(values))
    partitions = [read_json(RunsDir(runs).seed_runs(s).partition_path)["parts"]["select"] for s in (0, 1)]
    assert partitions[0] != partitions[1]  # each seed draws its own select hold-out


@pytest.mark.parametrize(
    "classes", [("calm", "excited"), ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")]
)
def test_class_sets_other_than_three_go_through_the_chain(tmp_path: Path, classes: tuple[str, ...]) -> None:
    from gvs.predict.bundle import export_bundle, load_bundle

    cache = make_synthetic_cache(tmp_path / "cache", 6, seed=2, class_names=classes)
    runs = tmp_path / "runs"
    text = run_chain(_settings(cache, runs, drop=["scene", "audio"], ablation="loo", fusion="fc"))
    assert "Comparison" in text and "Ablation" in text
    fc = RunFolder(RunsDir(runs).fusion("fc-faces+pose").folder)
    header = fc.predictions.read_text().splitlines()[0].split(",")
    assert header == ["key", "split", "part", "label", *(f"p_{c}" for c in classes), "pred"]
    assert fc.read_predictions().class_names == tuple(classes)
    metrics = read_json(fc.metrics)["report"]
    assert list(metrics["per_class_recall"]) == list(classes)
    assert np.array(metrics["confusion"]).shape == (len(classes), len(classes))
    assert read_json(RunsDir(runs).modality("pose").config)["classes"] == list(classes)
    bundle = load_bundle(export_bundle(runs, tmp_path / "bundle", "fc"))
    assert bundle.class_names == list(classes)


def test_a_run_from_its_written_config_gives_identical_tables(no_audio, tmp_path: Path) -> None:
    from gvs.cli import main as gvs_main

    _, runs, _ = no_audio
    written = RunsDir(runs).config_path
    assert written.is_file()
    again = tmp_path / "again"
    # the file's settings, with one overridden on the command line (fc only: the learned fusion that costs least)
    assert gvs_main(["run", "--config", str(written), "--runs", str(again), "--fusion", "fc"]) == 0
    second = _comparison(again)
    assert [r["model"] for r in second] == ["audio alone", "pose alone", "fc fusion"]
    first = [r for r in _comparison(runs) if r["model"] in {r["model"] for r in second}]
    drop = {"predictions", "fit s"}  # where the files are, and wall-clock seconds
    assert [{k: v for k, v in r.items() if k not in drop} for r in first] == [
        {k: v for k, v in r.items() if k not in drop} for r in second
    ]
    assert tomllib.loads(RunsDir(again).config_path.read_text())["fusion"] == "fc"  # the override is recorded
    assert read_json(RunsDir(again).partition_path)["parts"] == read_json(RunsDir(runs).partition_path)["parts"]
