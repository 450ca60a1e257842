"""What a bundle was trained on (bundle.json's "training_data"), and the banner every output of a demo bundle shows.

"kind" is "demo" (the synthetic demo dataset of ``gvs demo``, made by preprocess.demo.make_demo), "vgaf", "csv" or
"folder" (the cache's source.json), or None when RUNS does not say; "clips" counts the partition's clips per part.
"""

from __future__ import annotations

from pathlib import Path

from gvs.core.io import read_json
from gvs.core.workspace import CacheDir, RunsDir

DEMO = "demo"
DEMO_MARKER = ("COMPLETE", "demo dataset")  # make_demo's last file and the start of its text


def describe_training_data(runs: RunsDir) -> dict:
    """bundle.json's "training_data" of RUNS: source path, name, kind, clips per part, where each part came from."""
    workspace = _json(runs.workspace_path)
    partition = _json(runs.partition_path)
    source = workspace.get("source")
    clips = {part: len(keys) for part, keys in partition.get("parts", {}).items()}
    return {
        "source": source,
        "name": Path(source).name if source else None,
        "kind": _kind(source, workspace.get("cache")),
        "clips": clips,
        "size": sum(clips.values()),
        "parts": partition.get("sources", {}),
    }


def is_demo(training_data: dict) -> bool:
    """True for a bundle trained on the demo dataset (bundles exported before "kind": a source named data/demo)."""
    if "kind" in training_data:
        return training_data["kind"] == DEMO
    source = training_data.get("source") or ""
    return Path(source).parts[-2:] == ("data", "demo")


def demo_banner(info: dict) -> str | None:
    """The banner of a demo bundle (``info``: its bundle.json) on the serve page, in the report and in gvs predict's
    output; None for any other bundle."""
    data = info.get("training_data") or {}
    if not is_demo(data):
        return None
    clips = data.get("clips") or {}
    trained = clips.get("train", 0) + clips.get("select", 0)
    return (
        f"Demo bundle: trained on {trained or 'the'} synthetic clips of the demo dataset, to check the plumbing "
        "(decoding, features, models, fusion, outputs), not to judge real videos: its verdicts on them mean nothing. "
        "For a real model, train on VGAF or your own labelled videos with `gvs run /path/to/dataset` and predict with "
        "the bundle it exports (runs/<dataset>/bundle)."
    )


def _kind(source: str | None, cache: str | None) -> str | None:
    """demo, vgaf, csv or folder (see the module's docstring); None when neither the source nor the cache says."""
    if source:
        marker = Path(source) / DEMO_MARKER[0]
        try:
            if marker.is_file() and marker.read_text(errors="replace").startswith(DEMO_MARKER[1]):
                return DEMO
        except OSError:
            pass
    return CacheDir(cache).source().get("kind") if cache and Path(cache).is_dir() else None


def _json(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}
