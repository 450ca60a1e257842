"""What `gvs predict` writes into its output folder, each file written whole (atomically).

OUT/predictions.csv      one row per video: status, verdict, pooled probabilities, class shares, familiarity, the
                         scores unlike the training data (gvs.predict.familiarity), flags, reason
OUT/windows.csv          one row per window: video, start_s, end_s, each modality's and the fused probabilities,
                         familiarity and the scores unlike the training data
OUT/predictions.json     everything above, with the bundle's manifest hash and the package version
OUT/videos/<name>.json   one video's record of predictions.json (``video_record``), written when it finishes
OUT/timelines/<name>.png   probability of each class over time, with thumbnails of a few windows
OUT/people/<name>.csv    one row per person whose face the video shows (gvs.people; not with --no-people): when
                         seen, expressions and their trend, how far p(verdict) falls without them, the thumbnail
OUT/people/<name>/person-<id>.jpg   each person's largest face (blurred with --blur-faces)
OUT/emotiw/<name>.txt + OUT/emotiw.zip   EmotiW submission files (--emotiw; VGAF's classes only)

``name`` is the video's output name, unique per input (``manifest.output_names``).

Every probability column and key is one per class of the bundle (``VideoPrediction.class_names``).
"""

from __future__ import annotations

import dataclasses
import time
import zipfile
from pathlib import Path

import numpy as np

from gvs import __version__
from gvs.core.io import atomic_write_bytes, atomic_write_csv, atomic_write_json, atomic_write_text
from gvs.core.vocabulary import CLASS_NAMES
from gvs.core.workspace import PredictionsDir

from .manifest import output_names
from .predictor import FUSED, VideoPrediction, WindowPrediction
from .timeline import save_timeline, timeline_png  # noqa: F401 (timeline_png: imported from here by callers)

VGAF_COLOURS: dict[str, str] = {"positive": "#2ca02c", "neutral": "#7f7f7f", "negative": "#d62728"}  # tab10's
# green, grey and red, by VGAF class name (ignoring case)
PALETTE: tuple[str, ...] = (  # matplotlib's tab10 without VGAF's three, then tab20's light shades of the same
    "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip


def class_colours(class_names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{class name: hex colour} for a class set, the one rule every figure and page follows: VGAF's classes
    (Positive, Neutral, Negative, in any case) keep their green, grey and red; every other class takes the next
    colour of PALETTE in class order. Colours are distinct up to len(PALETTE) other classes (then they repeat)."""
    colours: dict[str, str] = {}
    others = iter(PALETTE * (len(class_names) // len(PALETTE) + 1))
    for name in class_names:
        vgaf = VGAF_COLOURS.get(name.casefold())
        colours[name] = vgaf if vgaf is not None and vgaf not in colours.values() else next(others)
    return colours


def _class_names(videos: list[VideoPrediction], class_names=None) -> tuple[str, ...]:
    """The class set of a batch of predictions: ``class_names`` (the bundle's) when given, else the videos' (one
    bundle made them all)."""
    if class_names is not None:
        return tuple(class_names)
    if not videos:
        raise ValueError("no videos and no class names: the columns of the outputs are unknown")
    return tuple(videos[0].class_names)


def write_videos_csv(out: PredictionsDir, videos: list[VideoPrediction], class_names=None) -> None:
    """predictions.csv: one row per video, a p_<class> and a share_<class> column per class of ``class_names``
    (default: the videos' classes)."""
    names = _class_names(videos, class_names)
    header = [
        "video",
        "status",
        "verdict",
        *(f"p_{c}" for c in names),
        *(f"share_{c}" for c in names),
        "windows",
        "duration_s",
        "label",
        "familiarity",
        "unfamiliar",
        "flags",
        "reason",
    ]
    rows = []
    for v in videos:
        probabilities = [f"{p:.4f}" for p in v.probabilities] if v.probabilities is not None else [""] * len(names)
        shares = [f"{v.class_shares.get(c, 0.0):.3f}" for c in names] if v.windows else [""] * len(names)
        label = names[v.label] if v.label is not None and v.label >= 0 else ""
        rows.append(
            [
                str(v.path),
                v.status,
                v.verdict or "",
                *probabilities,
                *shares,
                len(v.windows),
                f"{v.duration_s:.2f}",
                label,
                _familiarity(v.familiarity),
                "+".join(v.unfamiliar),
                "; ".join(v.flags),
                v.reason,
            ]
        )
    atomic_write_csv(out.videos_csv, header, rows)


def _familiarity(value: float | None) -> str:
    """A familiarity as a CSV cell ("" for a bundle without familiarity data)."""
    return "" if value is None else f"{value:.4f}"


PEOPLE_COLUMNS: tuple[str, ...] = ("people", "dominant_expression", "agreement")  # windows.csv's group figures


def _optional(value, digits: int = 4) -> str:
    """A number as a CSV cell, "" for None."""
    return "" if value is None else (str(value) if isinstance(value, int) else f"{value:.{digits}f}")


def write_people(out: PredictionsDir, name: str, video: VideoPrediction, blur: bool = False) -> None:
    """people/<name>.csv and each person's thumbnail (blurred with ``blur``); each record's "thumbnail" becomes
    the image's path from ``out``. Nothing (and an earlier run's files gone) when the video has no people."""
    import shutil

    import cv2

    from gvs.core.privacy import blurred_thumbnail
    from preprocess.faces import EXPRESSIONS

    out.people_csv(name).unlink(missing_ok=True)
    shutil.rmtree(out.person_thumbnail(name, 0).parent, ignore_errors=True)
    if not video.people:
        return
    rows = []
    for person in video.people:
        image = video.thumbnails.get(person["id"])
        if image is not None:
            path = out.person_thumbnail(name, person["id"])
            path.parent.mkdir(parents=True, exist_ok=True)
            image = blurred_thumbnail(image) if blur else image
            encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]))[1].tobytes()
            atomic_write_bytes(path, lambda handle, data=encoded: handle.write(data))
            person["thumbnail"] = path.relative_to(out.root).as_posix()
        rows.append(
            [
                person["id"], f"{person['first_s']:.2f}", f"{person['last_s']:.2f}", person["frames_seen"],
                person.get("skeleton_frames", ""), f"{person['mean_face_px']:.1f}",
                *(f"{person['expressions'][e]:.4f}" for e in EXPRESSIONS),
                *(f"{person['trend'][e]:+.4f}" for e in EXPRESSIONS),
                person["top_expression"], _optional(person["drop_fused"]), _optional(person["drop_faces"]),
                person.get("thumbnail", ""),
            ]
        )  # fmt: skip
    header = [
        "person", "first_s", "last_s", "frames_seen", "skeleton_frames", "mean_face_px", *(f"p_{e}" for e in EXPRESSIONS),
        *(f"trend_{e}" for e in EXPRESSIONS), "top_expression", "drop_fused", "drop_faces", "thumbnail",
    ]  # fmt: skip
    atomic_write_csv(out.people_csv(name), header, rows)


def write_windows_csv(
    out: PredictionsDir, videos: list[VideoPrediction], modalities: list[str], class_names=None
) -> None:
    """windows.csv: one row per window, a <modality>_<class> column per modality (and fused) and class."""
    names = _class_names(videos, class_names)
    columns = [f"{m}_{c}" for m in [*modalities, FUSED] for c in names]
    header = [
        "video", "window", "start_s", "end_s", *columns, "predicted", "fused_from", "familiarity", "unfamiliar",
        *PEOPLE_COLUMNS, "flags",
    ]  # fmt: skip
    rows = []
    for v in videos:
        for w in v.windows:
            values = [f"{w.probabilities[m][i]:.4f}" for m in [*modalities, FUSED] for i in range(len(names))]
            rows.append(
                [
                    str(v.path),
                    w.index,
                    f"{w.start_s:.2f}",
                    f"{w.end_s:.2f}",
                    *values,
                    w.predicted,
                    "+".join(w.fused_from),
                    _familiarity(w.familiarity),
                    "+".join(w.unfamiliar),
                    _optional(w.people),
                    w.dominant or "",
                    _optional(w.agreement, 3),
                    "; ".join(w.flags),
                ]
            )
    atomic_write_csv(out.windows_csv, header, rows)


def video_record(v: VideoPrediction) -> dict:
    """One video's record of predictions.json (and of videos/<name>.json): everything but the thumbnails."""
    return {
        "video": str(v.path),
        "status": v.status,
        "verdict": v.verdict,
        "reason": v.reason,
        "flags": v.flags,
        "probabilities": dict(zip(v.class_names, map(float, v.probabilities))) if v.probabilities is not None else None,
        "class_shares": v.class_shares,
        "duration_s": v.duration_s,
        "seconds": round(v.seconds, 3),
        "label": v.class_names[v.label] if v.label is not None and v.label >= 0 else None,
        "familiarity": v.familiarity,
        "familiarity_scores": v.familiarity_scores,
        "unfamiliar": v.unfamiliar,
        "people": v.people,
        "windows": [
            {
                "index": w.index,
                "start_s": w.start_s,
                "end_s": w.end_s,
                "fused_from": w.fused_from,
                "flags": w.flags,
                "familiarity": w.familiarity,
                "familiarity_scores": w.familiarity_scores,
                "unfamiliar": w.unfamiliar,
                "people": w.people,
                "dominant": w.dominant,
                "agreement": w.agreement,
                "probabilities": {m: dict(zip(v.class_names, map(float, p))) for m, p in w.probabilities.items()},
            }
            for w in v.windows
        ],
    }


def video_from_record(record: dict, class_names: tuple[str, ...], label: int | None = None) -> VideoPrediction:
    """The VideoPrediction a :func:`video_record` was made from (without thumbnails), with ``label``; the record's
    other keys that name a field of VideoPrediction or WindowPrediction (JSON values) are taken as they are."""

    def vector(probabilities: dict[str, float]) -> np.ndarray:
        return np.array([probabilities[c] for c in class_names], dtype=np.float32)

    def same_fields(kind, values: dict, made: set[str]) -> dict:
        return {f.name: values[f.name] for f in dataclasses.fields(kind) if f.name in values and f.name not in made}

    windows = [
        WindowPrediction(
            probabilities={m: vector(p) for m, p in w["probabilities"].items()},
            class_names=class_names,
            **same_fields(WindowPrediction, w, {"probabilities", "class_names", "thumbnail"}),
        )
        for w in record["windows"]
    ]
    probabilities = record["probabilities"]
    return VideoPrediction(
        path=Path(record["video"]),
        windows=windows,
        probabilities=None if probabilities is None else vector(probabilities),
        label=label,
        class_names=class_names,
        **same_fields(VideoPrediction, record, {"path", "windows", "probabilities", "label", "class_names"}),
    )


def write_json(out: PredictionsDir, videos: list[VideoPrediction], bundle_info: dict, settings: dict) -> None:
    """predictions.json: the package version, the settings, the bundle's summary and every video's record."""
    write_json_records(out, [video_record(v) for v in videos], bundle_info, settings)


def write_json_records(out: PredictionsDir, records: list[dict], bundle_info: dict, settings: dict) -> None:
    """predictions.json from videos' records (:func:`video_record`)."""
    atomic_write_json(
        out.json,
        {
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **settings,
            "bundle": bundle_info,
            "videos": records,
        },
    )


def emotiw_refusal(class_names: tuple[str, ...] | list[str]) -> str | None:
    """Why EmotiW submission files cannot be written for predictions of ``class_names`` (None when they can:
    EmotiW's files name one of VGAF's three classes)."""
    if tuple(class_names) == CLASS_NAMES:
        return None
    return (
        f"no EmotiW submission files: EmotiW takes VGAF's classes ({', '.join(CLASS_NAMES)}), and this bundle "
        f"predicts {', '.join(class_names)}"
    )


def write_emotiw(
    out: PredictionsDir, videos: list[VideoPrediction], class_names=None, names: dict[Path, str] | None = None
) -> Path | None:
    """One <name>.txt per predicted video holding its class name, and the zip of them EmotiW expects (``names``:
    {video path: output name}, default each file's name without the extension); for a class set other than VGAF's,
    nothing is written (a note is printed) and None is returned."""
    refusal = emotiw_refusal(_class_names(videos, class_names))
    if refusal is not None:
        print(f"note: {refusal}")
        return None
    names = names or output_names([v.path for v in videos])
    done = sorted((names[v.path], v.verdict) for v in videos if v.verdict is not None)
    for name, verdict in done:
        atomic_write_text(out.emotiw / f"{name}.txt", verdict + "\n")

    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, verdict in done:
                archive.writestr(f"{name}.txt", verdict + "\n")

    atomic_write_bytes(out.emotiw_zip, write)
    return out.emotiw_zip


def write_tables(
    folder: PredictionsDir,
    videos: list[VideoPrediction],
    modalities: list[str],
    bundle_info: dict,
    settings: dict,
    records: list[dict] | None = None,
) -> None:
    """predictions.csv, windows.csv and predictions.json of ``videos`` (``records``: their video_records, when
    made already). The columns are the classes of ``bundle_info["class_names"]`` (default the videos')."""
    class_names = _class_names(videos, bundle_info.get("class_names"))
    write_videos_csv(folder, videos, class_names)
    write_windows_csv(folder, videos, modalities, class_names)
    write_json_records(
        folder, records if records is not None else [video_record(v) for v in videos], bundle_info, settings
    )


def write_outputs(
    out: str | Path,
    videos: list[VideoPrediction],
    modalities: list[str],
    bundle_info: dict,
    settings: dict,
    emotiw: bool = False,
) -> PredictionsDir:
    """Write every output file of a batch of predictions into ``out`` at once; returns its layout (`gvs predict`
    writes video by video instead: ``batch.PredictionRun``). ``settings``: how the videos were predicted
    (Predictor.settings: pool, stride, precision), recorded in predictions.json. The columns are the classes of
    ``bundle_info["class_names"]`` (the bundle's; default the videos'). ``emotiw`` writes the EmotiW submission
    files when the classes are VGAF's (else a note says why not)."""
    folder = PredictionsDir(out)
    write_tables(folder, videos, modalities, bundle_info, settings)
    names = output_names([v.path for v in videos])
    for video in videos:
        if video.windows:
            save_timeline(video, folder.timeline(names[video.path]))
    if emotiw:
        write_emotiw(folder, videos, bundle_info.get("class_names"), names)
    return folder
