"""Class sets other than VGAF's three downstream of the predictor: `gvs predict`'s files, the report's pages, the
server's job page, the inputs' labels, and the one colour rule they all draw with."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import keras
import numpy as np
import pytest
from matplotlib.colors import to_hex

from gvs.core.errors import InputError
from gvs.core.predictions import Predictions
from gvs.core.vocabulary import CLASS_NAMES
from gvs.predict.batch import noted as _noted
from gvs.predict.cli import expand_inputs
from gvs.predict.outputs import PALETTE, class_colours, write_outputs
from gvs.predict.predictor import FUSED, VideoPrediction, WindowPrediction, class_shares, pool_probabilities
from gvs.report import lime_frame, modality_shares, occlusion
from gvs.report.explain import Report, check_class
from gvs.report.faithfulness import faithfulness_section
from gvs.report.html import write_index
from gvs.report.verdict import verdict_section
from preprocess.config import PreprocessConfig
from preprocess.scene import prepare_frames
from tests.report_fakes import KnownPredictor, KnownStream, known_window, probabilities_from
from tests.test_report_lime_pixels import CELL, HEIGHT, KEY, REGION, WIDTH, PatchBackbone, _frames

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
TWO = ("calm", "excited")
MODALITIES = ["pose", "audio"]


def random_video(path: str, class_names: tuple[str, ...], windows: int, rng, label: int | None = None):
    """A VideoPrediction of ``windows`` windows with random probabilities over ``class_names``."""
    made = []
    for index in range(windows):
        probabilities = {m: rng.dirichlet(np.ones(len(class_names))) for m in [*MODALITIES, FUSED]}
        flags = ["fused from pose (no audio track)"] if index == 0 else []
        fused_from = ["pose"] if index == 0 else MODALITIES
        made.append(
            WindowPrediction(index, 2.2 * index, 2.2 * index + 4.4, probabilities, fused_from, flags, None, class_names)
        )
    fused = np.stack([w.probabilities[FUSED] for w in made])
    return VideoPrediction(
        Path(path),
        "done",
        made,
        pool_probabilities(fused),
        class_shares(fused, class_names),
        duration_s=2.2 * windows + 2.2,
        label=label,
        class_names=class_names,
    )


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


# ----- the colour rule -----


def test_vgaf_classes_keep_their_colours_and_any_other_set_gets_distinct_ones():
    assert class_colours(CLASS_NAMES) == {
        "Positive": to_hex("tab:green"),
        "Neutral": to_hex("tab:grey"),
        "Negative": to_hex("tab:red"),
    }
    for names in [
        TWO,
        EMOTIONS,
        ("Positive", "Negative", "Other"),  # VGAF names among others: no palette colour repeats theirs
        ("positive", "Positive", "mixed"),  # the second spelling of a VGAF class takes a palette colour
        tuple(f"class {i}" for i in range(len(PALETTE))) + CLASS_NAMES,
    ]:
        colours = class_colours(names)
        assert list(colours) == list(names)
        assert len(set(colours.values())) == len(names), (names, colours)
        assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours.values())
        assert class_colours(names) == colours  # fixed: the same set always gets the same colours
    assert class_colours(EMOTIONS)["neutral"] == to_hex("tab:grey")  # VGAF's names in any case
    assert [class_colours(TWO)[c] for c in TWO] == [to_hex("tab:blue"), to_hex("tab:orange")]  # tab10 in order
    assert set(PALETTE).isdisjoint(class_colours(CLASS_NAMES).values())


# ----- gvs predict's files -----


@pytest.mark.parametrize("class_names", [EMOTIONS, TWO], ids=["7 classes", "2 classes"])
def test_prediction_files_have_a_column_per_class_and_the_right_verdict(tmp_path, capsys, class_names):
    rng = np.random.default_rng(len(class_names))
    videos = [random_video(f"v{i}.mp4", class_names, 3 + i, rng, label=i % len(class_names)) for i in range(3)]
    videos.append(VideoPrediction(Path("broken.mp4"), "failed", reason="broken.mp4: moov atom not found"))
    info = {"class_names": list(class_names), "manifest_sha256": "0" * 64}
    folder = write_outputs(tmp_path / "out", videos, MODALITIES, info, {"pool": "mean"}, emotiw=True)

    header, rows = read_csv(folder.videos_csv)
    assert [c for c in header if c.startswith("p_")] == [f"p_{c}" for c in class_names]
    assert [c for c in header if c.startswith("share_")] == [f"share_{c}" for c in class_names]
    for video, row in zip(videos, rows):
        if video.status == "failed":
            assert row["status"] == "failed" and row["verdict"] == "" and row["p_" + class_names[0]] == ""
            continue
        written = np.array([float(row[f"p_{c}"]) for c in class_names])
        np.testing.assert_allclose(written, video.probabilities, atol=1e-4)
        assert row["verdict"] == video.verdict == class_names[int(np.argmax(written))]
        assert row["label"] == class_names[video.label]
        shares = [float(row[f"share_{c}"]) for c in class_names]
        assert sum(shares) == pytest.approx(1.0, abs=0.01)

    header, windows = read_csv(folder.windows_csv)
    columns = [f"{m}_{c}" for m in [*MODALITIES, FUSED] for c in class_names]
    assert header == [
        "video", "window", "start_s", "end_s", *columns, "predicted", "fused_from", "familiarity", "unfamiliar",
        "people", "dominant_expression", "agreement", "flags",
    ]  # fmt: skip
    assert len(windows) == sum(len(v.windows) for v in videos)
    for row in windows:
        fused = [float(row[f"fused_{c}"]) for c in class_names]
        assert row["predicted"] == class_names[int(np.argmax(fused))]
    assert windows[0]["fused_from"] == "pose" and "no audio track" in windows[0]["flags"]

    record = json.loads(folder.json.read_text())
    first = record["videos"][0]
    assert record["bundle"]["class_names"] == list(class_names)  # the class order (JSON keys are sorted)
    assert set(first["probabilities"]) == set(first["class_shares"]) == set(class_names)
    assert [first["probabilities"][c] for c in class_names] == pytest.approx(videos[0].probabilities.tolist())
    assert first["verdict"] == videos[0].verdict and first["label"] == class_names[0]
    assert set(first["windows"][0]["probabilities"][FUSED]) == set(class_names)
    assert record["videos"][-1]["probabilities"] is None
    assert folder.timeline("v0").stat().st_size > 10_000

    assert not folder.emotiw_zip.exists() and not folder.emotiw.exists()  # EmotiW takes VGAF's classes only
    printed = capsys.readouterr().out
    assert "no EmotiW submission files" in printed and ", ".join(class_names) in printed


def test_vgaf_predictions_still_get_emotiw_files(tmp_path, capsys):
    rng = np.random.default_rng(3)
    video = random_video("1_1.mp4", CLASS_NAMES, 2, rng)
    folder = write_outputs(tmp_path, [video], MODALITIES, {"class_names": list(CLASS_NAMES)}, {}, emotiw=True)
    assert (folder.emotiw / "1_1.txt").read_text().strip() == video.verdict
    assert folder.emotiw_zip.is_file() and "EmotiW" not in capsys.readouterr().out


# ----- inputs and their labels -----


def test_inputs_labels_become_indices_into_the_bundle_classes(tmp_path):
    root = tmp_path / "vgaf"
    (root / "Val").mkdir(parents=True)
    for name in ("1_1", "1_2", "1_3"):
        (root / "Val" / f"{name}.mp4").write_bytes(b"not decoded here")
    (root / "Val_labels.txt").write_text("Vid_name Label\n1_1 1\n1_2 2\n1_3 3\n")
    listing = tmp_path / "list.csv"
    listing.write_text("video,label\nvgaf/Val/1_1.mp4,Excited\nvgaf/Val/1_2.mp4,calm\nvgaf/Val/1_3.mp4,\n")

    notes: dict[Path, str] = {}
    videos, skipped = expand_inputs([root], ("Negative", "Positive"), notes)
    labels = {path.stem: label for path, label in videos}
    assert labels == {"1_1": 1, "1_2": None, "1_3": 0} and not skipped  # translated by name
    assert list(notes) == [root / "Val" / "1_2.mp4"]
    assert "'Neutral'" in notes[root / "Val" / "1_2.mp4"] and "Negative, Positive" in notes[root / "Val" / "1_2.mp4"]

    videos, _ = expand_inputs([listing], TWO)
    assert [label for _, label in videos] == [1, 0, None]
    with pytest.raises(InputError, match="unknown label 'Excited'.*Positive, Neutral, Negative"):
        expand_inputs([listing], CLASS_NAMES)

    video = random_video("1_2.mp4", ("Negative", "Positive"), 2, np.random.default_rng(0))
    noted = _noted(video, notes[root / "Val" / "1_2.mp4"])
    assert noted.status == "flagged" and noted.flags[-1].startswith("label 'Neutral'")
    assert _noted(video, None) is video


def test_the_class_to_explain_is_checked_against_the_bundle():
    check_class(None, TWO)
    check_class("excited", TWO)
    with pytest.raises(InputError, match="'Negative'.*calm, excited"):
        check_class("Negative", TWO)


# ----- the report of a two-class bundle -----


def _patch_head(steps: int) -> keras.Model:
    """(B, steps, 8, 12, 3) -> 2 probabilities; evidence for class 0 from the green patch of frame KEY."""
    rows, columns = (slice(s.start // CELL, s.stop // CELL) for s in REGION)
    inputs = keras.Input((steps, HEIGHT // CELL, WIDTH // CELL, 3))
    evidence = keras.layers.Lambda(
        lambda x: 4.0 * keras.ops.mean(x[:, KEY, rows, columns, 0], axis=(1, 2))[:, None] - 1.0
    )(inputs)
    return keras.Model(inputs, probabilities_from(evidence, len(TWO)))


def _against(steps: int) -> keras.Model:
    """(B, steps, 2) -> 2 probabilities whose evidence is minus the mean of feature 0."""
    inputs = keras.Input((steps, 2))
    evidence = keras.layers.Lambda(lambda x: -keras.ops.mean(x[:, :, 0], axis=1)[:, None])(inputs)
    return keras.Model(inputs, probabilities_from(evidence, len(TWO)))


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, text: str) -> None:
        self.text.append(text)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())

    def styles(self, tag: str = "span") -> str:
        return " ".join(attrs.get("style", "") for name, attrs in self.tags if name == tag)


@pytest.fixture(scope="module")
def two_class_report() -> Report:
    """The report of one window of a bundle predicting calm / excited, with every section the fakes can make."""
    backbone = PatchBackbone()
    frames = _frames()
    features = {
        "scene": backbone.forward(prepare_frames(frames, WIDTH, HEIGHT)).numpy(),
        "pose": np.full((len(frames), 2), 0.5, np.float32),
    }
    stream = KnownStream(PreprocessConfig(scene_width=WIDTH, scene_height=HEIGHT), {"scene": backbone})
    predictor = KnownPredictor(
        {"scene": _patch_head(len(frames)), "pose": _against(len(frames))}, {"scene": 2.0, "pose": 1.0}, stream, TWO
    )
    window = known_window(predictor, features, frames, class_index=1)  # explain "excited", whatever the verdict
    fused = window.prediction.probabilities[FUSED][None]
    video = VideoPrediction(
        Path("two classes.mp4"),
        "done",
        [window.prediction],
        fused[0],
        class_shares(fused, TWO),
        duration_s=1.0,
        class_names=TWO,
    )
    moments = occlusion.occlusion(window, seed=0)
    found = lime_frame.lime_frame(window, KEY, samples=40, segments=20, seed=0, batch=16)
    shares = modality_shares.modality_shares(window)
    sections = [
        verdict_section(video, window),
        occlusion.section(moments, window),
        lime_frame.section(found, window),
        modality_shares.section(shares, window),
        faithfulness_section({"key moments": moments.curve, "superpixels (LIME, fused)": found.curve}, "excited"),
    ]
    return Report(video, window, sections, {"sections": 1.0}), found


def test_lime_reads_the_explained_class_of_a_two_class_bundle(two_class_report):
    report, found = two_class_report
    window = report.window
    assert window.class_name == "excited" and window.class_names == TWO
    # LIME's first sample is the unchanged frame: its columns must be the explained class of each source
    assert found.probability[FUSED] == pytest.approx(float(window.prediction.probabilities[FUSED][1]), abs=1e-5)
    assert found.probability["scene"] == pytest.approx(float(window.prediction.probabilities["scene"][1]), abs=1e-5)


def test_a_two_class_report_page(two_class_report, tmp_path):
    report, _ = two_class_report
    probabilities = report.video.probabilities
    verdict = TWO[int(np.argmax(probabilities))]
    page = Page(report.write_html(tmp_path, "two").read_text(encoding="utf-8"))
    plain = page.plain
    assert f"Verdict {verdict} {probabilities.max():.2f}" in plain
    assert f"calm {probabilities[0]:.2f}, excited {probabilities[1]:.2f}" not in plain  # drawn as the card
    assert "explained excited, window" in plain
    assert "Probabilities per class calm excited says" in plain
    assert not re.search(r"Positive|Neutral|Negative", plain)
    colours = class_colours(TWO)
    styles = page.styles()
    widths = re.findall(r"--class: (#[0-9a-f]{6}); width: ([\d.]+)%", styles)
    assert widths == [(colours[c], f"{100 * p:.1f}") for c, p in zip(TWO, probabilities)]
    assert f"--class: {colours[verdict]}" in page.styles("div")

    entries = [
        {"video": "/v/a.mp4", "status": "done", "page": "two.html", "verdict": verdict,
         "probabilities": [float(p) for p in probabilities], "flags": [], "seconds": 3.0},
        {"video": "/v/b.mp4", "status": "failed", "reason": "/v/b.mp4: no video stream"},
    ]  # fmt: skip
    index = Page(write_index(tmp_path, entries, TWO).read_text(encoding="utf-8"))
    assert "Fused probabilities (calm / excited)" in index.plain
    assert f"{probabilities[0]:.2f} / {probabilities[1]:.2f}" in index.plain
    assert f"--class: {colours[verdict]}" in index.styles()


# ----- the server's job page -----


def test_a_seven_class_job_page(tmp_path):
    from gvs.serve.jobs import Job, public_view
    from gvs.serve.pages import bars, job_page
    from gvs.serve.runner import _by_class, modality_probabilities

    video = random_video("party.mp4", EMOTIONS, 4, np.random.default_rng(7))
    job = Job("abc", "party.mp4", tmp_path / "upload", tmp_path, status="done", stage="done")
    job.verdict, job.probabilities = video.verdict, _by_class(video.probabilities, EMOTIONS)
    job.class_names = list(EMOTIONS)
    job.modalities, job.windows, job.duration_s = modality_probabilities(video), 4, video.duration_s
    job.files = ["timeline.png", "predictions.json", "report.html"]
    assert list(job.probabilities) == list(EMOTIONS) and list(job.modalities) == MODALITIES
    assert all(list(p) == list(EMOTIONS) for p in job.modalities.values())

    drawn = bars(job.probabilities)
    assert [b["name"] for b in drawn] == list(EMOTIONS)
    assert [b["colour"] for b in drawn] == [class_colours(EMOTIONS)[c] for c in EMOTIONS]
    view = json.loads(json.dumps(public_view(job, 0, 0), sort_keys=True))  # as the API and state.json have it
    assert view["class_names"] == list(EMOTIONS)
    page = Page(job_page(view).body.decode())
    assert f"model {' '.join(EMOTIONS)}" in page.plain
    assert f"Verdict {video.verdict}" in page.plain
    assert len(re.findall(r"--class: #[0-9a-f]{6}; width:", page.styles())) == len(EMOTIONS)


# ----- saliency: the models' classes -----


def test_saliency_reads_the_models_classes_and_translates_the_cache_labels(tmp_path):
    from gvs.core.io import atomic_write_json
    from gvs.core.workspace import RunsDir
    from saliency.explain import Explainer, pick_clips
    from saliency.figures import clip_title
    from tests.synthetic import make_synthetic_cache

    cache = make_synthetic_cache(tmp_path / "cache", n_per_class=1, splits=("Val",), class_names=TWO)
    runs = RunsDir(tmp_path / "runs")
    runs.modality("pose").folder.mkdir(parents=True)
    atomic_write_json(runs.modality("pose").config, {"classes": ["excited", "bored", "calm"]})
    explainer = Explainer(cache, runs.root, tmp_path / "out")
    assert explainer.class_names("pose") == ("excited", "bored", "calm")
    assert explainer.class_names("audio") == CLASS_NAMES  # no config.json: a run from before class sets
    assert [explainer.model_label(i, ("excited", "bored", "calm")) for i in (0, 1, -1, None)] == [2, 0, -1, -1]
    assert explainer.model_label(0, CLASS_NAMES) == -1  # calm is none of VGAF's classes: unlabelled
    clip = explainer.read_clip("pose", "Val/1_1")
    assert clip.label == {"calm": 2, "excited": 0}[TWO[cached_label(cache, "Val/1_1")]]

    two_class = Predictions(
        np.array(["Val/a", "Val/b"]), np.array([0, 0]), np.array([[0.9, 0.1], [0.2, 0.8]]), np.array(["", ""]),
        ("excited", "bored"),
    )  # fmt: skip
    assert pick_clips(two_class, "Val", 1) == [("Val/a", "confident"), ("Val/b", "wrong")]
    title = clip_title("pose", "Val/a", 2, np.array([0.1, 0.7, 0.2]), ("excited", "bored", "calm"))
    assert title == "pose · Val/a · true calm · predicted bored (0.70)"


def cached_label(cache: Path, key: str) -> int:
    """The cached label (an index into the cache's classes) of clip ``key``."""
    from gvs.core.workspace import CacheDir

    return CacheDir(cache).labels()[key]
