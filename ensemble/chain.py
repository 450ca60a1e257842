"""The main job: preprocess -> train each modality -> fuse -> ablate, reusing whatever is done already.

Every stage skips finished work (cached features, models trained from the same fingerprint and options,
model outputs stamped with the model file's hash, fusions stamped with their inputs and options), so a
re-run after an interruption resumes where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from preprocess.config import MODALITIES

from .ablation import run_ablation, run_comparison
from .fusions import FUSIONS
from .outputs import canonical_modality, load_fusion_data

DEMO_ROOT = Path("data/demo")


@dataclass
class ChainSettings:
    """Everything the main job needs; defaults run the demo."""

    dataset: Path | None = None          # None: the demo dataset (made under DEMO_ROOT when missing)
    cache: Path | None = None            # default cache/<dataset folder name>
    runs: Path | None = None             # default runs/<dataset folder name>
    fusion: str = "all"                  # one of FUSIONS or "all"
    drop: list[str] = field(default_factory=list)
    weights: dict[str, float] | None = None
    ablation: str = "loo"                # loo | all | none
    workers: int = 1
    preset: str = "paper"
    seed: int = 0
    train_options: dict = field(default_factory=dict)   # passed to modalities.train.train_modality
    fusion_options: dict = field(default_factory=dict)  # passed to every fusion (epochs, units, ...)


def kept_modalities(drop: list[str]) -> list[str]:
    """The modalities left after ``drop`` (names checked; "fer" means faces)."""
    dropped = {canonical_modality(name) for name in drop}
    unknown = dropped - set(MODALITIES)
    if unknown:
        raise ValueError(f"--drop: unknown modality {sorted(unknown)}; choose from {', '.join(MODALITIES)} "
                         "('fer' also names faces)")
    kept = [m for m in MODALITIES if m not in dropped]
    if not kept:
        raise ValueError("--drop removes every modality; keep at least one")
    return kept


def _stage(number: int, text: str) -> None:
    print(f"\n[{number}/5] {text}", flush=True)


def run_chain(settings: ChainSettings) -> str:
    """Run every stage and return the comparison (and ablation) tables as Markdown."""
    from modalities.train import train_modality
    from preprocess.config import preset
    from preprocess.pipeline import run_preprocess
    from preprocess.report import format_summary

    kept = kept_modalities(settings.drop)
    if settings.fusion != "all" and settings.fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {settings.fusion!r}; choose from {', '.join(FUSIONS)} or all")
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

    kinds = list(FUSIONS) if settings.fusion == "all" else [settings.fusion]
    options = {"seed": settings.seed, "weights": settings.weights, **settings.fusion_options}
    _stage(4, f"fuse {', '.join(kept)} with {', '.join(kinds)} (outputs of each model computed once)")
    data = load_fusion_data(runs, cache, kept)
    _, comparison = run_comparison(data, kinds, runs, options)

    tables = [comparison]
    if settings.ablation != "none":
        kind = "fc" if settings.fusion == "all" else settings.fusion
        _stage(5, f"ablation of {kind} fusion ({settings.ablation}) -> {runs / 'ablation'}")
        _, ablation = run_ablation(data, kind, runs, settings.ablation, options)
        tables.append(ablation)
    else:
        _stage(5, "ablation skipped (--ablation none)")
    return "\n".join(tables)
