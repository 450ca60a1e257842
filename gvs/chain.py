"""The whole chain: preprocess -> train each modality -> fuse -> ablate, reusing whatever is done already.

It sits above the four stages (it imports all of them; none imports it).

Every stage skips finished work (cached features, models trained from the same fingerprint and options,
model outputs stamped with the model file's hash, fusions stamped with their inputs and options), so a
re-run after an interruption resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gvs.core.errors import InputError
from gvs.core.vocabulary import CLASS_NAMES, MODALITIES, check_modalities


@dataclass
class ChainSettings:
    """Everything the main job needs; defaults run the demo."""

    dataset: Path | None = None  # None: the demo dataset (made under DEMO_ROOT when missing)
    cache: Path | None = None  # default cache/<dataset folder name>
    runs: Path | None = None  # default runs/<dataset folder name>
    fusion: str = "all"  # one of FUSIONS or "all"
    drop: list[str] = field(default_factory=list)
    weights: dict[str, float] | None = None
    ablation: str = "loo"  # loo | all | none
    workers: int = 1
    preset: str = "paper"
    seed: int = 0
    train_options: dict = field(default_factory=dict)  # passed to modalities.train.train_modality
    fusion_options: dict = field(default_factory=dict)  # passed to every fusion (epochs, units, ...)


def kept_modalities(drop: list[str]) -> list[str]:
    """The modalities left after ``drop`` (names checked; "fer" means faces)."""
    dropped = check_modalities(drop, "--drop")
    kept = [m for m in MODALITIES if m not in dropped]
    if not kept:
        raise InputError("--drop removes every modality; keep at least one")
    return kept


def _stage(number: int, text: str) -> None:
    print(f"\n[{number}/7] {text}", flush=True)


def check_fusion(fusion: str) -> None:
    """InputError unless ``fusion`` names a fusion or is "all"."""
    from ensemble.fusions import FUSIONS

    if fusion != "all" and fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)} or all")


def run_fusions(
    cache: Path,
    runs: Path,
    modalities: list[str],
    fusion: str = "all",
    ablation: str = "loo",
    options: dict | None = None,
    stage: int | None = None,
) -> str:
    """Fit the fusions over the trained ``modalities``, compare them (and each modality alone), ablate one.

    Returns the comparison (and ablation) tables as Markdown; they are also written under RUNS/.
    """
    from ensemble.ablation import run_ablation, run_comparison
    from ensemble.fusions import FUSIONS
    from ensemble.outputs import load_fusion_data

    check_fusion(fusion)
    kinds = list(FUSIONS) if fusion == "all" else [fusion]
    if stage:
        _stage(stage, f"fuse {', '.join(modalities)} with {', '.join(kinds)} (outputs of each model computed once)")
    data = load_fusion_data(runs, cache, modalities)
    _, comparison = run_comparison(data, kinds, runs, options)
    tables = [comparison]
    kind = "fc" if fusion == "all" else fusion
    if ablation == "none":
        if stage:
            _stage(stage + 1, "ablation skipped (--ablation none)")
    else:
        if stage:
            _stage(stage + 1, f"ablation of {kind} fusion ({ablation}) -> {runs}")
        _, table = run_ablation(data, kind, runs, ablation, options)
        tables.append(table)
    return "\n".join(tables)


def run_chain(settings: ChainSettings) -> str:
    """Run every stage, printing its progress, the tables and the prediction; returns the tables (Markdown) and the
    prediction line."""
    from modalities.train import train_modality
    from preprocess.cli import DEMO_ROOT
    from preprocess.config import preset
    from preprocess.pipeline import run_preprocess
    from preprocess.report import format_summary

    kept = kept_modalities(settings.drop)
    check_fusion(settings.fusion)
    dataset = settings.dataset
    if dataset is None:
        from preprocess.demo import make_demo

        _stage(1, f"demo dataset in {DEMO_ROOT} (made once, then reused)")
        dataset = make_demo(DEMO_ROOT)
    else:
        _stage(1, f"dataset {dataset}")
    name = Path(dataset).resolve().name
    cache = settings.cache or Path("cache") / name
    runs = settings.runs or Path("runs") / name

    _stage(2, f"preprocess {dataset} -> {cache} (preset {settings.preset}; cached clips are skipped)")
    summary = run_preprocess(dataset, cache, preset(settings.preset), tuple(kept), workers=settings.workers)
    print(format_summary(summary))

    _stage(3, f"train {', '.join(kept)} -> {runs} (models trained with the same features and options are reused)")
    for modality in kept:
        train_modality(modality, cache, runs, seed=settings.seed, verbose=2, **settings.train_options)

    options = {"seed": settings.seed, "weights": settings.weights, **settings.fusion_options}
    tables = run_fusions(cache, runs, kept, settings.fusion, settings.ablation, options, stage=4)
    print("\n" + tables)
    prediction = export_and_predict(runs, dataset, settings.fusion)
    print(prediction)
    return tables + "\n" + prediction


def export_and_predict(runs: Path, dataset: Path, fusion: str) -> str:
    """Export RUNS' bundle (the chosen fusion, fc when "all") and predict one clip of the dataset with it."""
    from gvs.core.workspace import RunsDir
    from predict.bundle import export_bundle
    from predict.cli import expand_inputs
    from predict.predictor import Predictor

    bundle = RunsDir(runs).bundle_path
    _stage(6, f"export the model bundle -> {bundle} (`gvs predict` uses it by default)")
    folder = export_bundle(runs, bundle, None if fusion == "all" else fusion)
    videos, _ = expand_inputs([Path(dataset)])
    labelled = [v for v in videos if v[1] is not None] or videos
    path, label = sorted(labelled, key=lambda v: (v[0].parent.name != "Val", str(v[0])))[0]
    _stage(7, f"predict {path} with {folder} (`gvs predict VIDEO...` does this for any video)")
    video = Predictor(folder).predict_video(path, label)
    if video.verdict is None:
        return f"prediction of {path} failed: {video.reason}"
    truth = f" (labelled {CLASS_NAMES[label]})" if label is not None and label >= 0 else ""
    shares = ", ".join(f"{name} {share:.0%}" for name, share in video.class_shares.items())
    return (
        f"{path.name}: {video.verdict}{truth}, p = "
        + ", ".join(f"{n} {p:.2f}" for n, p in zip(CLASS_NAMES, video.probabilities))
        + f"; {len(video.windows)} windows: {shares}"
    )
