"""The named recipes: each loads as a valid config, lists with what it measured, runs from
the CLI with flags over it, and a shortened form of each still learns on real data (so a
recipe cannot silently rot between full runs, which are `make recipes`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlplab.config import TrainConfig
from mlplab.data.dataset import load_dataset
from mlplab.errors import ConfigError
from mlplab.experiments.recipes import load_recipe, names
from mlplab.training.trainer import train

# A shortened recipe (its own settings, a few hundred steps) must clear these on the test
# split; the full recipes aim far higher (mlplab recipes).
FLOORS = {"mnist": 92.0, "fashion-mnist": 82.0}  # measured at 120 steps: 93.5-94.3, 85.1
SHORT = 120


def test_the_recipes_are_shipped():
    assert {"mnist-augmented", "mnist-plain", "fashion"} <= set(names())


@pytest.mark.parametrize("name", names())
def test_each_recipe_is_a_valid_config_with_a_validation_split(name):
    recipe = load_recipe(name)
    config = TrainConfig.from_dict(recipe.train, f"recipe {name}")
    assert config.val_size > 0  # its choices were made on validation, never on test
    assert recipe.description and recipe.target
    for m in recipe.measured:
        assert len(m.seeds) == len(m.test_accuracy) == len(m.train_seconds)
        assert 0 < m.mean <= 100


def test_an_unknown_recipe_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^recipe: unknown 'mnist-100'; choose one of: "):
        load_recipe("mnist-100")


@pytest.mark.slow
@pytest.mark.parametrize("name", names())
def test_a_shortened_recipe_still_learns(name):
    recipe = load_recipe(name)
    config = TrainConfig.from_dict(recipe.train).replace(iterations=SHORT, eval_every=SHORT)
    result = train(config, load_dataset(config.dataset), "cpu")
    assert result.iterations == SHORT
    assert result.test.accuracy > FLOORS[config.dataset], result.test.accuracy


def test_the_cli_lists_the_recipes_and_runs_one_with_flags_over_it(cli, tmp_path):
    listed = cli("recipes", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in names():
        assert f"{name}: " in listed.stdout
    as_json = json.loads(cli("recipes", "--json", cwd=tmp_path).stdout)
    assert [r["name"] for r in as_json] == names()
    done = cli(
        *("train", "--recipe", "mnist-augmented", "--iterations", "20", "--eval-every", "20"),
        *("--model", "784-32-10:relu", "--quiet", "--out", "runs"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    saved = json.loads((run / "config.json").read_text())
    recipe = load_recipe("mnist-augmented").train
    assert saved["model"] == "784-32-10:relu" and saved["iterations"] == 20  # the flags won
    assert saved["augment"] == recipe["augment"] and saved["lr"] == recipe["lr"]  # the rest
    assert run.name.endswith("mnist-augmented")
    bad = cli("train", "--recipe", "nope", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("mlplab: error: recipe: unknown 'nope'")


def test_every_ablation_variant_is_a_valid_config_one_change_from_its_recipe():
    from benchmarks.ablation import VARIANTS, variant_config

    for name, variants in VARIANTS.items():
        train = load_recipe(name).train
        recipe = variant_config(train, {}, 12)
        assert variants[0][1] == {}  # the first row is the recipe itself: the baseline
        for label, change in variants:
            config = variant_config(train, change, 12)
            TrainConfig.from_dict(config, f"{name}: {label}")
            assert (config != recipe) == bool(change), label


def test_the_ablation_command_runs_and_prints_its_table(tmp_path):
    command = [sys.executable, "-m", "benchmarks.ablation", "--variants", "0,1"]
    done = subprocess.run(
        [*command, "--iterations", "3", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| the recipe")]
    assert len(rows) == 1 and "| +0.00 |" in rows[0], done.stdout
    assert "| without max-norm |" in done.stdout
