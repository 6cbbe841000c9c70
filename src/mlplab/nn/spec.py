"""Model specs: a network described by text that fits on a command line.

`784-128-64-10:relu` is the sizes, input first and classes last, then options after a colon:
an activation, `dropout=P`, `bn` for batch norm. `parse_spec(str(spec)) == spec`, so a
checkpoint stores its network as this text. A preset name parses to its spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlplab.errors import SpecError
from mlplab.nn.presets import PRESETS

ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu", "leaky_relu", "silu")


@dataclass(frozen=True)
class ModelSpec:
    """Layer sizes (input first, classes last), activation, dropout and batch norm."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise SpecError(f"a model needs at least input and output sizes, got {self.sizes}")
        if any(s <= 0 for s in self.sizes):
            raise SpecError(f"layer sizes must be positive, got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.sizes[1:-1]

    def __str__(self) -> str:
        # parse_spec(str(spec)) == spec: options follow a ":" even without hidden layers, and
        # dropout is written with repr so that no digits are lost (checkpoints store this text).
        opts = [self.activation] if self.hidden or self.activation != "relu" else []
        if self.dropout:
            opts.append(f"dropout={float(self.dropout)!r}")
        if self.batch_norm:
            opts.append("bn")
        text = "-".join(map(str, self.sizes))
        return f"{text}:{','.join(opts)}" if opts else text


_SIZES = re.compile(r"^\d+(-\d+)+$")


def parse_spec(text: str) -> ModelSpec:
    """Parse `784-128-64-10:relu,dropout=0.2,bn`; a preset name works too."""
    text = text.strip()
    if text in PRESETS:
        return parse_spec(PRESETS[text][0])
    sizes_text, _, opts_text = text.partition(":")
    if not _SIZES.match(sizes_text):
        raise SpecError(
            f"bad model spec {text!r}: expected sizes like 784-128-10 "
            f"(or a preset: {', '.join(PRESETS)})"
        )
    sizes = tuple(int(s) for s in sizes_text.split("-"))
    fields: dict = {"sizes": sizes}
    for opt in filter(None, (o.strip() for o in opts_text.split(","))):
        key, eq, value = opt.partition("=")
        if not eq and key in ACTIVATIONS:
            fields["activation"] = key
        elif not eq and key in ("bn", "batchnorm", "batch_norm"):
            fields["batch_norm"] = True
        elif key == "dropout" and eq:
            try:
                fields["dropout"] = float(value)
            except ValueError:
                raise SpecError(
                    f"bad model spec {text!r}: dropout={value!r} is not a number"
                ) from None
        else:
            raise SpecError(
                f"bad model spec {text!r}: unknown option {opt!r}; expected an "
                f"activation ({', '.join(ACTIVATIONS)}), dropout=P or bn"
            )
    return ModelSpec(**fields)
