"""A bounded load test of ``kws serve`` on 127.0.0.1: real-time clients, idle sockets and hostile
clients at once.

    python benchmarks/serve_load.py [--seconds 300] [--clients 50] [--idle 50] [--hostile 10]

Starts ``kws serve`` (the bundled model) on a free loopback port. Each real client streams the
bundled demo clip (four keywords) in 20 ms chunks at real-time pace, over and over, and counts the
detections it gets back; idle sockets connect and send nothing; hostile clients keep connecting
and sending malformed events (bad JSON, a 1 Hz rate, an odd payload, a declared payload that
never comes). Samples the server's resident memory every 5 s. Prints JSON: detections per client
against the number expected, the memory after the first minute and its largest value after that,
the server's CPU share. Everything stops by itself after ``--seconds``; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

from kws.core.audio import float32_to_int16, load_audio
from kws.runtime import default_model_dir

CHUNK = 320  # 20 ms at 16 kHz
HOSTILE = [b"{not json\n",
           b'{"type": "audio-start", "data": {"rate": 1, "width": 2, "channels": 1}}\n',
           b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
           b'"payload_length": 3}\nabc',
           b'{"type": "audio-chunk", "payload_length": 1000}\n']


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def real_client(port: int, pcm: np.ndarray, until: float, result: dict) -> None:
    """Stream the clip at real-time pace until ``until``; count detections per pass."""
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.wake import Detection

    async with AsyncTcpClient("127.0.0.1", port) as client:
        async def read() -> None:
            while (event := await client.read_event()) is not None:
                if Detection.is_type(event.type):
                    result["detections"] += 1

        reader = asyncio.create_task(read())
        while time.monotonic() + len(pcm) / 16000 < until:
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            start = time.monotonic()
            for i, first in enumerate(range(0, len(pcm), CHUNK)):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                                    audio=pcm[first:first + CHUNK].tobytes()
                                                    ).event())
                delay = start + (i + 1) * CHUNK / 16000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await client.write_event(AudioStop().event())
            result["passes"] += 1
        await asyncio.sleep(2.0)  # the last detections
        reader.cancel()


async def hostile_client(port: int, until: float, result: dict) -> None:
    """Connect, send one malformed event, wait to be closed, again, until ``until``."""
    i = 0
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HOSTILE[i % len(HOSTILE)])
            await writer.drain()
            await asyncio.wait_for(reader.read(), timeout=30)
            writer.close()
            result["hostile_connections"] += 1
        except (OSError, asyncio.TimeoutError):
            result["hostile_failures"] += 1
        i += 1
        await asyncio.sleep(0.2)


async def run(args, port: int, pid: int) -> dict:
    pcm = float32_to_int16(load_audio(default_model_dir() / "demo.flac"))
    until = time.monotonic() + args.seconds
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.idle)]
    results = [{"detections": 0, "passes": 0} for _ in range(args.clients)]
    bad = {"hostile_connections": 0, "hostile_failures": 0}
    memory, cpu0, wall0 = [], cpu_seconds(pid), time.monotonic()

    async def sample() -> None:
        while time.monotonic() < until:
            memory.append((round(time.monotonic() - wall0, 1), rss_mb(pid)))
            await asyncio.sleep(5.0)

    await asyncio.gather(sample(), *(real_client(port, pcm, until, r) for r in results),
                         *(hostile_client(port, until, bad) for _ in range(args.hostile)))
    share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    for s in idle:
        s.close()
    after_minute = [mb for t, mb in memory if t >= 60]
    first = after_minute[0] if after_minute else None
    return {
        "seconds": args.seconds, "real_clients": args.clients, "idle_sockets": args.idle,
        "hostile_clients": args.hostile,
        "detections_per_client": sorted({r["detections"] for r in results}),
        "expected_per_client": sorted({4 * r["passes"] for r in results}),
        "every_client_got_every_detection": all(r["detections"] == 4 * r["passes"]
                                                for r in results),
        **bad,
        "rss_mb_after_first_minute": first,
        "rss_mb_max_after_first_minute": max(after_minute) if after_minute else None,
        "rss_growth_after_first_minute": (max(after_minute) / first - 1) if first else None,
        "server_cpu_share_one_core": share,
        "rss_mb_samples": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--hostile", type=int, default=10)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "kws", "serve", "--uri",
                               f"tcp://127.0.0.1:{port}", "--max-connections", "1000",
                               "--idle-timeout", str(args.seconds + 60)],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        result = asyncio.run(run(args, port, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
