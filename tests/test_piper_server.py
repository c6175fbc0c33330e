"""piper as one server per voice: the bytes of the piper program, one process, errors named."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from kws.synth import piper_server, tts
from kws.synth.tts import Voice, render

VOICES = tts.piper_voices() if piper_server.installed() else []
needs_piper = pytest.mark.skipif(not VOICES, reason=f"piper is not installed "
                                                     f"({tts.INSTALL_HINT['piper']})")


def post(server: piper_server.PiperServer, settings: dict) -> bytes:
    request = urllib.request.Request(f"{server.url}/synthesize", json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.read()


@needs_piper
def test_the_server_answers_with_the_piper_programs_bytes(tmp_path):
    """With the generator noise off piper is deterministic: the server's WAV file and the
    program's must then be the same bytes; with it on, two renderings differ as before."""
    server = piper_server.server(VOICES[0])
    settings = {"text": "smart mirror", "length_scale": 1.2, "noise_scale": 0.0,
                "noise_w_scale": 0.0}
    program = shutil.which("piper") or str(Path(sys.executable).parent / "piper")
    subprocess.run([program, "-m", VOICES[0], "-f", str(tmp_path / "p.wav"), "--length-scale",
                    "1.2", "--noise-scale", "0", "--noise-w", "0"], input="smart mirror",
                   text=True, capture_output=True, check=True)
    assert post(server, settings) == (tmp_path / "p.wav").read_bytes()
    noisy = server.speak("smart mirror", 1.2, 0.6)
    assert noisy != server.speak("smart mirror", 1.2, 0.6)
    wave, rate = soundfile.read(io.BytesIO(noisy))
    assert rate == 22050 and 0.6 < len(wave) / rate < 2.0


@needs_piper
def test_renderings_share_one_server_which_comes_back_if_it_dies():
    first = piper_server.server(VOICES[0])
    slow = render(Voice("piper", VOICES[0], rate=100), "computer")
    fast = render(Voice("piper", VOICES[0], rate=200), "computer")
    assert piper_server.server(VOICES[0]) is first
    assert slow.dtype == np.float32 and 1.4 < len(slow) / len(fast) < 2.6
    first.proc.kill()
    first.proc.wait()
    assert len(render(Voice("piper", VOICES[0]), "computer")) > 8000
    assert piper_server.server(VOICES[0]) is not first


@needs_piper
def test_a_server_that_cannot_start_says_why(tmp_path):
    bad = tmp_path / "voice.onnx"
    bad.write_bytes(b"not a voice")
    with pytest.raises(RuntimeError, match=r"piper's server for .*voice.onnx did not start: "
                                           r"(?s:.*)\S"):
        piper_server.PiperServer(str(bad))


def test_without_piper_a_rendering_names_the_install_command(monkeypatch):
    monkeypatch.setattr(piper_server, "installed", lambda: False)
    assert tts.engine_voices()["piper"] == []
    with pytest.raises(RuntimeError, match=r"piper is not installed \(pip install "
                                           r"'piper-tts\[http\]'"):
        render(Voice("piper", "/v/joe.onnx"), "computer")


def piper_children(parent: int) -> list[int]:
    """Process ids of the piper servers whose parent is ``parent`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # not a process, or it ended while we looked
            continue
        if f"\nPPid:\t{parent}\n" in status and b"piper.http_server" in command:
            found.append(int(entry.name))
    return found


@needs_piper
def test_a_terminated_rendering_run_stops_its_piper_servers(tmp_path):
    """SIGTERM (kill, timeout, a service manager) ends ``kws synth`` as Ctrl-C does: its piper
    servers stop with it and the queued renderings are dropped. Before, the command died at
    once and left each server running for good."""
    run = subprocess.Popen([sys.executable, "-m", "kws", "synth", "smart mirror", "-o",
                            str(tmp_path / "out"), "--count", "400", "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (servers := piper_children(run.pid)):
        assert run.poll() is None and time.monotonic() < deadline, "no piper server started"
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    try:
        assert run.wait(30) == 128 + signal.SIGTERM
        time.sleep(1)
        assert [pid for pid in servers if Path(f"/proc/{pid}").exists()] == []
    finally:
        run.kill()
        for pid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / "out" / "report.json").exists()  # an unfinished run is not reused
