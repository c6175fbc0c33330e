"""``kws record KEYWORD -o DIR``: record your own keyword clips for training.

For each take it prompts on the terminal, counts in, records ``seconds`` of audio from the
microphone with a live level meter, then checks the take: a silent one (nothing within 45 dB of
full scale) or a clipped one (samples at full scale) is skipped with the reason and taken again.
Good takes are written as 16 kHz 16-bit FLAC, numbered after the files already in
``DIR/KEYWORD/`` (``17.flac``, ``18.flac``, ...), which is the layout ``[data] keyword_dirs``
reads.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from kws.apps.listen import import_sounddevice
from kws.core.resample import StreamResampler
from kws.data.activations import safe_file_name

log = logging.getLogger(__name__)

RATE = 16000
SILENT_DB = -45.0  # a take whose loudest 50 ms is below this (dBFS) holds no speech
CLIPPED_SAMPLES = 5  # this many samples at full scale make a take clipped


@dataclass(frozen=True)
class RecordConfig:
    """Recording settings.

    Attributes:
        keyword: the keyword's name (the folder's name).
        out: the folder that gets ``<keyword>/<n>.flac``.
        count: good takes to record.
        seconds: length of each take.
        pause_s: count-in before each take.
        max_takes: stop after this many takes, good or not (default: 3 x count).
        device: PortAudio input device (None: the default).
        rate: record at this rate and resample to 16 kHz (None: 16 kHz when the device can).
    """

    keyword: str
    out: Path
    count: int = 20
    seconds: float = 2.0
    pause_s: float = 1.0
    max_takes: int | None = None
    device: str | int | None = None
    rate: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 10000:
            raise ValueError(f"count is {self.count}; allowed: 1..10000")
        if not 0.5 <= self.seconds <= 30:
            raise ValueError(f"seconds is {self.seconds}; allowed: 0.5..30")


def level_db(wave: np.ndarray, frame: int = 800) -> float:
    """Level of the loudest 50 ms frame in dBFS (-inf for digital silence)."""
    n = max(1, len(wave) // frame)
    frames = wave[:n * frame].reshape(n, -1) if len(wave) >= frame else wave[None]
    loudest = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)).max())
    return 20 * np.log10(loudest) if loudest > 0 else float("-inf")


def problem(wave: np.ndarray) -> str | None:
    """Why a take cannot be used (None when it can)."""
    level = level_db(wave)
    if level < SILENT_DB:
        return f"silent (loudest 50 ms at {level:.0f} dBFS, below {SILENT_DB:.0f})"
    clipped = int(np.count_nonzero(np.abs(wave) >= 0.999))
    if clipped >= CLIPPED_SAMPLES:
        return f"clipped ({clipped} samples at full scale: speak further from the microphone)"
    return None


def meter(level: float, width: int = 30) -> str:
    """A level bar from -60 to 0 dBFS."""
    filled = int(np.clip((level + 60) / 60, 0, 1) * width) if np.isfinite(level) else 0
    return "[" + "#" * filled + " " * (width - filled) + f"] {level:6.1f} dBFS"


def next_number(folder: Path) -> int:
    taken = [int(p.stem) for p in folder.glob("*.flac") if p.stem.isdigit()]
    return max(taken, default=-1) + 1


class Recorder:
    """Records takes from a microphone; see the module docstring."""

    def __init__(self, cfg: RecordConfig, terminal: TextIO | None = None) -> None:
        self.cfg = cfg
        self.terminal = terminal or sys.stderr
        self.folder = Path(cfg.out) / safe_file_name(cfg.keyword)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.live = self.terminal.isatty()

    def say(self, text: str) -> None:
        self.terminal.write(text + "\n")
        self.terminal.flush()

    def take(self, sd) -> np.ndarray:
        """One take at 16 kHz, with the level meter while it records."""
        rate = self.cfg.rate or RATE
        try:
            sd.check_input_settings(device=self.cfg.device, samplerate=rate, channels=1,
                                    dtype="float32")
        except Exception:  # noqa: BLE001 - PortAudio reports unsupported rates many ways
            rate = int(sd.query_devices(self.cfg.device, "input")["default_samplerate"])
        blocks: queue.Queue = queue.Queue()
        resampler = StreamResampler(rate, RATE)
        total = int(self.cfg.seconds * rate)
        got, parts = 0, []
        with sd.InputStream(device=self.cfg.device, samplerate=rate, channels=1,
                            dtype="float32", blocksize=rate // 20,
                            callback=lambda data, *_: blocks.put(data[:, 0].copy())):
            while got < total:
                block = blocks.get(timeout=5)[:total - got]
                got += len(block)
                parts.append(resampler.process(block))
                if self.live:
                    self.terminal.write("\r  " + meter(level_db(block)))
                    self.terminal.flush()
        if self.live:
            self.terminal.write("\n")
        return np.concatenate(parts + [resampler.flush()])

    def run(self) -> list[Path]:
        """Record until ``count`` good takes (or ``max_takes`` takes); returns the files."""
        import soundfile

        sd = import_sounddevice()
        cfg = self.cfg
        limit = cfg.max_takes or 3 * cfg.count
        written: list[Path] = []
        for number in range(1, limit + 1):
            if len(written) == cfg.count:
                break
            self.say(f"take {number}: say {cfg.keyword.replace('_', ' ')!r} once, after the "
                     f"count ({len(written)} of {cfg.count} done)")
            time.sleep(cfg.pause_s)
            self.say(f"  recording {cfg.seconds:g} s ...")
            wave = self.take(sd)
            reason = problem(wave)
            if reason:
                self.say(f"  skipped take {number}: {reason}; again")
                continue
            path = self.folder / f"{next_number(self.folder)}.flac"
            soundfile.write(path, wave, RATE, subtype="PCM_16")
            written.append(path)
            self.say(f"  kept {path} ({level_db(wave):.0f} dBFS)")
        self.say(f"{len(written)} of {cfg.count} takes recorded in {self.folder}")
        return written
