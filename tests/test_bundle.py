"""Model bundles: export, load (folder, zip, RUNS), identical predictions, and refusal of anything altered."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gvs.core.errors import CorruptFileError, InputError, RunError
from gvs.core.io import atomic_write_json, sha256_of
from gvs.core.vocabulary import CLASS_NAMES
from gvs.core.workspace import BundleDir, RunsDir
from gvs.predict.bundle import choose_fusion, export_bundle, last_bundle, load_bundle
from preprocess.config import PreprocessConfig
from tests.synthetic import make_synthetic_cache

FUSED = ["faces", "pose"]
TINY = {"pose": {"units": 8}, "faces": {"units": 8}}
TRAINING = {"epochs": 3, "patience": 3, "batch_size": 12, "verbose": 0}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """The user's cache folder (last bundle pointer, unpacked zips) lives under the test's tmp_path."""
    monkeypatch.setenv("GVS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Tiny pose and faces models on a synthetic cache, and an fc, a soft and an attention fusion of both."""
    from ensemble.fuse import run_fusion
    from ensemble.outputs import load_fusion_data
    from modalities.train import train_modality

    root = tmp_path_factory.mktemp("bundle")
    cache = make_synthetic_cache(root / "cache", n_per_class=4, scene_shape=(12, 2, 3, 4), audio_dim=8)
    runs = root / "runs"
    for modality in FUSED:
        train_modality(modality, cache, runs, **TRAINING, **TINY[modality])
    data = load_fusion_data(runs, cache, FUSED, progress=False)
    for kind in ("fc", "soft", "attention"):
        run_fusion(data, kind, runs, {"epochs": 3, "patience": 3})
    return {"cache": cache, "runs": runs}


def _outputs_and_features(cache: Path, runs: Path, n: int = 5) -> tuple[dict, dict]:
    """The first ``n`` cached clips' features per modality, and the RUNS models' outputs on them (per-step
    sequences included)."""
    from ensemble.outputs import ModalityOutputs
    from modalities.data import open_features
    from modalities.sequence import TimeGrid, sequence_model, sequence_outputs
    from modalities.train import load_modality_model

    features, outputs = {}, {}
    for modality in FUSED:
        opened = open_features(cache, modality)
        features[modality] = opened.load(range(n))
        cut = sequence_model(load_modality_model(runs, modality), modality)
        hidden, probabilities, sequence, steps = sequence_outputs(cut, modality, features[modality], TimeGrid())
        outputs[modality] = ModalityOutputs(
            modality, opened.keys[:n], hidden, probabilities, sequence=sequence, steps=steps
        )
    assert outputs["faces"].keys == outputs["pose"].keys
    return features, outputs


def _copy(folder: Path, to: Path) -> BundleDir:
    shutil.copytree(folder, to)
    return BundleDir(to)


def _rewrite_info(bundle: BundleDir, **changes) -> None:
    """Change bundle.json and re-seal the manifest (an incompatible but intact bundle)."""
    atomic_write_json(bundle.info_path, json.loads(bundle.info_path.read_text()) | changes)
    atomic_write_json(bundle.manifest_path, {p: sha256_of(bundle.root / p) for p in bundle.files()})


# --- without trained models -------------------------------------------------------------------------------------


def _fake_runs(root: Path, fusions: dict[str, tuple[str, list[str]]]) -> RunsDir:
    runs = RunsDir(root)
    for name, (kind, modalities) in fusions.items():
        atomic_write_json(
            runs.fusion(name).fusion, {"kind": kind, "modalities": modalities, "params": {}, "fitted": {}}
        )
    return runs


def test_default_fusion_is_fc_over_the_most_modalities_else_soft(tmp_path):
    runs = _fake_runs(
        tmp_path / "a",
        {
            "fc-pose": ("fc", ["pose"]),
            "fc-audio+pose": ("fc", ["audio", "pose"]),
            "soft-audio+faces+pose": ("soft", ["audio", "faces", "pose"]),
        },
    )
    assert choose_fusion(runs) == "fc-audio+pose"
    assert choose_fusion(runs, "soft") == "soft-audio+faces+pose"  # a kind names its widest fusion
    assert choose_fusion(runs, "fc-pose") == "fc-pose"
    votes = _fake_runs(
        tmp_path / "b", {"soft-pose": ("soft", ["pose"]), "soft-audio+pose": ("soft", ["audio", "pose"])}
    )
    assert choose_fusion(votes) == "soft-audio+pose"
    with pytest.raises(RunError, match=r"no fc or soft fusion .*hard-pose.*--fusion NAME"):
        choose_fusion(_fake_runs(tmp_path / "c", {"hard-pose": ("hard", ["pose"])}))
    with pytest.raises(RunError, match="no fitted fusion; fit them with `gvs fuse"):
        choose_fusion(RunsDir(tmp_path / "empty"))


def test_unknown_fusion_is_refused_listing_the_fitted_ones(tmp_path):
    runs = _fake_runs(tmp_path, {"fc-pose": ("fc", ["pose"]), "soft-pose": ("soft", ["pose"])})
    with pytest.raises(InputError, match=r"no fitted fusion 'vae-pose' .*\(fitted: fc-pose, soft-pose\)"):
        choose_fusion(runs, "vae-pose")


def test_modalities_made_with_different_shared_parameters_are_refused(tmp_path):
    runs = _fake_runs(tmp_path, {"soft-faces+pose": ("soft", ["faces", "pose"])})
    for modality, frames in (("faces", 12), ("pose", 8)):
        run = runs.modality(modality)
        atomic_write_json(
            run.config,
            {
                "fingerprint": modality,
                "input_shape": [frames, 4],
                "feature_params": {"params": {"n_frames": frames, "frame_step": 10}},
            },
        )
        run.model.write_bytes(b"not used")
    with pytest.raises(RunError, match=r"made with n_frames 8 and 12"):
        export_bundle(runs.root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "bundle/../../evil.txt"])
def test_a_zip_member_outside_its_folder_is_refused(tmp_path, home, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("bundle/bundle.json", "{}")
        handle.writestr(member, "x")
    with pytest.raises(CorruptFileError, match=rf"{archive}: member '{member}' would be written outside"):
        load_bundle(archive)
    assert not (tmp_path / "evil.txt").exists() and not list(home.rglob("evil.txt"))


def test_paths_that_are_neither_bundle_nor_runs_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such bundle or runs folder"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a bundle .zip"):
        load_bundle(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="neither a bundle"):
        load_bundle(tmp_path)


def test_last_bundle_is_none_before_any_export():
    assert last_bundle() is None


# --- on trained models ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_writes_one_checked_folder_and_a_deterministic_zip(workspace, tmp_path):
    folder = export_bundle(workspace["runs"], tmp_path / "bundles" / "demo")
    bundle = BundleDir(folder)
    assert folder == tmp_path / "bundles" / "demo" and bundle.zip_path.is_file()
    assert last_bundle() == folder
    info = json.loads(bundle.info_path.read_text())
    assert info["format"] == BundleDir.FORMAT and info["class_names"] == list(CLASS_NAMES)
    assert info["modalities"] == FUSED and info["fusion"]["name"] == "fc-faces+pose" and info["fusion"]["kind"] == "fc"
    assert info["preprocess"] == PreprocessConfig().__dict__  # synthetic features: no preprocessing parameters
    runs = RunsDir(workspace["runs"])
    for modality in FUSED:
        config = json.loads(runs.modality(modality).config.read_text())
        assert info["models"][modality]["fingerprint"] == config["fingerprint"]
        assert info["models"][modality]["input_shape"] == config["input_shape"]
        assert info["models"][modality]["report"]["n"] == 12
        assert sha256_of(bundle.modality(modality).model) == config["model_sha256"]  # byte for byte
    assert info["fusion"]["report"]["n"] == 12
    assert info["training_data"]["clips"] == {"train": 9, "select": 3, "report": 12, "test": 12}
    assert info["training_data"]["name"] is None  # a synthetic cache has no source
    manifest = json.loads(bundle.manifest_path.read_text())
    assert sorted(manifest) == bundle.files() and "bundle.json" in manifest
    assert {"faces/model.keras", "pose/model.keras", "fusion/fusion.json", "fusion/model.keras"} <= set(manifest)
    assert not any(p.startswith(("fusion/predictions", "fusion/metrics")) for p in manifest)  # fusion files only
    with zipfile.ZipFile(bundle.zip_path) as archive:
        names = archive.namelist()
    assert names == sorted(f"demo/{p}" for p in [*manifest, "manifest.json"])
    first = sha256_of(bundle.zip_path)
    from gvs.predict.bundle import _write_zip

    _write_zip(bundle)
    assert sha256_of(bundle.zip_path) == first


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [None, "soft-faces+pose", "attention-faces+pose"])
def test_folder_zip_and_runs_predict_exactly_as_the_runs_models(workspace, tmp_path, fusion):
    from ensemble.fusions import load_fusion
    from ensemble.outputs import fusion_inputs
    from gvs.predict.predictor import FUSED as FUSED_ROW
    from gvs.predict.predictor import Predictor

    folder = export_bundle(workspace["runs"], tmp_path / "b", fusion)
    features, outputs = _outputs_and_features(workspace["cache"], workspace["runs"])
    name = fusion or "fc-faces+pose"
    fitted = load_fusion(RunsDir(workspace["runs"]).fusion(name))
    X, present = fusion_inputs(outputs, fitted.reads)
    expected = fitted.predict_proba(X, present)
    from_folder, from_zip = load_bundle(folder), load_bundle(BundleDir(folder).zip_path)
    assert from_zip.root != folder and from_zip.manifest_sha256 == from_folder.manifest_sha256
    sources = [from_folder, from_zip] + ([load_bundle(workspace["runs"])] if fusion is None else [])
    for bundle in sources:
        assert bundle.fusion_name == name and bundle.modalities == FUSED
        assert isinstance(bundle.config, PreprocessConfig)
        for modality in FUSED:
            runs_model = RunsDir(workspace["runs"]).load_model(modality)
            np.testing.assert_array_equal(
                bundle.model(modality).predict(features[modality], verbose=0),
                runs_model.predict(features[modality], verbose=0),
            )
            assert bundle.model(modality) is bundle.model(modality)  # loaded once
        np.testing.assert_array_equal(bundle.fusion().predict_proba(X, present), expected)
        assert bundle.fusion() is bundle.fusion()
        scored = Predictor(bundle, precision="float32").score(features, FUSED)  # the predictor's own cut
        np.testing.assert_allclose(scored[FUSED_ROW], expected, rtol=0, atol=1e-5)
        assert bundle.summary()["manifest_sha256"] == bundle.manifest_sha256


@pytest.mark.slow
def test_loading_the_runs_folder_needs_no_export(workspace, home):
    bundle = load_bundle(workspace["runs"])
    assert bundle.root == workspace["runs"] and bundle.fusion_name == "fc-faces+pose" and bundle.fusion_kind == "fc"
    assert bundle.info["created"] is None and len(bundle.manifest_sha256) == 64
    assert load_bundle(workspace["runs"]).manifest_sha256 == bundle.manifest_sha256
    assert not home.exists()  # nothing copied or remembered


@pytest.mark.slow
def test_an_altered_missing_or_extra_file_is_refused_naming_it(workspace, tmp_path):
    folder = export_bundle(workspace["runs"], tmp_path / "good")
    altered = _copy(folder, tmp_path / "altered")
    model = altered.modality("pose").model
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=rf"{model} was altered: sha256 [0-9a-f]{{64}}, expected"):
        load_bundle(altered.root)

    missing = _copy(folder, tmp_path / "missing")
    missing.fusion.scaler.unlink()
    with pytest.raises(CorruptFileError, match=rf"{missing.fusion.scaler} is missing"):
        load_bundle(missing.root)

    extra = _copy(folder, tmp_path / "extra")
    (extra.root / "faces" / "run_me.py").write_text("print('hello')")
    with pytest.raises(
        CorruptFileError, match=rf"{extra.root / 'faces' / 'run_me.py'} is not in the bundle's manifest"
    ):
        load_bundle(extra.root)

    no_manifest = _copy(folder, tmp_path / "no_manifest")
    no_manifest.manifest_path.unlink()
    with pytest.raises(CorruptFileError, match=rf"{no_manifest.manifest_path} is missing"):
        load_bundle(no_manifest.root)

    info = _copy(folder, tmp_path / "info")
    info.info_path.write_text(info.info_path.read_text().replace('"fc"', '"vae"'))
    with pytest.raises(CorruptFileError, match=rf"{info.info_path} was altered"):
        load_bundle(info.root)


@pytest.mark.slow
def test_a_zip_whose_unpacked_copy_was_changed_is_unpacked_again(workspace, tmp_path):
    folder = export_bundle(workspace["runs"], tmp_path / "z")
    zipped = BundleDir(folder).zip_path
    first = load_bundle(zipped)
    (first.root / "pose" / "extra.txt").write_text("x")
    assert load_bundle(zipped).root == first.root and not (first.root / "pose" / "extra.txt").exists()
    zipped.write_bytes(zipped.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match=str(zipped)):
        load_bundle(zipped)


@pytest.mark.slow
def test_an_incompatible_bundle_is_refused_saying_what(workspace, tmp_path):
    folder = export_bundle(workspace["runs"], tmp_path / "good")
    classes = _copy(folder, tmp_path / "classes")
    _rewrite_info(classes, class_names=[])
    with pytest.raises(RunError, match=r"bundle.json: class_names \[\] is not a list of names"):
        load_bundle(classes.root)

    older = _copy(folder, tmp_path / "older")
    _rewrite_info(older, format=BundleDir.FORMAT - 1)
    with pytest.raises(RunError, match=r"predates missing-modality fusions; refit it"):
        load_bundle(older.root)

    newer = _copy(folder, tmp_path / "newer")
    _rewrite_info(newer, format=BundleDir.FORMAT + 1)
    with pytest.raises(RunError, match=rf"bundle format {BundleDir.FORMAT + 1} .*upgrade gvs"):
        load_bundle(newer.root)

    lacking = _copy(folder, tmp_path / "lacking")
    shutil.rmtree(lacking.modality("pose").folder)
    _rewrite_info(lacking)
    with pytest.raises(RunError, match=rf"{lacking.modality('pose').model}: missing, but the fusion needs"):
        load_bundle(lacking.root)


@pytest.mark.slow
def test_export_refuses_to_replace_a_folder_that_is_not_a_bundle(workspace, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match=rf"{precious} exists and is not a bundle"):
        export_bundle(workspace["runs"], precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    with pytest.raises(InputError, match=r"\(fitted: attention-faces\+pose, fc-faces\+pose, soft-faces\+pose\)"):
        export_bundle(workspace["runs"], tmp_path / "x", "vae")
    again = export_bundle(workspace["runs"], tmp_path / "again.zip")  # a .zip --out names the zip
    assert again == tmp_path / "again" and (tmp_path / "again.zip").is_file()
    assert export_bundle(workspace["runs"], again) == again  # an earlier bundle is replaced


@pytest.mark.slow
def test_an_attention_bundle_shows_where_each_modality_looked(workspace, tmp_path):
    """The report's attention section for one window: weights from the bundle's fusion, a heat map, the peaks."""
    from types import SimpleNamespace

    from gvs.predict.predictor import Predictor
    from gvs.report.attention_section import attention_weights, section

    predictor = Predictor(export_bundle(workspace["runs"], tmp_path / "b", "attention-faces+pose"), precision="float32")
    features, _ = _outputs_and_features(workspace["cache"], workspace["runs"], n=12)
    clip = next(i for i in range(12) if not features["faces"][i].any(axis=1).all())  # some steps without faces
    features = {m: x[clip : clip + 1] for m, x in features.items()}
    window = SimpleNamespace(
        predictor=predictor,
        window=SimpleNamespace(features={m: x[0] for m, x in features.items()}),
        present=FUSED,
        prediction=SimpleNamespace(start_s=8.0),
    )
    weights = attention_weights(window)
    assert sorted(weights) == FUSED and weights["faces"].shape == (12, 12)
    real_faces = features["faces"][0].any(axis=1)
    np.testing.assert_allclose(weights["pose"].sum(axis=1)[features["pose"][0].any(axis=1)], 1.0, atol=1e-5)
    assert not weights["pose"][:, ~real_faces].any()  # padded faces steps are never looked at
    shown = section(weights, window)
    assert shown.key == "attention" and shown.figures[0].png.startswith(b"\x89PNG")
    assert "pose at " in shown.text and " s looked most at faces at " in shown.text
    np.testing.assert_array_equal(shown.arrays["attention_faces"], weights["faces"])
    plain = SimpleNamespace(**{**vars(window), "predictor": Predictor(workspace["runs"], precision="float32")})
    assert attention_weights(plain) is None  # the runs folder's default fusion, fc, has no attention


@pytest.mark.slow
def test_each_persons_drop_is_the_verdict_rescored_without_their_faces(workspace, val_clip, tmp_path):
    """gvs predict's people on the real clip with an fc faces+pose bundle: every person seen gets a drop, and the
    largest one equals the video's pooled p(verdict) minus the same predictor's score of its windows with that
    person's faces taken out of the faces input (the standard scoring path, not the one the drops are made by)."""
    from gvs.people.summary import faces_without
    from gvs.predict.predictor import FUSED as FUSED_ROW
    from gvs.predict.predictor import Predictor

    predictor = Predictor(export_bundle(workspace["runs"], tmp_path / "b", "fc-faces+pose"), precision="float32")
    windows = []
    video = predictor.predict_video(val_clip, on_window=lambda features, _: windows.append(features))
    assert video.people and all(p["drop_fused"] is not None and p["drop_faces"] is not None for p in video.people)
    person = max(video.people, key=lambda p: abs(p["drop_fused"]))
    verdict, n_frames = video.class_names.index(video.verdict), predictor.stream.config.n_frames
    tracker = predictor.stream.info.tracker
    rescored = []
    for window in windows:
        rows = [(scores, tracker.person_ids(tracks)) for scores, tracks in window.face_rows]
        features = {m: window.features[m][None] for m in FUSED}
        features["faces"] = faces_without(rows, person["id"], n_frames)[None]
        present = [m for m in predictor.present(window.empty) if m != "faces" or features["faces"][0, :, -1].any()]
        rescored.append(predictor.score(features, present)[FUSED_ROW][0])
    expected = video.probabilities[verdict] - np.mean(rescored, axis=0)[verdict]
    assert abs(expected) > 1e-3  # the fc fusion reads the faces: taking the person out moves it
    assert person["drop_fused"] == pytest.approx(expected, abs=2e-4)
