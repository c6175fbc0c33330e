"""piper (GPL-3.0) as one long-lived separate program per voice: its own HTTP server on localhost.

Starting piper costs about 0.8 s (Python, onnxruntime and a 63 MB voice) and speaking a phrase
about 0.035 s, so a program per rendering spent most of a run starting (0.66 s per rendering,
65% of a keyword's rendering time, docs/experiments.md 2026-12-03). Here every rendering of a
process goes to one ``python -m piper.http_server`` per voice file (piper-tts's own program,
extra ``http``, which takes ``length_scale`` and ``noise_scale`` per request), bound to
127.0.0.1 on a free port, asked one rendering at a time (piper's phonemizer is process-wide),
stopped when this process exits. Its answers are the bytes the ``piper`` program writes for
the same settings (tests/test_piper_server.py compares them with the generator noise off). piper is
never imported here: it stays a separate program.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0
_SERVERS: dict[str, PiperServer] = {}
_STARTING = threading.Lock()


def installed() -> bool:
    """Whether this Python can run piper's server (piper-tts with its ``http`` extra); nothing
    is imported to find out."""
    return all(importlib.util.find_spec(name) is not None for name in ("piper", "flask"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PiperServer:
    """``python -m piper.http_server`` for one voice file; :meth:`speak` returns WAV bytes.

    Raises:
        RuntimeError: the server exited or did not answer within ``START_TIMEOUT_S`` (its own
            last words included).
    """

    def __init__(self, voice: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()  # a pipe nobody reads would fill and stall it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "piper.http_server", "-m", voice, "--host", "127.0.0.1",
             "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.lock = threading.Lock()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = self.last_words()
                self.close()
                raise RuntimeError(f"piper's server for {voice} did not start: {why}")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/voices", timeout=1.0) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def last_words(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()[-500:] or "no output"

    def speak(self, text: str, length_scale: float, noise_scale: float) -> bytes:
        """The WAV file piper makes of ``text``; RuntimeError naming the text if it fails."""
        body = json.dumps({"text": text, "length_scale": length_scale,
                           "noise_scale": noise_scale}).encode()
        request = urllib.request.Request(f"{self.url}/synthesize", data=body,
                                         headers={"Content-Type": "application/json"})
        with self.lock:
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
                    return answer.read()
            except (urllib.error.URLError, OSError) as e:
                raise RuntimeError(f"piper failed on {text!r}: {e}") from e

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def server(voice: str) -> PiperServer:
    """The running server of ``voice`` (an ONNX voice file), started on first use and again if
    it died; stopped when this process exits."""
    with _STARTING:
        running = _SERVERS.get(voice)
        if running is None or running.proc.poll() is not None:
            running = _SERVERS[voice] = PiperServer(voice)
            atexit.register(running.close)
        return running
