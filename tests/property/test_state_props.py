"""The training-state reader on damaged and hostile states (RUN/state/N/: state.json and
tensors.safetensors), the files `mlplab train --resume` reads.

A damaged file (bytes cut or flipped) loads exactly, when the change was to bytes nothing
reads such as JSON spacing, or fails with one CheckpointError naming that file. A hostile
state, any value anywhere in its tree with every checksum made right again, continues a
Trainer or fails with one CheckpointError naming its state.json. Nothing else is raised, and
nothing hangs (the profile's deadline)."""

from __future__ import annotations

import copy
import math
import shutil

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import head
from mlplab.config import TrainConfig
from mlplab.io.states import TENSORS, TREE, load_state, save_state
from mlplab.training.trainer import Trainer
from property.strategies import damaged, examples, json_any

KEYS = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), max_size=6)
JSON_ANY = json_any(KEYS)  # state keys have no "/" (it joins the tensor names)
TENSORS_ANY = st.builds(
    lambda shape, dtype: torch.zeros(shape, dtype=dtype),
    st.lists(st.integers(0, 5), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool]),
)


@pytest.fixture(scope="module")
def saved(mnist, tmp_path_factory):
    """A real state after 3 steps of a run with a validation split and a weight average
    (so the tree has the best weights and the average too): (config, data, folder)."""
    config = TrainConfig(
        model="784-16-10:relu", iterations=6, eval_every=2, batch_size=32, val_size=100, ema=0.9
    )
    data = head(mnist, 600, 200)
    trainer = Trainer(config, data)
    for _ in range(3):
        trainer.step()
    folder = save_state(tmp_path_factory.mktemp("state") / "000000003", trainer.state_dict())
    return config, data, folder


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def fresh_copy(folder, tmp_path):
    target = tmp_path / "000000003"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target)
    return target


@examples(150)
@given(data=st.data())
def test_damaged_bytes(saved, tmp_path, clean, data):
    _, _, original = saved
    folder = fresh_copy(original, tmp_path)
    name = data.draw(st.sampled_from([TREE, TENSORS]))
    (folder / name).write_bytes(damaged(data, (folder / name).read_bytes()))
    tree = clean(load_state, folder, names=(str(folder / name),))
    if tree is not None:  # bytes that nothing reads, such as the JSON's spacing
        assert same(tree, load_state(original))


def places(node, prefix=()):
    """Every place in the tree that holds a value, as a tuple of keys."""
    if isinstance(node, torch.Tensor):
        return
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*prefix, key)
        if isinstance(value, dict | list) and value:
            yield from places(value, (*prefix, key))


@examples(120)
@given(data=st.data())
def test_any_value_anywhere_with_the_checksums_made_right(saved, tmp_path, clean, data):
    config, dataset, original = saved
    tree = load_state(original)
    where = data.draw(st.sampled_from(sorted(places(tree), key=repr)))
    changed = copy.deepcopy(tree)
    node = changed
    for key in where[:-1]:
        node = node[key]
    if isinstance(node, dict) and data.draw(st.booleans()):
        del node[where[-1]]
    else:
        node[where[-1]] = data.draw(st.one_of(JSON_ANY, TENSORS_ANY))
    folder = save_state(tmp_path / "000000003", changed)
    trainer = Trainer(config, dataset)
    clean(trainer.load_state, folder, names=(str(folder / TREE),))
