"""The time-aware fusions (attention, lstm) and the per-step outputs they read: the sequence cut of each modality
model, the time grid, padded and missing steps, and the whole chain on a set where only the order of events
across modalities carries the class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensemble.fusions import FUSIONS, load_fusion, make_fusion, steps_key
from gvs.chain import ChainSettings, run_chain
from gvs.core.io import read_json
from gvs.core.workspace import RunsDir
from modalities.sequence import TimeGrid, input_steps, on_grid
from tests.synthetic import make_synthetic_cache

TIME_AWARE = ("attention", "lstm")
SHAPES = {
    "scene": (12, 2, 3, 80),  # more channels than reduce_channels: the 1x1 reduction is there
    "pose": (12, 27),
    "audio": (11, 32),
    "faces": (12, 22),
}


def test_audio_steps_sit_on_the_visual_grid_by_nearest_time() -> None:
    grid = TimeGrid()
    np.testing.assert_allclose(grid.seconds, np.arange(12) * 0.4)
    np.testing.assert_array_equal(grid.audio_rows(11), [0, 1, 2, 2, 3, 4, 5, 6, 6, 7, 8, 9])
    for visual, audio in zip(grid.seconds, grid.audio_rows(11)):  # no audio step centre is nearer
        assert abs(audio * 0.5 - visual) <= min(abs(k * 0.5 - visual) for k in range(11)) + 1e-9
    slow = TimeGrid.from_params({"frame_step": 25, "n_frames": 4, "audio_hop": 0.5, "other": 1})
    np.testing.assert_array_equal(slow.audio_rows(11), [0, 2, 4, 6])  # frames 1 s apart: every second step
    sequence = np.arange(2 * 11 * 3, dtype=np.float32).reshape(2, 11, 3)
    steps = np.ones((2, 11), bool)
    steps[1, 5:] = False  # a short audio track
    placed, real = on_grid("audio", sequence, steps, grid)
    assert placed.shape == (2, 12, 3) and real.shape == (2, 12)
    np.testing.assert_array_equal(placed[0, 3], sequence[0, 2])
    assert real[1].tolist() == [True] * 6 + [False] * 6 and not placed[1, 6:].any()  # 2.5 s of audio: 0..2.0 s


@pytest.mark.parametrize("modality", list(SHAPES))
def test_the_sequence_cut_reads_the_trained_layers_step_by_step(modality: str) -> None:
    import keras

    from modalities.architectures import build_model
    from modalities.sequence import sequence_model, sequence_outputs

    keras.utils.set_random_seed(0)
    model = build_model(modality, SHAPES[modality])
    x = np.random.default_rng(1).normal(size=(3, *SHAPES[modality])).astype(np.float32)
    x[0, 8:] = 0.0  # a clip with padded steps
    cut = sequence_model(model, modality)
    hidden, probabilities, sequence, steps = sequence_outputs(cut, modality, x, TimeGrid())
    np.testing.assert_allclose(probabilities, model.predict_on_batch(x), rtol=0, atol=1e-6)
    assert sequence.shape[:2] == (3, 12) and steps.dtype == bool
    assert steps[1:].all() and not sequence[0][~steps[0]].any()
    np.testing.assert_array_equal(steps[0], on_grid(modality, sequence, input_steps(x), TimeGrid())[1][0])
    if modality in ("pose", "faces"):  # the BiLSTM's clip vector is its forward last real step + backward first
        whole = keras.Model(model.inputs, model.get_layer(f"{modality}_bilstm").output).predict_on_batch(x)
        half = whole.shape[1] // 2
        np.testing.assert_allclose(sequence[0, 7, :half], whole[0, :half], rtol=0, atol=1e-5)
        np.testing.assert_allclose(sequence[1, 11, :half], whole[1, :half], rtol=0, atol=1e-5)
        np.testing.assert_allclose(sequence[1, 0, half:], whole[1, half:], rtol=0, atol=1e-5)
    if modality == "scene":  # the per-frame reduced maps, averaged over space
        maps = keras.Model(model.inputs, model.get_layer("scene_reduce").output).predict_on_batch(x)
        np.testing.assert_allclose(sequence[1], maps[1].mean(axis=(1, 2)), rtol=0, atol=1e-5)


def _sequences(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Two modalities whose events at the same step (class 0) or 6 steps apart (class 1) carry the class; a third
    of the clips end early (padded steps) and some lack pose altogether.

    Returns the time-aware fusions' ``X`` (sequences and steps), ``y`` and ``present`` (n, 2)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    first = rng.integers(0, 6, n)
    X, present = {}, []
    for modality, at, size in (("audio", first, 5), ("pose", first + 6 * y, 4)):
        steps = np.ones((n, 12), bool)
        steps[: n // 3, 10:] = False
        sequence = rng.normal(0, 0.3, (n, 12, size)).astype(np.float32)
        sequence[np.arange(n), at % 12, 0] += 3.0
        sequence[~steps] = 0.0
        present.append(np.ones(n, bool) if modality == "audio" else rng.random(n) > 0.15)
        X[modality] = np.where(present[-1][:, None, None], sequence, 0.0).astype(np.float32)
        X[steps_key(modality)] = steps & present[-1][:, None]
    return X, y, np.stack(present, axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", TIME_AWARE)
def test_padded_and_missing_steps_change_nothing_and_loading_predicts_the_same(kind: str, tmp_path: Path) -> None:
    train, y, present = _sequences(160, 0)
    select, y_select, present_select = _sequences(40, 1)
    fusion = make_fusion(kind, epochs=40, patience=40).fit(
        train, y, present, validation=(select, y_select, present_select)
    )
    report, y_report, present_report = _sequences(80, 2)
    probabilities = fusion.predict_proba(report, present_report)
    assert (probabilities.argmax(axis=1) == y_report).mean() > 0.7  # steps 6 apart vs together is learnt
    noisy = dict(report)
    for modality in ("audio", "pose"):  # garbage where there is no real step: padding, missing clips
        garbage = np.random.default_rng(3).normal(5.0, 2.0, report[modality].shape).astype(np.float32)
        noisy[modality] = np.where(report[steps_key(modality)][..., None], report[modality], garbage)
    np.testing.assert_allclose(fusion.predict_proba(noisy, present_report), probabilities, rtol=0, atol=1e-5)
    lost = {
        name: values[:4] if name in ("audio", "pose") else np.zeros((4, 12), bool) for name, values in report.items()
    }
    nothing = np.zeros((4, 2), bool)
    np.testing.assert_allclose(fusion.predict_proba(lost, nothing), np.tile(fusion.prior_, (4, 1)))  # the prior
    fusion.save(tmp_path / kind)
    loaded = load_fusion(tmp_path / kind)
    np.testing.assert_array_equal(loaded.predict_proba(report, present_report), probabilities)
    if kind == "attention":
        weights, again = fusion.attention(report, present_report), loaded.attention(report, present_report)
        np.testing.assert_array_equal(weights["audio"], again["audio"])
        assert weights["audio"].shape == (80, 12, 12)
        real = report["audio_steps"] & present_report[:, 1:2]  # queries that had a key to look at
        np.testing.assert_allclose(weights["audio"].sum(axis=2)[real], 1.0, atol=1e-5)
        padded_keys = np.broadcast_to(~report["pose_steps"][:, None, :], weights["audio"].shape)
        assert padded_keys.any() and not weights["audio"][padded_keys].any()  # padded keys get no weight
        assert not weights["pose"][~report["pose_steps"]].any()
    else:
        assert set(fusion.alpha_) == {"audio", "pose"} and sum(fusion.alpha_.values()) == pytest.approx(1.0)


@pytest.mark.slow  # fits a Keras fusion of each kind
@pytest.mark.parametrize("kind", TIME_AWARE)
def test_one_modality_alone_is_fused_too(kind: str) -> None:
    """--drop leaving one modality (ablation rows): attention attends to the modality's own steps."""
    train, y, _ = _sequences(60, 4)
    only = {"audio": train["audio"], "audio_steps": train["audio_steps"]}
    fusion = make_fusion(kind, epochs=3, patience=3).fit(only, y)
    assert fusion.predict_proba(only).shape == (60, 2) and fusion.modalities_ == ["audio"]
    if kind == "lstm":
        assert fusion.alpha_ == {"audio": 1.0}


@pytest.fixture(scope="module")
def order_run(tmp_path_factory) -> Path:
    """The chain over scene and audio of the set where only the order of a scene flash and an audio burst carries
    the class (120 clips per class in Train and Val), every fusion (the VAE's unsupervised stage capped at 20
    epochs)."""
    work = tmp_path_factory.mktemp("order")
    cache = make_synthetic_cache(work / "cache", 120, seed=5, splits=("Train", "Val"), groups=4, events=True)
    runs = work / "runs"
    settings = ChainSettings(
        cache=cache,
        runs=runs,
        drop=["pose", "faces"],
        ablation="none",
        bootstrap=200,
        train_options={"epochs": 4, "patience": 2},
        fusion_options={"vae_epochs": 20},
    )
    run_chain(settings)
    return runs


@pytest.mark.slow
def test_time_aware_fusions_beat_every_clip_vector_fusion_when_order_carries_the_class(order_run: Path) -> None:
    rows = {r["model"]: r for r in read_json(RunsDir(order_run).comparison_stem().with_suffix(".json"))["rows"]}
    assert {f"{kind} fusion" for kind in FUSIONS} <= set(rows)
    clip_vector = [m for m in rows if not any(m.startswith(k) for k in TIME_AWARE)]
    best = max(rows[m]["accuracy"] for m in clip_vector)
    assert best < 0.5  # each modality alone, and any clip summary, says little about the order
    for kind in TIME_AWARE:
        assert rows[f"{kind} fusion"]["accuracy"] >= best + 0.15, (kind, best, rows[f"{kind} fusion"]["accuracy"])
        assert float(rows[f"{kind} fusion"]["fit s"]) > 0
    assert RunsDir(order_run).fusion("attention-audio+scene").attention.is_file()
