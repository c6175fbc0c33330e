"""``kws serve``: a Wyoming wake word server (the protocol Home Assistant speaks).

Per connection: ``describe`` -> ``info`` (every keyword of every model, with its phrase,
languages, version and attribution); ``detect`` (optional names, matched case-insensitively
against keyword names and phrases) then ``audio-start``, ``audio-chunk``..., ``audio-stop`` ->
``detection`` events as keywords are heard, and ``not-detected`` at ``audio-stop`` when none was.
Models are loaded once; each connection has its own spotters.

Nothing a client sends is trusted: headers, data blocks and payloads have size limits; audio
formats outside 8-48 kHz, 1-4 bytes per sample or 1-8 channels, payloads that are not whole
frames, and fields of the wrong type end that connection with an ``error`` event and one log
line; audio is resampled in bounded blocks. A client that sends nothing for ``idle_timeout_s``,
or leaves a message unfinished for ``read_timeout_s``, is disconnected, and connections beyond
``max_connections`` are closed at once, so idle sockets cannot starve real clients.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np

from kws import __version__
from kws.apps.wyoming_events import MAX_HEADER_BYTES, PcmFormat, ProtocolError, read_event
from kws.core.decision import DecisionRule
from kws.core.extras import require
from kws.runtime import OnnxModel, Spotter
from kws.runtime.cascade import Verifier

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ServeConfig:
    """Server settings.

    Attributes:
        uri: ``tcp://HOST:PORT`` or ``unix://PATH``.
        max_connections: connections served at once; more are closed on arrival.
        idle_timeout_s: a client that sends nothing for this long is disconnected.
        read_timeout_s: a message begun must be complete within this many seconds.
        zeroconf: announce ``_wyoming._tcp`` under this name ("" for the default name; None: no).
    """

    uri: str = "tcp://127.0.0.1:10400"
    max_connections: int = 32
    idle_timeout_s: float = 300.0
    read_timeout_s: float = 10.0
    zeroconf: str | None = None

    def __post_init__(self) -> None:
        if not self.max_connections >= 1:
            raise ValueError(f"max_connections is {self.max_connections}; allowed: >= 1")
        for name in ("idle_timeout_s", "read_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} is {getattr(self, name)}; allowed: > 0 seconds")
        parsed = urlparse(self.uri)
        if parsed.scheme not in ("tcp", "unix") or (parsed.scheme == "tcp" and not parsed.port):
            raise ValueError(f"uri {self.uri!r}: expected tcp://HOST:PORT or unix://PATH")


class WakeService:
    """The models a server runs: loaded once, their keywords, and spotters per connection.

    Args:
        models: (model, decision rule, verifier or None) triples; keyword names must be unique
            across them.
        steps_per_call: model steps per onnxruntime call (None: about 90 ms).
    """

    def __init__(self, models: list[tuple[OnnxModel, DecisionRule, Verifier | None]],
                 steps_per_call: int | None = None) -> None:
        if not models:
            raise ValueError("kws serve needs at least one model")
        self.models, self.steps_per_call = models, steps_per_call
        self.phrases: dict[str, str] = {}
        owner: dict[str, str] = {}
        for model, *_ in models:
            given = model.manifest.raw.get("phrases") or {}
            for kw in model.keywords:
                if kw in owner:
                    raise ValueError(f"keyword {kw!r} is in two models ({owner[kw]} and "
                                     f"{model.manifest.folder}); serve them from two servers")
                owner[kw] = str(model.manifest.folder)
                phrase = given.get(kw) if isinstance(given.get(kw), str) else None
                self.phrases[kw] = phrase or kw.replace("_", " ")
        rates = {m.manifest.frontend.sample_rate for m, *_ in models}
        if len(rates) != 1:
            raise ValueError(f"the models read different sample rates {sorted(rates)}")
        self.rate = rates.pop()

    @property
    def keywords(self) -> list[str]:
        return list(self.phrases)

    def spotters(self) -> list[Spotter]:
        return [Spotter(model, rule, self.steps_per_call, verifier)
                for model, rule, verifier in self.models]

    def match(self, names: Any) -> set[str] | None:
        """The keywords a ``detect`` event asks for (None: all). Names match keyword names and
        phrases case-insensitively, spaces and underscores alike; unknown names are logged."""
        if names is None:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProtocolError(f"detect names {str(names)[:80]!r} is not a list of strings")
        if not names:
            return None
        index = {key(text): kw for kw, phrase in self.phrases.items() for text in (kw, phrase)}
        chosen = {index[key(n)] for n in names if key(n) in index}
        unknown = [n for n in names if key(n) not in index]
        if unknown:
            log.warning("detect asked for unknown wake word(s) %s; this server has %s",
                        unknown, self.keywords)
        return chosen

    def info_event(self):
        """The ``info`` event: one wake program, every keyword a model."""
        from wyoming.info import Attribution, Info, WakeModel, WakeProgram

        models = []
        for model, *_ in self.models:
            m = model.manifest
            credit = attribution(m.raw.get("data_sources") or [])
            languages = m.raw.get("languages") or ["en"]
            version = m.files[model.file]["sha256"][:12]
            models += [WakeModel(name=kw, attribution=credit, installed=True,
                                 description=f"{self.phrases[kw]} ({m.folder.name}, {model.file})",
                                 version=version, languages=list(languages),
                                 phrase=self.phrases[kw]) for kw in model.keywords]
        program = WakeProgram(name="kws", installed=True, version=__version__,
                              attribution=Attribution(name="kws (Apache-2.0)", url=""),
                              description="small streaming keyword spotter", models=models)
        return Info(wake=[program]).event()


def key(name: str) -> str:
    return " ".join(name.replace("_", " ").casefold().split())


def attribution(sources: list) -> Any:
    """Who to credit for a model: the corpora it was trained on, with their licences."""
    from wyoming.info import Attribution

    seen = {}
    for s in sources:
        if isinstance(s, dict) and s.get("dataset") and s.get("dataset") != "unknown":
            seen.setdefault(s["dataset"], (s.get("license", "?"), s.get("url", "")))
    name = "; ".join(f"{d} ({lic})" for d, (lic, _) in seen.items()) or "kws"
    url = next((u for _, u in seen.values() if u), "")
    return Attribution(name=f"trained on {name}" if seen else name, url=url)


class Connection:
    """One client: its events, its spotters, its audio format."""

    def __init__(self, service: WakeService, cfg: ServeConfig, reader, writer) -> None:
        self.service, self.cfg = service, cfg
        self.reader, self.writer = reader, writer
        self.peer = writer.get_extra_info("peername") or "a local client"
        self.names: set[str] | None = None
        self.spotters = service.spotters()
        self.format: PcmFormat | None = None
        self.detected = False

    async def write(self, event) -> None:
        from wyoming.event import async_write_event

        await async_write_event(event, self.writer)

    def begin(self, fmt: PcmFormat | None = None) -> None:
        for spotter in self.spotters:
            spotter.reset()
        self.format, self.detected = fmt, False

    async def run(self) -> None:
        from wyoming.error import Error

        try:
            while True:
                event = await read_event(self.reader, self.cfg.idle_timeout_s,
                                         self.cfg.read_timeout_s)
                if event is None:
                    break
                await self.handle(*event)
        except ProtocolError as e:
            log.warning("closing connection from %s: %s", self.peer, e)
            try:
                await self.write(Error(text=str(e), code="bad-request").event())
            except ConnectionError:
                pass
        except (asyncio.TimeoutError, TimeoutError):
            log.info("closing connection from %s: no complete message within the timeout",
                     self.peer)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            log.info("connection from %s ended mid-message: %s", self.peer, e)
        finally:
            self.writer.close()

    async def handle(self, kind: str, data: dict, payload: bytes | None) -> None:
        if kind == "describe":
            await self.write(self.service.info_event())
        elif kind == "detect":
            self.names = self.service.match(data.get("names"))
        elif kind == "audio-start":
            self.begin(PcmFormat(data, self.service.rate))
        elif kind == "audio-chunk":
            if self.format is None or not self.format.same(data):
                self.begin(PcmFormat(data, self.service.rate))
            await self.audio(self.format.convert(payload or b""), data.get("timestamp"))
        elif kind == "audio-stop":
            if not self.detected:
                from wyoming.wake import NotDetected

                await self.write(NotDetected().event())
            self.begin()

    async def audio(self, samples: np.ndarray, timestamp: Any) -> None:
        from wyoming.wake import Detection

        for spotter in self.spotters:
            for d in spotter.process(samples):
                if self.names is not None and d.keyword not in self.names:
                    continue
                self.detected = True
                stamp = timestamp if isinstance(timestamp, int) else int(d.time_s * 1000)
                await self.write(Detection(name=d.keyword, timestamp=stamp).event())
                log.info("detection %s score %.3f at %.2f s (%s)", d.keyword, d.score,
                         d.time_s, self.peer)


async def serve(service: WakeService, cfg: ServeConfig = ServeConfig()) -> None:
    """Serve until cancelled or SIGTERM."""
    require("wyoming", "serve", "kws serve")
    import wyoming.error  # noqa: F401 - imported now, not while the first client waits
    import wyoming.event  # noqa: F401
    import wyoming.wake  # noqa: F401

    service.info_event()  # every model describable before the first client
    active: set[asyncio.Task] = set()

    async def on_connect(reader, writer) -> None:
        if len(active) >= cfg.max_connections:
            log.warning("closing a new connection from %s: %d connections are open "
                        "(--max-connections)", writer.get_extra_info("peername"), len(active))
            writer.close()
            return
        task = asyncio.current_task()
        active.add(task)
        try:
            await Connection(service, cfg, reader, writer).run()
        except asyncio.CancelledError:  # the server is stopping
            writer.close()
        finally:
            active.discard(task)

    parsed = urlparse(cfg.uri)
    if parsed.scheme == "unix":
        server = await asyncio.start_unix_server(on_connect, path=parsed.path,
                                                 limit=MAX_HEADER_BYTES)
    else:
        server = await asyncio.start_server(on_connect, host=parsed.hostname, port=parsed.port,
                                            limit=MAX_HEADER_BYTES)
    announcer = await announce(cfg, parsed) if cfg.zeroconf is not None else None
    def stop() -> None:
        server.close()
        for task in list(active):
            task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    log.info("Wyoming wake word server on %s, keywords %s", cfg.uri, service.keywords)
    try:
        async with server:
            await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        if announcer is not None:
            await announcer.async_close()


async def announce(cfg: ServeConfig, parsed):
    """Announce ``_wyoming._tcp`` over mDNS (the zeroconf package) for Home Assistant to find;
    returns the zeroconf instance to close."""
    import socket
    import uuid

    require("zeroconf", "serve", "kws serve --zeroconf")
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    if parsed.scheme != "tcp":
        raise ValueError("--zeroconf needs a tcp:// uri")
    host = parsed.hostname
    if host in ("0.0.0.0", "", None):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("224.0.0.251", 5353))
            host = probe.getsockname()[0]
    name = cfg.zeroconf or f"kws-{uuid.getnode():012x}"
    zc = AsyncZeroconf(interfaces=[host], ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo("_wyoming._tcp.local.", f"{name}._wyoming._tcp.local.",
                            addresses=[socket.inet_aton(host)], port=parsed.port,
                            server=f"{name}.local.")
    await zc.async_register_service(info)
    log.info("announced %s._wyoming._tcp on %s:%d", name, host, parsed.port)
    return zc
