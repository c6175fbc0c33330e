"""The weights (initializers) of an ONNX file, read from its protobuf encoding directly.

The firmware bridge needs only the int8 matrices, scales and biases that ``kws export`` stores,
so it reads them without the ``onnx`` package: ``ModelProto.graph`` (field 7) ->
``GraphProto.initializer`` (field 5, repeated ``TensorProto``) -> ``dims`` (1), ``data_type``
(2), ``name`` (8) and ``raw_data`` (9). Every length is checked against the bytes that remain,
so a truncated or hostile file raises :class:`ValueError` instead of reading past its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

DTYPES = {1: np.float32, 3: np.int8, 6: np.int32, 7: np.int64}  # ONNX TensorProto data types
MAX_BYTES = 64 * 1024 * 1024


def varint(buf: memoryview, i: int) -> tuple[int, int]:
    """A protobuf base-128 varint at ``buf[i]``: (value, next index)."""
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        elif wire == 2:
            size, i = varint(buf, i)
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("a field runs past the end of its message")
        yield number, wire, value


def tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    """(name, array) of one ``TensorProto`` stored with ``raw_data``."""
    dims, dtype, name, raw = [], None, "", None
    for number, wire, value in fields(buf):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            i = 0
            while i < len(value):
                d, i = varint(value, i)
                dims.append(d)
        elif number == 2 and wire == 0:
            dtype = value
        elif number == 8 and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif number == 9 and wire == 2:
            raw = value
    if dtype not in DTYPES or raw is None:
        raise ValueError(f"initializer {name!r}: data type {dtype} or storage not supported "
                         "(kws export stores raw float32/int8 data)")
    array = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<"))
    if int(np.prod(dims, dtype=np.int64)) != array.size:
        raise ValueError(f"initializer {name!r}: dims {dims} do not match {array.size} values")
    return name, array.reshape(dims).astype(DTYPES[dtype])


def read_initializers(path: str | Path) -> dict[str, np.ndarray]:
    """Every initializer of the ONNX file's main graph, by name."""
    path = Path(path)
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BYTES} bytes")
    data = memoryview(path.read_bytes())
    try:
        graphs = [v for n, w, v in fields(data) if n == 7 and w == 2]
        if len(graphs) != 1:
            raise ValueError(f"{len(graphs)} graphs")
        return dict(tensor(v) for n, w, v in fields(graphs[0]) if n == 5 and w == 2)
    except ValueError as e:
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from e
