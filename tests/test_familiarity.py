"""Familiarity flags: the estimator against scikit-learn, a synthetic two-domain set (train on one domain, score a
shifted one), the demo bundle on the real VGAF test clips and on its own Val clips, and bundles without familiarity
data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gvs.core.io import atomic_write_json, sha256_of
from gvs.core.vocabulary import MODALITIES
from gvs.core.workspace import BundleDir
from gvs.predict.familiarity import (
    FAMILIARITY_FILE,
    FUSED,
    INPUT,
    MIN_SELECT,
    NO_FAMILIARITY,
    SHARE,
    Familiarity,
    choose_threshold,
    describe,
    input_statistics,
)
from tests.synthetic import make_synthetic_cache

SMALL = {  # small models (bn_momentum 0.5: the audio model's batch statistics settle in the few steps it trains)
    "scene": {"heads": 1, "filters": 8, "reduce_channels": 16},
    "pose": {"units": 16},
    "audio": {
        "conv_filters": (8, 16, 16),
        "lstm_units": (16, 16),
        "dense": 16,
        "learning_rate": 1e-3,
        "bn_momentum": 0.5,
        "dropout": 0.0,
    },
    "faces": {"units": 16},
}
SCENE_SHAPE, AUDIO_DIM = (12, 4, 6, 16), 16
MAX_IN_DOMAIN, MIN_SHIFTED = 0.10, 0.90  # issue 27: flagged shares of in-domain and shifted clips


def test_distances_are_the_mahalanobis_distances_of_sklearns_probabilistic_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    description = describe(x)
    pca = PCA(n_components=len(description.variances), svd_solver="full").fit(x)
    z = rng.normal(size=(5, 12)) * 3 - pca.mean_
    expected = np.einsum("ij,jk,ik->i", z, pca.get_precision(), z)
    np.testing.assert_allclose(description.distances(z + pca.mean_), expected, rtol=1e-6)


def test_held_out_gaussian_vectors_are_familiar_and_shifted_ones_are_not():
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(20, 20))
    train, held_out = rng.normal(size=(300, 20)) @ mixing, rng.normal(size=(400, 20)) @ mixing
    description = describe(train)
    familiar = description.familiarity(held_out)
    assert 0.3 < np.median(familiar) < 0.7  # about uniform: the share of training vectors further away
    assert np.mean(familiar < SHARE) < 0.04
    shifted = held_out + 3.0 * mixing.std(axis=0)
    assert np.mean(description.familiarity(shifted) < SHARE) > 0.95


def test_the_threshold_is_the_select_parts_first_percentile_when_it_has_enough_clips():
    rng = np.random.default_rng(2)
    select = rng.uniform(0.0, 0.5, size=MIN_SELECT * 3)
    assert choose_threshold(select) == pytest.approx(np.quantile(select, SHARE))
    assert choose_threshold(select[: MIN_SELECT - 1]) == SHARE


def test_familiarity_saves_and_loads_the_same_scores(tmp_path):
    rng = np.random.default_rng(3)
    hidden = {"audio": rng.normal(size=(40, 6)), "pose": rng.normal(size=(40, 4))}
    descriptions = {m: describe(x) for m, x in hidden.items()}
    descriptions[FUSED] = describe(np.concatenate([hidden["audio"], hidden["pose"]], axis=1))
    familiarity = Familiarity(["audio", "pose"], descriptions, 0.02)
    familiarity.save(tmp_path / FAMILIARITY_FILE)
    loaded = Familiarity.load(tmp_path / FAMILIARITY_FILE, ["audio", "pose"], 0.02)
    presence = np.array([[True, True], [True, False]])
    new = {m: x[:2] + 5 for m, x in hidden.items()}
    assert loaded.scores(new, presence) == familiarity.scores(new, presence)
    second = familiarity.scores(new, presence)[1]
    assert sorted(second) == ["audio"]  # pose absent: no pose and no fused score
    assert familiarity.with_threshold(0.5).threshold == 0.5 and familiarity.with_threshold(None) is familiarity


def test_audio_input_statistics_ignore_padding_and_catch_a_shift_the_hidden_vector_misses():
    rng = np.random.default_rng(4)
    offset = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])  # an embedding with signed values
    clips, others = rng.normal(size=(60, 11, 6)) + offset, rng.normal(size=(20, 11, 6)) + offset
    padded = np.concatenate([clips, np.zeros((60, 4, 6))], axis=1)
    np.testing.assert_allclose(input_statistics(padded), input_statistics(clips))
    assert input_statistics(np.zeros((1, 5, 6))).tolist() == [[0.0] * 13]  # no real step: zeros, no NaN
    hidden = {"audio": rng.normal(size=(60, 4))}  # a hidden vector that does not see the input's sign
    described = {"audio": describe(hidden["audio"]), "audio" + INPUT: describe(input_statistics(clips))}
    familiarity = Familiarity(["audio"], described, 0.01)
    presence = np.ones((20, 1), bool)
    same = rng.normal(size=(20, 4))  # the hidden vectors of new clips, rectified or not
    assert np.mean([s["audio"] < 0.01 for s in familiarity.scores({"audio": same}, presence, {"audio": others})]) < 0.2
    with_inputs = familiarity.scores({"audio": same}, presence, {"audio": np.abs(others)})
    without = familiarity.scores({"audio": same}, presence)  # as a bundle exported before input statistics
    assert all(s["audio"] < 0.01 for s in with_inputs) and np.mean([s["audio"] < 0.01 for s in without]) < 0.2
    assert list(with_inputs[0]) == ["audio"]  # one score per modality: the lower of the two


# --- two domains of synthetic features ----------------------------------------------------------------------------


def shifted(modality: str, x: np.ndarray) -> np.ndarray:
    """Features of another domain (another camera, crowd, microphone): ``x`` (n, steps, ...) changed where it is
    not padding."""
    x = x.copy()
    real = np.abs(x).reshape(*x.shape[:2], -1).sum(axis=2) > 0  # (n, steps): padded steps are all zeros
    if modality == "scene":  # brighter, flatter maps
        x[real] = x[real] * 4.0 + 2.0
    elif modality == "pose":  # the people higher in the frame and mirrored, and many more of them
        coordinates = x[..., :26]
        seen = coordinates >= 0
        coordinates[..., 0::2][seen[..., 0::2]] = 1.0 - coordinates[..., 0::2][seen[..., 0::2]]
        coordinates[..., 1::2][seen[..., 1::2]] -= 0.3
        x[..., :26] = coordinates
        x[..., 26][real] += 10
    elif modality == "audio":  # another embedding: non-negative (rectified) values
        x = np.abs(x)
    else:  # faces: other expressions (rolled by two) and many more faces
        scores = x[..., :21].reshape(*x.shape[:2], 3, 7)
        x[..., :21] = np.roll(scores, 2, axis=3).reshape(*x.shape[:2], 21)
        x[..., 21][real] += 10
    return x


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory) -> dict:
    """Tiny models of all four modalities and their soft fusion trained on domain A, exported as a bundle; the
    features of A's Val clips (in-domain, never trained on) and of another draw's Val clips shifted (shifted)."""
    from ensemble.fuse import run_fusion
    from ensemble.outputs import load_fusion_data
    from gvs.predict.bundle import export_bundle, load_bundle
    from modalities.data import open_features
    from modalities.train import train_modality

    root = tmp_path_factory.mktemp("two-domains")
    cache = make_synthetic_cache(
        root / "a", 20, seed=11, splits=("Train", "Val"), scene_shape=SCENE_SHAPE, audio_dim=AUDIO_DIM
    )
    other = make_synthetic_cache(root / "b", 20, seed=12, splits=("Val",), scene_shape=SCENE_SHAPE, audio_dim=AUDIO_DIM)
    runs = root / "runs"
    for modality in MODALITIES:
        train_modality(modality, cache, runs, epochs=8, patience=8, verbose=0, **SMALL[modality])
    run_fusion(load_fusion_data(runs, cache, list(MODALITIES), progress=False), "soft", runs, {})
    bundle = load_bundle(export_bundle(runs, root / "bundle", "soft"))
    domains = {"in-domain": {}, "shifted": {}}
    for modality in bundle.modalities:
        inside = open_features(cache, modality)
        rows = [i for i, key in enumerate(inside.keys) if key.startswith("Val/")]
        domains["in-domain"][modality] = inside.load(rows)
        outside = open_features(other, modality)
        domains["shifted"][modality] = shifted(modality, outside.load(range(len(outside.keys))))
    return {"bundle": bundle, "domains": domains}


def flagged_shares(bundle, features: dict[str, np.ndarray]) -> dict[str, float]:
    """{score name: share of clips flagged} for clips ``features`` {modality: (n, steps, ...)} scored through the
    bundle's own models (cut at "hidden") and familiarity."""
    from modalities.architectures import cut_at_hidden

    hidden = {}
    for modality, x in features.items():
        outputs = cut_at_hidden(bundle.model(modality))(np.asarray(x, np.float32), training=False)
        hidden[modality] = np.asarray(outputs[0]).reshape(len(x), -1)
    n = len(next(iter(hidden.values())))
    scores = bundle.familiarity.scores(hidden, np.ones((n, len(bundle.modalities)), bool), features)
    names = [*bundle.modalities, FUSED]
    return {name: float(np.mean([s[name] < bundle.familiarity.threshold for s in scores])) for name in names}


@pytest.mark.slow
def test_a_shifted_domain_is_flagged_per_modality_and_fused_and_the_training_domain_is_not(two_domains):
    bundle = two_domains["bundle"]
    shares = {domain: flagged_shares(bundle, features) for domain, features in two_domains["domains"].items()}
    table = "\n".join(
        f"{name:8s} in-domain {shares['in-domain'][name]:.2f}  shifted {shares['shifted'][name]:.2f}"
        for name in shares["shifted"]
    )
    print(f"\nflagged shares (threshold {bundle.familiarity.threshold}):\n{table}")
    assert sorted(shares["shifted"]) == sorted([*MODALITIES, FUSED])
    assert all(share <= MAX_IN_DOMAIN for share in shares["in-domain"].values()), table
    assert all(share >= MIN_SHIFTED for share in shares["shifted"].values()), table


@pytest.mark.slow
def test_the_exported_bundle_records_its_familiarity_in_the_manifest_and_bundle_json(two_domains):
    bundle = two_domains["bundle"]
    info = json.loads(BundleDir(bundle.root).info_path.read_text())
    record = info["familiarity"]
    assert record["file"] == FAMILIARITY_FILE and record["threshold"] == bundle.familiarity.threshold == SHARE
    assert record["scores"] == [*bundle.modalities, FUSED] and record["select_clips"] < MIN_SELECT
    assert record["inputs"] == ["audio"]  # audio also described by its input statistics
    manifest = json.loads(BundleDir(bundle.root).manifest_path.read_text())
    assert manifest[FAMILIARITY_FILE] == sha256_of(bundle.root / FAMILIARITY_FILE)
    assert info["training_data"]["kind"] is None and bundle.notes() == []  # a synthetic cache: no demo banner


# --- the demo bundle on real clips ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_bundle_flags_every_real_test_clip_and_at_most_one_of_its_own_val_clips(
    demo_workspace, demo, test_clips
):
    from gvs.core.workspace import RunsDir
    from gvs.predict.bundle import load_bundle
    from gvs.predict.predictor import Predictor

    bundle = load_bundle(RunsDir(demo_workspace.runs).bundle_path)  # the main job's export
    assert bundle.info["training_data"]["kind"] == "demo" and "Demo bundle" in bundle.notes()[0]
    predictor = Predictor(bundle)
    real = list(predictor.predict(test_clips))
    own = list(predictor.predict(sorted((demo / "Val").glob("*.mp4"))))
    lines = [f"{v.path.parent.name}/{v.path.name}: {v.familiarity:.3g} {v.unfamiliar}" for v in real + own]
    print("\n" + "\n".join(lines))
    assert len(real) == 10 and len(own) == 9
    assert all(v.unfamiliar and any(f.startswith("unlike the training data") for f in v.flags) for v in real), lines
    assert sum(bool(v.unfamiliar) for v in own) <= 1, lines


# --- bundles exported before familiarity --------------------------------------------------------------------------


def without_familiarity(folder: Path, to: Path) -> Path:
    """A copy of bundle ``folder`` as exported before familiarity flags: no familiarity file or record."""
    shutil.copytree(folder, to)
    bundle = BundleDir(to)
    (to / FAMILIARITY_FILE).unlink()
    info = json.loads(bundle.info_path.read_text())
    info.pop("familiarity")
    info["training_data"].pop("kind")
    atomic_write_json(bundle.info_path, info)
    atomic_write_json(bundle.manifest_path, {p: sha256_of(to / p) for p in bundle.files()})
    return to


@pytest.mark.slow  # the trained demo workspace and its small bundle (minutes, once per run)
def test_a_bundle_without_familiarity_predicts_as_before_and_says_it_has_none(small_bundle, val_clip, tmp_path):
    from gvs.predict.bundle import load_bundle
    from gvs.predict.predictor import Predictor

    old = load_bundle(without_familiarity(small_bundle, tmp_path / "old"))
    assert old.familiarity is None and NO_FAMILIARITY in old.notes() and old.summary()["familiarity"] is None
    new = Predictor(small_bundle, precision="float32").predict_video(val_clip)
    before = Predictor(old, precision="float32").predict_video(val_clip)
    assert before.familiarity is None and before.unfamiliar == [] and not before.windows[0].familiarity_scores
    assert not any("unlike the training data" in flag for flag in before.flags)
    np.testing.assert_allclose(before.probabilities, new.probabilities, atol=1e-6)
    assert new.familiarity is not None and set(new.windows[0].familiarity_scores) <= {"audio", "pose", FUSED}
    # the outputs: a familiarity column per video and window (empty without familiarity data), notes in the JSON
    from gvs.predict.outputs import write_outputs

    for video, bundle, name in ((new, load_bundle(small_bundle), "new"), (before, old, "old")):
        folder = write_outputs(tmp_path / name, [video], bundle.modalities, bundle.summary(), {})
        with folder.windows_csv.open() as handle:
            windows = list(csv.DictReader(handle))
        with folder.videos_csv.open() as handle:
            row = next(csv.DictReader(handle))
        record = json.loads(folder.json.read_text())
        assert record["bundle"]["notes"] == bundle.notes()
        if video is new:
            assert float(row["familiarity"]) == pytest.approx(new.familiarity, abs=1e-4)
            assert row["unfamiliar"] == "+".join(new.unfamiliar) and record["videos"][0]["unfamiliar"] == new.unfamiliar
            assert [float(w["familiarity"]) for w in windows] == pytest.approx(
                [w.familiarity for w in new.windows], abs=1e-4
            )
        else:
            assert row["familiarity"] == "" and all(w["familiarity"] == "" for w in windows)
