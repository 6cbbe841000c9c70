"""Model specs: a network described by text that fits on a command line.

`784-128-64-10:relu` is the sizes, input first and classes last, then options after a colon:
an activation, `dropout=P` (after each hidden layer), `input_dropout=P` (on the inputs, before
the first layer: Srivastava et al. 2014 drop 20% of MNIST's pixels), `bn` for batch norm.
`parse_spec(str(spec)) == spec`, so a checkpoint stores its network as this text. A preset
name parses to its spec.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass

from mlplab.errors import SpecError
from mlplab.nn.presets import PRESETS

ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu", "leaky_relu", "silu", "identity")
# Bounds that a spec from a file or a request must respect before anything is allocated:
# 2^30 float32 parameters are 4 GiB, far beyond any MNIST-family MLP, and building a
# thousand layers already takes a noticeable fraction of a second.
MAX_PARAMETERS = 1 << 30
MAX_LAYERS = 1000


@dataclass(frozen=True)
class ModelSpec:
    """Layer sizes (input first, classes last), activation, dropout and batch norm."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False
    input_dropout: float = 0.0  # last, so that positional ModelSpec(...) calls keep working

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise SpecError(f"a model needs at least input and output sizes, got {self.sizes}")
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in self.sizes):
            raise SpecError(f"layer sizes must be integers, got {self.sizes}")
        if any(s <= 0 for s in self.sizes):
            raise SpecError(f"layer sizes must be positive, got {self.sizes}")
        if len(self.sizes) > MAX_LAYERS + 1:
            raise SpecError(f"a model has at most {MAX_LAYERS} layers, got {len(self.sizes) - 1}")
        if self.num_parameters > MAX_PARAMETERS:
            raise SpecError(
                f"a model has at most {MAX_PARAMETERS} parameters, "
                f"got {self.num_parameters} for sizes {_short(self.sizes)}"
            )
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}"
            )
        if not isinstance(self.dropout, numbers.Real) or isinstance(self.dropout, bool):
            raise SpecError(f"dropout must be a number, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout}")
        p = self.input_dropout
        if not isinstance(p, numbers.Real) or isinstance(p, bool):
            raise SpecError(f"input_dropout must be a number, got {p!r}")
        if not 0.0 <= p < 1.0:
            raise SpecError(f"input_dropout must be in [0, 1), got {p}")

    @property
    def num_parameters(self) -> int:
        """Weights and biases of the linear layers, plus batch norm's scale and shift."""
        pairs = zip(self.sizes[:-1], self.sizes[1:], strict=False)
        linear = sum(a * b + b for a, b in pairs)
        return linear + (2 * sum(self.hidden) if self.batch_norm else 0)

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.sizes[1:-1]

    def __str__(self) -> str:
        # parse_spec(str(spec)) == spec: options follow a ":" even without hidden layers, and
        # dropout is written with repr so that no digits are lost (checkpoints store this text).
        opts = [self.activation] if self.hidden or self.activation != "relu" else []
        if self.dropout:
            opts.append(f"dropout={float(self.dropout)!r}")
        if self.input_dropout:
            opts.append(f"input_dropout={float(self.input_dropout)!r}")
        if self.batch_norm:
            opts.append("bn")
        text = "-".join(map(str, self.sizes))
        return f"{text}:{','.join(opts)}" if opts else text


# ASCII digits only (\d takes any script's digits) and no "$", which allows a final newline.
_SIZES = re.compile(r"[0-9]+(-[0-9]+)+")
_MAX_DIGITS = 18  # int() refuses more than 4300 digits; any size past 10**18 is refused anyway


def _quote(text: str) -> str:
    """repr of user text, cut short: an error message stays one readable line."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _short(sizes: tuple[int, ...]) -> str:
    text = "-".join(map(str, sizes))
    return text if len(text) <= 80 else text[:77] + "..."


def parse_spec(text: str) -> ModelSpec:
    """Parse `784-128-64-10:relu,dropout=0.2,bn`; a preset name works too."""
    if not isinstance(text, str):
        raise SpecError(f"a model spec is text, got {type(text).__name__}")
    text = text.strip()
    if text in PRESETS:
        return parse_spec(PRESETS[text][0])
    sizes_text, _, opts_text = text.partition(":")
    if not _SIZES.fullmatch(sizes_text):
        raise SpecError(
            f"bad model spec {_quote(text)}: expected sizes like 784-128-10 "
            f"(or a preset: {', '.join(PRESETS)})"
        )
    parts = sizes_text.split("-")
    if len(parts) > MAX_LAYERS + 1:
        raise SpecError(f"bad model spec {_quote(text)}: more than {MAX_LAYERS} layers")
    if any(len(p) > _MAX_DIGITS for p in parts):
        raise SpecError(f"bad model spec {_quote(text)}: a layer size is too large")
    sizes = tuple(int(p) for p in parts)
    fields: dict = {"sizes": sizes}
    for opt in filter(None, (o.strip() for o in opts_text.split(","))):
        key, eq, value = opt.partition("=")
        if not eq and key in ACTIVATIONS:
            fields["activation"] = key
        elif not eq and key in ("bn", "batchnorm", "batch_norm"):
            fields["batch_norm"] = True
        elif key in ("dropout", "input_dropout") and eq:
            try:
                fields[key] = float(value)
            except ValueError:
                raise SpecError(
                    f"bad model spec {_quote(text)}: {key}={_quote(value)} is not a number"
                ) from None
        else:
            raise SpecError(
                f"bad model spec {_quote(text)}: unknown option {_quote(opt)}; expected an "
                f"activation ({', '.join(ACTIVATIONS)}), dropout=P, input_dropout=P or bn"
            )
    return ModelSpec(**fields)
