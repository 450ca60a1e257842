"""Mean ± std over seeds: one row per model of the seeds' comparison tables (RUNS/seeds.{md,csv,json})."""

from __future__ import annotations

from pathlib import Path

from gvs.core.errors import RunError
from gvs.core.io import read_json
from gvs.core.workspace import RunsDir

from .report import write_table
from .statistics import format_mean_std, mean_std

SEED_METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "ece")
SEED_COLUMNS: list[str] = ["model", "modalities", *(f"{m} (mean ± std)" for m in SEED_METRICS), "seeds", "n", "split"]


def seed_table(runs: Path, seeds: list[int]) -> tuple[list[dict], str]:
    """Aggregate RUNS/seed-<s>/fusion/comparison.json over ``seeds``: each model's mean ± sample std (ddof 1) of
    accuracy, macro-F1 and ECE; writes RUNS/seeds.{md,csv,json}; returns the rows and the Markdown.

    Parameters
    ----------
    runs : Path
    seeds : list of int

    Returns
    -------
    rows : list of dict
    table : str
        Markdown.
    """
    workspace = RunsDir(runs)
    tables = {}
    for seed in seeds:
        path = workspace.seed_runs(seed).comparison_stem().with_suffix(".json")
        if not path.is_file():
            raise RunError(f"{path}: no comparison table for seed {seed}; run `gvs run --seeds ...` again to finish it")
        tables[seed] = {row["model"]: row for row in read_json(path)["rows"]}
    models = list(tables[seeds[0]])
    rows = []
    for model in models:
        per_seed = [tables[seed][model] for seed in seeds if model in tables[seed]]
        row = {"model": model, "modalities": per_seed[0]["modalities"], "seeds": len(per_seed)}
        for metric in SEED_METRICS:
            values = [r[metric] for r in per_seed]
            row[f"{metric} (mean ± std)"] = format_mean_std(values)
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(values)
            row[f"{metric}_per_seed"] = values
        row["n"], row["split"] = per_seed[0]["n"], per_seed[0]["split"]
        rows.append(row)
    note = (
        f"Seeds {', '.join(map(str, seeds))}: each seed re-draws the select hold-out, the weights and the training "
        "order (features reused); mean ± sample standard deviation over seeds of the report part's numbers. "
        "Each seed's table, with bootstrap intervals and paired tests, is RUNS/seed-<seed>/fusion/comparison.md."
    )
    numbers = [f"{m}_{s}" for m in SEED_METRICS for s in ("mean", "std")]
    markdown = write_table(
        rows,
        SEED_COLUMNS,
        workspace.seeds_stem(),
        f"Comparison over {len(seeds)} seeds",
        note,
        ["model", "modalities", *numbers, "seeds", "n", "split"],
    )
    return rows, markdown
