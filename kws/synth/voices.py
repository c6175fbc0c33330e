"""Voices for synthetic speech: draws across the installed engines, and voice transforms.

Voices are drawn round-robin across the engines of :mod:`kws.synth.tts` (espeak-ng accents and
variants, flite, festival and hibari voices, piper voices, kokoro voices), with rate and pitch
varied; every hibari voice is also made into another speaker (vocal tract length and pitch),
every kokoro voice into a blend of its five (:func:`kws.synth.kokoro.style`, from the pitch);
:func:`kws.train.augment.vtlp` warps any rendering's formants afterwards.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace

import numpy as np

from kws.synth import tts
from kws.synth.tts import Voice

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# hibari's one voice (about 250 Hz) made into other speakers: formants 0.77-1.18x, pitch about
# tract ** -2.5 (a child near 370 Hz, a man near 130 Hz)
HIBARI_TRACT = (0.85, 1.3)
def espeak_variants() -> list[str]:
    """espeak-ng voice variant names (``+name`` suffixes)."""
    proc = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True)
    names = [line.split()[-1].split("/")[-1] for line in proc.stdout.splitlines()[1:]]
    return sorted(n for n in names if n and n.isascii())


def voices(count: int, rng: np.random.Generator, engines: list[str]) -> list[Voice]:
    """``count`` voices drawn round-robin across engines, then across each engine's voices
    (espeak-ng: accent x variant), rates (110-200 words per minute) and pitches; every hibari
    voice is also a new speaker (:data:`HIBARI_TRACT`)."""
    names = tts.engine_voices()
    variants = espeak_variants() if "espeak-ng" in engines else []
    names["flite"] = list(FLITE_VOICES)
    names["espeak-ng"] = [f"{a}+{v}" if v else a for a in ESPEAK_ACCENTS for v in variants or [""]]
    out = []
    for i in range(count):
        engine = engines[i % len(engines)]
        choices = names[engine]
        voice = Voice(engine, choices[int(rng.integers(len(choices)))],
                      int(rng.integers(110, 200)), int(rng.integers(20, 80)))
        if engine == "hibari":  # a new speaker: vocal tract length, and a pitch to go with it
            tract = float(rng.uniform(*HIBARI_TRACT))
            f0 = tract ** -2.5 * float(rng.uniform(0.85, 1.15))
            voice = replace(voice, f0=round(f0, 3), tract=round(tract, 3))
        out.append(voice)
    return out
