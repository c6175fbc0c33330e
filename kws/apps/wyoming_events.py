"""Reading Wyoming events from a client that is not trusted, and its audio format.

An event is a JSON header line, an optional JSON data block and an optional binary payload; each
has a size limit, JSON may not nest deeper than ``MAX_JSON_DEPTH``, and a message begun must be
complete within the read timeout. :class:`PcmFormat` checks a client's audio format (8-48 kHz,
1-4 bytes per sample, 1-8 channels, whole frames) and converts its PCM to float32 mono at the
model's rate in bounded blocks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np

from kws.core.resample import StreamResampler

MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024  # ~32 s of 16 kHz 16-bit mono audio in one chunk
RATES, WIDTHS, CHANNELS = (8000, 48000), (1, 4), (1, 8)
MAX_JSON_DEPTH = 32


class ProtocolError(ValueError):
    """A client sent something that is not a well-formed Wyoming event within the limits."""


def depth(value: Any) -> int:
    """Nesting depth of a JSON value (iterative, so a hostile one cannot exhaust the stack)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                break
            todo += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def parse_json(raw: bytes, what: str) -> Any:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ProtocolError(f"malformed {what} ({str(e)[:80]})") from None
    if depth(value) > MAX_JSON_DEPTH:
        raise ProtocolError(f"{what} nested deeper than {MAX_JSON_DEPTH} levels")
    return value


async def read_event(reader: asyncio.StreamReader, idle_timeout_s: float = 300.0,
                     read_timeout_s: float = 10.0) -> tuple[str, dict, bytes | None] | None:
    """The next event as (type, data, payload); None at end of stream.

    Raises:
        ProtocolError: malformed or oversized header, data or payload.
        TimeoutError: nothing arrived for ``idle_timeout_s``, or a message stayed unfinished
            for ``read_timeout_s``.
    """
    try:
        line = await asyncio.wait_for(reader.readline(), idle_timeout_s)
    except (ValueError, asyncio.LimitOverrunError) as e:
        raise ProtocolError(f"header line longer than {MAX_HEADER_BYTES} bytes") from e
    if not line:
        return None
    header = parse_json(line, "header")
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not a JSON object with a string 'type'")
    sizes = {}
    for key, limit in (("data_length", MAX_DATA_BYTES), ("payload_length", MAX_PAYLOAD_BYTES)):
        value = header.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProtocolError(f"{key} {value!r} is not a non-negative integer")
        if value > limit:
            raise ProtocolError(f"{key} {value} exceeds the limit of {limit} bytes")
        sizes[key] = value
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("header data is not a JSON object")
    if sizes["data_length"]:
        extra = parse_json(await asyncio.wait_for(reader.readexactly(sizes["data_length"]),
                                                  read_timeout_s), "data block")
        if not isinstance(extra, dict):
            raise ProtocolError("data block is not a JSON object")
        data.update(extra)
    payload = await asyncio.wait_for(reader.readexactly(sizes["payload_length"]),
                                     read_timeout_s) if sizes["payload_length"] else None
    return header["type"], data, payload


class PcmFormat:
    """A client's audio format, checked, and its conversion to float32 mono at 16 kHz in
    bounded blocks."""

    def __init__(self, data: dict, rate_out: int) -> None:
        for key, (low, high) in (("rate", RATES), ("width", WIDTHS), ("channels", CHANNELS)):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ProtocolError(f"audio {key} {value!r} is not allowed; expected an integer "
                                    f"{low}..{high}")
        self.rate, self.width, self.channels = data["rate"], data["width"], data["channels"]
        self.resampler = StreamResampler(self.rate, rate_out)

    def same(self, data: dict) -> bool:
        return (data.get("rate"), data.get("width"), data.get("channels")) == \
            (self.rate, self.width, self.channels)

    def convert(self, payload: bytes) -> np.ndarray:
        """PCM bytes -> float32 mono at the model's rate (what is complete so far)."""
        frame = self.width * self.channels
        if len(payload) % frame:
            raise ProtocolError(f"audio payload of {len(payload)} bytes is not whole frames of "
                                f"{frame} bytes")
        raw = np.frombuffer(payload, np.uint8).reshape(-1, self.width)
        if self.width == 3:  # little-endian 24-bit: sign-extend into int32
            raw = np.concatenate([np.zeros((len(raw), 1), np.uint8), raw], axis=1)
        dtype = {1: "i1", 2: "<i2", 3: "<i4", 4: "<i4"}[self.width]
        ints = np.ascontiguousarray(raw).view(dtype).reshape(-1, self.channels)
        scale = 2.0 ** (8 * (4 if self.width == 3 else self.width) - 1)  # signed, as audioop
        mono = (ints.astype(np.float32) / np.float32(scale)).mean(axis=1, dtype=np.float32)
        return self.resampler.process(mono)
