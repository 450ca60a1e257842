"""Experiment files: round trip, command-line overrides, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

import gvs.chain
from gvs.chain import ChainSettings
from gvs.cli import main as gvs_main
from gvs.experiment import load_config, settings_from, write_config


def test_every_setting_survives_a_round_trip(tmp_path: Path) -> None:
    settings = ChainSettings(
        dataset=tmp_path / "data",
        cache=tmp_path / "cache",
        runs=tmp_path / "runs",
        fusion="fc",
        drop=["faces"],
        weights={"scene": 0.5, "pose": 0.5},
        ablation="all",
        workers=2,
        preset="fast",
        seeds=[0, 1, 2],
        protocol="paper",
        select_fraction=0.25,
        oof=5,
        calibrate=True,
        bootstrap=500,
        train_options={"epochs": 7, "conv_filters": [8, 16]},
        fusion_options={"epochs": 11, "vae_epochs": 11},
    )
    path = write_config(settings, tmp_path / "exp.toml")
    assert path.read_text().startswith("# Resolved experiment")
    assert settings_from(load_config(path), {}) == settings


def _captured(monkeypatch) -> list[ChainSettings]:
    seen: list[ChainSettings] = []
    monkeypatch.setattr(gvs.chain, "run_chain", lambda settings: seen.append(settings) or "")
    return seen


def test_options_typed_on_the_command_line_override_the_file(tmp_path: Path, monkeypatch) -> None:
    seen = _captured(monkeypatch)
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        'fusion = "soft"\nseeds = [1, 2]\nprotocol = "paper"\n[train_options]\nepochs = 9\npatience = 3\n'
    )
    assert gvs_main(["run", "--config", str(experiment), "--seeds", "3", "4", "--train-epochs", "5"]) == 0
    (settings,) = seen
    assert settings.seeds == [3, 4] and settings.fusion == "soft" and settings.protocol == "paper"
    assert settings.train_options == {"epochs": 5, "patience": 3}  # tables merge key by key
    assert settings.calibrate is False and settings.bootstrap == 2000  # neither given: ChainSettings' defaults


def test_no_file_gives_chain_settings_defaults(monkeypatch) -> None:
    seen = _captured(monkeypatch)
    assert gvs_main(["run", "--seed", "7", "--calibrate"]) == 0
    assert seen[0] == ChainSettings(seeds=[7], calibrate=True)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('fusions = "fc"\n', "unknown key 'fusions' (did you mean 'fusion'?)"),
        ("seeds = 3\n", "seeds = 3 should be a list of integers"),
        ("calibrate = 1\n", "calibrate = 1 should be bool"),
        ('fusion = "fc\n', "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, capsys, text: str, fragment: str) -> None:
    experiment = tmp_path / "exp.toml"
    experiment.write_text(text)
    assert gvs_main(["run", "--config", str(experiment)]) == 2
    error = capsys.readouterr().err
    assert str(experiment) in error and fragment in error and "Traceback" not in error


def test_seed_and_seeds_together_are_refused(capsys) -> None:
    assert gvs_main(["run", "--seed", "1", "--seeds", "2", "3"]) == 2
    assert "not both" in capsys.readouterr().err


def test_run_help_shows_the_new_options_with_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        gvs_main(["run", "--help"])
    shown = capsys.readouterr().out
    for option in ("--config", "--protocol", "--seeds", "--oof", "--calibrate", "--bootstrap", "default 2000"):
        assert option in shown
