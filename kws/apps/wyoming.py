"""``kws serve``: a Wyoming wake word server (the protocol Home Assistant speaks).

Per connection: ``describe`` -> ``info``; ``detect`` (optional model names) then
``audio-start``, ``audio-chunk``..., ``audio-stop`` -> ``detection`` events as keywords are heard,
and ``not-detected`` at ``audio-stop`` when none was. Each connection has its own stream and
detector; the ONNX model is shared. Events are read with size limits: a malformed or oversized
message closes that connection with a log line, and the server and other clients go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from typing import Callable, Optional

import numpy as np

from kws.core.extras import require

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024  # ~32 s of 16 kHz 16-bit mono audio in one chunk


class ProtocolError(ValueError):
    """A client sent something that is not a well-formed Wyoming event within the limits."""


def import_wyoming():
    require("wyoming", "serve", "kws serve")


async def read_event(reader: asyncio.StreamReader):
    """The next Wyoming event, None at end of stream.

    Raises:
        ProtocolError: malformed JSON header, missing type, bad or oversized lengths.
    """
    from wyoming.event import Event

    try:
        line = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError) as e:
        raise ProtocolError(f"header line longer than {MAX_HEADER_BYTES} bytes") from e
    if not line:
        return None
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed header ({e})") from e
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not a JSON object with a string 'type'")
    sizes = {}
    for key, limit in (("data_length", MAX_DATA_BYTES), ("payload_length", MAX_PAYLOAD_BYTES)):
        value = header.get(key) or 0
        if not isinstance(value, int) or value < 0:
            raise ProtocolError(f"{key} {value!r} is not a non-negative integer")
        if value > limit:
            raise ProtocolError(f"{key} {value} exceeds the limit of {limit} bytes")
        sizes[key] = value
    data = header.get("data") or {}
    if sizes["data_length"]:
        try:
            data.update(json.loads(await reader.readexactly(sizes["data_length"])))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as e:
            raise ProtocolError(f"malformed data block ({e})") from e
    payload = await reader.readexactly(sizes["payload_length"]) if sizes["payload_length"] \
        else None
    return Event(type=header["type"], data=data, payload=payload)


def info_event(model):
    """The ``info`` event describing this server and its keywords."""
    from wyoming.info import Attribution, Info, WakeModel, WakeProgram

    from kws import __version__

    attribution = Attribution(name="kws", url="https://pypi.org/project/kws/")
    models = [WakeModel(name=kw, attribution=attribution, installed=True,
                        description=f"{kw} ({model.file})", version=__version__,
                        languages=["en"], phrase=kw) for kw in model.keywords]
    return Info(wake=[WakeProgram(name="kws", attribution=attribution, installed=True,
                                  description="small streaming keyword spotter",
                                  version=__version__, models=models)]).event()


def make_handler(model, new_spotter: Callable, reader, writer):
    """A connection handler (a ``wyoming`` AsyncEventHandler) for one client."""
    from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
    from wyoming.info import Describe
    from wyoming.server import AsyncEventHandler
    from wyoming.wake import Detect, Detection, NotDetected

    rate = model.manifest.frontend.sample_rate

    class WakeHandler(AsyncEventHandler):
        def __init__(self) -> None:
            super().__init__(reader, writer)
            self.peer = writer.get_extra_info("peername")
            self.names: Optional[set[str]] = None
            self.converter = AudioChunkConverter(rate=rate, width=2, channels=1)
            self.begin()

        def begin(self) -> None:
            self.spotter = new_spotter()
            self.detected = False

        async def run(self) -> None:
            try:
                while True:
                    event = await read_event(self.reader)
                    if event is None or not await self.handle_event(event):
                        break
            except ProtocolError as e:
                log.warning("closing connection from %s: %s", self.peer, e)
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                log.info("connection from %s ended mid-message: %s", self.peer, e)
            finally:
                self.writer.close()

        async def handle_event(self, event) -> bool:
            if Describe.is_type(event.type):
                await self.write_event(info_event(model))
            elif Detect.is_type(event.type):
                names = Detect.from_event(event).names
                self.names = set(names) if names else None
            elif AudioStart.is_type(event.type):
                self.begin()
            elif AudioChunk.is_type(event.type):
                await self.audio(AudioChunk.from_event(event))
            elif AudioStop.is_type(event.type):
                if not self.detected:
                    await self.write_event(NotDetected().event())
                self.begin()
            return True

        async def audio(self, chunk) -> None:
            try:
                chunk = self.converter.convert(chunk)
            except (KeyError, ValueError, TypeError) as e:
                raise ProtocolError(f"bad audio chunk ({e})") from e
            pcm = np.frombuffer(chunk.audio, dtype=np.int16)
            for d in self.spotter.process(pcm):
                if self.names is None or d.keyword in self.names:
                    self.detected = True
                    stamp = chunk.timestamp if chunk.timestamp is not None \
                        else int(d.time_s * 1000)
                    await self.write_event(Detection(name=d.keyword, timestamp=stamp).event())
                    log.info("detection %s score %.3f at %.2f s (%s)", d.keyword, d.score,
                             d.time_s, self.peer)

    return WakeHandler()


async def serve(model, new_spotter: Callable, uri: str) -> None:
    """Serve until cancelled or SIGTERM."""
    import_wyoming()
    from wyoming.server import AsyncServer

    server = AsyncServer.from_uri(uri)
    log.info("Wyoming wake word server on %s, keywords %s", uri, list(model.keywords))
    await server.run(partial(make_handler, model, new_spotter))
