"""The whole chain: preprocess -> train each modality -> fuse -> ablate, reusing whatever is done already.

It sits above the four stages (it imports all of them; none imports it).

Every stage skips finished work (cached features, models trained from the same fingerprint and options,
model outputs stamped with the model file's hash, fusions stamped with their inputs and options), so a
re-run after an interruption resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from gvs.core.errors import InputError
from gvs.core.vocabulary import MODALITIES, check_modalities


@dataclass
class ChainSettings:
    """Everything the main job needs; defaults run the demo. An experiment file (``gvs run --config``) holds
    these fields; every run writes them, resolved, to RUNS/config.toml."""

    dataset: Path | None = None  # None: the demo dataset (made under DEMO_ROOT), or only ``cache`` when it is given
    cache: Path | None = None  # default cache/<dataset folder name>
    runs: Path | None = None  # default runs/<dataset folder name>
    fusion: str = "all"  # one of FUSIONS or "all"
    drop: list[str] = field(default_factory=list)
    weights: dict[str, float] | None = None
    ablation: str = "loo"  # loo | all | none
    workers: int = 1
    preset: str = "paper"
    seeds: list[int] = field(default_factory=lambda: [0])  # one chain per seed (features reused); mean ± std
    protocol: str = "ours"  # ours: select on a group-wise hold-out of Train, report on Val; paper: both on Val
    select_fraction: float = 0.2
    oof: int = 0  # K > 1: fc/vae fusions learn from K-fold out-of-fold hidden vectors of the train part
    calibrate: bool = False  # temperature scaling of every model, fitted on the select part
    bootstrap: int = 2000  # resamples of the bootstrap intervals and paired tests
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
    *,
    calibrate: bool = False,
    bootstrap: int = 2000,
    oof: int = 0,
) -> str:
    """Fit the fusions over the trained ``modalities``, compare them (and each modality alone), ablate one.

    ``oof`` K > 1: fc, vae, attention and lstm learn from K-fold out-of-fold outputs of the train part (each modality's
    fold models trained with its own options). Returns the comparison (and ablation) tables as Markdown; they
    are also written under RUNS/.
    """
    from ensemble.ablation import run_ablation, run_comparison
    from ensemble.evaluation import EvaluationSettings
    from ensemble.fusions import FUSIONS
    from ensemble.outputs import load_fusion_data

    check_fusion(fusion)
    if oof == 1 or oof < 0:
        raise InputError(f"--oof {oof}: give the number of folds, 2 or more (0: off)")
    kinds = list(FUSIONS) if fusion == "all" else [fusion]
    if stage:
        _stage(stage, f"fuse {', '.join(modalities)} with {', '.join(kinds)} (outputs of each model computed once)")
    data = load_fusion_data(runs, cache, modalities)
    learned_from = _out_of_fold(data, cache, runs, oof) if oof else data
    evaluation = EvaluationSettings(bootstrap, (options or {}).get("seed", 0), calibrate)
    _, comparison = run_comparison(data, kinds, runs, options, evaluation=evaluation, fusion_data=learned_from)
    tables = [comparison]
    kind = "fc" if fusion == "all" else fusion
    if ablation == "none":
        if stage:
            _stage(stage + 1, "ablation skipped (--ablation none)")
    else:
        if stage:
            _stage(stage + 1, f"ablation of {kind} fusion ({ablation}) -> {runs}")
        ablated = learned_from if FUSIONS[kind].learns_from_outputs else data
        _, table = run_ablation(ablated, kind, runs, ablation, options, evaluation=evaluation)
        tables.append(table)
    return "\n".join(tables)


def _out_of_fold(data, cache: Path, runs: Path, folds: int):
    """``data`` with its train rows' outputs replaced by K-fold out-of-fold ones (fold models trained with each
    modality model's own options, read from its config.json)."""
    from ensemble.oof import out_of_fold_outputs, with_out_of_fold
    from gvs.core.workspace import RunsDir

    oof = {}
    for modality in data.modalities:
        config = RunsDir(runs).modality(modality).read_config()
        options = config["options"] | {k: tuple(v) if isinstance(v, list) else v for k, v in config["sizes"].items()}
        oof[modality] = out_of_fold_outputs(runs, cache, modality, folds, options)
    return with_out_of_fold(data, oof)


def run_chain(settings: ChainSettings) -> str:
    """Run every stage for each seed, printing its progress, the tables and the prediction; returns the tables
    (Markdown) and the prediction line. RUNS/config.toml gets the resolved settings first."""
    from gvs.core.workspace import RunsDir
    from gvs.experiment import write_config

    kept = kept_modalities(settings.drop)
    check_fusion(settings.fusion)
    if not settings.seeds:
        raise InputError("--seeds: give at least one seed")
    dataset, cache, runs = _locations(settings)
    resolved = replace(settings, dataset=dataset, cache=cache, runs=runs)
    write_config(resolved, RunsDir(runs).config_path)
    if dataset is not None:
        _preprocess(resolved, kept)
    else:
        _stage(2, f"preprocessing skipped: training from the features in {cache}")
    tables = []
    for seed in settings.seeds:
        seed_runs = runs if len(settings.seeds) == 1 else RunsDir(runs).seed_runs(seed).root
        tables.append(_train_and_fuse(resolved, kept, seed, seed_runs))
    if len(settings.seeds) > 1:
        from ensemble.seeds import seed_table

        _stage(5, f"mean ± std over seeds {', '.join(map(str, settings.seeds))} -> {RunsDir(runs).seeds_stem()}.md")
        tables.append(seed_table(runs, settings.seeds)[1])
    text = "\n".join(tables)
    print("\n" + text)
    if dataset is None:
        return text
    first = runs if len(settings.seeds) == 1 else RunsDir(runs).seed_runs(settings.seeds[0]).root
    prediction = export_and_predict(first, dataset, settings.fusion)
    print(prediction)
    return text + "\n" + prediction


def _locations(settings: ChainSettings) -> tuple[Path | None, Path, Path]:
    """(dataset or None when training from an existing cache, cache, runs), resolved to absolute paths."""
    dataset = settings.dataset
    if dataset is None and settings.cache is None:
        from preprocess.cli import DEMO_ROOT
        from preprocess.demo import make_demo

        _stage(1, f"demo dataset in {DEMO_ROOT} (made once, then reused)")
        dataset = make_demo(DEMO_ROOT)
    elif dataset is not None:
        _stage(1, f"dataset {dataset}")
    elif not Path(settings.cache).is_dir():
        raise InputError(f"{settings.cache}: no such cache; give a DATASET to preprocess, or an existing --cache")
    name = Path(dataset).resolve().name if dataset is not None else Path(settings.cache).resolve().name
    cache = Path(settings.cache or Path("cache") / name).resolve()
    runs = Path(settings.runs or Path("runs") / name).resolve()
    return (Path(dataset).resolve() if dataset is not None else None), cache, runs


def _preprocess(settings: ChainSettings, kept: list[str]) -> None:
    from preprocess.config import preset
    from preprocess.pipeline import run_preprocess
    from preprocess.report import format_summary

    _stage(2, f"preprocess {settings.dataset} -> {settings.cache} (preset {settings.preset}; cached clips are skipped)")
    summary = run_preprocess(settings.dataset, settings.cache, preset(settings.preset), tuple(kept), settings.workers)
    print(format_summary(summary))


def _train_and_fuse(settings: ChainSettings, kept: list[str], seed: int, runs: Path) -> str:
    """Train each kept modality with ``seed`` into ``runs`` (reusing identical models), then fuse and ablate."""
    from modalities.train import train_modality

    _stage(3, f"train {', '.join(kept)} (seed {seed}, protocol {settings.protocol}) -> {runs}")
    for modality in kept:
        options = {"protocol": settings.protocol, "select_fraction": settings.select_fraction}
        train_modality(modality, settings.cache, runs, seed=seed, verbose=2, **(options | settings.train_options))
    options = {"seed": seed, "weights": settings.weights, **settings.fusion_options}
    return run_fusions(
        settings.cache,
        runs,
        kept,
        settings.fusion,
        settings.ablation,
        options,
        stage=4,
        calibrate=settings.calibrate,
        bootstrap=settings.bootstrap,
        oof=settings.oof,
    )


def export_and_predict(runs: Path, dataset: Path, fusion: str) -> str:
    """Export RUNS' bundle (the chosen fusion, fc when "all") and predict one clip of the dataset with it."""
    from gvs.core.workspace import RunsDir
    from gvs.predict.bundle import export_bundle
    from gvs.predict.inputs import expand_inputs
    from gvs.predict.predictor import Predictor

    bundle = RunsDir(runs).bundle_path
    _stage(6, f"export the model bundle -> {bundle} (`gvs predict` uses it by default)")
    folder = export_bundle(runs, bundle, None if fusion == "all" else fusion)
    predictor = Predictor(folder)
    videos, _ = expand_inputs([Path(dataset)], predictor.class_names)
    labelled = [v for v in videos if v[1] is not None] or videos
    path, label = sorted(labelled, key=lambda v: (v[0].parent.name != "Val", str(v[0])))[0]
    _stage(7, f"predict {path} with {folder} (`gvs predict VIDEO...` does this for any video)")
    video = predictor.predict_video(path, label)
    if video.verdict is None:
        return f"prediction of {path} failed: {video.reason}"
    names = video.class_names
    truth = f" (labelled {names[label]})" if label is not None and label >= 0 else ""
    shares = ", ".join(f"{name} {share:.0%}" for name, share in video.class_shares.items())
    return (
        f"{path.name}: {video.verdict}{truth}, p = "
        + ", ".join(f"{n} {p:.2f}" for n, p in zip(names, video.probabilities))
        + f"; {len(video.windows)} windows: {shares}"
    )
