"""Model specs and preset names from any text: a ModelSpec that round-trips through its
text and is small enough to build, or a SpecError naming the spec; nothing else."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlplab.config import TrainConfig
from mlplab.errors import ConfigError, SpecError
from mlplab.nn.model import build_model
from mlplab.nn.presets import PRESETS
from mlplab.nn.spec import ACTIVATIONS, MAX_LAYERS, MAX_PARAMETERS, ModelSpec, parse_spec


def examples(n: int) -> settings:
    """n examples under the ci profile, as many times more as the profile in use asks."""
    scale = settings.default.max_examples / settings.get_profile("ci").max_examples
    return settings(max_examples=max(1, round(n * scale)))


# What a message about a spec may start with when it does not quote the text: the field.
FIELD_STEMS = ("a model", "layer sizes", "dropout", "unknown activation")

SIZE_TEXT = st.one_of(
    st.integers(0, 2000).map(str),
    st.sampled_from(["784", "10", "0", "007", "4294967296", "1" * 19, "9" * 5000, "٣", "１"]),
    st.text(alphabet="0123456789", min_size=1, max_size=30),
)
FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-inf", "1e-400", "0x1", "1_0", "", ".", "0.5.5", "٠.٥"]),
)
OPTION = st.one_of(
    st.sampled_from([*ACTIVATIONS, "bn", "batchnorm", "batch_norm", "BN", "relu6", "dropout"]),
    FLOAT_TEXT.map(lambda f: f"dropout={f}"),
    st.text(max_size=8),
)


@st.composite
def spec_texts(draw) -> str:
    """Spec-shaped text (sizes, separators, options) with hostile pieces, or any text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40))
    sizes = draw(st.lists(SIZE_TEXT, min_size=0, max_size=6))
    sep = draw(st.sampled_from(["-", "-", "-", "--", " - ", "x", "-\n"]))
    text = sep.join(sizes)
    if draw(st.booleans()):
        opts = draw(st.lists(OPTION, max_size=4))
        text += draw(st.sampled_from([":", ":", ": ", "::"])) + ",".join(opts)
    return draw(st.sampled_from(["", " ", "\n", "\t"])) + text + draw(st.sampled_from(["", "\n"]))


def message_names_spec(text: str):
    def names(message: str) -> bool:
        return repr(text.strip()[:20])[1:-1] in message or message.startswith(FIELD_STEMS)

    return names


def check_spec(spec: ModelSpec | None, text: str) -> None:
    if spec is None:
        return
    assert 2 <= len(spec.sizes) <= MAX_LAYERS + 1 and all(s > 0 for s in spec.sizes)
    assert spec.num_parameters <= MAX_PARAMETERS
    assert spec.activation in ACTIVATIONS and 0.0 <= spec.dropout < 1.0
    assert parse_spec(str(spec)) == spec, "str(spec) does not parse back to the spec"
    if text.strip() not in PRESETS:
        digits = text.strip().partition(":")[0].split("-")
        assert tuple(int(d) for d in digits) == spec.sizes


def parse_or_none(text: str) -> ModelSpec | None:
    try:
        return parse_spec(text)
    except SpecError as e:
        message = str(e)
        assert "\n" not in message and len(message) < 400, f"unreadable error: {message!r}"
        assert message_names_spec(text)(message), f"{message!r} names neither spec nor field"
        return None


@examples(300)
@given(spec_texts())
@example("784-" + "1" * 5000 + "-10")  # int() refuses 4300+ digits: was a ValueError
@example("784-10\n:relu")  # "$" matched before the newline
@example("٧٨٤-١٠")  # \d matched Arabic-Indic digits
@example("784-1000000000-10")  # 8e11 parameters: was accepted, then allocated at build
@example("-".join(["10"] * 2000))
def test_any_text_parses_to_a_buildable_spec_or_a_spec_error(text):
    check_spec(parse_or_none(text), text)


@examples(100)
@given(
    st.lists(st.integers(1, 300), min_size=2, max_size=5),
    st.sampled_from(ACTIVATIONS),
    st.one_of(st.just(0.0), st.floats(0.0, 1.0, exclude_max=True)),
    st.booleans(),
)
def test_every_valid_spec_round_trips_through_its_text(sizes, activation, dropout, bn):
    spec = ModelSpec(tuple(sizes), activation, dropout, bn)
    assert parse_spec(str(spec)) == spec


@examples(100)
@given(st.one_of(st.sampled_from(list(PRESETS)), st.text(max_size=20)))
def test_preset_names_are_exact_or_a_config_error(name):
    try:
        config = TrainConfig(preset=name)
    except ConfigError as e:
        assert name not in PRESETS
        assert str(e).startswith("preset: unknown ") and "\n" not in str(e)
        return
    assert name in PRESETS and config.model_spec == PRESETS[name][0]
    assert parse_spec(name) == parse_spec(PRESETS[name][0])


# Regression tests for what the property found.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "784-" + "1" * 5000 + "-10",
            r"^bad model spec '784-1111.*\.\.\.': a layer size is too large$",
        ),
        ("784-10\n:relu", r"^bad model spec '784-10\\n:relu': expected sizes like 784-128-10"),
        ("٧٨٤-١٠", r"^bad model spec '٧٨٤-١٠': expected sizes"),
        ("784-1000000000-10", r"^a model has at most 1073741824 parameters, got 795000000010 "),
        ("-".join(["10"] * 1002), r"^bad model spec '10-10-.*': more than 1000 layers$"),
    ],
)
def test_found_cases_are_spec_errors(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_a_spec_within_the_bounds_builds():
    spec = parse_spec("784-1000-10")
    assert spec.num_parameters == 784 * 1000 + 1000 + 1000 * 10 + 10
    assert sum(p.numel() for p in build_model(spec).parameters()) == spec.num_parameters
    with_bn = parse_spec("784-100-10:bn")
    assert sum(p.numel() for p in build_model(with_bn).parameters()) == with_bn.num_parameters


def test_non_text_and_non_integer_sizes_are_spec_errors():
    with pytest.raises(SpecError, match="^a model spec is text, got int$"):
        parse_spec(784)
    with pytest.raises(SpecError, match=r"^layer sizes must be integers, got \(784, 10.0\)$"):
        ModelSpec((784, 10.0))
    with pytest.raises(SpecError, match="^dropout must be a number, got '0.1'$"):
        ModelSpec((784, 10), dropout="0.1")
