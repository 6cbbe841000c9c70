"""Two drawings the lessons teach with, on a matplotlib Axes the caller owns.

- draw_network: a feed-forward network as columns of units. Given a model, each edge shows
  its weight (red positive, blue negative, stronger is darker); given an input too, each unit
  is shaded by its activation for that input. Wide layers are drawn as a sample of units, and
  the label says how many there are.
- draw_graph: the graph autograd recorded behind a tensor, from the leaves to the output, the
  way `loss.grad_fn` and its `next_functions` link it.

Neither imports matplotlib: they draw on the Axes they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

POSITIVE, NEGATIVE = (0.80, 0.15, 0.15), (0.15, 0.35, 0.80)


def shown_units(size: int, max_units: int) -> list[int]:
    """The units drawn for a layer of `size`: all of them, or `max_units` evenly spread."""
    if size <= max_units:
        return list(range(size))
    return torch.linspace(0, size - 1, max_units).round().long().tolist()


def _layers(model: nn.Module | Sequence[int]) -> tuple[list[int], list[nn.Linear], str]:
    if isinstance(model, nn.Module):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        sizes = [linears[0].in_features] + [layer.out_features for layer in linears]
        spec = getattr(model, "spec", None)
        return sizes, linears, spec.activation if spec is not None else "hidden"
    return list(model), [], "hidden"


def _activations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's values for one input: the input itself, every hidden layer after its
    activation, and the logits."""
    outs: list[torch.Tensor] = []
    hooks = []
    blocks = list(model.children()) if isinstance(model, nn.Sequential) else []
    linears = {id(m) for m in model.modules() if isinstance(m, nn.Linear)}
    # a layer's value is what leaves its last module before the next Linear (its
    # activation; dropout, which is off in eval mode anyway, is passed over)
    for i, block in enumerate(blocks):
        if id(block) not in linears:
            continue
        target = block
        for after in blocks[i + 1 :]:
            if id(after) in linears:
                break
            if not isinstance(after, nn.Dropout):
                target = after
        hooks.append(target.register_forward_hook(lambda m, a, out: outs.append(out[0])))
    try:
        with torch.no_grad():
            model(x.reshape(1, -1))
    finally:
        for h in hooks:
            h.remove()
    return [x.reshape(-1)] + [o.reshape(-1) for o in outs]


def draw_network(
    ax,
    model: nn.Module | Sequence[int],
    x: torch.Tensor | None = None,
    max_units: int = 10,
    top_k: int = 3,
    names: Sequence[str] | None = None,
) -> list[list[int]]:
    """Draw `model` (an nn.Sequential of Linear layers, or just its sizes) on `ax`.

    Args:
        ax: a matplotlib Axes.
        model: the network; with its weights, edges show each drawn unit's `top_k` strongest
            incoming weights among the drawn units of the layer before.
        x: one input; units are shaded by their values for it (white is 0, red positive,
            blue negative, each layer scaled to its own largest value).
        max_units: the most units drawn per layer; a wider layer shows that many, evenly
            spread, and its label says so.
        names: a label under each layer (default: its size and role, and how many of its
            units are drawn).

    Returns:
        The indices of the units drawn in each layer.
    """
    sizes, linears, act = _layers(model)
    if x is not None and not isinstance(model, nn.Module):
        raise ValueError("draw_network: shading by activation needs a model, not only sizes")
    values = _activations(model, x) if x is not None else None
    drawn = [shown_units(n, max_units) for n in sizes]
    ys = [_positions(len(units)) for units in drawn]
    if linears:
        for i, layer in enumerate(linears):
            _edges(ax, layer.weight.detach(), drawn[i], drawn[i + 1], ys[i], ys[i + 1], i, top_k)
    else:
        for i in range(len(sizes) - 1):
            for y0 in ys[i]:
                for y1 in ys[i + 1]:
                    ax.plot([i, i + 1], [y0, y1], color="0.8", lw=0.5, zorder=1)
    for i, units in enumerate(drawn):
        shade = _shades(values[i], units) if values is not None else ["white"] * len(units)
        ax.scatter([i] * len(units), ys[i], s=260, c=shade, edgecolors="0.2", zorder=3)
        if names is not None:
            label = names[i]  # the caller's words, which then say what is sampled
        else:
            label = _role(i, sizes, act)
            if len(units) < sizes[i]:
                label += f"\n({len(units)} shown)"
        ax.text(i, -1.18, label, ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim(-1.5, 1.1)
    ax.axis("off")
    return drawn


def _role(i: int, sizes: list[int], act: str) -> str:
    if i == 0:
        return f"{sizes[0]} inputs"
    if i == len(sizes) - 1:
        return f"{sizes[i]} logits"
    return f"{sizes[i]} {act}"


def _positions(n: int) -> list[float]:
    """n units spread over [-1, 1], top to bottom, with a gap in the middle for the '⋮'."""
    if n == 1:
        return [0.0]
    step = 2.0 / n
    return [1.0 - step / 2 - k * step for k in range(n)]


def _shades(values: torch.Tensor, units: list[int]) -> list[tuple[float, float, float]]:
    v = values[units].float()
    scale = float(values.abs().max()) or 1.0
    out = []
    for a in (v / scale).tolist():
        base = POSITIVE if a >= 0 else NEGATIVE
        t = min(abs(a), 1.0)
        out.append(tuple(1.0 - t * (1.0 - c) for c in base))
    return out


def _edges(ax, weight, src, dst, y_src, y_dst, column, top_k) -> None:
    sub = weight[dst][:, src]  # (drawn out, drawn in)
    scale = float(sub.abs().max()) or 1.0
    for j, row in enumerate(sub):
        for k in row.abs().argsort(descending=True)[:top_k].tolist():
            w = float(row[k])
            ax.plot(
                [column, column + 1],
                [y_src[k], y_dst[j]],
                color=POSITIVE if w >= 0 else NEGATIVE,
                alpha=0.15 + 0.85 * abs(w) / scale,
                lw=0.5 + 2.0 * abs(w) / scale,
                zorder=2,
            )


def graph_nodes(
    output: torch.Tensor, leaves: Mapping[str, torch.Tensor] | None = None
) -> dict[str, list[str]]:
    """The graph autograd recorded behind `output`: each node's name and the names of its
    inputs. Leaves are named from `leaves` (name -> tensor) where given."""
    names = {id(t): n for n, t in (leaves or {}).items()}
    nodes: dict[str, list[str]] = {}
    seen: dict[int, str] = {}

    def name_of(fn) -> str:
        if id(fn) in seen:
            return seen[id(fn)]
        if type(fn).__name__ == "AccumulateGrad":
            label = names.get(id(fn.variable), f"leaf {tuple(fn.variable.shape)}")
        else:
            label = type(fn).__name__
        count = sum(1 for v in seen.values() if v == label or v.startswith(label + " #"))
        seen[id(fn)] = label if count == 0 else f"{label} #{count + 1}"
        return seen[id(fn)]

    def visit(fn) -> str:
        me = name_of(fn)
        if me in nodes:
            return me
        nodes[me] = []
        for parent, _ in getattr(fn, "next_functions", ()):
            if parent is not None:
                nodes[me].append(visit(parent))
        return me

    if output.grad_fn is None:
        raise ValueError("draw_graph: the tensor has no grad_fn (nothing recorded it)")
    visit(output.grad_fn)
    return nodes


def draw_graph(ax, output: torch.Tensor, leaves: Mapping[str, torch.Tensor] | None = None):
    """Draw autograd's graph behind `output` on `ax`, leaves on the left, the output on the
    right; returns graph_nodes' answer."""
    nodes = graph_nodes(output, leaves)
    depth: dict[str, int] = {}

    def level(n: str) -> int:
        if n not in depth:
            depth[n] = 1 + max((level(p) for p in nodes[n]), default=-1)
        return depth[n]

    for n in nodes:
        level(n)
    columns: dict[int, list[str]] = {}
    for n in nodes:
        columns.setdefault(depth[n], []).append(n)
    where = {}
    for d, members in columns.items():
        for k, n in enumerate(members):
            where[n] = (2.0 * d, (len(members) - 1) / 2 - k)
    for n, parents in nodes.items():
        for p in parents:
            ax.annotate(
                "",
                xy=where[n],
                xytext=where[p],
                arrowprops={"arrowstyle": "->", "color": "0.4", "shrinkA": 22, "shrinkB": 22},
            )
    for n, (cx, cy) in where.items():
        leaf = not nodes[n]
        ax.text(
            cx,
            cy,
            n.replace("Backward0", "\nBackward0") if not leaf else n,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round", "fc": "#fff3c4" if leaf else "#e3ecfa", "ec": "0.4"},
        )
    height = max(len(m) for m in columns.values())
    ax.set_xlim(-0.8, 2.0 * max(columns) + 0.8)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.2)
    ax.axis("off")
    return nodes
