"""Host side of the kws serial protocol (device side: templates/kws_protocol.c).

Frame: ``A5 5A | type u8 | length u16 LE | payload | CRC-16/CCITT-FALSE u16 LE`` over type,
length and payload. Messages and their payloads are listed in ``templates/kws_protocol.h``.
A bad frame is counted and skipped; the reader resynchronizes on the next ``A5 5A``, also when
the line goes quiet inside a frame (a header that declares a long length).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

import numpy as np

from kws.firmware.tensors import crc32

SOF = b"\xa5\x5a"
MAX_PAYLOAD = 4096
HELLO, SET_THRESHOLD, AUDIO, SCORES, MODEL_BEGIN, MODEL_BLOCK, MODEL_COMMIT, STATS = range(1, 9)
ACK, VERSION, EVENT, SCORE_FRAME, STATS_REPLY, NAK = 0x80, 0x81, 0x83, 0x84, 0x88, 0x8F
ERRORS = {-1: "bad size", -2: "out of range", -3: "CRC mismatch", -4: "invalid model",
          -5: "wrong state", -6: "unknown message type"}


class DeviceError(RuntimeError):
    """The device refused a request (NAK) or did not answer in time."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = struct.pack("<BH", kind, len(payload)) + payload
    return SOF + body + struct.pack("<H", crc16(body))


@dataclass
class FrameReader:
    """Incremental frame decoder with the same resynchronization as the device's parser."""

    buf: bytearray = field(default_factory=bytearray)
    frames_ok: int = 0
    bad_frames: int = 0
    skipped_bytes: int = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while True:
            start = self.buf.find(SOF)
            if start < 0:
                keep = 1 if self.buf[-1:] == SOF[:1] else 0
                self.skipped_bytes += len(self.buf) - keep
                del self.buf[:len(self.buf) - keep]
                return out
            self.skipped_bytes += start
            del self.buf[:start]
            if len(self.buf) < 5:
                return out
            kind, length = struct.unpack_from("<BH", self.buf, 2)
            if length > MAX_PAYLOAD:
                self.bad_frames += 1
                del self.buf[:1]
                continue
            if len(self.buf) < 7 + length:
                return out
            body = bytes(self.buf[2:5 + length])
            if crc16(body) != struct.unpack_from("<H", self.buf, 5 + length)[0]:
                self.bad_frames += 1
                del self.buf[:1]
                continue
            self.frames_ok += 1
            out.append((kind, body[3:]))
            del self.buf[:7 + length]

    def idle(self) -> list[tuple[int, bytes]]:
        """The line went quiet inside a frame: drop its start and read the rest again (what the
        device's ``kws_parser_idle`` does); returns the frames found behind it."""
        out = []
        while self.buf:
            self.bad_frames += 1
            del self.buf[:1]
            out += self.feed(b"")
        return out


class Device:
    """A kws device on a serial port (a ``serial.Serial`` or anything with read/write)."""

    def __init__(self, port, timeout: float = 3.0) -> None:
        self.port, self.timeout = port, timeout
        self.reader = FrameReader()
        self.events: list[tuple[int, float, int]] = []  # (keyword, score, step)
        self.scores: list[tuple[int, np.ndarray]] = []
        self._inbox: list[tuple[int, bytes]] = []

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.port.write(encode(kind, payload))

    def _pump(self) -> None:
        data = self.port.read(self.port.in_waiting or 1)
        frames = self.reader.feed(data) if data else self.reader.idle()
        for kind, payload in frames:
            if kind == EVENT:
                k, score, step = struct.unpack("<BfI", payload)
                self.events.append((k, score, step))
            elif kind == SCORE_FRAME:
                step = struct.unpack_from("<I", payload)[0]
                self.scores.append((step, np.frombuffer(payload[4:], "<f4").copy()))
            else:
                self._inbox.append((kind, payload))

    def expect(self, kinds: tuple[int, ...], request: int) -> tuple[int, bytes]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for i, (kind, payload) in enumerate(self._inbox):
                if kind == NAK and payload[0] == request:
                    del self._inbox[i]
                    err = struct.unpack("b", payload[1:2])[0]
                    raise DeviceError(f"device refused message 0x{request:02x}: "
                                      f"{ERRORS.get(err, err)}")
                if kind in kinds and (kind != ACK or payload[0] == request):
                    del self._inbox[i]
                    return kind, payload
            self._pump()
        raise DeviceError(f"no answer to message 0x{request:02x} within {self.timeout} s")

    def request(self, kind: int, payload: bytes = b"", answer: int = ACK) -> bytes:
        self.send(kind, payload)
        return self.expect((answer,), kind)[1]

    def hello(self) -> dict:
        p = self.request(HELLO, answer=VERSION)
        names = [n.decode() for n in p[4:].split(b"\0") if n]
        return {"protocol": p[0], "keywords": names[:p[1]], "step_ms": p[2] | (p[3] << 8)}

    def set_threshold(self, keyword: int, threshold: float) -> None:
        self.request(SET_THRESHOLD, struct.pack("<Bf", keyword, threshold))

    def stream_scores(self, on: bool) -> None:
        self.request(SCORES, bytes([int(on)]))

    def send_audio(self, pcm: np.ndarray, chunk: int = 1024, settle_s: float = 0.5) -> None:
        """Send int16 samples in AUDIO frames, then collect events/scores for ``settle_s``."""
        data = np.asarray(pcm, dtype="<i2")
        for i in range(0, len(data), chunk):
            self.send(AUDIO, data[i:i + chunk].tobytes())
            self._pump_available()
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            self._pump()

    def _pump_available(self) -> None:
        while self.port.in_waiting:
            self._pump()

    def upload_model(self, blob: bytes, block: int = 1024, crc: int | None = None) -> None:
        """Upload a model blob in blocks and commit it (raises DeviceError when refused)."""
        self.request(MODEL_BEGIN, struct.pack("<II", len(blob), crc32(blob) if crc is None
                                              else crc))
        for offset in range(0, len(blob), block):
            self.request(MODEL_BLOCK, struct.pack("<I", offset) + blob[offset:offset + block])
        self.request(MODEL_COMMIT)

    def stats(self) -> dict:
        ok, bad, skipped = struct.unpack("<III", self.request(STATS, answer=STATS_REPLY))
        return {"frames_ok": ok, "bad_frames": bad, "skipped_bytes": skipped}
