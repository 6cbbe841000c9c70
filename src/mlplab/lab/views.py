"""What the lab's API answers, as plain functions: a request's JSON in, the answer's JSON out.

The functions that take a Trainer run on the lab session's thread, between steps; they look
at the model that evaluations score (the live weights, or their average with --ema).
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import dataclasses
import json
import typing
from typing import Any

import numpy as np
import torch

from mlplab.config import OPTIMIZERS, SCHEDULES, TrainConfig
from mlplab.data.registry import REGISTRY
from mlplab.errors import ConfigError, MlplabError
from mlplab.lab import experiments
from mlplab.lab.backprop import gradient_check
from mlplab.lab.inside import layer_values, unit_weights
from mlplab.lab.runs import describe_spec
from mlplab.lab.session import LabSession
from mlplab.nn.presets import PRESETS
from mlplab.nn.spec import ACTIVATIONS, parse_spec
from mlplab.serve.parsing import BadInput, parse_pixels
from mlplab.training.evaluate import predict_logits
from mlplab.training.trainer import Trainer

FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
FLOATS = {
    n
    for n, hint in typing.get_type_hints(TrainConfig).items()
    if float in typing.get_args(hint) or hint is float
}
LAB_SETS = ("out", "data_dir", "threads", "device")  # the lab's own, from its command line
NAMES = FIELDS | {
    "label", "layer", "unit", "pixels", "png", "test_index", "action", "spec", "run", "setting",
    "experiment", "link", "runs", "base", "title", "axis", "hidden", "activation", "dropout",
}  # fmt: skip
MAX_PNG = 4 * 1024 * 1024


def field_of(error: Exception) -> str | None:
    """The setting an error is about, when the page has an input for it."""
    field = getattr(error, "field", None)
    return field if field in NAMES else None


def choices() -> dict[str, Any]:
    """What the build form offers, and the defaults it starts from."""
    from mlplab.experiments.recipes import load_recipe, names

    recipes = {}
    for name in names():
        recipe = load_recipe(name)
        recipes[name] = {"description": recipe.description, "train": recipe.train}
    return {
        "datasets": list(REGISTRY),
        "presets": {name: {"spec": s, "description": d} for name, (s, d) in PRESETS.items()},
        "recipes": recipes,
        "activations": list(ACTIVATIONS),
        "optimizers": list(OPTIMIZERS),
        "schedules": list(SCHEDULES),
        "defaults": TrainConfig().to_dict(),
    }


def spec_of(text: str) -> dict[str, Any]:
    """A spec's text -> what the diagram draws; the CLI's message when it is not valid."""
    try:
        return describe_spec(parse_spec(text))
    except MlplabError as e:
        raise ConfigError(f"model: {e}", field="model") from None


def config_of(session: LabSession, doc: dict[str, Any]) -> TrainConfig:
    """A build request's fields -> a validated TrainConfig (the default job under them)."""
    for name in doc:
        if name in LAB_SETS:
            raise ConfigError(f"{name}: set by the lab's command line, not the page", field=name)
    # JSON from a page writes 1.0 as 1; the CLI reads a float flag as a float, so its
    # messages say -1.0: the page's say the same
    fields = {k: float(v) if k in FLOATS and type(v) is int else v for k, v in doc.items()}
    return session.base_config(**fields)


def catalog() -> list[dict[str, Any]]:
    """The built-in experiments, for the page's menu."""
    return [
        {
            "name": e.name,
            "title": e.title,
            "summary": e.summary,
            "look_for": e.look_for,
            "lesson": e.lesson,
            "link": e.link(),
            "runs": [r.label for r in e.runs],
        }
        for e in experiments.BUILTIN.values()
    ]


def experiment_of(doc: dict[str, Any]) -> experiments.Experiment:
    """A request's experiment: {"experiment": NAME}, {"link": "runs=..."} or {"doc": {...}}."""
    if "experiment" in doc:
        name = doc["experiment"]
        if not isinstance(name, str):
            raise ConfigError(f"experiment: must be a name, got {name!r}", field="experiment")
        return experiments.builtin(name)
    if "link" in doc:
        link = doc["link"]
        if not isinstance(link, str):
            raise ConfigError(f"link: must be text, got {link!r}", field="link")
        return experiments.from_link(link)
    if "doc" in doc:
        return experiments.from_doc(doc["doc"])
    raise BadInput(422, 'give "experiment" (a name), "link" or "doc"')


def varied(session: LabSession, doc: dict[str, Any]) -> tuple[str, Any]:
    """A "vary one setting" request's (setting, value), checked against the focused run."""
    setting, value = doc.get("setting"), doc.get("value")
    if not isinstance(setting, str):
        raise ConfigError(f"setting: must be a setting's name, got {setting!r}", field="setting")
    trainer = session.trainer
    if trainer is None:
        raise MlplabError("there is no run to vary yet")
    if setting in FLOATS and type(value) is int:
        value = float(value)
    experiments.vary(trainer.config, setting, value)
    return setting, value


def run_id(session: LabSession, doc: dict[str, Any]) -> int:
    """The run a request names, by its id."""
    run = doc.get("run")
    ids = [r.id for r in session.runs]
    if isinstance(run, bool) or run not in ids:
        raise ConfigError(
            f"run: must be one of the experiment's runs {ids}, got {run!r}", field="run"
        )
    return run


def positive_int(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}", field=name)
    return value


def set_lr(session: LabSession, lr: Any) -> concurrent.futures.Future:
    if isinstance(lr, bool) or not isinstance(lr, int | float):
        raise ConfigError(f"lr: must be a number, got {lr!r}", field="lr")
    future: concurrent.futures.Future = concurrent.futures.Future()
    session.send("lr", lr, future)
    return future


def input_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The input a request names: 784 pixels in [0, 1], a drawing (PNG, base64, prepared as
    `mlplab predict` prepares images) or a test image's index."""
    if "test_index" in doc:
        index = doc["test_index"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise BadInput(
                422, f"test_index: must be an integer, got {index!r}", field="test_index"
            )
        return {"test_index": index}
    if "pixels" in doc:
        images, _ = parse_pixels(json.dumps({"pixels": doc["pixels"]}).encode())
        return {"pixels": images[0]}
    if "png" in doc:
        return {"pixels": _drawing(doc["png"])}
    raise BadInput(422, 'give "pixels" (784 numbers in [0, 1]), "png" or "test_index"')


def _drawing(text: Any) -> np.ndarray:
    from mlplab.use.predict import ImageError, preprocess

    if not isinstance(text, str) or len(text) > MAX_PNG:
        raise BadInput(422, "png: must be a base64 string of at most 4 MiB", field="png")
    try:
        data = base64.b64decode(text.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(422, "png: not valid base64", field="png") from None
    try:
        return preprocess(data, "png")
    except ImageError as e:
        raise BadInput(415, str(e)) from None


def _test_split(trainer: Trainer):
    split = trainer.test_split
    if split is None:
        raise MlplabError("the lab's dataset has no test split")
    return split


def _resolve(trainer: Trainer, given: dict[str, Any]) -> tuple[torch.Tensor, int | None]:
    """(28, 28) pixels in [0, 1] as a float tensor, and the test label if any."""
    if "test_index" not in given:
        return torch.as_tensor(given["pixels"], dtype=torch.float32), None
    split, index = _test_split(trainer), given["test_index"]
    if not 0 <= index < len(split):
        raise ConfigError(
            f"test_index: must be 0 to {len(split) - 1}, got {index}", field="test_index"
        )
    return split.x[index].float().cpu() / 255.0, int(split.y[index])


def inspect(trainer: Trainer, given: dict[str, Any]) -> dict[str, Any]:
    """Every layer's z and activation for one input, and its class probabilities."""
    pixels, label = _resolve(trainer, given)
    model = trainer.eval_module()
    x = trainer.norm.apply(pixels.reshape(1, -1)).to(trainer.device)
    layers = layer_values(model, x[0])
    probs = layers[-1]["a"]
    return {
        "iteration": trainer.state.iteration,
        "input": [round(float(v), 4) for v in pixels.reshape(-1)],
        "label": label,
        "layers": layers,
        "probs": probs,
        "prediction": int(np.argmax(probs)),
        "classes": list(trainer.data.classes),
    }


def gradcheck(trainer: Trainer, given: dict[str, Any], label: Any) -> dict[str, Any]:
    pixels, test_label = _resolve(trainer, given)
    if label is None:
        label = test_label if test_label is not None else 0
    x = trainer.norm.apply(pixels.reshape(1, -1))[0]
    result = gradient_check(trainer.eval_module(), x, label)
    return {"iteration": trainer.state.iteration, **result}


def unit(trainer: Trainer, layer: int, index: int) -> dict[str, Any]:
    return {
        "iteration": trainer.state.iteration,
        **unit_weights(trainer.eval_module(), layer, index),
    }


def confusion_cell(trainer: Trainer, true: int, pred: int, limit: int) -> dict[str, Any]:
    """The test split's confusion now, and the test images in one of its cells."""
    split, classes = _test_split(trainer), trainer.data.num_classes
    for name, value in (("true", true), ("pred", pred)):
        if not 0 <= value < classes:
            raise MlplabError(f"{name}: must be a class from 0 to {classes - 1}, got {value}")
    predicted = predict_logits(trainer.eval_module(), split.x, trainer.norm).argmax(1)
    matrix = torch.bincount(split.y * classes + predicted, minlength=classes**2)
    cell = torch.nonzero((split.y == true) & (predicted == pred)).reshape(-1).cpu()
    shown = cell[: max(0, min(limit, 200))]
    images = split.x[shown.to(split.x.device)].cpu().numpy().astype(np.uint8)
    return {
        "iteration": trainer.state.iteration,
        "matrix": matrix.reshape(classes, classes).tolist(),
        "true": true,
        "pred": pred,
        "count": len(cell),
        "indices": shown.tolist(),
        "images": [base64.b64encode(img.tobytes()).decode() for img in images],
    }


def test_image(trainer: Trainer, index: int) -> dict[str, Any]:
    split = _test_split(trainer)
    if not 0 <= index < len(split):
        raise ConfigError(
            f"test_index: must be 0 to {len(split) - 1}, got {index}", field="test_index"
        )
    image = split.x[index].cpu().numpy().astype(np.uint8)
    return {
        "index": index,
        "label": int(split.y[index]),
        "image": base64.b64encode(image.tobytes()).decode(),
    }
