"""TOML config files, as `TrainConfig.from_toml` and `mlplab train --config` read them:
unknown keys, wrong types, out-of-range values. The result is a TrainConfig holding the
file's values, or a one-line ConfigError naming the file or the field."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab.cli import build_parser
from mlplab.cli.train import config_from_args
from mlplab.config import MAX_THREADS, TrainConfig, read_toml
from mlplab.data.registry import REGISTRY
from mlplab.errors import ConfigError


def examples(n: int) -> settings:
    """n examples under the ci profile, as many times more as the profile in use asks."""
    scale = settings.default.max_examples / settings.get_profile("ci").max_examples
    return settings(max_examples=max(1, round(n * scale)))


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

SCALARS = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2, 7, 8, 512, 10_000, 2**63 - 1, 2**63, MAX_THREADS + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 4e-3, 1e-300, -0.0]),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "mnist",
            "kmnist",
            "c",
            "d",
            "784-100-10",
            "784-100-5",
            "sgd",
            "adam",
            "cosine",
            "none",
            "shift",
            "auto",
            "cpu",
            "normal:0.1",
            "xavier",
        ]
    ),
    st.dates(),
    st.datetimes(),
)
SPECIAL = st.sampled_from([math.inf, -math.inf, math.nan, 2**64, -(2**64), 100_000, "", []])
TOML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
TEXT_FIELDS = {
    "model": ["784-100-10", "784-64-32-10:tanh,dropout=0.1", "784-100-5", "100-10"],
    "init": ["default", "xavier", "kaiming", "normal:0.05", "normal:-1"],
    "device": ["cpu", "auto"],
}


def plausible(name: str) -> st.SearchStrategy:
    """A value of the field's own type, often a valid one."""
    f, hint = FIELDS[name], typing.get_type_hints(TrainConfig)[name]
    kinds = set(typing.get_args(hint)) or {hint}
    if f.metadata.get("choices"):
        return st.sampled_from(f.metadata["choices"])
    if bool in kinds:
        return st.booleans()
    if int in kinds:
        return st.integers(0, 50)
    if float in kinds:
        return st.floats(0.0, 1.0, exclude_max=True)
    return st.sampled_from(TEXT_FIELDS.get(name, ["x", "runs", "my run"]))


def mostly(usual, *others, weight: int = 3):
    """`usual` about weight/(weight + 1) of the time, else one of the others."""
    return st.integers(0, weight).flatmap(lambda i: usual if i else st.one_of(*others))


@st.composite
def config_values(draw) -> dict:
    """Some fields, each with a plausible value or a hostile one, and now and then a key
    that is not a field at all."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=5))
    values = {n: draw(mostly(plausible(n), SPECIAL, TOML_VALUES)) for n in names}
    if draw(st.integers(0, 5)) == 0:
        values[draw(st.text(max_size=10))] = draw(TOML_VALUES)
    return values


def toml_value(value) -> str:
    """A value as TOML text: basic strings are JSON strings, floats use TOML's inf and nan."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(values: dict, layout: str) -> str:
    """The values at the top level, in a [train] table, or the first at the top level and
    the others in [train] (where the first would be silently ignored)."""
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in values.items()]
    if layout == "split" and lines:
        return lines[0] + "\n[train]\n" + "\n".join(lines[1:]) + "\n"
    return ("[train]\n" if layout == "train" else "") + "\n".join(lines) + "\n"


def names_file_or_field(path, values: dict):
    return (str(path), *(f"{k}:" for k in values), *(f"{k!r}" for k in values), "model:", "preset:")


def check_config(config: TrainConfig | None, values: dict) -> None:
    """An accepted file holds known fields of the right types, and the config holds them."""
    if config is None:
        return
    assert set(values) <= set(FIELDS)
    for key, value in values.items():
        got = getattr(config, key)
        if isinstance(got, tuple):  # a list field (log), kept as a tuple
            got = list(got)
        assert got == value and type(got) is type(value)
        assert not (isinstance(got, float) and not math.isfinite(got))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("toml")


@examples(300)
@given(config_values(), st.sampled_from(["top", "train", "split"]))
def test_from_toml_gives_the_files_config_or_a_config_error(clean, folder, values, layout):
    path = folder / "run.toml"
    path.write_text(toml_text(values, layout), encoding="utf-8")
    config = clean(TrainConfig.from_toml, path, names=names_file_or_field(path, values))
    check_config(config, values)


@examples(150)
@given(config_values())
def test_cli_config_file_gives_the_same_config_as_the_library(clean, folder, values):
    path = folder / "cli.toml"
    path.write_text(toml_text(values, "train"), encoding="utf-8")
    names = names_file_or_field(path, values) + ("dataset: unknown",)
    args = build_parser().parse_args(["train", "--config", str(path)])
    config = clean(config_from_args, args, names=names)
    library = clean(TrainConfig.from_toml, path, names=names)
    if library is None:
        assert config is None, "the CLI accepted a file that the library refuses"
    elif config is None:
        assert library.dataset not in REGISTRY
    else:
        assert config == library.replace(data_dir=config.data_dir)


# Arrays and inline tables nested 1 to 2000 deep: tomllib recurses into them.
NESTED = st.tuples(st.integers(1, 2000), st.sampled_from([("[", "]"), ("{a=", "}")])).map(
    lambda t: ("x = " + t[1][0] * t[0] + ("1" if "{" in t[1][0] else "") + t[1][1] * t[0]).encode()
)


@examples(200)
@given(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode), NESTED))
def test_any_bytes_read_as_a_table_or_a_config_error(clean, folder, raw):
    path = folder / "raw.toml"
    path.write_bytes(raw)
    values = clean(read_toml, path, names=(str(path),))
    assert values is None or isinstance(values, dict)


# Regression tests for what the properties found.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr = " + "[" * 1000 + "]" * 1000, "invalid TOML: arrays or tables nested too deep"),
        (
            "lr = " + "{a=" * 1000 + "1" + "}" * 1000,
            "invalid TOML: arrays or tables nested too deep",
        ),
        ("lr = 0.1\n[train]\nepochs = 2\n", "unknown field 'lr' outside the [train] table"),
    ],
)
def test_found_file_cases_are_config_errors_naming_the_file(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=f"^{path}: " + message.replace("[", r"\[").replace("]", r"\]") + "$"
    ):
        read_toml(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr = inf", r"^lr: must be finite, got inf$"),
        ("weight_decay = nan", r"^weight_decay: must be finite, got nan$"),
        ("gamma = -inf", r"^gamma: must be finite, got -inf$"),
        (
            "batch_size = 99999999999999999999",
            r"^batch_size: must fit in 64 bits, got 99999999999999999999$",
        ),
        ("threads = 100000", r"^threads: must be at most 1024, got 100000$"),
    ],
)
def test_found_value_cases_are_config_errors_naming_the_field(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_toml(path)


@pytest.mark.parametrize("value", ["[]", "false", "0"])
def test_cli_does_not_replace_a_wrong_data_dir_with_the_default(tmp_path, value):
    path = tmp_path / "run.toml"
    path.write_text(f"data_dir = {value}\n")  # was silently replaced by $MLPLAB_DATA or None
    args = build_parser().parse_args(["train", "--config", str(path)])
    with pytest.raises(ConfigError, match="^data_dir: must be str, got "):
        config_from_args(args)


def test_a_non_utf8_file_is_invalid_toml_whatever_the_locale(tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"^{path}: invalid TOML: 'utf-8' codec can't decode"):
        read_toml(path)


def test_cli_reports_a_bad_config_file_on_one_line(cli, tmp_path):
    (tmp_path / "bad.toml").write_text("lr = 0.1\n[train]\nepochs = 2\n")
    r = cli("train", "--config", "bad.toml", cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert r.stderr == "mlplab: error: bad.toml: unknown field 'lr' outside the [train] table\n"
