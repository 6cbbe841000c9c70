"""What a predict request carries -> (N, 28, 28) images in [0, 1]; plain functions, no server.

Everything here runs in the worker pool, off the event loop, on a body already read (and
already capped at the body limit). Bad input raises BadInput with its HTTP status.
"""

from __future__ import annotations

import json

import numpy as np

from mlplab.errors import MlplabError
from mlplab.use.predict import ImageError, preprocess

MAX_BATCH = 1024
MAX_PARTS = 16  # a form with the one file field, and a few others a browser may add


class BadInput(MlplabError):
    """A request the API refuses, with its HTTP status."""

    def __init__(self, status: int, message: str, field: str | None = None):
        """`message` is what the client reads under "error"; `field`, the input it is about."""
        super().__init__(message)
        self.status, self.field = status, field


def media_type(content_type: str) -> str:
    """'Image/PNG; q=1' -> 'image/png'."""
    return content_type.split(";")[0].strip().lower()


def parse_pixels(body: bytes) -> tuple[np.ndarray, bool]:
    """JSON {"pixels": [...784...]} or a list of them -> (N, 28, 28) floats, and whether batched."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(400, f"malformed JSON: {e}") from None
    except RecursionError:  # [[[[...]]]] nested deeper than the interpreter's stack
        raise BadInput(400, "malformed JSON: nested too deeply") from None
    if not isinstance(doc, dict) or "pixels" not in doc:
        raise BadInput(422, 'JSON body must be an object with "pixels"')
    pixels = doc["pixels"]
    batched = isinstance(pixels, list) and len(pixels) > 0 and isinstance(pixels[0], list)
    rows = pixels if batched else [pixels]
    if not isinstance(rows, list) or not rows or len(rows) > MAX_BATCH:
        raise BadInput(
            422, f"pixels: expected 784 numbers, or a list of 1 to {MAX_BATCH} such lists"
        )
    out = np.empty((len(rows), 784), dtype=np.float64)
    for i, row in enumerate(rows):
        out[i] = _pixel_row(row, f"pixels[{i}]" if batched else "pixels")
    return out.reshape(-1, 28, 28), batched


def _pixel_row(row, where: str) -> np.ndarray:
    """One list of 784 numbers in [0, 1], checked; `where` names it in the error."""
    if not isinstance(row, list) or len(row) != 784:
        got = len(row) if isinstance(row, list) else type(row).__name__
        raise BadInput(422, f"{where}: expected 784 values (28x28), got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
        raise BadInput(422, f"{where}: every value must be a number")
    try:
        values = np.asarray(row, dtype=np.float64)
    except OverflowError:  # an integer past float64's range, e.g. 10**400
        raise BadInput(422, f"{where}: values must be in [0, 1]") from None
    if not np.isfinite(values).all():
        raise BadInput(422, f"{where}: values must be finite (no NaN or infinity)")
    if values.min() < 0 or values.max() > 1:
        raise BadInput(422, f"{where}: values must be in [0, 1]")
    return values


def form_file(content_type: str, body: bytes) -> bytes:
    """The contents of the multipart/form-data field `file` in a whole body."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    try:
        _, params = parse_options_header(content_type)
    except UnicodeError:
        raise BadInput(400, "malformed multipart body: unreadable Content-Type") from None
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadInput(400, "malformed multipart body: no boundary in Content-Type")
    form = _Form()
    try:
        parser = MultipartParser(boundary, form.callbacks())
        parser.write(body)
        parser.finalize()
    except (FormParserError, UnicodeError) as e:
        raise BadInput(400, f"malformed multipart body: {e}") from None
    if form.too_many:
        raise BadInput(400, f"malformed multipart body: more than {MAX_PARTS} parts")
    if form.file is None:
        raise BadInput(422, "multipart body has no file field named 'file'")
    return bytes(form.file)


class _Form:
    """python-multipart's callbacks, keeping the data of the part named 'file' only."""

    def __init__(self):
        self.file: bytearray | None = None
        self.parts, self.too_many = 0, False
        self._header, self._value, self._disposition = b"", b"", b""
        self._data: bytearray | None = None

    def callbacks(self) -> dict:
        """The callback table MultipartParser takes."""
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._grow("_header", d[s:e]),
            "on_header_value": lambda d, s, e: self._grow("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _grow(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def _begin(self) -> None:
        self.parts += 1
        self.too_many |= self.parts > MAX_PARTS
        self._disposition, self._data = b"", None

    def _header_end(self) -> None:
        if self._header.strip().lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition.decode("latin-1"))
        wanted = options.get(b"name") == b"file" and self.file is None and not self.too_many
        self._data = bytearray() if wanted else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._data is not None:
            self._data += data[start:end]

    def _part_end(self) -> None:
        if self._data is not None:
            self.file, self._data = self._data, None


def _image(data: bytes, where: str) -> np.ndarray:
    """Image bytes -> (1, 28, 28), or BadInput: 413 past the size limit, 415 otherwise."""
    try:
        return preprocess(data, where)[None]
    except ImageError as e:
        raise BadInput(413 if "limit" in str(e) else 415, str(e)) from None


def parse_request(content_type: str, body: bytes) -> tuple[np.ndarray, bool]:
    """A predict request's Content-Type and body -> (N, 28, 28) floats, and whether batched."""
    kind = media_type(content_type)
    if not body:
        raise BadInput(400, "empty body: send an image or JSON pixels")
    if kind == "application/json":
        return parse_pixels(body)
    if kind == "multipart/form-data":
        data = form_file(content_type, body)
        if not data:
            raise BadInput(400, "empty body: the field 'file' is empty")
        return _image(data, "field 'file'"), False
    if kind == "application/octet-stream" or kind.startswith("image/"):
        return _image(body, "body"), False
    raise BadInput(
        415,
        f"unsupported content type {kind or 'none'!r}: send an "
        "image, multipart field 'file', or application/json pixels",
    )
