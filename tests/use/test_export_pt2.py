"""torch.export programs (.pt2): they match eager, load without mlplab, carry their metadata,
are served, and a file that is cut short, random or hostile is refused in one line before
torch reads it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
import zipfile

import numpy as np
import pytest
import torch
from benchmarks.serve_soak import png, running_server

from mlplab import cli
from mlplab.errors import MlplabError
from mlplab.io.checkpoint import load_checkpoint
from mlplab.use.export import Pt2Model, export
from mlplab.use.predict import predict
from mlplab.use.pt2 import Refused


@pytest.fixture(scope="module")
def pt2_file(trained_run, tmp_path_factory):
    return export(load_checkpoint(trained_run), "pt2", tmp_path_factory.mktemp("pt2") / "model.pt2")


def test_pt2_matches_eager_on_the_whole_test_set(pt2_file, trained_run, mnist):
    ckpt = load_checkpoint(trained_run)
    program = Pt2Model(pt2_file)
    x = ckpt.norm.apply(mnist.test.x).reshape(-1, 1, 28, 28)  # (10000, 1, 28, 28)
    for n in (1, 17, len(x)):  # the batch axis is dynamic
        with torch.inference_mode():
            want = ckpt.model(x[:n])
        got = torch.from_numpy(program(x[:n].numpy()))
        assert got.shape == (n, 10)
        # The program calls the same aten kernels on the same weights: not close, equal.
        torch.testing.assert_close(got, want, rtol=0, atol=0)


NO_MLPLAB = """
import sys
class NoMlplab:
    def find_spec(self, name, path=None, target=None):
        if name == "mlplab" or name.startswith("mlplab."):
            raise ImportError("mlplab is blocked in this test")
sys.meta_path.insert(0, NoMlplab())
"""


def test_pt2_runs_with_torch_alone(pt2_file, trained_run, mnist, tmp_path):
    """A deployment needs torch.export.load and the extra file: mlplab cannot be imported."""
    pixels = mnist.test.x[:1000]
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    script = (
        NO_MLPLAB
        + f"""
import json
import numpy as np
import torch
extra = {{"mlplab.json": ""}}
program = torch.export.load({str(pt2_file)!r}, extra_files=extra).module()
meta = json.loads(extra["mlplab.json"])
norm = json.loads(meta["normalization"])
x = torch.from_numpy(np.load({str(tmp_path / "pixels.npy")!r})).float() / 255
x = ((x - norm["mean"]) / norm["std"]).reshape(-1, 1, 28, 28)
with torch.inference_mode():
    np.save({str(tmp_path / "logits.npy")!r}, program(x).numpy())
try:
    import mlplab
except ImportError:
    print(meta["classes"], "mlplab" in sys.modules)
"""
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rsplit(" ", 1) == [json.dumps([str(d) for d in range(10)]), "False\n"]
    ckpt = load_checkpoint(trained_run)
    with torch.inference_mode():
        want = ckpt.model(ckpt.norm.apply(pixels))
    got = torch.from_numpy(np.load(tmp_path / "logits.npy"))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)  # normalised another way


def test_pt2_metadata_round_trips(pt2_file, trained_run):
    ckpt = load_checkpoint(trained_run)
    program = Pt2Model(pt2_file)
    assert program.classes == list(ckpt.classes)
    assert (program.mean, program.std) == (ckpt.norm.mean, ckpt.norm.std)
    assert program.info == json.loads(json.dumps(ckpt.info))
    extra = {"mlplab.json": ""}
    torch.export.load(pt2_file, extra_files=extra)
    meta = json.loads(extra["mlplab.json"])
    info = json.loads((trained_run / "model.json").read_text())
    assert set(meta) == {"mlplab", "classes", "normalization", "spec", "input"}
    assert json.loads(meta["classes"]) == info["classes"]
    assert json.loads(meta["normalization"]) == info["normalization"]
    assert meta["spec"] == info["spec"]
    assert b"stack_trace" not in pt2_file.read_bytes()  # this machine's paths stay here


def test_serve_runs_the_pt2_like_the_run(pt2_file, trained_run, mnist):
    """`mlplab serve model.pt2` in a process of its own, on 127.0.0.1."""
    digit = png(255 - mnist.test.x[0].numpy(), 140)
    (want,) = predict(trained_run, [digit])
    with running_server(pt2_file) as (url, _):
        with urllib.request.urlopen(url + "/api/model", timeout=30) as r:
            model = json.loads(r.read())
        request = urllib.request.Request(
            url + "/api/predict", data=digit, headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            got = json.loads(r.read())
    assert model["source"] == "model.pt2" and model["classes"] == [str(d) for d in range(10)]
    assert model["spec"] == "784-100-10:relu"
    assert got["top"]["class"] == want.top[0][0] == "7"
    np.testing.assert_allclose(got["probabilities"], want.probs, rtol=0, atol=1e-6)


# Files that are not what mlplab wrote


def test_a_cut_short_or_random_file_is_one_line(pt2_file, tmp_path):
    data = pt2_file.read_bytes()
    rng = np.random.default_rng(0)
    weight = data.index(b"archive/data/weights/weight_0") + 200  # inside its bytes
    files = {
        "cut.pt2": data[: len(data) // 2],
        "random.pt2": rng.integers(0, 256, len(data), dtype=np.uint8).tobytes(),
        "empty.pt2": b"",
        "flipped.pt2": data[:weight] + bytes([data[weight] ^ 1]) + data[weight + 1 :],
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(MlplabError) as e:
            Pt2Model(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: not a loadable torch.export program: ")
        assert "\n" not in str(e.value)
    assert str(e.value).endswith("Bad CRC-32 for file 'archive/data/weights/weight_0'")
    with pytest.raises(MlplabError, match=r"missing\.pt2: cannot read: No such file"):
        Pt2Model(tmp_path / "missing.pt2")


def test_mlplab_predict_names_a_cut_short_file_in_one_line(pt2_file, tmp_path, capsys):
    (tmp_path / "cut.pt2").write_bytes(pt2_file.read_bytes()[:5000])
    (tmp_path / "digit.png").write_bytes(png(np.zeros((28, 28), np.uint8)))
    code = cli.main(["predict", str(tmp_path / "cut.pt2"), str(tmp_path / "digit.png")])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"mlplab: error: {tmp_path / 'cut.pt2'}: not a loadable torch.export program: "
        "not a zip archive (cut short, or not a .pt2 file)\n"
    )


def rewritten(data: bytes, name: str, edit) -> bytes:
    """The archive with one file's bytes passed through edit (or added, when it is new)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        names = src.namelist()
        for n in names:
            dst.writestr(n, edit(src.read(n)) if n == f"archive/{name}" else src.read(n))
        if f"archive/{name}" not in names:
            dst.writestr(f"archive/{name}", edit(b""))
    return out.getvalue()


class Payload:
    """What a hostile file would run when unpickled; the test only checks it is refused."""

    def __reduce__(self):
        return (print, ("unpickled",))


def pickled_inputs(_) -> bytes:
    buffer = io.BytesIO()
    torch.save(((torch.zeros(2, 1, 28, 28),), {"x": Payload()}), buffer)
    return buffer.getvalue()


def graph_edit(edit):
    def apply(data: bytes) -> bytes:
        model = json.loads(data)
        edit(model)
        return json.dumps(model).encode()

    return apply


def evaluated_size(model):
    sizes = model["graph_module"]["graph"]["tensor_values"]["input"]["sizes"]
    sizes[0]["as_expr"]["expr_str"] = "__import__('os').getpid()"


def other_operator(model):
    model["graph_module"]["graph"]["nodes"][0]["target"] = "torch.hub.load"


def guards(model):
    model["guards_code"] = ["print('guarded')"]


def pickled_weight(data: bytes) -> bytes:
    config = json.loads(data)
    next(iter(config["config"].values()))["use_pickle"] = True
    return json.dumps(config).encode()


HOSTILE = {
    "evaluated-size": ("models/model.json", graph_edit(evaluated_size), "torch would eval"),
    "pickled-inputs": ("data/sample_inputs/model.pt", pickled_inputs, "weights_only=False"),
    "pickled-weight": ("data/weights/model_weights_config.json", pickled_weight, "is pickled"),
    "other-operator": ("models/model.json", graph_edit(other_operator), "not an aten op"),
    "guards-code": ("models/model.json", graph_edit(guards), "torch would exec"),
    "shared-library": ("data/aotinductor/model/model.so", lambda _: b"\x7fELF", "never writes"),
    "opaque-constant": (
        "data/constants/model_constants_config.json",
        lambda _: b'{"config": {"c": {"path_name": "opaque_obj_0", "use_pickle": true}}}',
        "holds constants",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_file_torch_would_run_code_from_is_refused(case, pt2_file, tmp_path, capfd):
    """torch.export.load evals, unpickles or loads what these hold: mlplab never calls it."""
    name, edit, why = HOSTILE[case]
    path = tmp_path / f"{case}.pt2"
    path.write_bytes(rewritten(pt2_file.read_bytes(), name, edit))
    with pytest.raises(Refused) as e:
        Pt2Model(path)
    assert str(e.value).startswith(f"{path}: refused: ") and why in str(e.value)
    assert capfd.readouterr() == ("", "")  # nothing ran, nothing was logged
