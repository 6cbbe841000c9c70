"""The lab's experiments: the classic lessons' comparisons, several runs side by side.

An experiment is a base config and 1 to MAX_RUNS runs, each the base with a few fields set
and a label that says what differs ("activation: sigmoid"). The built-in ones are below. An
experiment travels as a link: a built-in one by its name (`?experiment=activations`), any
other as its JSON document in base64url (`?runs=...`). The link is all a lab needs to build
the same runs, with the same seeds, so a teacher can hand a class one link.

This module needs no web stack: `mlplab lab --list-experiments` reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from mlplab.config import TrainConfig
from mlplab.errors import ConfigError, MlplabError
from mlplab.nn.spec import parse_spec

MAX_RUNS = 6
LAB_OWNED = ("out", "data_dir", "threads", "device", "log", "name")  # the lab's, not a link's
AXES = ("iteration", "epoch")
MAX_LABEL = 80
MAX_LINK = 16_384  # characters of a ?runs= value

# The classic tutorial's recipe for models A-E: ToTensor only, batches of 100, plain SGD at 0.1.
TUTORIAL = {
    "normalization": "none",
    "optimizer": "sgd",
    "lr": 0.1,
    "schedule": "constant",
    "batch_size": 100,
}


@dataclass(frozen=True)
class Run:
    """One run of an experiment: the fields it sets over the base, and what to call it."""

    label: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """Runs side by side; see the module docstring."""

    name: str  # "" for one made on the page
    title: str
    base: dict[str, Any]
    runs: tuple[Run, ...]
    summary: str = ""  # one line, for --list-experiments
    look_for: str = ""  # what a learner should see
    lesson: str = ""  # the lesson section that teaches it, from the docs' root
    axis: str = "iteration"  # what the curves are drawn against: iteration or epoch

    def configs(self, **lab: Any) -> list[TrainConfig]:
        """Each run's config: the base, the run's fields, and the lab's own settings (out,
        data_dir, threads) over both; a ConfigError names the run."""
        out = []
        for i, run in enumerate(self.runs):
            values = {**self.base, **run.fields, **lab}
            try:
                out.append(TrainConfig.from_dict(values, f"run {i + 1}"))
            except ConfigError as e:
                raise ConfigError(f"run {i + 1} ({run.label}): {e}") from None
        return out

    def to_doc(self) -> dict[str, Any]:
        """The experiment as a JSON document: what a ?runs= link holds."""
        return {
            "title": self.title,
            "axis": self.axis,
            "base": dict(self.base),
            "runs": [{"label": r.label, "set": dict(r.fields)} for r in self.runs],
            **({"name": self.name} if self.name else {}),
        }

    def link(self) -> str:
        """The query string that builds this experiment in any lab."""
        builtin = BUILTIN.get(self.name)
        if builtin is not None and builtin.to_doc() == self.to_doc():
            return f"experiment={self.name}"
        text = json.dumps(self.to_doc(), separators=(",", ":"), sort_keys=True)
        return "runs=" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def from_doc(doc: Any) -> Experiment:
    """An experiment from its JSON document, every field checked; a ConfigError names the
    first thing wrong. Each run's config is validated too (against the default job)."""
    if not isinstance(doc, dict):
        raise ConfigError("experiment: must be a JSON object", field="experiment")
    unknown = sorted(set(doc) - {"name", "title", "axis", "base", "runs"})
    if unknown:
        raise ConfigError(f"experiment: unknown field {unknown[0]!r}", field="experiment")
    base, runs = doc.get("base", {}), doc.get("runs")
    if not isinstance(base, dict):
        raise ConfigError("base: must be an object of config fields", field="base")
    if not isinstance(runs, list) or not 1 <= len(runs) <= MAX_RUNS:
        raise ConfigError(f"runs: must be a list of 1 to {MAX_RUNS} runs", field="runs")
    _no_lab_fields(base, "base")
    parsed = tuple(_run(i, r) for i, r in enumerate(runs))
    title, axis = doc.get("title", "experiment"), doc.get("axis", "iteration")
    name = doc.get("name", "")
    if not isinstance(title, str) or not 0 < len(title) <= MAX_LABEL:
        raise ConfigError(f"title: must be text of 1 to {MAX_LABEL} characters", field="title")
    if axis not in AXES:
        raise ConfigError(f"axis: must be one of {', '.join(AXES)}, got {axis!r}", field="axis")
    if not isinstance(name, str) or (name and name not in BUILTIN):
        raise ConfigError(f"name: no built-in experiment is called {name!r}", field="name")
    builtin = BUILTIN.get(name)
    experiment = Experiment(
        name=name,
        title=title,
        base=base,
        runs=parsed,
        summary=builtin.summary if builtin else "",
        look_for=builtin.look_for if builtin else "",
        lesson=builtin.lesson if builtin else "",
        axis=axis,
    )
    experiment.configs()  # every run's config is valid
    return experiment


def _run(i: int, run: Any) -> Run:
    if not isinstance(run, dict) or set(run) - {"label", "set"}:
        raise ConfigError(f"runs[{i}]: must be an object with a label and the fields it sets")
    label, fields = run.get("label", f"run {i + 1}"), run.get("set", {})
    if not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL:
        raise ConfigError(f"runs[{i}].label: must be text of 1 to {MAX_LABEL} characters")
    if not isinstance(fields, dict):
        raise ConfigError(f"runs[{i}].set: must be an object of config fields")
    _no_lab_fields(fields, f"runs[{i}].set")
    return Run(label, fields)


def _no_lab_fields(fields: dict[str, Any], where: str) -> None:
    for name in fields:
        if name in LAB_OWNED:
            raise ConfigError(f"{where}: {name} is the lab's own setting, not an experiment's")


def from_link(query: str) -> Experiment:
    """The experiment a link names: `experiment=NAME` or `runs=BASE64URL`."""
    key, _, value = query.lstrip("?").partition("=")
    if key == "experiment":
        return builtin(value)
    if key != "runs":
        raise ConfigError(
            "link: must be experiment=NAME or runs=... (from a lab's address bar)", field="link"
        )
    if len(value) > MAX_LINK:
        raise ConfigError(f"runs: the link is longer than {MAX_LINK} characters", field="runs")
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        doc = json.loads(text)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise ConfigError(
            "runs: not an experiment (the link was cut short or changed?)", field="runs"
        ) from None
    return from_doc(doc)


def builtin(name: str) -> Experiment:
    if name not in BUILTIN:
        raise ConfigError(
            f"experiment: unknown {name!r}; choose one of: {', '.join(BUILTIN)}", field="experiment"
        )
    return BUILTIN[name]


SPEC_SETTINGS = ("activation", "hidden", "dropout")  # settings inside the model spec


def vary(config: TrainConfig, setting: str, value: Any) -> tuple[str, dict[str, Any]]:
    """A new run's label and fields: `config` with one setting changed. A setting is a config
    field or, inside the model spec, `activation`, `hidden` (sizes such as 100-100) or
    `dropout`; a ConfigError names it when the value does not fit."""
    if setting in SPEC_SETTINGS:
        return f"{setting}: {value}", {"model": _respec(config, setting, value), "preset": None}
    if setting in LAB_OWNED:
        raise ConfigError(
            f"{setting}: the lab's own setting, the same for every run", field=setting
        )
    if setting not in config.to_dict():
        raise ConfigError(f"{setting}: not a setting a run can vary", field=setting)
    changes = {setting: value}
    if setting == "model":
        changes["preset"] = None
    config.replace(**changes)  # checks the value: a ConfigError names the field
    return f"{setting}: {value}", changes


def _respec(config: TrainConfig, setting: str, value: Any) -> str:
    """The config's model spec with its activation, hidden sizes or dropout replaced."""
    spec = parse_spec(config.model_spec)
    sizes = list(spec.sizes)
    if setting == "hidden":
        text = str(value).strip()
        parts = text.split("-") if text else []
        if not all(p.isdigit() for p in parts):
            raise ConfigError(
                f"hidden: must be sizes such as 100-100, got {value!r}", field="hidden"
            )
        sizes = [sizes[0], *(int(p) for p in parts), sizes[-1]]
    options = [str(value) if setting == "activation" else spec.activation]
    dropout = value if setting == "dropout" else spec.dropout
    if dropout:
        options.append(f"dropout={dropout}")
    if spec.input_dropout:
        options.append(f"input_dropout={spec.input_dropout}")
    if spec.batch_norm:
        options.append("bn")
    model = "-".join(str(n) for n in sizes) + ":" + ",".join(options)
    try:
        parse_spec(model)
    except MlplabError as e:
        raise ConfigError(f"{setting}: {e}", field=setting) from None
    return model


def _experiment(name, title, summary, look_for, lesson, base, runs, axis="iteration") -> Experiment:
    return Experiment(
        name=name,
        title=title,
        base=base,
        runs=tuple(Run(label, fields) for label, fields in runs),
        summary=summary,
        look_for=look_for,
        lesson=lesson,
        axis=axis,
    )


BUILTIN: dict[str, Experiment] = {
    e.name: e
    for e in (
        _experiment(
            "models-a-e",
            "Models A to E",
            "the classic tutorial's five networks at its full budget, 3,000 steps of SGD each",
            "A (sigmoid) learns slowest and ends lowest; B (tanh) and C (ReLU) do better with "
            "the same single layer; D and E, with two and three hidden layers, end highest. "
            "Model E starts slower than C and D, then passes them.",
            "tutorials/04_models_a_to_e.ipynb#five-runs",
            {**TUTORIAL, "iterations": 3000, "eval_every": 250},
            [
                ("A: 1 × 100 sigmoid", {"preset": "a"}),
                ("B: 1 × 100 tanh", {"preset": "b"}),
                ("C: 1 × 100 ReLU", {"preset": "c"}),
                ("D: 2 × 100 ReLU", {"preset": "d"}),
                ("E: 3 × 100 ReLU", {"preset": "e"}),
            ],
        ),
        _experiment(
            "activations",
            "Activations: sigmoid, tanh, ReLU",
            "one deep network (four hidden layers) with each activation",
            "The sigmoid network stays at chance (about 10%) for all 2,000 steps: its "
            "gradients vanish on their way back through four sigmoids. tanh learns at once; "
            "ReLU starts slower (PyTorch's default weights shrink its signal layer by layer) "
            "and ends highest.",
            "tutorials/05_activations_init.ipynb#vanishing-gradients",
            {**TUTORIAL, "iterations": 2000, "eval_every": 100},
            [
                ("activation: sigmoid", {"model": "784-100-100-100-100-10:sigmoid"}),
                ("activation: tanh", {"model": "784-100-100-100-100-10:tanh"}),
                ("activation: relu", {"model": "784-100-100-100-100-10:relu"}),
            ],
        ),
        _experiment(
            "learning-rates",
            "Learning rates: too small, right, too large",
            "model C with plain SGD at 0.001, 0.01, 0.1 and 1",
            "At 0.001 the loss barely moves (about 63% after 1,500 steps); 0.01 is slow; 0.1 "
            "learns well and 1, here, best. Try 5 with 'vary one setting': the loss jumps up "
            "and the network stays near 10%.",
            "tutorials/03_seven_steps.ipynb#the-learning-rate-on-a-real-network",
            {**TUTORIAL, "preset": "c", "iterations": 1500, "eval_every": 100},
            [
                ("lr: 0.001", {"lr": 0.001}),
                ("lr: 0.01", {"lr": 0.01}),
                ("lr: 0.1", {"lr": 0.1}),
                ("lr: 1", {"lr": 1.0}),
            ],
        ),
        _experiment(
            "batch-sizes",
            "Batch sizes: one epoch each",
            "model C for one epoch with batches of 10, 100 and 1,000",
            "Against epochs, small batches learn more per epoch (more steps); their curves "
            "are noisier. Batch 1,000 takes only 60 steps and ends the epoch far behind.",
            "tutorials/03_seven_steps.ipynb#why-mini-batches",
            {**TUTORIAL, "preset": "c", "epochs": 1},
            [
                ("batch size: 10", {"batch_size": 10, "eval_every": 600}),
                ("batch size: 100", {"batch_size": 100, "eval_every": 60}),
                ("batch size: 1000", {"batch_size": 1000, "eval_every": 6}),
            ],
            axis="epoch",
        ),
        _experiment(
            "depth-width",
            "Depth and width",
            "wider and deeper ReLU networks under the tutorial's recipe",
            "Widening one layer from 100 to 400 units helps a little; a second layer helps "
            "more. Four hidden layers start slower and catch up.",
            "tutorials/04_models_a_to_e.ipynb#beside-the-published-numbers",
            {**TUTORIAL, "iterations": 3000, "eval_every": 250},
            [
                ("hidden: 100", {"model": "784-100-10:relu"}),
                ("hidden: 400", {"model": "784-400-10:relu"}),
                ("hidden: 100-100", {"model": "784-100-100-10:relu"}),
                ("hidden: 100-100-100-100", {"model": "784-100-100-100-100-10:relu"}),
            ],
        ),
        _experiment(
            "initialisation",
            "Initialisation scales",
            "model E started from weights of standard deviation 0.01, PyTorch's default, He "
            "(kaiming) and 1",
            "0.01 and 1 both stay at about 11% (the first shrinks the signal to nothing, the "
            "second blows it up); the default learns, and He learns fastest.",
            "tutorials/05_activations_init.ipynb#initialisation-the-size-of-the-starting-weights",
            {**TUTORIAL, "preset": "e", "iterations": 1500, "eval_every": 100},
            [
                ("init: normal:0.01", {"init": "normal:0.01"}),
                ("init: default", {"init": "default"}),
                ("init: kaiming", {"init": "kaiming"}),
                ("init: normal:1", {"init": "normal:1"}),
            ],
        ),
        _experiment(
            "overfitting",
            "Overfitting: 1,000 training images",
            "784-256-256-10 trained on 1,000 images for 100 epochs: plain, dropout, weight decay",
            "Training accuracy reaches 100% while test accuracy stalls near 88%; the plain "
            "network's test loss bottoms out and rises again. Dropout ends with the best test "
            "accuracy and loss; weight decay keeps the test loss from climbing.",
            "tutorials/07_overfitting_fashion.ipynb#training-accuracy-is-not-the-goal",
            {**TUTORIAL, "train_size": 1000, "epochs": 100, "eval_every": 50},
            [
                ("no remedy", {"model": "784-256-256-10:relu"}),
                ("dropout: 0.5", {"model": "784-256-256-10:relu,dropout=0.5"}),
                ("weight_decay: 0.005", {"model": "784-256-256-10:relu", "weight_decay": 0.005}),
            ],
            axis="epoch",
        ),
        _experiment(
            "mnist-fashion",
            "MNIST against Fashion-MNIST",
            "one network, 784-128-64-10, trained on digits and on clothing",
            "The same network and the same steps: digits near 94%, clothing near 85%. Draw "
            "the Fashion-MNIST run and open Confusion: shirts, T-shirts, pullovers and coats "
            "are taken for one another.",
            "tutorials/07_overfitting_fashion.ipynb#fashion-mnist",
            {"model": "784-128-64-10:relu", "epochs": 2, "eval_every": 100},
            [
                ("dataset: mnist", {"dataset": "mnist"}),
                ("dataset: fashion-mnist", {"dataset": "fashion-mnist"}),
            ],
        ),
    )
}
