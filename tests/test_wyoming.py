"""kws serve with the real wyoming client library over loopback: several models, names,
zeroconf discovery, and hostile or idle clients."""

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from kws.core.audio import float32_to_int16, load_audio
from kws.core.contract import MANIFEST
from kws.runtime import OnnxModel

wyoming = pytest.importorskip("wyoming", reason="kws serve needs the serve extra")
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.wake import Detect, Detection, NotDetected  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def audio(tiny_run, tiny_export):
    """(keyword pcm, negative pcm, threshold between their peaks) for the tiny model."""
    root = tiny_run[0]
    quiet = np.zeros(16000, np.float32)
    positive = np.concatenate([quiet, load_audio(root / "keywords" / "up" / "32.wav"), quiet])
    negative = np.concatenate([quiet, load_audio(root / "negatives" / "spk03-1-3.wav"), quiet])
    model = OnnxModel(tiny_export)
    hi, lo = model.score_audio(positive)[:, 0].max(), model.score_audio(negative)[:, 0].max()
    assert hi > lo + 0.05, "the tiny model cannot tell the clips apart"
    return float32_to_int16(positive), float32_to_int16(negative), round(float(hi + lo) / 2, 3)


@pytest.fixture(scope="module")
def models(tiny_export, tmp_path_factory):
    """A folder of two model folders: the tiny model, and its copy whose keywords are named
    "hey_left" (phrase "Hey Left") and "right"."""
    parent = tmp_path_factory.mktemp("models")
    shutil.copytree(tiny_export, parent / "a")
    shutil.copytree(tiny_export, parent / "b")
    raw = json.loads((parent / "b" / MANIFEST).read_text())
    rename = {"up": "hey_left", "down": "right"}
    raw["keywords"] = [rename[k] for k in raw["keywords"]]
    raw["thresholds"] = {rename[k]: v for k, v in raw["thresholds"].items()}
    raw["calibration"] = {rename[k]: v for k, v in raw["calibration"].items()}
    raw["phrases"], raw["languages"] = {"hey_left": "Hey Left"}, ["en", "de"]
    (parent / "b" / MANIFEST).write_text(json.dumps(raw))
    return parent


def start(*args, log):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kws.cli", "serve", "--uri",
                             f"tcp://127.0.0.1:{port}", *map(str, args)],
                            stderr=log.open("w"), text=True)
    proc.log = log
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"kws serve did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def server(models, audio, tmp_path_factory):
    """Two model folders (by --custom-model-dir), zeroconf on loopback, short timeouts."""
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    port, proc = start("--custom-model-dir", models, "--threshold", f"up={audio[2]}",
                       "--threshold", "down=1.0", "--threshold", f"hey_left={audio[2]}",
                       "--threshold", "right=1.0", "--zeroconf", "kws-test",
                       "--idle-timeout", "2", "--read-timeout", "1", log=log)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


async def run_client(port, pcm, names=None, chunk=1024, rate=16000):
    """Send detect + audio; return the events received until not-detected or a detection."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        for i in range(0, len(pcm), chunk):
            await client.write_event(AudioChunk(rate=rate, width=2, channels=1,
                                                audio=pcm[i:i + chunk].tobytes(),
                                                timestamp=i * 1000 // rate).event())
        await client.write_event(AudioStop().event())
        received = []
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout=10)
            if event is None:
                break
            received.append(event)
            if NotDetected.is_type(event.type) or Detection.is_type(event.type):
                break
        return received


def names_of(events):
    return [Detection.from_event(e).name if Detection.is_type(e.type) else e.type
            for e in events]


def test_describe_lists_every_models_keywords(server, models):
    async def go():
        async with AsyncTcpClient("127.0.0.1", server[0]) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), 10))
    info = asyncio.run(go())
    wake = info.wake[0].models
    assert [m.name for m in wake] == ["up", "down", "hey_left", "right"]
    assert [m.phrase for m in wake] == ["up", "down", "Hey Left", "right"]
    assert wake[2].languages == ["en", "de"] and wake[0].languages == ["en"]
    assert len(wake[0].version) == 12 and wake[0].version == wake[2].version  # same weights
    assert wake[0].attribution.name.startswith("trained on") or wake[0].attribution.name == "kws"


def test_keyword_detected_and_negative_not(server, audio):
    positive, negative, _ = audio
    assert names_of(asyncio.run(run_client(server[0], positive))) == ["up"]
    assert names_of(asyncio.run(run_client(server[0], negative))) == ["not-detected"]


def test_names_match_case_insensitively_and_by_phrase(server, audio):
    assert names_of(asyncio.run(run_client(server[0], audio[0], names=["UP"]))) == ["up"]
    assert names_of(asyncio.run(run_client(server[0], audio[0], names=["hey left"]))) == \
        ["hey_left"]
    assert names_of(asyncio.run(run_client(server[0], audio[0], names=["down"]))) == \
        ["not-detected"]
    assert names_of(asyncio.run(run_client(server[0], audio[0], names=["nope"]))) == \
        ["not-detected"]
    assert "detect asked for unknown wake word(s) ['nope']; this server has ['up', 'down', " \
           "'hey_left', 'right']" in server[1].log.read_text()


def test_other_rates_are_resampled(server, audio):
    from kws.core.audio import resample_audio

    pcm48 = float32_to_int16(resample_audio(audio[0].astype(np.float32) / 32768, 16000, 48000))
    assert names_of(asyncio.run(run_client(server[0], pcm48, names=["up"], rate=48000))) == \
        ["up"]


def test_two_concurrent_clients_keep_their_own_state(server, audio):
    positive, negative, _ = audio

    async def both():
        return await asyncio.gather(run_client(server[0], positive, chunk=333),
                                    run_client(server[0], negative, chunk=500))
    pos_events, neg_events = asyncio.run(both())
    assert names_of(pos_events)[0] == "up" and names_of(neg_events) == ["not-detected"]


def test_zeroconf_announces_the_server(server):
    from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

    found = []

    class Listener(ServiceListener):
        def add_service(self, zc, type_, name):
            info = zc.get_service_info(type_, name, timeout=3000)
            found.append((name, info.port if info else None))

        def update_service(self, *args):
            pass

        def remove_service(self, *args):
            pass

    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        ServiceBrowser(zc, "_wyoming._tcp.local.", Listener())
        deadline = time.time() + 15
        while not found and time.time() < deadline:
            time.sleep(0.2)
    finally:
        zc.close()
    assert ("kws-test._wyoming._tcp.local.", server[0]) in found


def hostile(port, *lines: bytes) -> bytes:
    """Send raw bytes; return all the server sent until it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for line in lines:
            s.sendall(line)
        received = b""
        while chunk := s.recv(4096):
            received += chunk
        return received


def event(kind, data=None, payload=b""):
    header = {"type": kind, "data": data or {}}
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + payload


@pytest.mark.parametrize("lines, reason", [
    ([b"{this is not json\n"], "malformed header"),
    ([b'{"type": "audio-chunk", "payload_length": 99999999}\n'], "exceeds the limit"),
    ([b'["a list"]\n'], "not a JSON object"),
    ([event("audio-start", {"rate": 1, "width": 2, "channels": 1})],
     "audio rate 1 is not allowed; expected an integer 8000..48000"),
    ([event("audio-start", {"rate": 0, "width": 2, "channels": 1})], "audio rate 0"),
    ([event("audio-chunk", {"rate": 16000, "width": 7, "channels": 1}, b"\0" * 14)],
     "audio width 7"),
    ([event("audio-chunk", {"rate": 16000, "width": 2, "channels": 20}, b"\0" * 40)],
     "audio channels 20"),
    ([event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\0" * 3)],
     "3 bytes is not whole frames of 2 bytes"),
    ([event("detect", {"names": 5})], "detect names '5' is not a list of strings"),
    ([b'{"type": "describe", "data": ' + b"[" * 100 + b"]" * 100 + b"}\n"],
     "header nested deeper than 32 levels"),
    ([b'{"type": "describe", "data": ' + b"[" * 20000 + b"]" * 20000 + b"}\n"],
     "malformed header (maximum recursion depth"),
])
def test_a_hostile_message_closes_only_that_connection(server, audio, lines, reason):
    port, proc = server
    reply = hostile(port, *lines)
    assert b'"type": "error"' in reply
    assert names_of(asyncio.run(run_client(port, audio[0]))) == ["up"]  # others are served
    assert proc.poll() is None
    log = proc.log.read_text()
    assert reason in log and "Traceback" not in log


def test_idle_and_slow_clients_time_out(server):
    port, proc = server
    started = time.time()
    assert hostile(port) == b""  # sends nothing: closed after --idle-timeout 2
    assert 1.5 <= time.time() - started < 8
    started = time.time()
    hostile(port, b'{"type": "audio-chunk", "payload_length": 100}\n')  # payload never comes
    assert 0.5 <= time.time() - started < 6
    assert "no complete message within the timeout" in proc.log.read_text()


def test_connections_beyond_the_cap_are_closed(models, audio, tmp_path):
    port, proc = start("--model", models / "a", "--threshold", f"up={audio[2]}",
                       "--max-connections", "2", log=tmp_path / "log")
    try:
        time.sleep(0.5)  # the start-up probe's connection has closed
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        time.sleep(0.5)
        assert hostile(port) == b""  # the third is closed at once, not left waiting
        assert "2 connections are open (--max-connections)" in proc.log.read_text()
        for s in idle:
            s.close()
        time.sleep(0.5)
        assert names_of(asyncio.run(run_client(port, audio[0]))) == ["up"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bundled_model_sends_one_detection_for_one_alexa():
    """alexa/4.flac at threshold 0.2 over Wyoming: one detection (two before re-arming; the
    score is checked in tests/test_default_model.py)."""
    from tests.conftest import shared_dir

    clip = shared_dir("wake-word-benchmark", "alexa") / "4.flac"
    pcm = float32_to_int16(load_audio(clip))
    port, proc = start("--threshold", "alexa=0.2", log=__import__("pathlib").Path("/dev/null"))
    try:
        async def count():
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                for i in range(0, len(pcm), 1600):
                    await client.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                                        audio=pcm[i:i + 1600].tobytes()).event())
                await client.write_event(AudioStop().event())
                got = []
                try:
                    while (e := await asyncio.wait_for(client.read_event(), 3)) is not None:
                        got.append(e)
                except asyncio.TimeoutError:
                    pass
                return got
        assert names_of(asyncio.run(count())) == ["alexa"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
