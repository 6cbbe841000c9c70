"""`mlplab predict`, `export` and `serve` arguments, end to end through subprocesses."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from mlplab.cli import main
from mlplab.use.export import TORCHSCRIPT_DEPRECATED
from mlplab.use.predict import predict


def write_digits(mnist, tmp_path, n=3) -> list[str]:
    names = []
    for i in range(n):
        name = f"digit{i}.jpg"
        Image.fromarray(255 - mnist.test.x[i].numpy()).resize((120, 120)).convert("RGB").save(
            tmp_path / name
        )
        names.append(name)
    return names


def test_predict_table_with_a_bad_file_among_good_ones(trained_run, mnist, tmp_path, cli):
    names = write_digits(mnist, tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    out = cli(
        "predict",
        str(trained_run),
        names[0],
        "broken.png",
        *names[1:],
        "-k",
        "2",
        "--show-input",
        "seen",
        "--plot",
        "plots",
        cwd=tmp_path,
    )
    assert out.returncode == 1  # one file failed ...
    assert (
        out.stderr.strip()
        == "mlplab: error: broken.png: not an image (PNG, JPEG, BMP or GIF expected)"
    )
    rows = out.stdout.splitlines()  # ... and the others were still predicted
    assert [r.split()[0] for r in rows] == names
    assert [r.split()[1] for r in rows] == ["7", "2", "1"]
    assert len(rows[0].split()) == 5  # name, then 2 x (class, probability)
    for name in names:
        stem = name.removesuffix(".jpg")
        assert Image.open(tmp_path / "seen" / f"{stem}-input.png").size == (28, 28)
        assert (tmp_path / "plots" / f"{stem}-classify.png").stat().st_size > 1000


def test_predict_json_and_onnx(trained_run, mnist, tmp_path, cli):
    names = write_digits(mnist, tmp_path, 2)
    out = cli("export", str(trained_run), "--format", "onnx", "-o", "m.onnx", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = {}
    for model in (str(trained_run), "m.onnx"):
        out = cli("predict", model, *names, "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert [r["name"] for r in doc["results"]] == names
        results[model] = doc["results"]
    for a, b in zip(*results.values(), strict=True):
        assert a["top"][0]["class"] == b["top"][0]["class"]
        assert abs(a["top"][0]["probability"] - b["top"][0]["probability"]) < 1e-5


def test_predict_with_a_pt2_export(trained_run, mnist, tmp_path, cli, capsys):
    names = write_digits(mnist, tmp_path, 2)
    # Exported in this process: the subprocess that matters is predict's.
    assert main(["export", str(trained_run), "--format", "pt2", "-o", str(tmp_path / "m.pt2")]) == 0
    assert capsys.readouterr() == (f"{tmp_path / 'm.pt2'}\n", "")
    out = cli("predict", "m.pt2", *names, "--json", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    doc = json.loads(out.stdout)
    assert doc["model"] == "m.pt2"
    want = predict(trained_run, [tmp_path / n for n in names], names=names)
    assert [r["name"] for r in doc["results"]] == names
    for got, w in zip(doc["results"], want, strict=True):
        assert got["top"][0]["class"] == w.top[0][0]
        np.testing.assert_allclose(got["probabilities"], w.probs, rtol=0, atol=1e-6)


def test_export_torchscript_default_path_is_deprecated(trained_run, tmp_path, cli):
    out = cli("export", str(trained_run), "--format", "torchscript", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(trained_run / "model.pt")
    assert (trained_run / "model.pt").stat().st_size > 10_000
    # One line, ours: torch's own deprecation warnings are not shown.
    assert out.stderr == f"mlplab: warning: {TORCHSCRIPT_DEPRECATED}\n"


def test_bad_arguments(trained_run, tmp_path, cli):
    out = cli("predict", str(trained_run), "missing.png", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("mlplab: error: missing.png: cannot read")
    out = cli("export", str(tmp_path / "nope"), cwd=tmp_path)
    assert out.returncode == 1 and "no such checkpoint" in out.stderr
    out = cli("serve", str(trained_run), "--port", "70000", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == "mlplab: error: --port must be 0 to 65535, got 70000"
    out = cli("export", str(trained_run), "--format", "tflite", cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
