"""mlplab recipes: the named recipes, with what each measured."""

from __future__ import annotations

import json


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "recipes",
        help="list the named recipes and their measured accuracy",
        description="List the recipes shipped with mlplab (run one with mlplab train "
        "--recipe NAME): what each aims at, and its measured test accuracy (mean ± std over "
        "seeds), training time and machine.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_recipes)


def cmd_recipes(args) -> int:
    from mlplab.experiments.recipes import load_recipe, names

    recipes = [load_recipe(name) for name in names()]
    if args.json:
        print(json.dumps([_as_dict(r) for r in recipes], indent=2))
        return 0
    for r in recipes:
        print(f"{r.name}: {r.description}")
        print(f"  target:   {r.target}")
        for m in r.measured or ():
            print(f"  measured: {m.summary()}")
        if not r.measured:
            print("  measured: not yet")
        print(f"  run:      {r.command}")
    return 0


def _as_dict(recipe) -> dict:
    return {
        "name": recipe.name,
        "description": recipe.description,
        "target": recipe.target,
        "train": recipe.train,
        "command": recipe.command,
        "measured": [{**m.__dict__, "mean": m.mean, "std": m.std} for m in recipe.measured],
    }
