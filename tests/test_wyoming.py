"""kws serve with the real wyoming client library over loopback."""

import asyncio
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from kws.core.audio import float32_to_int16, load_audio
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
def server(tiny_export, audio, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    proc = subprocess.Popen([sys.executable, "-m", "kws.cli", "serve", "--model",
                             str(tiny_export), "--uri", f"tcp://127.0.0.1:{port}",
                             "--threshold", f"up={audio[2]}", "--threshold", "down=1.0"],
                            stderr=log.open("w"), text=True)
    proc.log = log
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


async def run_client(port, pcm, names=None, chunk=1024):
    """Send detect + audio; return the events received until not-detected or audio-stop."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(pcm), chunk):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                                audio=pcm[i:i + chunk].tobytes(),
                                                timestamp=i * 1000 // 16000).event())
        await client.write_event(AudioStop().event())
        received = []
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout=10)
            if event is None:
                break
            received.append(event)
            if NotDetected.is_type(event.type) or len(received) > 5:
                break
            if Detection.is_type(event.type):
                break
        return received


def test_describe_lists_the_keywords(server):
    async def go():
        async with AsyncTcpClient("127.0.0.1", server[0]) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), 10))
    info = asyncio.run(go())
    assert [m.name for m in info.wake[0].models] == ["up", "down"]


def test_keyword_detected_and_negative_not(server, audio):
    positive, negative, _ = audio
    events = asyncio.run(run_client(server[0], positive))
    assert Detection.is_type(events[0].type)
    assert Detection.from_event(events[0]).name == "up"
    events = asyncio.run(run_client(server[0], negative))
    assert [e.type for e in events] == ["not-detected"]


def test_detect_names_filter(server, audio):
    events = asyncio.run(run_client(server[0], audio[0], names=["down"]))
    assert [e.type for e in events] == ["not-detected"]


def test_two_concurrent_clients_keep_their_own_state(server, audio):
    positive, negative, _ = audio

    async def both():
        return await asyncio.gather(run_client(server[0], positive, chunk=333),
                                    run_client(server[0], negative, chunk=500))
    pos_events, neg_events = asyncio.run(both())
    assert Detection.is_type(pos_events[0].type)
    assert [e.type for e in neg_events] == ["not-detected"]


@pytest.mark.parametrize("junk, reason", [
    (b"{this is not json\n", "malformed header"),
    (b'{"type": "audio-chunk", "payload_length": 99999999}\n', "exceeds the limit"),
    (b'["a list"]\n', "not a JSON object"),
])
def test_malformed_message_closes_only_that_connection(server, audio, junk, reason):
    port, proc = server
    bad = socket.create_connection(("127.0.0.1", port), timeout=5)
    bad.sendall(junk)
    assert bad.recv(100) == b""  # the server closed it
    bad.close()
    events = asyncio.run(run_client(port, audio[0]))  # others are still served
    assert Detection.is_type(events[0].type)
    assert proc.poll() is None
    assert "closing connection from" in proc.log.read_text()
    assert reason in proc.log.read_text()
