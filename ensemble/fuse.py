"""Fit one fusion on the train part, select on the select part, and save model, predictions and metrics.

A fusion's RunFolder (RUNS/fusion/<fusion>-<modalities joined by +>/) holds its record and, for the Keras fusions,
their models and scaler; predictions (key, split, part, label, p_<class> per class, pred: every clip that has
at least one of its modalities, every part), metrics (train / select / report parts), the report part's confusion matrix and, for vae,
the latent picture, for attention the mean attention picture; result.json records the seconds fitting took. The folder appears only once complete; one whose result carries the same stamp (same
outputs, clips, parts and hyperparameters) is reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gvs.core.errors import PartitionError
from gvs.core.io import atomic_write_json, digest_of, read_json, staged_folder
from gvs.core.predictions import Predictions
from gvs.core.workspace import RunFolder, RunsDir

from .fusions import VAEFusion, make_fusion
from .outputs import FusionData
from .report import metrics_of
from .temporal import AttentionFusion

REPORT_PARTS: tuple[str, ...] = ("train", "select", "report")
STAMP_VERSION = 3  # bump when what a fusion folder holds changes, so older folders are fitted again


@dataclass
class FusionResult:
    """Where a fitted fusion lives and its metrics per part."""

    name: str
    kind: str
    modalities: list[str]
    folder: Path
    metrics: dict  # part -> metrics dict (with "split" and "n")

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.folder)


def fusion_name(kind: str, modalities: list[str]) -> str:
    """The run folder name of a fusion: ``kind-mod1+mod2...`` (modalities sorted).

    Parameters
    ----------
    kind : str
    modalities : list of str

    Returns
    -------
    name : str
    """
    return f"{kind}-{'+'.join(sorted(modalities))}"


def _stamp(kind: str, data: FusionData, params: dict) -> str:
    return digest_of(
        {
            "version": STAMP_VERSION,
            "kind": kind,
            "params": params,
            "keys": data.keys,
            "parts": data.parts.tolist(),
            "labels": data.y.tolist(),
            "classes": list(data.class_names),
            "present": {m: digest_of(o.presence.tolist()) for m, o in sorted(data.outputs.items())},
            "outputs": {m: o.stamp for m, o in sorted(data.outputs.items())},
        },
        16,
    )


def fusion_predictions(data: FusionData, probabilities: np.ndarray, predicted: np.ndarray) -> Predictions:
    """The predictions record of every aligned clip of ``data``.

    Parameters
    ----------
    data : FusionData
    probabilities : ndarray of shape (n_clips, n_classes)
    predicted : ndarray of shape (n_clips,), int

    Returns
    -------
    predictions : Predictions
    """
    return Predictions(data.keys, data.y, probabilities, data.parts, data.class_names, predicted)


def read_part(run: RunFolder, part: str = "report") -> Predictions:
    """The labelled clips of ``part`` in ``run``'s predictions.csv (class names from its p_<class> columns).

    Parameters
    ----------
    run : RunFolder
    part : str
        One of PARTS; only its labelled clips are read.

    Returns
    -------
    part : Predictions
    """
    return run.read_predictions().part(part).labelled()


def run_fusion(
    data: FusionData, kind: str, runs: Path, options: dict | None = None, force: bool = False
) -> FusionResult:
    """Fit ``kind`` on ``data`` (its modalities), evaluate every part, save everything; reuse when unchanged.

    ``options`` may hold keys of other fusions too (see :func:`~ensemble.fusions.make_fusion`).

    Parameters
    ----------
    data : FusionData
    kind : str
    runs : Path
    options : dict or None
    force : bool
        Fit again even when unchanged.

    Returns
    -------
    result : FusionResult
    """
    fusion = make_fusion(kind, **(options or {}))
    params = fusion.get_params()
    name = fusion_name(kind, data.modalities)
    run = RunsDir(runs).fusion(name)
    stamp = _stamp(kind, data, params)
    if not force and run.result.is_file():
        saved = read_json(run.result)
        if saved.get("stamp") == stamp:
            return FusionResult(name, kind, data.modalities, run.folder, saved["metrics"])

    train_rows, select_rows = data.rows("train"), data.rows("select")
    y_train = data.y[train_rows]
    if len(y_train) == 0:
        raise PartitionError(
            f"{name}: no labelled clips with {'+'.join(data.modalities)} outputs in the train part "
            f"of {RunsDir(runs).partition_path}; label training clips or re-run preprocessing "
            "for the modalities that failed on them (`gvs preprocess`)"
        )
    X_train, present_train = data.inputs(fusion.reads, train_rows)
    validation = None
    if len(select_rows):
        X_select, present_select = data.inputs(fusion.reads, select_rows)
        validation = (X_select, data.y[select_rows], present_select)
    started = time.perf_counter()
    fusion.fit(X_train, y_train, present_train, validation=validation, n_classes=len(data.class_names))
    fit_seconds = time.perf_counter() - started
    X, present = data.inputs(fusion.reads)
    probabilities, predicted = fusion.predict_proba(X, present), fusion.predict(X, present)
    metrics = {}
    for part in REPORT_PARTS:
        rows = data.rows(part)
        if len(rows):
            split = "+".join(sorted({data.keys[i].split("/")[0] for i in rows}))
            metrics[part] = metrics_of(data.y[rows], predicted[rows], split, part, data.class_names)

    with staged_folder(run.folder) as staging:  # the folder appears (or is replaced) only once complete
        staged = fusion.save(staging)
        staged.write_predictions(fusion_predictions(data, probabilities, predicted))
        atomic_write_json(staged.metrics, metrics)
        if "report" in metrics:
            from modalities.metrics import save_confusion_png

            save_confusion_png(
                metrics["report"]["confusion"],
                staged.confusion,
                f"{name} — {metrics['report']['split']} (report part)",
                data.class_names,
            )
        if isinstance(fusion, VAEFusion):
            from .report import save_latent_picture

            labelled = np.flatnonzero(data.y >= 0)
            latents = fusion.latents(*data.inputs(fusion.reads, labelled))
            save_latent_picture(latents, data.y[labelled], staged.latents, f"{name}: latent means", data.class_names)
        if isinstance(fusion, AttentionFusion):
            from .report import save_attention_picture

            rows = data.rows("report") if len(data.rows("report")) else np.arange(len(data.keys))
            weights = fusion.attention(*data.inputs(fusion.reads, rows))
            save_attention_picture(
                weights, fusion.modalities_, staged.attention, f"{name}: mean attention, report part"
            )
        atomic_write_json(
            staged.result,
            {
                "stamp": stamp,
                "name": name,
                "kind": kind,
                "modalities": data.modalities,
                "params": params,
                "missing": data.missing(),
                "unfused": data.unfused,
                "n_clips": len(data.keys),
                "fit_seconds": round(fit_seconds, 2),
                "metrics": metrics,
                "selected_on": "select part (early stopping / weight search)",
                "reported_on": "report part",
            },
        )
    return FusionResult(name, kind, data.modalities, run.folder, metrics)
