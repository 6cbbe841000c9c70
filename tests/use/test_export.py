"""Exported models (ONNX through onnxruntime, TorchScript) match the eager model; .pt2 has
its own file, test_export_pt2.py."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from mlplab.errors import MlplabError, MlplabWarning
from mlplab.io.checkpoint import load_checkpoint
from mlplab.use.export import TORCHSCRIPT_DEPRECATED, OnnxModel, export
from mlplab.use.predict import predict


@pytest.fixture(scope="module")
def onnx_file(trained_run, tmp_path_factory):
    return export(
        load_checkpoint(trained_run), "onnx", tmp_path_factory.mktemp("export") / "model.onnx"
    )


def real_batch(mnist, ckpt, n: int) -> torch.Tensor:
    """n real MNIST test images, normalised as the checkpoint says, (n, 1, 28, 28)."""
    return ckpt.norm.apply(mnist.test.x[:n]).reshape(n, 1, 28, 28)


def test_onnx_matches_pytorch_on_real_mnist(onnx_file, trained_run, mnist):
    ckpt = load_checkpoint(trained_run)
    onnx_model = OnnxModel(onnx_file)
    for n in (1, 17, 512):  # the batch axis is dynamic
        x = real_batch(mnist, ckpt, n)
        with torch.no_grad():
            want = ckpt.model(x).numpy()
        got = onnx_model(x.numpy())
        assert got.shape == (n, 10)
        assert np.abs(got - want).max() < 1e-5


def test_onnx_names_and_metadata(onnx_file, trained_run):
    proto = onnx.load(str(onnx_file))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic, not fixed
    meta = {p.key: p.value for p in proto.metadata_props}
    info = json.loads((trained_run / "model.json").read_text())
    assert json.loads(meta["classes"]) == info["classes"]
    assert json.loads(meta["normalization"]) == info["normalization"]
    assert meta["spec"] == info["spec"]


def test_torchscript_loads_and_matches(trained_run, mnist, tmp_path):
    ckpt = load_checkpoint(trained_run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export(ckpt, "torchscript", tmp_path / "model.pt")
    # torch deprecates TorchScript: one warning of ours, naming the formats to use instead;
    # torch's own (torch.jit.trace, torch.jit.save) are not shown.
    assert [(w.category, str(w.message)) for w in caught] == [
        (MlplabWarning, TORCHSCRIPT_DEPRECATED)
    ]
    assert "--format pt2" in TORCHSCRIPT_DEPRECATED and "--format onnx" in TORCHSCRIPT_DEPRECATED
    extra = {"mlplab.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's
        scripted = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(json.loads(extra["mlplab.json"])["classes"]) == ckpt.classes
    for n in (3, 100):
        x = real_batch(mnist, ckpt, n)
        with torch.no_grad():
            assert torch.allclose(scripted(x), ckpt.model(x), atol=1e-6)


def test_predict_runs_the_onnx_file_like_the_checkpoint(onnx_file, trained_run, mnist):
    digits = [mnist.test.x[i].numpy() for i in range(8)]
    from_onnx = predict(onnx_file, digits)
    from_ckpt = predict(trained_run, digits)
    for a, b in zip(from_onnx, from_ckpt, strict=True):
        assert np.abs(np.array(a.probs) - np.array(b.probs)).max() < 1e-5
        assert a.top[0][0] == b.top[0][0]
    assert [r.top[0][0] for r in from_onnx] == [str(int(y)) for y in mnist.test.y[:8]]


def test_bad_export_requests(trained_run, tmp_path):
    ckpt = load_checkpoint(trained_run)
    with pytest.raises(MlplabError, match="unknown export format 'tflite'"):
        export(ckpt, "tflite")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(MlplabError, match=r"junk\.onnx: not a loadable ONNX model"):
        OnnxModel(junk)


def test_an_onnx_deployment_never_imports_torch(onnx_file, mnist, tmp_path):
    """predict() on an .onnx runs through onnxruntime alone: torch is blocked and not needed."""
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(255 - mnist.test.x[0].numpy()).resize((90, 90)).save(tmp_path / "d.png")
    script = f"""
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from mlplab.use.predict import predict
(result,) = predict({str(onnx_file)!r}, [{str(tmp_path / "d.png")!r}])
print(result.top[0][0], "torch" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7", "False"]
