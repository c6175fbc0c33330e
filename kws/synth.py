"""Speech synthesis with the TTS programs installed on the machine (espeak-ng, flite).

Each engine is a separate program run with an argument list (never through a shell). Rendered
audio comes back as float32 mono 16 kHz. Used to build the bundled demo clip; the synthetic
keyword pipeline builds on the same functions.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.audio import load_audio

log = logging.getLogger(__name__)

INSTALL_HINT = {"espeak-ng": "apt-get install espeak-ng", "flite": "apt-get install flite"}


@dataclass(frozen=True)
class Voice:
    """One way of speaking: an engine, its voice name, and rate/pitch settings."""

    engine: str
    name: str
    rate: int = 150  # espeak-ng words per minute
    pitch: int = 50  # espeak-ng 0..99

    def command(self, text: str, out: Path) -> list[str]:
        if self.engine == "espeak-ng":
            return ["espeak-ng", "-v", self.name, "-s", str(self.rate), "-p", str(self.pitch),
                    "-w", str(out), text]
        if self.engine == "flite":
            return ["flite", "-voice", self.name, "-t", text, "-o", str(out)]
        raise ValueError(f"engine {self.engine!r} is not one of {sorted(INSTALL_HINT)}")


def available_engines() -> list[str]:
    """TTS programs found on PATH; logs how to install the missing ones."""
    found = [name for name in INSTALL_HINT if shutil.which(name)]
    for name in sorted(set(INSTALL_HINT) - set(found)):
        log.info("%s not found (%s to add it)", name, INSTALL_HINT[name])
    return found


def render(voice: Voice, text: str, sample_rate: int = 16000) -> np.ndarray:
    """Speak ``text`` with ``voice``; ``(n,)`` float32 at ``sample_rate``.

    Raises:
        RuntimeError: the engine is missing or failed (its message included).
    """
    if not shutil.which(voice.engine):
        raise RuntimeError(f"{voice.engine} is not installed ({INSTALL_HINT[voice.engine]})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        proc = subprocess.run(voice.command(text, out), capture_output=True, text=True,
                              timeout=60)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{voice.engine} failed on {text!r}: {proc.stderr.strip()}")
        return load_audio(out, sample_rate)


def demo_clip(parts: list[tuple[Voice, str]], gap_s: float = 0.8,
              sample_rate: int = 16000) -> np.ndarray:
    """Phrases spoken one after another with silence between, peak-normalized to -3 dBFS."""
    gap = np.zeros(int(gap_s * sample_rate), np.float32)
    pieces = [gap]
    for voice, text in parts:
        pieces += [render(voice, text, sample_rate), gap]
    wave = np.concatenate(pieces)
    return (wave * (0.7 / max(1e-6, float(np.abs(wave).max())))).astype(np.float32)
