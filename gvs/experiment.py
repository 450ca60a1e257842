"""Experiment files: every option of every stage of `gvs run` in one TOML file.

The file's top-level keys are :class:`~gvs.chain.ChainSettings`' fields (paths as strings, ``weights``,
``train_options`` and ``fusion_options`` as tables; a missing key keeps its default)::

    dataset = "/data/vgaf"
    protocol = "ours"
    seeds = [0, 1, 2, 3, 4]
    oof = 5

    [train_options]
    epochs = 60

Precedence: ChainSettings' defaults < the file < options typed on the command line. Every run writes its resolved
settings to RUNS/config.toml (absolute paths), so ``gvs run --config RUNS/config.toml`` runs it again.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
import tomllib
from pathlib import Path
from typing import Any

from gvs import __version__
from gvs.core.errors import InputError
from gvs.core.io import atomic_write_text

PATH_FIELDS: tuple[str, ...] = ("dataset", "cache", "runs")
TABLE_FIELDS: tuple[str, ...] = ("weights", "train_options", "fusion_options")


def _fields() -> dict[str, dataclasses.Field]:
    from gvs.chain import ChainSettings

    return {f.name: f for f in dataclasses.fields(ChainSettings)}


def _check_type(path: Path, name: str, value: Any) -> None:
    """InputError naming the file and key when ``value`` has the wrong type for field ``name``."""
    expected = {
        "fusion": str,
        "ablation": str,
        "preset": str,
        "protocol": str,
        "workers": int,
        "oof": int,
        "bootstrap": int,
        "select_fraction": (int, float),
        "calibrate": bool,
        "drop": list,
        "seeds": list,
    }
    if name in PATH_FIELDS:
        expected[name] = str
    if name in TABLE_FIELDS:
        expected[name] = dict
    wanted = expected[name]
    wrong = not isinstance(value, wanted) or (isinstance(value, bool) and wanted in (int, (int, float)))
    if name == "seeds" and not wrong:
        wrong = not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if name == "drop" and not wrong:
        wrong = not all(isinstance(v, str) for v in value)
    if wrong:
        kind = "a list of integers" if name == "seeds" else getattr(wanted, "__name__", "a number")
        raise InputError(f"{path}: {name} = {value!r} should be {kind}")


def load_config(path: str | Path) -> dict:
    """The settings an experiment file holds, checked: {ChainSettings field: value}."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such experiment file; write one or pass RUNS/config.toml of a run") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error}); fix that line") from None
    known = _fields()
    for name, value in values.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; keys: {', '.join(known)}"
            raise InputError(f"{path}: unknown key {name!r}{hint}")
        _check_type(path, name, value)
    return values


def settings_from(file_values: dict, given: dict):
    """ChainSettings from defaults < ``file_values`` < ``given`` (options typed on the command line); the option
    tables merge key by key."""
    from gvs.chain import ChainSettings

    merged = dict(file_values)
    for name, value in given.items():
        if name in ("train_options", "fusion_options") and isinstance(value, dict):
            merged[name] = {**merged.get(name, {}), **value}
        else:
            merged[name] = value
    for name in PATH_FIELDS:
        if merged.get(name) is not None:
            merged[name] = Path(merged[name])
    if "seeds" in merged:
        merged["seeds"] = [int(s) for s in merged["seeds"]]
    return ChainSettings(**merged)


def settings_to_dict(settings) -> dict:
    """The TOML-ready dict of ``settings``: None left out, paths as strings, tuples as lists."""

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if v is not None}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(settings).items() if v is not None}


def write_config(settings, path: Path) -> Path:
    """Write the resolved ``settings`` as TOML to ``path`` (atomically), with a header saying how to re-run."""
    import tomli_w

    header = (
        f"# Resolved experiment of `gvs run`, written by gvs {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"
        f"# Run it again with: gvs run --config {path}   (options given on the command line override it)\n\n"
    )
    atomic_write_text(Path(path), header + tomli_w.dumps(settings_to_dict(settings)))
    return Path(path)
