"""Property tests of what the server parses: JSON pixels, multipart forms, content types.

The property: parse_request returns N images of 28x28 in [0, 1] (N <= MAX_BATCH), or raises
BadInput, an MlplabError with a 4xx status and a one-line message naming the part of the
request at fault. Never another exception, never a hang (the deadline).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlplab.errors import MlplabError
from mlplab.serve.parsing import MAX_BATCH, MAX_PARTS, BadInput, parse_request

BOUNDED = settings(
    max_examples=250,
    deadline=2000,  # ms; generous, the machine is shared, and catches a parser stuck in a loop
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = ("pixels", "JSON", "body", "multipart", "field 'file'", "content type")
JSON_TYPE = "application/json"


def checked(content_type: str, body: bytes):
    """parse_request, with the property asserted; the images, or None when refused."""
    try:
        images, batched = parse_request(content_type, body)
    except BadInput as e:
        message = str(e)
        assert isinstance(e, MlplabError) and e.status in (400, 413, 415, 422), e.status
        assert "\n" not in message and message.strip(), repr(message)
        assert any(n in message for n in NAMES), f"{message!r} names no part of the request"
        return None
    assert isinstance(batched, bool)
    assert images.dtype == np.float64 and images.shape[1:] == (28, 28)
    assert 1 <= len(images) <= MAX_BATCH and (batched or len(images) == 1)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    return images


def png_bytes(size: tuple[int, int], mode: str = "L", ink: int = 255) -> bytes:
    picture = Image.new(mode, size)
    if size[0] > 2 and size[1] > 2:
        picture.putpixel((size[0] // 2, size[1] // 2), ink if mode == "L" else (ink,) * 3)
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()


numbers = st.one_of(
    st.floats(0, 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.sampled_from([0, 1, True, False, None, "0.5", [], {}]),
)


def make_row(n: int, base: float, odd, at: int) -> list:
    """n copies of a valid value, one of them (at any position) replaced by `odd`.

    Drawing 784 values one by one makes each example slow to generate; this probes every
    kind of bad value at every position for the price of four draws."""
    row = [base] * n
    if n:
        row[at % n] = odd
    return row


near_784 = st.sampled_from([0, 1, 783, 784, 784, 784, 785])
rows = st.builds(make_row, near_784, st.floats(0, 1), numbers, st.integers(0, 783))
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
documents = st.one_of(
    st.fixed_dictionaries({"pixels": rows}),
    st.fixed_dictionaries({"pixels": st.lists(rows, min_size=0, max_size=4)}),
    st.fixed_dictionaries({"pixels": json_values}),
    json_values,
)


@BOUNDED
@given(documents)
@example({"pixels": [[0.5] * 784] * (MAX_BATCH + 1)})
@example({"pixels": [10**400] * 784})
@example({"pixels": [[0.5] * 784, [0.5] * 783]})
def test_json_documents(doc):
    body = json.dumps(doc, allow_nan=True).encode()
    images = checked(JSON_TYPE, body)
    if images is not None:  # accepted: exactly the numbers that were sent
        pixels = doc["pixels"] if isinstance(doc["pixels"][0], list) else [doc["pixels"]]
        assert np.array_equal(images.reshape(len(pixels), 784), np.asarray(pixels, np.float64))


@BOUNDED
@given(st.binary(max_size=4000))
@example(b"[" * 100_000)  # nested past the interpreter's recursion limit
@example(b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
@example('{"pixels": "\udcff"}'.encode("utf-8", "surrogatepass"))
@example(b"\xff\xfe{\x00}\x00")
def test_json_bytes(body):
    checked(JSON_TYPE, body)


def form(parts: list[tuple[bytes, bytes]], boundary: bytes) -> bytes:
    """A multipart body from (headers, data) pairs."""
    out = b"".join(b"--" + boundary + b"\r\n" + h + b"\r\n\r\n" + d + b"\r\n" for h, d in parts)
    return out + b"--" + boundary + b"--\r\n"


boundaries = st.one_of(
    st.just(b"b0undary"),
    st.binary(min_size=1, max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
field_names = st.sampled_from([b"file", b"file", b"other", b"FILE", b"", b'fi"le'])
payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(png_bytes, st.tuples(st.integers(1, 64), st.integers(1, 64)), st.just("L")),
    st.builds(png_bytes, st.tuples(st.integers(1, 64), st.integers(1, 64)), st.just("RGB")),
)
headers = st.one_of(
    st.builds(lambda n: b'Content-Disposition: form-data; name="' + n + b'"', field_names),
    st.builds(
        lambda n: (
            b'Content-Disposition: form-data; name="' + n + b'"; filename="d.png"\r\n'
            b"Content-Type: image/png"
        ),
        field_names,
    ),
    st.binary(max_size=60),
)
parts = st.lists(st.tuples(headers, payloads), min_size=0, max_size=MAX_PARTS + 2)


@BOUNDED
@given(parts, boundaries, st.integers(0, 3), st.data())
def test_multipart_bodies(parts, boundary, damage, data):
    body = form(parts, boundary)
    if damage == 1:  # cut short
        body = body[: data.draw(st.integers(0, len(body)))]
    elif damage == 2:  # one byte changed
        at = data.draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1 :]
    quoted = data.draw(st.booleans())
    text = boundary.decode("latin-1")
    param = f'"{text}"' if quoted else text
    images = checked(f"multipart/form-data; boundary={param}", body)
    if images is not None:
        assert len(images) == 1


def test_a_good_form_gives_the_digit_and_others_fields_are_ignored(mnist):
    digit = Image.fromarray(255 - mnist.test.x[0].numpy()).resize((140, 140))
    buf = io.BytesIO()
    digit.save(buf, "PNG")
    body = form(
        [
            (b'Content-Disposition: form-data; name="note"', b"hello"),
            (b'Content-Disposition: form-data; name="file"; filename="7.png"', buf.getvalue()),
        ],
        b"xyz",
    )
    images, batched = parse_request("multipart/form-data; boundary=xyz", body)
    assert images.shape == (1, 28, 28) and not batched
    assert math.isclose(images.max(), 1.0, abs_tol=0.05)  # the digit's ink, not an empty form


@BOUNDED
@given(
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=80),
    st.binary(max_size=200),
)
@example("multipart/form-data; boundary=", b"--\r\n")
@example("multipart/form-data; boundary*=utf-8''x", b"")
@example("image/png; q", b"\x89PNG\r\n\x1a\n")
def test_any_content_type(content_type, body):
    checked(content_type, body)


@pytest.mark.parametrize(
    "content_type, body, status, text",
    [
        ("multipart/form-data", b"--x--", 400, "no boundary"),
        ("multipart/form-data; boundary=" + "x" * 71, b"--x--", 400, "malformed multipart"),
        ("application/json", b"[" * 100_000, 400, "nested too deeply"),
        ("application/json", b'{"pixels": [' + b"1e999," * 783 + b"0]}", 422, "finite"),
        ("image/png", png_bytes((4100, 10)), 413, "body: image is 4100x10 px"),
        ("application/octet-stream", b"GIF89a", 415, "body: "),
    ],
)
def test_regressions(content_type, body, status, text):
    with pytest.raises(BadInput) as e:
        parse_request(content_type, body)
    assert e.value.status == status and text in str(e.value)
