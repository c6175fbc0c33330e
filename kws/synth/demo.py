"""The bundled demo clip: the four keywords between ordinary sentences, in espeak-ng and flite
voices (``kws/default_model/demo.flac``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.synth.tts import Voice, render


def demo_clip(parts: list[tuple[Voice, str]], gap_s: float = 0.8,
              sample_rate: int = 16000) -> np.ndarray:
    """Phrases spoken one after another with silence between, peak-normalized to -3 dBFS."""
    gap = np.zeros(int(gap_s * sample_rate), np.float32)
    pieces = [gap]
    for voice, text in parts:
        pieces += [render(voice, text, sample_rate), gap]
    wave = np.concatenate(pieces)
    return (wave * (0.7 / max(1e-6, float(np.abs(wave).max())))).astype(np.float32)


DEMO_SCRIPT = (
    (Voice("espeak-ng", "en-us", 150, 50), "Good morning. Let me check the news."),
    (Voice("flite", "slt"), "Alexa."),
    (Voice("flite", "awb"), "What time is it in Tokyo?"),
    (Voice("flite", "rms"), "Computer."),
    (Voice("espeak-ng", "en-gb-x-rp", 150, 50), "Please open the kitchen window."),
    (Voice("flite", "slt"), "Jarvis."),
    (Voice("flite", "kal16"), "Snowboy."),
)


def write_demo(path: str | Path) -> Path:
    """The bundled demo clip: four keywords between ordinary sentences, espeak-ng and flite
    voices (regenerate with
    ``python -c "from kws.synth.demo import write_demo; write_demo(PATH)"``)."""
    import soundfile

    path = Path(path)
    soundfile.write(path, demo_clip(list(DEMO_SCRIPT)), 16000)
    return path
