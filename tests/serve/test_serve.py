"""The web app, served for real by `mlplab serve` on 127.0.0.1: API, bad input, browser, load."""

from __future__ import annotations

import io
import json
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest
from benchmarks.loadtest import load_test
from benchmarks.serve_soak import running_server
from PIL import Image

from conftest import draw


@pytest.fixture(scope="module")
def server(trained_run):
    with running_server(trained_run, start_timeout=60) as (url, _):
        yield url


def post(url: str, body: bytes, content_type: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(
        url + "/api/predict", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def png_of(digit: np.ndarray, size: int = 140) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(255 - digit).resize((size, size)).save(buf, "PNG")
    return buf.getvalue()


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "mlplabboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_binds_to_loopback_only(server):
    port = int(server.rsplit(":", 1)[1])
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("ss is not available")
    local = [line.split()[3] for line in out.stdout.splitlines()]  # Local Address:Port
    assert local == [f"127.0.0.1:{port}"]


def test_health_model_and_docs(server, trained_run):
    with urllib.request.urlopen(server + "/healthz") as r:
        assert json.loads(r.read()) == {"status": "ok"}
    with urllib.request.urlopen(server + "/api/model") as r:
        model = json.loads(r.read())
    info = json.loads((trained_run / "model.json").read_text())
    assert model["spec"] == info["spec"] == "784-100-10:relu"
    assert model["dataset"] == "mnist" and model["classes"] == [str(d) for d in range(10)]
    assert model["test_accuracy"] == pytest.approx(info["test_accuracy"])
    with urllib.request.urlopen(server + "/openapi.json") as r:
        assert "/api/predict" in json.loads(r.read())["paths"]
    with urllib.request.urlopen(server + "/docs") as r:
        docs = r.read().decode()
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs  # works offline
    with urllib.request.urlopen(server + "/docs-assets/swagger-ui-bundle.js") as r:
        assert r.status == 200 and len(r.read()) > 100_000


def test_page_and_assets_are_served_locally(server):
    with urllib.request.urlopen(server + "/") as r:
        page = r.read().decode()
    assert '<canvas id="pad" width="280" height="280"' in page
    assert "http://" not in page and "https://" not in page  # no CDN
    for asset in ("/static/app.js", "/static/style.css"):
        with urllib.request.urlopen(server + asset) as r:
            text = r.read().decode()
            assert r.status == 200 and "http" not in text


@pytest.mark.parametrize("how", ["multipart", "png", "octet-stream"])
def test_predicts_an_image(server, mnist, how):
    data = png_of(mnist.test.x[0].numpy())  # a 7
    if how == "multipart":
        status, result = post(server, *multipart("file", "seven.png", data))
    else:
        status, result = post(
            server, data, "image/png" if how == "png" else "application/octet-stream"
        )
    assert status == 200, result
    assert result["top"]["class"] == "7" and result["top"]["index"] == 7
    assert sum(result["probabilities"]) == pytest.approx(1.0)
    assert len(result["input"]) == 784 and result["latency_ms"] > 0


def test_predicts_pixels_single_and_batch(server, mnist):
    pixels = [(mnist.test.x[i].reshape(-1).double() / 255).tolist() for i in range(4)]
    status, one = post(server, json.dumps({"pixels": pixels[0]}).encode(), "application/json")
    assert status == 200 and one["top"]["class"] == "7"
    status, many = post(server, json.dumps({"pixels": pixels}).encode(), "application/json")
    assert status == 200
    assert [p["top"]["class"] for p in many["predictions"]] == ["7", "2", "1", "0"]


BAD = {
    "non-image": (b"hello, not an image", "image/png", 415, "not an image"),
    "empty body": (b"", "image/png", 400, "empty body"),
    "too many bytes": (b"\0" * (2 * 1024 * 1024 + 1), "image/png", 413, "limit"),
    "wrong pixel count": (
        b'{"pixels": [0.5, 0.5]}',
        "application/json",
        422,
        "expected 784 values",
    ),
    "NaN": (b'{"pixels": [' + b",".join([b"NaN"] * 784) + b"]}", "application/json", 422, "finite"),
    "out of range": (
        b'{"pixels": [' + b",".join([b"2"] * 784) + b"]}",
        "application/json",
        422,
        "[0, 1]",
    ),
    "malformed JSON": (b'{"pixels": [1,', "application/json", 400, "malformed JSON"),
    "no pixels key": (b'{"image": 1}', "application/json", 422, '"pixels"'),
    "unknown type": (b"abc", "text/plain", 415, "unsupported content type"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_a_4xx_json_error_and_serving_goes_on(server, case, mnist):
    body, content_type, want_status, want_text = BAD[case]
    status, result = post(server, body, content_type)
    assert status == want_status, result
    assert want_text in result["error"]
    status, _ = post(server, png_of(mnist.test.x[0].numpy()), "image/png")
    assert status == 200


def test_oversized_image_and_missing_form_field(server):
    buf = io.BytesIO()
    Image.new("L", (4100, 10)).save(buf, "PNG")
    status, result = post(server, buf.getvalue(), "image/png")
    assert status == 413 and "4100x10" in result["error"]
    status, result = post(server, *multipart("other", "x.png", b"abc"))
    assert status == 422 and "'file'" in result["error"]


def test_drawing_a_digit_in_a_real_browser(server, tmp_path, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert "784-100-10:relu" in page.locator("#model-info").text_content()
    draw(page, "#pad", [(70, 60), (210, 60), (200, 80), (150, 160), (120, 235)])  # a 7
    page.wait_for_function(
        "document.getElementById('top-class').textContent === '7'", timeout=15000
    )
    page.wait_for_timeout(500)  # let the last in-flight prediction land
    probs = page.eval_on_selector_all(
        ".bar", "rows => rows.map(r => parseFloat(r.dataset.probability))"
    )
    assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-3)
    seen = page.eval_on_selector(
        "#seen", "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    assert max(seen[0::4]) > 200  # the 28x28 view shows the ink
    page.screenshot(path=str(tmp_path / "page.png"))
    page.click("#clear")
    assert page.locator("#top-class").text_content() == "–"
    page.close()


def test_bounded_load(server):
    stats = load_test(server, requests=2000, concurrency=16, max_seconds=240)
    print(f"\nload test: {json.dumps(stats)}")
    assert stats["requests"] == 2000
    assert stats["errors"] == 0 and stats["statuses"] == {"200": 2000}
