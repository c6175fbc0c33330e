"""``kws listen``: a live microphone turned into keyword events, meant to run all day.

The PortAudio callback only copies blocks into a queue; the main loop resamples (when the device
cannot do 16 kHz), streams, detects, emits JSON Lines, runs ``--exec`` and saves activations.
Overflows and device errors are counted and logged; a device that disappears is reopened with a
back-off, while one that cannot be opened at start is an error; SIGINT/SIGTERM stop the loop
cleanly. What the first detection needs is checked at start (``--exec`` parses and names a
program, ``--save-detections`` is writable); a clip that cannot be saved or a hook that cannot
run later is logged and counted, and listening goes on.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from kws.apps.detect import event_line
from kws.core.extras import MissingExtra
from kws.core.resample import StreamResampler
from kws.data.activations import save_activation
from kws.runtime import Detection, Spotter

log = logging.getLogger(__name__)

SAVE_BEFORE_S, SAVE_AFTER_S = 1.5, 0.5  # audio kept around an activation: 2 s
QUEUE_BLOCKS = 500  # ~10 s of 20 ms blocks before the callback drops audio
SILENT_DEVICE_S = 3.0  # no audio for this long: the device is considered gone
HISTORY_S = SAVE_BEFORE_S + SAVE_AFTER_S + 1.0


def import_sounddevice():
    """``sounddevice``, or an error that says how to install it."""
    try:
        import sounddevice
    except (ImportError, OSError) as e:
        raise MissingExtra("kws listen needs the mic extra and PortAudio: pip install "
                           "'kws[mic]' and apt-get install libportaudio2") from e
    return sounddevice


def list_devices() -> str:
    """The input devices PortAudio sees, one per line."""
    sd = import_sounddevice()
    lines = []
    for i, dev in enumerate(sd.query_devices()):
        if dev["max_input_channels"] > 0:
            lines.append(f"{i}: {dev['name']} ({dev['max_input_channels']} ch, "
                         f"{dev['default_samplerate']:.0f} Hz)")
    return "\n".join(lines) or "no input devices"


def check_exec(command: str) -> list[str]:
    """``--exec``'s argument list, checked at start: it parses like a shell line (it is never
    run by one) and names a program that exists.

    Raises:
        ValueError: naming the command and what is wrong.
    """
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise ValueError(f"--exec {command!r} does not parse: {e}") from None
    if not argv:
        raise ValueError("--exec is empty")
    program = argv[0]
    found = shutil.which(program) if "/" not in program else (
        program if os.access(program, os.X_OK) and Path(program).is_file() else None)
    if not found:
        raise ValueError(f"--exec {command!r}: {program!r} is not an executable program "
                         "(on PATH, or a path to an executable file)")
    return argv


def check_writable(folder: Path) -> None:
    """``--save-detections`` is a folder this process can write, made if missing.

    Raises:
        OSError: naming the folder, when it cannot be made or written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kws-probe-"):
            pass
    except OSError as e:
        raise OSError(f"--save-detections {folder}: not a writable folder ({e.strerror or e})") \
            from None


@dataclass(frozen=True)
class ListenConfig:
    """Microphone settings.

    Attributes:
        device: PortAudio device name or index (None: the default input).
        block_ms: audio block length per callback.
        exec_cmd: a command run per detection, split like a shell would but never run by one;
            it gets KWS_KEYWORD, KWS_SCORE and KWS_TIME in its environment.
        save_dir: where to keep the 2 s of audio around each activation (WAV + JSON), or None.
        max_seconds: stop after this much audio (None: until a signal).
        rate: record at this rate and resample to the model's (None: the model's rate when the
            device supports it, else the device's default rate).
    """

    device: Optional[str | int] = None
    block_ms: float = 60.0
    exec_cmd: Optional[str] = None
    save_dir: Optional[Path] = None
    max_seconds: Optional[float] = None
    rate: Optional[int] = None


@dataclass
class Counters:
    blocks: int = 0
    overflows: int = 0
    device_errors: int = 0
    reopens: int = 0
    detections: int = 0
    exec_failures: int = 0
    saved: int = 0
    save_failures: int = 0


class Listener:
    """Runs the microphone loop; see the module docstring.

    Args:
        spotter: the model, its stream and its decision rule, for this microphone.
        emit: called with each event dict (JSON Lines on stdout in the CLI).
    """

    def __init__(self, spotter: Spotter, cfg: ListenConfig,
                 emit: Callable[[dict], None]) -> None:
        self.spotter, self.cfg, self.emit = spotter, cfg, emit
        self.rate = spotter.model.manifest.frontend.sample_rate
        self.counters = Counters()
        self.stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._history: deque = deque()  # recent 16 kHz blocks, about HISTORY_S seconds
        self._history_samples = 0
        self._pending_saves: list[tuple[Detection, int]] = []
        self._children: list[subprocess.Popen] = []
        self._samples = 0
        self._argv = check_exec(cfg.exec_cmd) if cfg.exec_cmd else None
        if cfg.save_dir:
            check_writable(Path(cfg.save_dir))

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop.set())

    def _callback(self, data, frames, time_info, status) -> None:
        if status.input_overflow:
            self.counters.overflows += 1
        try:
            self._queue.put_nowait(data[:, 0].copy())
        except queue.Full:
            self.counters.overflows += 1

    def _open(self, sd):
        """An input stream at 16 kHz, or at another rate with a streaming resampler."""
        rate = self.cfg.rate or self.rate
        if rate == self.rate:
            try:
                sd.check_input_settings(device=self.cfg.device, samplerate=rate, channels=1,
                                        dtype="float32")
            except Exception:  # noqa: BLE001 - PortAudio reports unsupported rates many ways
                rate = int(sd.query_devices(self.cfg.device, "input")["default_samplerate"])
                log.info("device cannot record at %d Hz", self.rate)
        resampler = None
        if rate != self.rate:
            resampler = StreamResampler(rate, self.rate)
            log.info("recording at %d Hz and resampling to %d Hz", rate, self.rate)
        stream = sd.InputStream(device=self.cfg.device, samplerate=rate, channels=1,
                                dtype="float32", blocksize=int(rate * self.cfg.block_ms / 1000),
                                callback=self._callback)
        stream.start()
        return stream, resampler

    def run(self) -> Counters:
        """Listen until stopped; returns the counters (also logged).

        Raises:
            RuntimeError: the input device cannot be opened at start (a device that was
                listening and disappears is reopened instead, with a back-off).
        """
        sd = import_sounddevice()
        backoff, opened = 0.5, False
        while not self.stop.is_set():
            try:
                stream, resampler = self._open(sd)
            except Exception as e:  # noqa: BLE001 - any PortAudio failure: retry later
                if not opened:
                    raise RuntimeError(f"cannot open input device {self.cfg.device or 'default'!r}"
                                       f": {e} (kws listen --list-devices shows the input "
                                       "devices)") from e
                self.counters.device_errors += 1
                log.error("cannot open input device %r: %s (retrying in %.1f s)",
                          self.cfg.device, e, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            log.info("listening on %s", stream.device if hasattr(stream, "device") else "default")
            backoff, opened = 0.5, True
            try:
                self._consume(stream, resampler)
            finally:
                stream.close()
            if not self.stop.is_set():
                self.counters.reopens += 1
                log.warning("input device stopped delivering audio; reopening")
        self._flush_saves(force=True)
        log.info("stopped: %s", self.counters)
        return self.counters

    def _consume(self, stream, resampler) -> None:
        last_audio = time.monotonic()
        while not self.stop.is_set():
            try:
                block = self._queue.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() - last_audio > SILENT_DEVICE_S or not stream.active:
                    self.counters.device_errors += 1
                    return
                continue
            last_audio = time.monotonic()
            if resampler is not None:
                block = resampler.process(block)
            self.counters.blocks += 1
            self._remember(block)
            for det in self.spotter.process(block):
                self._on_detection(det)
            self._flush_saves()
            self._reap()
            if self.cfg.max_seconds and self._samples >= self.cfg.max_seconds * self.rate:
                self.stop.set()

    def _remember(self, block: np.ndarray) -> None:
        self._history.append(block)
        self._history_samples += len(block)
        self._samples += len(block)
        while self._history_samples - len(self._history[0]) >= HISTORY_S * self.rate:
            self._history_samples -= len(self._history.popleft())

    def _on_detection(self, det: Detection) -> None:
        self.counters.detections += 1
        self.emit(event_line(det, wall_time=datetime.now(timezone.utc).isoformat(
            timespec="milliseconds")))
        if self._argv:
            env = dict(os.environ, KWS_KEYWORD=det.keyword, KWS_SCORE=f"{det.score:.4f}",
                       KWS_TIME=f"{det.time_s:.3f}")
            try:
                self._children.append(subprocess.Popen(self._argv, env=env))
            except OSError as e:
                self.counters.exec_failures += 1
                log.error("--exec %r failed: %s", self.cfg.exec_cmd, e)
        if self.cfg.save_dir:
            self._pending_saves.append((det, self._samples + int(SAVE_AFTER_S * self.rate)))

    def _flush_saves(self, force: bool = False) -> None:
        """Write each activation once SAVE_AFTER_S of audio past it has arrived."""
        keep = []
        for det, ready_at in self._pending_saves:
            if self._samples >= ready_at or force:
                try:
                    self._save(det)
                except OSError as e:  # a full disk or a removed folder: keep listening
                    self.counters.save_failures += 1
                    log.error("could not save the activation at %.2f s: %s", det.time_s, e)
            else:
                keep.append((det, ready_at))
        self._pending_saves = keep

    def _save(self, det: Detection) -> None:
        audio = np.concatenate(list(self._history)) if self._history else np.zeros(0, np.float32)
        end = self._samples
        start = int((det.time_s - SAVE_BEFORE_S) * self.rate)
        stop = int((det.time_s + SAVE_AFTER_S) * self.rate)
        first = end - len(audio)  # stream sample index of audio[0]
        clip = audio[max(0, start - first):max(0, stop - first)]
        save_activation(Path(self.cfg.save_dir), det.keyword, det.score, det.time_s, clip,
                        max(start, first) / self.rate, self.rate)
        self.counters.saved += 1

    def _reap(self) -> None:
        self._children = [c for c in self._children if c.poll() is None]
