"""Fit one fusion on the train part, select on the select part, and save model, predictions and metrics.

RUNS/fusion/<fusion>-<modalities joined by +>/ holds fusion.json, model.keras + scaler.npz (fc, vae),
predictions.csv (key, split, part, label, p_Positive, p_Neutral, p_Negative, pred: every clip, every part),
metrics.json (train / select / report parts), confusion.png (report part) and, for vae, latents.png.
A folder whose result.json carries the same stamp (same outputs, clips, parts and options) is reused.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from preprocess.cache import atomic_write_text
from preprocess.labels import CLASS_NAMES

from .fusions import VAEFusion, accepted_options, make_fusion
from .outputs import FusionData
from .report import metrics_of

REPORT_PARTS: tuple[str, ...] = ("train", "select", "report")


@dataclass
class FusionResult:
    """Where a fitted fusion lives and its metrics per part."""

    name: str
    kind: str
    modalities: list[str]
    folder: Path
    metrics: dict  # part -> metrics dict (with "split" and "n")


def fusion_name(kind: str, modalities: list[str]) -> str:
    return f"{kind}-{'+'.join(sorted(modalities))}"


def _stamp(kind: str, data: FusionData, options: dict) -> str:
    record = {"kind": kind, "options": options, "keys": data.keys, "parts": data.parts.tolist(),
              "labels": data.y.tolist(), "outputs": {m: o.stamp for m, o in sorted(data.outputs.items())}}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_predictions(path: Path, data: FusionData, probabilities: np.ndarray, predicted: np.ndarray) -> None:
    """Per-clip probabilities and predicted class for every aligned clip."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "split", "part", "label"] + [f"p_{c}" for c in CLASS_NAMES] + ["pred"])
        for key, part, label, row, pred in zip(data.keys, data.parts, data.y, probabilities, predicted):
            writer.writerow([key, key.split("/")[0], part, int(label)] + [f"{p:.6f}" for p in row] + [int(pred)])


def read_predictions(path: Path) -> list[dict]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def metrics_from_predictions(path: Path, part: str = "report") -> dict:
    """Metrics of one part recomputed from a predictions.csv (labelled rows only)."""
    rows = [r for r in read_predictions(path) if r["part"] == part and int(r["label"]) >= 0]
    y = np.array([int(r["label"]) for r in rows], dtype=int)
    pred = np.array([int(r["pred"]) for r in rows], dtype=int)
    return metrics_of(y, pred, split="+".join(sorted({r["split"] for r in rows})), part=part)


def run_fusion(data: FusionData, kind: str, runs: Path, options: dict | None = None,
               force: bool = False) -> FusionResult:
    """Fit ``kind`` on ``data`` (its modalities), evaluate every part, save everything; reuse when unchanged."""
    options = accepted_options(kind, dict(options or {}))
    name = fusion_name(kind, data.modalities)
    folder = Path(runs) / "fusion" / name
    stamp = _stamp(kind, data, options)
    result_path = folder / "result.json"
    if not force and result_path.is_file():
        saved = json.loads(result_path.read_text())
        if saved.get("stamp") == stamp:
            return FusionResult(name, kind, data.modalities, folder, saved["metrics"])

    train, y_train = data.part("train")
    if len(y_train) == 0:
        raise ValueError(f"{name}: no labelled clips in the train part of {Path(runs) / 'partition.json'}")
    select = data.part("select")
    fusion = make_fusion(kind, **options).fit(train, y_train, validation=select if len(select[1]) else None)

    probabilities, predicted = fusion.predict_proba(data.outputs), fusion.predict(data.outputs)
    folder.mkdir(parents=True, exist_ok=True)
    fusion.save(folder)
    write_predictions(folder / "predictions.csv", data, probabilities, predicted)
    metrics = {}
    for part in REPORT_PARTS:
        rows = data.rows(part)
        if len(rows):
            split = "+".join(sorted({data.keys[i].split("/")[0] for i in rows}))
            metrics[part] = metrics_of(data.y[rows], predicted[rows], split=split, part=part)
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
    if "report" in metrics:
        from modalities.metrics import save_confusion_png

        save_confusion_png(metrics["report"]["confusion"], folder / "confusion.png",
                       f"{name} — {metrics['report']['split']} (report part)")
    if isinstance(fusion, VAEFusion):
        from .report import save_latent_picture

        labelled = np.flatnonzero(data.y >= 0)
        latents = fusion.latents({m: o.take(labelled) for m, o in data.outputs.items()})
        save_latent_picture(latents, data.y[labelled], folder / "latents.png", f"{name}: latent means")
    record = {"stamp": stamp, "name": name, "kind": kind, "modalities": data.modalities, "options": options,
              "left_out": data.left_out, "n_clips": len(data.keys), "metrics": metrics,
              "selected_on": "select part (early stopping / weight search)", "reported_on": "report part"}
    atomic_write_text(result_path, json.dumps(record, indent=2, default=str))  # last: marks the fusion done
    return FusionResult(name, kind, data.modalities, folder, metrics)
