"""The fusions as scikit-learn estimators on plain arrays: parameters, cloning, fitted checks, option typos,
fit/predict on arrays with a presence mask, save/load round trips and the VAE's Keras training, on small random
modality outputs (no trained modality models needed)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError

from ensemble.fusions import FUSIONS, READS, VAEFusion, fusion_arrays, load_fusion, make_fusion, steps_key
from ensemble.outputs import ModalityOutputs, fusion_inputs
from gvs.core.errors import InputError

QUICK = {"epochs": 5, "vae_epochs": 5, "patience": 2, "latent_dim": 4, "encoder_units": 8}


def _arrays(n: int, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Two modalities' arrays by kind whose hidden vectors, per-step sequences (12 steps, the last ones padded in
    some clips) and probabilities carry the class of each clip, with noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    arrays = {}
    for modality, size in (("audio", 6), ("pose", 4)):
        hidden = rng.normal(size=(n, size)) + np.eye(3, size)[y] * 2
        logits = np.eye(3)[y] * 1.5 + rng.normal(size=(n, 3))
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        steps = np.arange(12) < rng.integers(6, 13, size=(n, 1))
        sequence = (rng.normal(size=(n, 12, size)) + np.eye(3, size)[y][:, None] * 2) * steps[..., None]
        arrays[modality] = {
            "hidden": hidden.astype(np.float32),
            "probabilities": probabilities.astype(np.float32),
            "sequence": sequence.astype(np.float32),
            "steps": steps,
        }
    return arrays, y


def _inputs(kind: str, n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``X`` of the fusion ``kind`` (the arrays it reads) and the labels."""
    arrays, y = _arrays(n, seed)
    return fusion_arrays(FUSIONS[kind].reads, arrays), y


@pytest.mark.parametrize("kind", list(FUSIONS))
def test_every_fusion_follows_the_estimator_contract(kind):
    fusion = make_fusion(kind)
    assert is_classifier(fusion)
    params = fusion.get_params()
    assert fusion.set_params(**params) is fusion and fusion.get_params() == params
    twin = clone(fusion)
    assert twin is not fusion and twin.get_params() == params
    with pytest.raises(ValueError):
        fusion.set_params(unknown=1)
    X, _ = _inputs(kind, 6, 0)
    with pytest.raises(NotFittedError):
        fusion.predict(X)
    with pytest.raises(NotFittedError):
        fusion.predict_proba(X)


def test_an_option_no_fusion_takes_is_named():
    with pytest.raises(InputError, match="'epocs'.*did you mean 'epochs'"):
        make_fusion("fc", epocs=3)
    with pytest.raises(InputError, match="unknown fusion 'mlp'"):
        make_fusion("mlp")
    # one options dict serves every fusion: each takes its own keys
    assert make_fusion("soft", **QUICK, weights=None).get_params() == {}
    assert make_fusion("fc", **QUICK).get_params()["epochs"] == 5


KERAS_FUSIONS = ("fc", "vae", "attention", "lstm")  # fitted with Keras: seconds to build and trace each


@pytest.mark.parametrize(
    "kind", [pytest.param(kind, marks=pytest.mark.slow) if kind in KERAS_FUSIONS else kind for kind in FUSIONS]
)
def test_saved_fusions_load_and_predict_the_same(kind, tmp_path):
    outputs, y = _inputs(kind, 30, 1)
    select = _inputs(kind, 9, 2)
    fusion = make_fusion(kind, **QUICK).fit(outputs, y, validation=select)
    np.testing.assert_array_equal(fusion.classes_, [0, 1, 2])
    assert fusion.modalities_ == ["audio", "pose"]
    fusion.save(tmp_path / kind)
    loaded = load_fusion(tmp_path / kind)
    assert type(loaded) is type(fusion) and loaded.get_params() == fusion.get_params()
    np.testing.assert_allclose(loaded.predict_proba(outputs), fusion.predict_proba(outputs), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(outputs), fusion.predict(outputs))
    assert loaded.score(outputs, y) == pytest.approx(fusion.score(outputs, y))
    with pytest.raises(InputError, match="fitted on audio\\+pose"):
        loaded.predict({m: a for m, a in outputs.items() if not m.startswith("pose")})


@pytest.mark.slow
def test_vae_trains_through_keras_fit_and_keeps_its_best_epoch():
    outputs, y = _inputs("vae", 24, 3)
    select = _inputs("vae", 12, 4)
    # a high learning rate makes the select loss jump about, so early stopping ends training after a worse epoch
    fusion = VAEFusion(
        latent_dim=4, encoder_units=8, vae_epochs=60, epochs=3, patience=3, learning_rate=0.05, batch_size=8
    ).fit(outputs, y, validation=select)
    history = fusion.vae_history_
    assert {"loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl"} <= set(history)
    best = int(np.argmin(history["val_loss"]))
    assert len(history["val_loss"]) == best + 1 + 3 < 60  # stopped `patience` epochs after the best one
    assert fusion.vae_loss_["epoch"] == best + 1 and fusion.vae_loss_["measured_on"] == "select"
    # the kept VAE is the best epoch's: its select loss is that epoch's, not the last one's
    assert fusion.vae_loss_["loss"] == pytest.approx(history["val_loss"][best], rel=1e-5)
    assert fusion.vae_loss_["loss"] < history["val_loss"][-1]
    assert fusion.latents(outputs).shape == (24, 4)
    assert len(fusion.model_.trainable_weights) == 4  # encoder frozen: latent_dense and probabilities only


@pytest.mark.slow
def test_vae_without_a_select_part_stops_on_the_training_loss():
    outputs, y = _inputs("vae", 24, 5)
    fusion = VAEFusion(latent_dim=4, encoder_units=8, vae_epochs=4, epochs=2).fit(outputs, y)
    assert "val_loss" not in fusion.vae_history_ and fusion.vae_loss_["measured_on"] == "train"


@pytest.mark.parametrize("kind", list(FUSIONS))
def test_every_fusion_fits_and_predicts_plain_arrays(kind):
    """scikit-learn's contract on arrays: fit/predict_proba/predict take ``X`` (modality -> the array the fusion
    reads) and a presence mask, return arrays; clone and get_params/set_params round trip; rows sum to 1."""
    fusion = make_fusion(kind, **(QUICK | {"epochs": 3, "vae_epochs": 3}))
    assert fusion.reads in READS and FUSIONS[kind].reads == fusion.reads
    X, y = _inputs(kind, 24, 6)
    assert all(isinstance(a, np.ndarray) for a in X.values())
    if fusion.reads == "sequence":
        assert set(X) == {"audio", "pose", steps_key("audio"), steps_key("pose")} and X["audio"].ndim == 3
    else:
        assert set(X) == {"audio", "pose"} and X["audio"].ndim == 2
    present = np.ones((24, 2), bool)
    present[::4, 1] = False  # some clips lack pose
    present[5] = False  # one has nothing: the prior
    select, y_select = _inputs(kind, 9, 7)
    assert fusion.fit(X, y, present, validation=(select, y_select)) is fusion
    np.testing.assert_array_equal(fusion.classes_, [0, 1, 2])
    probabilities = fusion.predict_proba(X, present)
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (24, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities[5], fusion.prior_)
    predicted = fusion.predict(X, present)
    assert predicted.shape == (24,) and set(predicted) <= {0, 1, 2}
    if kind != "hard":  # the hard vote breaks ties by the summed probabilities
        np.testing.assert_array_equal(predicted, probabilities.argmax(axis=1))
    # no mask: every clip has every modality
    np.testing.assert_allclose(fusion.predict_proba(X), fusion.predict_proba(X, np.ones((24, 2), bool)))
    assert 0.0 <= fusion.score(X, y) <= 1.0
    with pytest.raises(InputError, match="present has shape"):
        fusion.predict_proba(X, present[:, :1])
    # clone: the same parameters, unfitted; set_params round trip on the fitted one leaves the learned state
    params = fusion.get_params()
    twin = clone(fusion)
    assert twin.get_params() == params and not hasattr(twin, "modalities_")
    with pytest.raises(NotFittedError):
        twin.predict_proba(X, present)
    assert fusion.set_params(**params).get_params() == params
    np.testing.assert_array_equal(fusion.predict_proba(X, present), probabilities)
    # the records at the edges become the same arrays: fusion_inputs(ModalityOutputs) == X, present
    arrays, _ = _arrays(24, 6)
    records = {
        m: ModalityOutputs(m, [str(i) for i in range(24)], a["hidden"], a["probabilities"], "", present[:, j],
                           a["sequence"], a["steps"])
        for j, (m, a) in enumerate(sorted(arrays.items()))
    }  # fmt: skip
    from_records, mask = fusion_inputs(records, fusion.reads)
    np.testing.assert_array_equal(mask, present)
    assert set(from_records) == set(X) and all(np.array_equal(from_records[k], X[k]) for k in X)
    np.testing.assert_array_equal(fusion.predict_proba(from_records, mask), probabilities)
